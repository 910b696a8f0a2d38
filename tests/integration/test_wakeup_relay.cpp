// The wake-up relay (issue 12; docs/ARCHITECTURE.md "Wake-ups are hints"):
// df.start's transaction issues no NOTIFY; after its commit the relay worker
// sends the id in a 'starts:' payload. Every test LISTENs on df_wakeup
// itself and looks at who sent what: the sender's pid tells the relay
// (backend_type 'pg_durable wakeup relay') from the submitting backend.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

constexpr const char *kRelayPid =
    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_durable wakeup relay'";

// A LISTEN df_wakeup session that keeps every (payload, sender pid).
class Listener {
public:
    explicit Listener(const TestCluster &cluster, const std::string &db = "postgres")
        : conn_(cluster.conninfo("", db)), receiver_(conn_, *this) {
        pqxx::nontransaction(conn_).exec("SELECT 1");  // LISTEN is sent on first use
    }
    void poll() { conn_.get_notifs(); }
    // Whether some payload so far contains `needle`.
    bool saw(const std::string &needle) {
        poll();
        for (const auto &[payload, pid] : received_)
            if (payload.find(needle) != std::string::npos) return true;
        return false;
    }
    // The pids of the senders of payloads containing `needle`.
    std::vector<int> senders_of(const std::string &needle) {
        poll();
        std::vector<int> pids;
        for (const auto &[payload, pid] : received_)
            if (payload.find(needle) != std::string::npos) pids.push_back(pid);
        return pids;
    }
    std::string dump() {
        poll();
        std::string out;
        for (const auto &[payload, pid] : received_)
            out += std::to_string(pid) + ": " + payload.substr(0, 80) + "\n";
        return out;
    }

private:
    struct Receiver final : pqxx::notification_receiver {
        Receiver(pqxx::connection_base &conn, Listener &owner)
            : pqxx::notification_receiver(conn, "df_wakeup"), owner_(owner) {}
        void operator()(const std::string &payload, int pid) override { owner_.received_.emplace_back(payload, pid); }
        Listener &owner_;
    };
    pqxx::connection conn_;
    Receiver receiver_;
    std::vector<std::pair<std::string, int>> received_;
};

int relay_pid(EngineCluster &ec) { return static_cast<int>(count_of(ec, kRelayPid)); }

int wait_for_relay(EngineCluster &ec) {
    REQUIRE_EVENTUALLY(relay_pid(ec) > 0, 20s, ec.cluster().server_log());
    return relay_pid(ec);
}

// df.start in a session of its own as alice; the id and that backend's pid.
std::pair<std::string, int> start_in_session(EngineCluster &ec, const std::string &args) {
    pqxx::connection conn(ec.cluster().conninfo("alice"));
    pqxx::nontransaction tx(conn);
    const int pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
    const auto id = tx.exec("SELECT df.start(" + args + ")")[0][0].as<std::string>();
    return {id, pid};
}

}  // namespace

TEST_CASE("wake-up relay: a committed df.start is dispatched by the relay's NOTIFY, not the submitter's; "
          "a rolled-back one is never pushed",
          "[wakeup][relay]") {
    ClusterOptions options;
    options.settings.emplace("max_prepared_transactions", "2");
    EngineCluster ec(options);
    const int relay = wait_for_relay(ec);
    Listener listener(ec.cluster());

    const auto [id, submitter] = start_in_session(ec, "'SELECT 1 AS one'");
    CHECK(ec.await(id) == "completed");
    REQUIRE_EVENTUALLY(listener.saw(id), 10s, listener.dump());
    CHECK(listener.senders_of(id) == std::vector<int>{relay});
    CHECK(listener.senders_of("starts:").size() >= 1);
    for (int pid : listener.senders_of("")) CHECK(pid != submitter);

    // Rolled back, whole or to a savepoint: nothing is pushed. The relay
    // sends in push order, so the committed id arriving means an id pushed
    // before it would have arrived too.
    std::string rolled_back, in_savepoint, kept;
    {
        pqxx::connection conn(ec.cluster().conninfo("alice"));
        {
            pqxx::work tx(conn);
            rolled_back = tx.exec("SELECT df.start('SELECT 2')")[0][0].as<std::string>();
            tx.abort();
        }
        pqxx::work tx(conn);
        tx.exec("SAVEPOINT a");
        in_savepoint = tx.exec("SELECT df.start('SELECT 3')")[0][0].as<std::string>();
        tx.exec("ROLLBACK TO SAVEPOINT a");
        tx.exec("SAVEPOINT b");
        kept = tx.exec("SELECT df.start('SELECT 4')")[0][0].as<std::string>();
        tx.exec("RELEASE SAVEPOINT b");
        tx.commit();
    }
    CHECK(ec.await(kept) == "completed");
    REQUIRE_EVENTUALLY(listener.saw(kept), 10s, listener.dump());
    CHECK(listener.senders_of(kept) == std::vector<int>{relay});
    CHECK_FALSE(listener.saw(rolled_back));
    CHECK_FALSE(listener.saw(in_savepoint));
    CHECK(ec.status(rolled_back) == "<none>");
    CHECK(ec.status(in_savepoint) == "<none>");

    // A PREPAREd transaction commits elsewhere: df.start falls back to its
    // own NOTIFY there, which PREPARE refuses, as before the relay.
    CHECK(ec.error_of("alice", "BEGIN; SELECT df.start('SELECT 5'); PREPARE TRANSACTION 'p'")
              .value_or("")
              .find("NOTIFY") != std::string::npos);
}

