// The daemon attaches (SPEC.md §2): lifecycle log lines, the worker epoch
// heartbeat, wake-ups, the orchestrator lock with a standby, DROP/CREATE
// EXTENSION, reconnects, refusal to start, signals.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "catch_compat.hpp"

#include "cluster.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kStarting = "pg_durable: daemon starting...";
constexpr const char *kWaiting = "pg_durable: waiting for CREATE EXTENSION pg_durable...";
constexpr const char *kDetected = "pg_durable: extension detected, proceeding with initialization";
constexpr const char *kProcessing = "pg_durable: processing durable functions...";
constexpr const char *kDropped = "pg_durable: extension dropped, stopping work";
constexpr const char *kStandby = "pg_durable: standby, another daemon holds the orchestrator lock";
// The orchestrator lock: pg_try_advisory_lock(0x70676475 /* "pgdu" */, 1), see daemon/store.cpp.
constexpr const char *kOrchestratorLockHeld =
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = 1885824117 AND objid = 1 AND objsubid = 2";

std::string log_after(const DaemonProcess &daemon, std::size_t offset) {
    const auto log = daemon.log();
    return offset < log.size() ? log.substr(offset) : std::string();
}

std::string epoch_rows(const TestCluster &cluster) {
    return cluster.query_value("SELECT count(*) FROM df._worker_epoch").value_or("?");
}

}  // namespace

TEST_CASE("daemon waits for CREATE EXTENSION, then attaches and logs the lifecycle in order", "[daemon]") {
    TestCluster cluster;
    DaemonProcess daemon(cluster);

    REQUIRE_EVENTUALLY(daemon.log_contains(kWaiting), 30s, daemon.log());
    CHECK_FALSE(daemon.log_contains(kProcessing));

    cluster.exec("CREATE EXTENSION pg_durable");
    // The daemon checks at least every 5 s (SPEC §2).
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 10s, daemon.log());
    CHECK(in_order(daemon.log(), {kStarting, kWaiting, kDetected, kProcessing}));
    CHECK(count_occurrences(daemon.log(), kWaiting) == 1);  // logged once, not per poll
    CHECK(epoch_rows(cluster) == "1");
}

TEST_CASE("daemon with the extension present skips the wait", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    CHECK(in_order(daemon.log(), {kStarting, kDetected, kProcessing}));
    CHECK_FALSE(daemon.log_contains(kWaiting));
}

TEST_CASE("attach replaces the worker epoch row and the heartbeat advances last_seen_at", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    const std::string stale_epoch = "00000000-0000-4000-8000-000000000001";
    cluster.exec("INSERT INTO df._worker_epoch (epoch_id, started_at, last_seen_at) VALUES ('" + stale_epoch +
                 "', now() - interval '1 day', now() - interval '1 day')");

    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());

    CHECK(epoch_rows(cluster) == "1");
    const auto epoch = cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch");
    REQUIRE(epoch);
    CHECK(*epoch != stale_epoch);
    CHECK(daemon.log_contains("worker epoch " + *epoch));

    const auto first_seen = cluster.query_value("SELECT last_seen_at::text FROM df._worker_epoch");
    REQUIRE(first_seen);
    // Heartbeat every 2 s; SPEC requires at least every 5 s.
    REQUIRE_EVENTUALLY(cluster.query_value("SELECT last_seen_at > '" + *first_seen +
                                           "'::timestamptz FROM df._worker_epoch") == std::optional<std::string>("t"),
                       6s, daemon.log());
    CHECK(cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch") == epoch);
}

TEST_CASE("a NOTIFY df_wakeup reaches the daemon", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster, {"--log-level", "debug"});
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());

    cluster.exec("NOTIFY df_wakeup, 'start:0123abcd'");
    REQUIRE_EVENTUALLY(daemon.log_contains("wake-up received for 0123abcd"), 5s, daemon.log());

    cluster.exec("NOTIFY df_wakeup, 'cancel:89abcdef'");
    cluster.exec("NOTIFY df_wakeup, 'bogus'");
    REQUIRE_EVENTUALLY(daemon.log_contains("wake-up received for 89abcdef"), 5s, daemon.log());
    REQUIRE_EVENTUALLY(daemon.log_contains("first 'bogus'"), 5s, daemon.log());
}

TEST_CASE("wake-ups are debug output: invisible at the default log level", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster, {});
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    cluster.exec("NOTIFY df_wakeup, 'bogus'");
    // The malformed-payload warning proves the notification was processed.
    REQUIRE_EVENTUALLY(daemon.log_contains("malformed df_wakeup payload"), 5s, daemon.log());
    cluster.exec("NOTIFY df_wakeup, 'signal:0123abcd'");
    cluster.exec("NOTIFY df_wakeup, 'also bogus'");
    REQUIRE_EVENTUALLY(daemon.log_contains("'also bogus'"), 5s, daemon.log());
    CHECK_FALSE(daemon.log_contains("wake-up received"));
}

