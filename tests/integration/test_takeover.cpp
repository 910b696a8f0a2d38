// A paused or cut-off daemon (SIGSTOP here; a network partition looks the
// same to the server: an idle session that keeps its locks) is replaced by
// its standby within seconds, and when it resumes it writes nothing: every
// bookkeeping write is fenced by its worker epoch and every step by the
// secret the new daemon rotated (DESIGN §2.7, issue 8 item 8).
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

TEST_CASE("takeover: a SIGSTOPped daemon is replaced by its standby; resumed, it writes nothing", "[hostile][takeover]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE takeover_rows (n int PRIMARY KEY); GRANT ALL ON takeover_rows TO alice");
    DaemonProcess standby(ec.cluster(), {"--log-level", "debug"}, "standby");
    REQUIRE_EVENTUALLY(standby.log_contains("pg_durable: standby, another daemon holds the orchestrator lock"), 30s,
                       standby.log());

    std::string chain = "'INSERT INTO takeover_rows VALUES (1)'";
    for (int n = 2; n <= 12; ++n)
        chain += " ~> df.sleep(1) ~> 'INSERT INTO takeover_rows VALUES (" + std::to_string(n) + ")'";
    const auto id = ec.start(chain + " ~> 'SELECT count(*) AS n FROM takeover_rows'");
    REQUIRE_EVENTUALLY(std::stol(ec.cluster().query_value("SELECT count(*) FROM takeover_rows").value_or("0")) >= 2,
                       20s, ec.diagnostics(id));

    ec.daemon()->signal(SIGSTOP);
    const auto paused = std::chrono::steady_clock::now();
    REQUIRE_EVENTUALLY(standby.log_contains("orchestrator lock acquired, taking over from the previous daemon"), 30s,
                       standby.log());
    CHECK(std::chrono::steady_clock::now() - paused < 20s);
    REQUIRE_EVENTUALLY(ec.status(id) == "completed", 40s, ec.diagnostics(id) + "\n--- standby log ---\n" + standby.log());
    CHECK(ec.result(id) == R"({"rows":[{"n":12}],"row_count":1})");

    // Resumed, the old daemon finds its session gone and its epoch replaced.
    const auto before = ec.cluster().query_value(
        "SELECT string_agg(stamp || node_id || status || coalesce(result, ''), ',' ORDER BY stamp, node_id) "
        "FROM df._activations");
    ec.daemon()->signal(SIGCONT);
    REQUIRE_EVENTUALLY(ec.daemon()->log_contains("standby, another daemon holds the orchestrator lock"), 30s,
                       ec.daemon()->log());
    CHECK(ec.cluster().query_value(
              "SELECT string_agg(stamp || node_id || status || coalesce(result, ''), ',' ORDER BY stamp, node_id) "
              "FROM df._activations") == before);
    CHECK(ec.cluster().query_value("SELECT count(*) FROM takeover_rows") == std::optional<std::string>("12"));
    CHECK(ec.status(id) == "completed");
    // The new daemon runs new work.
    const auto next = ec.start("'SELECT 5 AS five'");
    CHECK(ec.await(next, 20s) == "completed");
}

