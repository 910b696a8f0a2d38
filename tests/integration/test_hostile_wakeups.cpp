// Hostile input through the wake-up channel and the instance rows (issue 8;
// DESIGN §2.12 and §2.13): a role with nothing but LOGIN can NOTIFY
// df_wakeup with any payload, and any user can hold their own instance's row
// in an open transaction. Neither may stop, stall or reload anyone else's
// workflows.
#include <chrono>
#include <fstream>
#include <string>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

// An attacker with LOGIN only: no df usage, no grants.
void create_mallory(EngineCluster &ec) { ec.cluster().exec("CREATE ROLE mallory " + kLogin); }

void notify_as(EngineCluster &ec, const std::string &role, const std::string &payload) {
    pqxx::connection conn(ec.cluster().conninfo(role));
    pqxx::nontransaction tx(conn);
    tx.exec("NOTIFY df_wakeup, " + lit(payload));
}

}  // namespace

// The daemon's memory after a flood of forged wake-ups stays bounded. Under
// AddressSanitizer (make test-asan builds the tests and the daemon they run
// with it) freed memory sits in ASan's quarantine and every allocation has a
// shadow, so the bound is ASan's overhead, not the daemon's.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kFloodRssBoundKb = 320 * 1024;
#else
constexpr long kFloodRssBoundKb = 32 * 1024;
#endif

TEST_CASE("hostile: forged wake-ups of every kind neither stop nor disturb another role's running instance",
          "[hostile]") {
    EngineCluster ec;
    create_mallory(ec);
    ec.cluster().exec("CREATE TABLE victim_rows (i int); GRANT ALL ON victim_rows TO alice");
    const auto pid = ec.daemon()->pid();
    const auto id = ec.start("'INSERT INTO victim_rows VALUES (1); SELECT pg_sleep(2)' ~> "
                             "'INSERT INTO victim_rows VALUES (2)' ~> 'SELECT count(*) AS n FROM victim_rows'");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(id));

    for (const char *kind : {"cancel:", "start:", "signal:"}) notify_as(ec, "mallory", kind + id);
    notify_as(ec, "mallory", "cancel:" + id + "x");
    notify_as(ec, "mallory", "");
    notify_as(ec, "mallory", std::string(7000, ':'));

    // The step is not interrupted and the instance runs to the end, each step once.
    CHECK(ec.await(id, 20s) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"n":2}],"row_count":1})");
    CHECK(count_of(ec, "SELECT count(*) FROM victim_rows") == 2);
    CHECK(ec.daemon()->pid() == pid);
    CHECK(ec.daemon()->running());
}

TEST_CASE("hostile: a flood of forged wake-ups costs bounded memory and genuine instances keep their pace",
          "[hostile]") {
    EngineCluster ec;
    create_mallory(ec);
    const auto pid = ec.daemon()->pid();
    auto rss_kb = [&] {
        std::ifstream in("/proc/" + std::to_string(pid) + "/status");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
        return -1L;
    };
    const long rss_before = rss_kb();

    // 300,000 distinct forged ids (a few of them real) in three transactions.
    const auto victim = ec.start("df.sleep(2) ~> 'SELECT 42 AS answer'");
    const auto started = std::chrono::steady_clock::now();
    {
        pqxx::connection conn(ec.cluster().conninfo("mallory"));
        pqxx::nontransaction tx(conn);
        for (int batch = 0; batch < 3; ++batch)
            tx.exec("SELECT pg_notify('df_wakeup', (ARRAY['cancel:', 'start:', 'signal:'])[1 + i % 3] || "
                    "lpad(to_hex(i), 8, '0')) FROM generate_series(" + std::to_string(batch * 100000) + ", " +
                    std::to_string(batch * 100000 + 99999) + ") AS i");
        tx.exec("NOTIFY df_wakeup, " + lit("cancel:" + victim));
    }
    CHECK(ec.await(victim, 10s) == "completed");
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 3500ms);  // its 2 s sleep, plus at most 1.5 s
    CHECK(ec.result(victim) == R"({"rows":[{"answer":42}],"row_count":1})");
    // A later instance starts and runs as usual.
    const auto after = ec.start("'SELECT 1 AS one'");
    CHECK(ec.await(after, 5s) == "completed");
    CHECK(ec.daemon()->pid() == pid);
    const long rss_after = rss_kb();
    INFO("daemon RSS before " << rss_before << " kB, after " << rss_after << " kB");
    CHECK(rss_after - rss_before < kFloodRssBoundKb);
}