TEST_CASE("wake-up relay: more starts than its ring holds still start every instance (a rescan)",
          "[wakeup][relay]") {
    ClusterOptions options;
    options.settings.emplace("pg_durable.wakeup_relay_slots", "4");
    EngineCluster ec(options);
    const int relay = wait_for_relay(ec);
    Listener listener(ec.cluster());
    ec.cluster().exec("CREATE TABLE hits (id text)");
    ec.cluster().exec("GRANT ALL ON hits TO alice");

    // One transaction of 10 starts: more than the ring holds.
    std::vector<std::string> ids;
    {
        pqxx::connection conn(ec.cluster().conninfo("alice"));
        pqxx::work tx(conn);
        for (int i = 0; i < 10; ++i)
            ids.push_back(tx.exec("SELECT df.start('INSERT INTO hits VALUES (''" + std::to_string(i) + "'')')")[0][0]
                              .as<std::string>());
        tx.commit();
    }
    for (const auto &id : ids) CHECK(ec.await(id) == "completed");
    REQUIRE_EVENTUALLY(listener.saw("rescan"), 10s, listener.dump());
    CHECK(listener.senders_of("rescan") == std::vector<int>{relay});
    for (const auto &id : ids) CHECK_FALSE(listener.saw(id));  // the rescan named none of them
    REQUIRE_EVENTUALLY(ec.daemon()->log_contains("asked for a rescan"), 10s, ec.daemon()->log());

    // Concurrent submitters overflowing the ring now and then: every instance starts, each once.
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            try {
                pqxx::connection conn(ec.cluster().conninfo("alice"));
                for (int n = 0; n < 10; ++n) {
                    pqxx::work tx(conn);
                    for (int k = 0; k < 3; ++k)
                        tx.exec("SELECT df.start('INSERT INTO hits VALUES (''c" + std::to_string(t) + "'')')");
                    tx.commit();
                }
            } catch (...) {
                ++failures;
            }
        });
    for (auto &t : threads) t.join();
    REQUIRE(failures == 0);
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances WHERE status = 'completed'") == 130, 60s,
                       ec.diagnostics());
    CHECK(count_of(ec, "SELECT count(*) FROM hits") == 130);
}

TEST_CASE("wake-up relay: killed, starts are still dispatched (direct NOTIFY meanwhile), and it comes back",
          "[wakeup][relay]") {
    EngineCluster ec;
    const int relay = wait_for_relay(ec);
    Listener listener(ec.cluster());

    ec.cluster().exec("SELECT pg_terminate_backend(" + std::to_string(relay) + ")");
    // Right after the kill: whoever sends the wake-up, the instance runs.
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(start_in_session(ec, "'SELECT 1'").first);
    for (const auto &id : ids) CHECK(ec.await(id) == "completed");

    // While none runs, the submitter NOTIFYs itself ('start:<id>').
    bool saw_gap = false;
    if (relay_pid(ec) <= 0) {
        const auto [id, submitter] = start_in_session(ec, "'SELECT 2'");
        if (relay_pid(ec) <= 0) {
            saw_gap = true;
            CHECK(ec.await(id) == "completed");
            REQUIRE_EVENTUALLY(listener.saw(id), 10s, listener.dump());
            CHECK(listener.senders_of("start:" + id) == std::vector<int>{submitter});
        }
    }
    INFO("a start while no relay ran: " << saw_gap);

    // The postmaster restarts it; it relays again.
    REQUIRE_EVENTUALLY(relay_pid(ec) > 0 && relay_pid(ec) != relay, 20s, ec.cluster().server_log());
    const int again = relay_pid(ec);
    const auto [id, submitter] = start_in_session(ec, "'SELECT 3'");
    CHECK(ec.await(id) == "completed");
    REQUIRE_EVENTUALLY(listener.saw(id), 10s, listener.dump());
    CHECK(listener.senders_of(id) == std::vector<int>{again});
}