// The fence of the writes a paused daemon still has queued when it resumes
// (issue 10 item 4). The old daemon is held between attaching and its secret
// write (the test locks df._daemon_secret), paused before its first retention
// sweep, replaced, and resumed: its secret write and its sweep (with the
// retention_days = 0 it read long ago) must write nothing. Without the epoch
// fence on both, the new daemon's steps are refused (wrong secret) and its
// finished instance is deleted.
TEST_CASE("takeover: a resumed daemon's queued secret write and retention sweep are fenced", "[takeover]") {
    ClusterOptions options;
    options.settings["pg_durable.retention_days"] = "0";
    EngineCluster ec(options, false);

    pqxx::connection blocker(ec.cluster().conninfo());
    auto hold = std::make_unique<pqxx::work>(blocker);
    hold->exec("LOCK TABLE df._daemon_secret IN EXCLUSIVE MODE");

    DaemonProcess old_daemon(ec.cluster(), {"--log-level", "debug"}, "old");
    REQUIRE_EVENTUALLY(old_daemon.log_contains("pg_durable: processing durable functions..."), 30s, old_daemon.log());
    // Its first sweep is due 2 s after attaching, its secret write is retrying.
    old_daemon.signal(SIGSTOP);
    const auto old_epoch = ec.cluster().query_value("SELECT epoch_id FROM df._worker_epoch");
    REQUIRE(old_epoch);

    // The next daemon keeps finished instances.
    ec.cluster().exec("ALTER SYSTEM SET pg_durable.retention_days = 30");
    ec.cluster().exec("SELECT pg_reload_conf()");
    DaemonProcess next_daemon(ec.cluster(), {"--log-level", "debug"}, "next");
    REQUIRE_EVENTUALLY(next_daemon.log_contains("orchestrator lock acquired, taking over from the previous daemon"),
                       40s, next_daemon.log());
    hold->commit();
    hold.reset();
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT s.epoch_id = e.epoch_id FROM df._daemon_secret s, "
                                                "df._worker_epoch e") == std::optional<std::string>("t"),
                       20s, next_daemon.log());
    CHECK(ec.cluster().query_value("SELECT epoch_id FROM df._worker_epoch") != old_epoch);
    const auto done = ec.start("'SELECT 1 AS one'");
    REQUIRE(ec.await(done, 20s) == "completed");

    // Resumed: its retry and its sweep run at once, then it finds its session gone.
    old_daemon.signal(SIGCONT);
    REQUIRE_EVENTUALLY(old_daemon.log_contains("standby, another daemon holds the orchestrator lock"), 30s,
                       old_daemon.log());
    CHECK(ec.cluster().query_value("SELECT s.epoch_id = e.epoch_id FROM df._daemon_secret s, df._worker_epoch e") ==
          std::optional<std::string>("t"));
    CHECK(ec.status(done) == "completed");
    const auto after = ec.start("'SELECT 2 AS two'");
    CHECK(ec.await(after, 20s) == "completed");
    CHECK(ec.result(after) == R"({"rows":[{"two":2}],"row_count":1})");
}

// A paused daemon may be stopped in the middle of a bookkeeping transaction
// that began after its last heartbeat, with its epoch row share-locked (the
// epoch fence's FOR KEY SHARE). The standby's sweep spares it (it is younger
// than the heartbeat's staleness), and the standby's attach (DELETE of the
// epoch row) then waited for it until the server's
// idle_in_transaction_session_timeout (60 s): nothing ran for a minute. Here a
// session of the daemon's application_name plays that transaction: begun
// seconds after the pause, idle, the daemon's own fence statement. The
// standby must end it and run new work within seconds. A user's transaction
// that reads df._worker_epoch (and is older than the staleness) is no
// daemon's and must survive the takeover.
TEST_CASE("takeover: a paused daemon's transaction begun after its last heartbeat does not hold up the attach",
          "[hostile][takeover]") {
    EngineCluster ec;
    // A user (df usage includes SELECT on df._worker_epoch) reads the table in
    // a transaction that stays open across the takeover, old enough for the
    // standby's sweep to judge (older than the heartbeat's staleness when the
    // sweep runs).
    pqxx::connection reader(ec.cluster().conninfo("alice"));
    auto reading = std::make_unique<pqxx::work>(reader);
    CHECK(reading->exec1("SELECT count(*) FROM df._worker_epoch")[0].as<int>() == 1);

    DaemonProcess standby(ec.cluster(), {"--log-level", "debug"}, "standby");
    REQUIRE_EVENTUALLY(standby.log_contains("pg_durable: standby, another daemon holds the orchestrator lock"), 30s,
                       standby.log());
    const auto warm = ec.start("'SELECT 1 AS one'");
    REQUIRE(ec.await(warm, 20s) == "completed");
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                        std::to_string(reader.backendpid()) +
                                        " AND xact_start < now() - interval '5 s'") == 1,
                       20s, "");

    ec.daemon()->signal(SIGSTOP);
    const auto paused = std::chrono::steady_clock::now();
    // Its last heartbeat is a few seconds old: what begins now began after it.
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT last_seen_at < now() - interval '4 s' FROM df._worker_epoch") ==
                           std::optional<std::string>("t"),
                       20s, standby.log());
    pqxx::connection late(ec.cluster().conninfo() + " application_name='pg_durable orchestrator'");
    {
        pqxx::nontransaction setup(late);
        setup.exec("SET lock_timeout = '2s'; SET statement_timeout = '30s'; "
                   "SET idle_in_transaction_session_timeout = '60s'");
        setup.exec("SELECT pg_catalog.set_config('df_daemon.epoch', (SELECT epoch_id::text FROM df._worker_epoch), "
                   "false)");
    }
    const auto late_pid = late.backendpid();
    auto bookkeeping = std::make_unique<pqxx::work>(late);
    REQUIRE(bookkeeping
                ->exec("SELECT 1 FROM df._worker_epoch "
                       "WHERE epoch_id = pg_catalog.current_setting('df_daemon.epoch')::uuid FOR KEY SHARE")
                .size() == 1);
    // Still before the takeover, or this test proves nothing.
    REQUIRE_FALSE(standby.log_contains("orchestrator lock acquired"));

    REQUIRE_EVENTUALLY(standby.log_contains("orchestrator lock acquired, taking over from the previous daemon"), 30s,
                       standby.log());
    const auto next = ec.start("'SELECT 5 AS five'");
    const auto status = ec.await(next, 30s);
    INFO(ec.diagnostics(next) << "\n--- standby log ---\n" << standby.log());
    CHECK(status == "completed");
    CHECK(std::chrono::steady_clock::now() - paused < 35s);  // the idle timeout would end it at about 64 s
    CHECK(ec.cluster().query_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(late_pid)) ==
          std::optional<std::string>("0"));

    // The user's reader was left alone.
    CHECK_NOTHROW(reading->exec1("SELECT count(*) FROM df._worker_epoch"));
    CHECK_NOTHROW(reading->commit());
    reading.reset();
    bookkeeping.reset();  // its rollback finds the session gone
    ec.kill_daemon();
}