TEST_CASE("hostile: a signal wait that lost a RACE leaves the line, so the next wait of a loop gets the signal",
          "[hostile]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE ev (t text); GRANT ALL ON ev TO alice");
    const auto id = ec.start("df.loop((df.wait_for_signal('tick') | df.sleep(1)) |=> 'r' ~> "
                             "'INSERT INTO ev SELECT $r::text', NULL, 0)");
    // A few iterations where the sleep wins and the signal wait is cancelled.
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM ev") >= 2, 20s, ec.diagnostics(id));
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(id) + ", 'tick', '{\"n\": 7}')") ==
          std::optional<std::string>("OK"));
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM ev WHERE t LIKE '%\"n\": 7%' OR t LIKE '%\"n\":7%'") == 1,
                       5s, ec.diagnostics(id));
    CHECK(count_of(ec, "SELECT count(*) FROM df._signals") == 0);
    ec.query("alice", "SELECT df.cancel(" + lit(id) + ")");
}

TEST_CASE("hostile: a user holding their own instance's row locked stalls only that instance", "[hostile]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE bob_rows (i int); GRANT ALL ON bob_rows TO bob");
    const auto held = ec.start("df.sleep(1) ~> 'SELECT 1'");
    REQUIRE_EVENTUALLY(ec.status(held) == "running", 5s, ec.diagnostics(held));
    // alice cancels her own instance in a transaction she keeps open while its timer falls due.
    pqxx::connection alice(ec.cluster().conninfo("alice"));
    pqxx::work tx(alice);
    tx.exec("SELECT df.cancel(" + lit(held) + ", 'changed my mind')");

    const auto started = std::chrono::steady_clock::now();
    const auto other = ec.start("'INSERT INTO bob_rows VALUES (1)' ~> df.sleep(1) ~> 'INSERT INTO bob_rows VALUES (2)' "
                                "~> df.sleep(1) ~> 'SELECT count(*) AS n FROM bob_rows'",
                                "bob");
    CHECK(ec.await(other, 10s) == "completed");
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 3500ms);  // two 1 s sleeps, plus at most 1.5 s
    CHECK(ec.result(other) == R"({"rows":[{"n":2}],"row_count":1})");
    CHECK(ec.status(held) == "running");  // waiting for alice's lock, not reloaded, not failed

    tx.commit();
    CHECK(ec.await(held, 10s) == "cancelled");
    CHECK(count_of(ec, "SELECT count(*) FROM bob_rows") == 2);
    CHECK_FALSE(ec.daemon()->log_contains("rescanning"));
}

TEST_CASE("hostile: RACE losers and cancels hammered concurrently never deadlock", "[hostile]") {
    ClusterOptions options;
    options.settings["log_parameter_max_length_on_error"] = "-1";  // the keys in a deadlock report
    EngineCluster ec(options);
    ec.cluster().exec("CREATE TABLE race_hits (i int); GRANT ALL ON race_hits TO alice");
    const auto pid = ec.daemon()->pid();
    // Losers end right around the moment they lose: some mid-statement, some
    // in their own bookkeeping, some already committed.
    const std::string race =
        "df.loop(('SELECT pg_sleep(random() * 0.02); INSERT INTO race_hits VALUES (1)' | "
        "'SELECT pg_sleep(random() * 0.02); INSERT INTO race_hits VALUES (2)' | "
        "('SELECT pg_sleep(random() * 0.02)' & 'SELECT pg_sleep(random() * 0.02)')), NULL, 0)";
    std::vector<std::string> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(ec.start(race));
    REQUIRE_EVENTUALLY(std::stol(ec.cluster().query_value("SELECT count(*) FROM race_hits").value_or("0")) > 400, 60s,
                       ec.daemon()->log());
    // Cancel them one by one while they race.
    for (const auto &id : ids) {
        ec.query("alice", "SELECT df.cancel(" + lit(id) + ", 'enough')");
        CHECK(ec.await(id, 10s) == "cancelled");
    }
    const std::string log = ec.cluster().server_log();
    const auto at = log.find("deadlock detected");
    INFO((at == std::string::npos ? std::string() : log.substr(at, 6000)));
    CHECK(count_occurrences(log, "deadlock detected") == 0);
    CHECK(ec.daemon()->pid() == pid);
    // Every cancelled instance's interrupted steps end up recorded, none left running.
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT count(*) FROM df._activations a JOIN df.instances i "
                                                "ON i.id = a.instance_id WHERE a.status = 'running'") ==
                           std::optional<std::string>("0"),
                       10s, ec.daemon()->log());
}