TEST_CASE("wake-up relay: df.start in a database the relay does not serve NOTIFYs itself", "[wakeup][relay]") {
    // The extension in 'second' (created while pg_durable.database named
    // it), then the server back on 'postgres': the relay serves 'postgres'.
    EngineCluster ec;
    TestCluster &cluster = ec.cluster();
    wait_for_relay(ec);
    cluster.exec("CREATE DATABASE second");
    cluster.exec("ALTER SYSTEM SET pg_durable.database = 'second'");
    cluster.restart();
    cluster.exec("CREATE EXTENSION pg_durable", "second");
    cluster.exec("SELECT df.grant_usage('alice')", "second");
    cluster.exec("ALTER SYSTEM RESET pg_durable.database");
    cluster.restart();
    REQUIRE_EVENTUALLY(cluster.query_value("SELECT datname FROM pg_stat_activity WHERE backend_type = "
                                           "'pg_durable wakeup relay'") == std::optional<std::string>("postgres"),
                       20s, cluster.server_log());

    DaemonProcess second(cluster, WithConninfo{cluster.conninfo("", "second")}, {"--log-level", "debug"}, "second");
    REQUIRE_EVENTUALLY(second.log_contains("pg_durable: processing durable functions..."), 30s, second.log());
    Listener listener(cluster, "second");
    pqxx::connection conn(cluster.conninfo("alice", "second"));
    pqxx::nontransaction tx(conn);
    const int submitter = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
    const auto id = tx.exec("SELECT df.start('SELECT 7 AS seven')")[0][0].as<std::string>();
    // Dispatched (how the step fares in a database pg_durable.database no
    // longer names is not this test's business).
    REQUIRE_EVENTUALLY(second.log_contains("instance " + id + " started"), 20s, second.log());
    REQUIRE_EVENTUALLY(listener.saw(id), 10s, listener.dump());
    CHECK(listener.senders_of("start:" + id) == std::vector<int>{submitter});
}

TEST_CASE("hostile: forged relay payloads from a role with LOGIN only change nothing beyond a lookup",
          "[wakeup][relay][hostile]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE ROLE mallory " + kLogin);
    ec.cluster().exec("CREATE TABLE victim_rows (i int); GRANT ALL ON victim_rows TO alice");
    const auto pid = ec.daemon()->pid();
    const auto done = ec.start("'INSERT INTO victim_rows VALUES (1)'");
    CHECK(ec.await(done) == "completed");
    const auto running = ec.start("'INSERT INTO victim_rows VALUES (2); SELECT pg_sleep(2)' ~> "
                                  "'INSERT INTO victim_rows VALUES (3)'");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(running));
    // An id of a transaction that never committed.
    std::string never;
    {
        pqxx::connection conn(ec.cluster().conninfo("alice"));
        pqxx::work tx(conn);
        never = tx.exec("SELECT df.start('INSERT INTO victim_rows VALUES (99)')")[0][0].as<std::string>();
        tx.abort();
    }

    pqxx::connection conn(ec.cluster().conninfo("mallory"));
    pqxx::nontransaction tx(conn);
    std::string full = "starts:";
    for (int i = 0; i < 888; ++i) full += (i ? "," : "") + done;  // the most one payload holds
    for (const std::string &payload : std::vector<std::string>{
             "starts:" + done + "," + running + "," + never, "rescan", full,
          "starts:" + done + ",", "starts:", "starts:" + done + ";" + running, "starts:ZZZZZZZZ", "rescan:" + done})
        tx.exec("NOTIFY df_wakeup, " + lit(payload));
    for (int i = 0; i < 200; ++i) tx.exec("NOTIFY df_wakeup, 'rescan'");

    // Nothing reran, nothing started, the running instance ends normally, each step once.
    CHECK(ec.await(running, 20s) == "completed");
    REQUIRE_EVENTUALLY(ec.daemon()->log_contains("asked for a rescan"), 10s, ec.daemon()->log());
    REQUIRE_EVENTUALLY(ec.daemon()->log_contains("malformed df_wakeup payload"), 10s, ec.daemon()->log());
    CHECK(count_of(ec, "SELECT count(*) FROM victim_rows") == 3);
    CHECK(ec.status(never) == "<none>");
    CHECK(count_of(ec, "SELECT count(*) FROM df._activations WHERE instance_id = " + lit(done)) == 1);
    CHECK(ec.daemon()->pid() == pid);
    CHECK(ec.daemon()->running());
}