namespace {

// Seconds from a fault of the active daemon (SIGKILL or SIGSTOP) to the first
// step run after it: a workflow started right after the fault records the
// server's clock, and only the standby can run it.
double takeover_seconds(EngineCluster &ec, DaemonProcess &active, int signo) {
    const double fault_at = std::stod(ec.cluster().query_value("SELECT extract(epoch FROM clock_timestamp())").value());
    if (signo == SIGKILL)
        active.kill_hard();
    else
        active.signal(signo);
    const auto id = ec.start("'INSERT INTO takeover_clock SELECT extract(epoch FROM clock_timestamp())'");
    REQUIRE(ec.await(id, 60s) == "completed");
    return std::stod(ec.cluster().query_value("SELECT max(at) FROM takeover_clock").value()) - fault_at;
}

std::string seconds_list(const std::vector<double> &values) {
    std::string out;
    char buf[32];
    for (double v : values) {
        std::snprintf(buf, sizeof buf, "%s%.2f", out.empty() ? "" : " ", v);
        out += buf;
    }
    return out + " s";
}

}  // namespace

// Item 4's figures (docs/RELIABILITY.md): with a standby running, how long
// from kill -9 / SIGSTOP of the active daemon until the standby runs a step.
// They follow from the standby's retry (1 s), the heartbeat (2 s) and the
// staleness after which a standby ends a paused holder's session (10 s).
TEST_CASE("takeover time after kill -9 and after SIGSTOP of the active daemon", "[takeover]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE takeover_clock (at double precision); GRANT INSERT ON takeover_clock TO alice");
    std::vector<std::unique_ptr<DaemonProcess>> daemons;
    DaemonProcess *active = ec.daemon();
    std::vector<double> after_kill, after_stop;
    int round = 0;
    for (int signo : {SIGKILL, SIGKILL, SIGKILL, SIGSTOP, SIGSTOP, SIGSTOP}) {
        daemons.push_back(std::make_unique<DaemonProcess>(
            ec.cluster(), std::vector<std::string>{"--log-level", "debug"}, "standby-" + std::to_string(++round)));
        DaemonProcess &standby = *daemons.back();
        REQUIRE_EVENTUALLY(standby.log_contains("pg_durable: standby, another daemon holds the orchestrator lock"),
                           30s, standby.log());
        const double seconds = takeover_seconds(ec, *active, signo);
        INFO("round " << round << " took " << seconds << " s\n" << standby.log());
        CHECK(standby.log_contains("orchestrator lock acquired, taking over from the previous daemon"));
        (signo == SIGKILL ? after_kill : after_stop).push_back(seconds);
        if (signo == SIGSTOP) active->kill_hard();
        active = &standby;
    }
    std::printf("takeover: after kill -9 %s; after SIGSTOP %s\n", seconds_list(after_kill).c_str(),
                seconds_list(after_stop).c_str());
    std::fflush(stdout);
    for (double s : after_kill) CHECK(s < 5.0);
    for (double s : after_stop) {
        CHECK(s > 5.0);  // a paused daemon is not judged dead before its heartbeat is stale
        CHECK(s < 20.0);
    }
}