TEST_CASE("two daemons: one active, one standby that takes over when the active one dies", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess first(cluster, {"--log-level", "debug"}, "first");
    REQUIRE_EVENTUALLY(first.log_contains(kProcessing), 30s, first.log());
    const auto first_epoch = cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch");

    DaemonProcess second(cluster, {"--log-level", "debug"}, "second");
    REQUIRE_EVENTUALLY(second.log_contains(kStandby), 30s, second.log());
    CHECK_FALSE(second.log_contains(kProcessing));
    CHECK(count_occurrences(second.log(), kStandby) == 1);  // logged once per standby period
    CHECK(cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch") == first_epoch);

    first.kill_hard();
    // Takes over within seconds (retry every ~1 s once the server drops the lock).
    REQUIRE_EVENTUALLY(second.log_contains(kProcessing), 10s, second.log());
    CHECK(in_order(second.log(), {kStandby, kProcessing}));
    CHECK(epoch_rows(cluster) == "1");
    const auto second_epoch = cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch");
    CHECK(second_epoch != first_epoch);
    CHECK(second.log_contains("worker epoch " + second_epoch.value_or("?")));
}

TEST_CASE("DROP EXTENSION stops work and releases the lock; CREATE EXTENSION resumes", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    const auto lock_held = kOrchestratorLockHeld;
    CHECK(cluster.query_value(lock_held) == std::optional<std::string>("1"));

    const auto before_drop = daemon.log().size();
    cluster.exec("DROP EXTENSION pg_durable");
    REQUIRE_EVENTUALLY(log_after(daemon, before_drop).find(kDropped) != std::string::npos, 5s, daemon.log());
    REQUIRE_EVENTUALLY(in_order(log_after(daemon, before_drop), {kDropped, kWaiting}), 5s, daemon.log());
    REQUIRE_EVENTUALLY(cluster.query_value(lock_held) == std::optional<std::string>("0"), 5s, daemon.log());

    cluster.exec("CREATE EXTENSION pg_durable");
    REQUIRE_EVENTUALLY(in_order(log_after(daemon, before_drop), {kDropped, kWaiting, kDetected, kProcessing}),
                       10s, daemon.log());
    CHECK(epoch_rows(cluster) == "1");
    CHECK(cluster.query_value(lock_held) == std::optional<std::string>("1"));
}

TEST_CASE("DROP EXTENSION CASCADE followed at once by CREATE EXTENSION re-attaches", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    const auto old_epoch = cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch");

    // Faster than one heartbeat: the new extension has a new OID and an empty
    // epoch table; the daemon must notice and attach afresh.
    cluster.exec("DROP EXTENSION pg_durable CASCADE; CREATE EXTENSION pg_durable");
    REQUIRE_EVENTUALLY(count_occurrences(daemon.log(), kProcessing) == 2, 10s, daemon.log());
    CHECK(daemon.log_contains(kDropped));
    CHECK(epoch_rows(cluster) == "1");
    CHECK(cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch") != old_epoch);
}

TEST_CASE("max_duroxide_connections below 2 makes the daemon refuse to start", "[daemon]") {
    TestCluster cluster({false, {{"pg_durable.max_duroxide_connections", "1"}}});
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    const auto code = daemon.wait_exit(30s);
    INFO(daemon.log());
    REQUIRE(code);
    CHECK(*code == 1);
    CHECK(daemon.log_contains("pg_durable.max_duroxide_connections is 1"));
    CHECK(daemon.log_contains("refusing to start"));
    CHECK_FALSE(daemon.log_contains(kProcessing));
    CHECK(cluster.query_value(kOrchestratorLockHeld) ==
          std::optional<std::string>("0"));
}

TEST_CASE("the daemon reconnects after the server restarts and attaches again", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    const auto old_epoch = cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch");

    cluster.restart(StopMode::immediate);
    REQUIRE_EVENTUALLY(daemon.log_contains("lost the connection to the server"), 15s, daemon.log());
    REQUIRE_EVENTUALLY(count_occurrences(daemon.log(), kProcessing) == 2, 30s, daemon.log());
    CHECK(epoch_rows(cluster) == "1");
    CHECK(cluster.query_value("SELECT epoch_id::text FROM df._worker_epoch") != old_epoch);
    CHECK(daemon.running());
}

TEST_CASE("the daemon keeps retrying while the server is down, logging the failure once", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    cluster.stop(StopMode::fast);
    DaemonProcess daemon(cluster, {"--log-level", "debug"});
    REQUIRE_EVENTUALLY(daemon.log_contains("cannot connect to the server"), 10s, daemon.log());
    // Repeated attempts (backoff starts at 250 ms) show up at debug level only ...
    REQUIRE_EVENTUALLY(daemon.log_contains("connection attempt 3 failed"), 15s, daemon.log());
    // ... the state change is logged once.
    CHECK(count_occurrences(daemon.log(), "cannot connect to the server") == 1);
    cluster.start();
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    CHECK(daemon.log_contains("failed attempts"));
}

TEST_CASE("SIGTERM drains: the lock is released and the daemon exits 0", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    DaemonProcess standby(cluster, {}, "standby");
    REQUIRE_EVENTUALLY(standby.log_contains(kStandby), 30s, standby.log());

    daemon.signal(SIGTERM);
    const auto code = daemon.wait_exit(15s);
    INFO(daemon.log());
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK(daemon.log_contains("pg_durable: daemon stopped"));
    // Released explicitly, so the standby takes over promptly.
    REQUIRE_EVENTUALLY(standby.log_contains(kProcessing), 10s, standby.log());
}

TEST_CASE("SIGHUP re-reads the settings; restart-only changes are reported, not applied", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());

    cluster.exec("ALTER SYSTEM SET pg_durable.retention_days = 7");
    cluster.exec("SELECT pg_reload_conf()");
    // The daemon's backend applies the reload asynchronously; keep nudging.
    REQUIRE_EVENTUALLY((daemon.signal(SIGHUP),
                        wait_until([&] { return daemon.log_contains("pg_durable.retention_days changed from 30 to 7"); },
                                   500ms)),
                       15s, daemon.log());

    // A postmaster-context setting only changes with a server restart; the
    // daemon reconnects and warns that it keeps the old value.
    cluster.exec("ALTER SYSTEM SET pg_durable.max_user_connections = 20");
    cluster.restart(StopMode::fast);
    REQUIRE_EVENTUALLY(daemon.log_contains("pg_durable.max_user_connections changed from 10 to 20, which takes "
                                           "effect only when the daemon restarts"),
                       30s, daemon.log());
    CHECK(daemon.running());
}

TEST_CASE("--version and --help", "[daemon]") {
    TestCluster cluster;
    DaemonProcess version(cluster, {"--version"});
    REQUIRE(version.wait_exit(10s) == std::optional<int>(0));
    CHECK(version.log().rfind("pg_durable_daemon 1.0.0 (built ", 0) == 0);
    DaemonProcess help(cluster, {"--help"});
    REQUIRE(help.wait_exit(10s) == std::optional<int>(0));
    CHECK(help.log_contains("--conninfo"));
    DaemonProcess bad(cluster, {"--no-such-flag"});
    REQUIRE(bad.wait_exit(10s) == std::optional<int>(2));
}

TEST_CASE("the daemon drains and exits when its parent lifeline reaches EOF", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    int lifeline[2];
    REQUIRE(::pipe2(lifeline, O_CLOEXEC) == 0);
    // Only the read end goes to the daemon; the write end stays with us, the
    // way the shim keeps it.
    REQUIRE(::fcntl(lifeline[0], F_SETFD, 0) == 0);
    DaemonProcess daemon(cluster, {"--parent-fd", std::to_string(lifeline[0])});
    ::close(lifeline[0]);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    CHECK(daemon.running());

    ::close(lifeline[1]);
    const auto code = daemon.wait_exit(15s);
    INFO(daemon.log());
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK(daemon.log_contains("the parent process (shim) is gone"));
    CHECK(cluster.query_value(kOrchestratorLockHeld) ==
          std::optional<std::string>("0"));
}

namespace {

// Freezes a server backend (SIGSTOP) so the daemon's next statement on it
// blocks; always thawed again, even when the test fails.
class FrozenBackend {
public:
    explicit FrozenBackend(pid_t pid) : pid_(pid) { ::kill(pid_, SIGSTOP); }
    ~FrozenBackend() { ::kill(pid_, SIGCONT); }
    FrozenBackend(const FrozenBackend &) = delete;
    FrozenBackend &operator=(const FrozenBackend &) = delete;

private:
    pid_t pid_;
};

pid_t daemon_backend_pid(const TestCluster &cluster) {
    const auto pid =
        cluster.query_value("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_durable orchestrator'");
    return pid ? static_cast<pid_t>(std::stol(*pid)) : 0;
}

}  // namespace

TEST_CASE("a second SIGTERM exits at once when the drain is stuck", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    const pid_t backend = daemon_backend_pid(cluster);
    REQUIRE(backend != 0);

    FrozenBackend frozen(backend);
    daemon.signal(SIGTERM);
    REQUIRE_EVENTUALLY(daemon.log_contains("SIGTERM received; stopping"), 5s, daemon.log());
    CHECK(daemon.running());  // releasing the lock waits for the frozen backend

    daemon.signal(SIGTERM);
    const auto code = daemon.wait_exit(3s);
    INFO(daemon.log());
    REQUIRE(code);
    CHECK(*code == 1);
    CHECK(daemon.log_contains("second SIGTERM received; exiting immediately"));
    CHECK_FALSE(daemon.log_contains("pg_durable: daemon stopped"));
}

TEST_CASE("a stuck drain ends at the drain deadline", "[daemon]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    DaemonProcess daemon(cluster);
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    const pid_t backend = daemon_backend_pid(cluster);
    REQUIRE(backend != 0);

    FrozenBackend frozen(backend);
    daemon.signal(SIGTERM);
    // The deadline is 10 s.
    const auto code = daemon.wait_exit(20s);
    INFO(daemon.log());
    REQUIRE(code);
    CHECK(*code == 1);
    CHECK(daemon.log_contains("clean stop did not finish within 10000 ms"));
}
