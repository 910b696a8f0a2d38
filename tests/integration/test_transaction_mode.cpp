// df.start's transaction_mode against a real server and daemon (SPEC §19.1):
// 'new' survives the caller's ROLLBACK and runs, 'caller' does not; the vars
// snapshot holds only committed vars; the launch limit fails with the exact
// text after the timeout; a cancelled caller leaks no slot; refused inside a
// workflow; the captured role and row security are the caller's.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kWorkerType = "pg_durable new transaction start";

// Workers of transaction_mode => 'new' blocked on a lock right now.
long blocked_workers(EngineCluster &ec) {
    return count_of(ec, std::string("SELECT count(*) FROM pg_stat_activity WHERE backend_type = ") + lit(kWorkerType) +
                            " AND wait_event_type = 'Lock'");
}

long workers(EngineCluster &ec) {
    return count_of(ec, std::string("SELECT count(*) FROM pg_stat_activity WHERE backend_type = ") + lit(kWorkerType));
}

ClusterOptions limited(int max_starts, int timeout_s) {
    ClusterOptions options;
    options.settings["pg_durable.max_new_transaction_starts"] = std::to_string(max_starts);
    options.settings["pg_durable.new_transaction_start_timeout"] = std::to_string(timeout_s);
    return options;
}

}  // namespace

TEST_CASE("transaction_mode 'new' survives the caller's ROLLBACK and the daemon runs it; 'caller' does not",
          "[transaction_mode]") {
    EngineCluster ec;
    pqxx::connection conn(ec.cluster().conninfo("alice"));
    std::string new_id;
    std::string caller_id;
    {
        pqxx::work tx(conn);
        new_id = tx.exec1("SELECT df.start('SELECT 41 + 1 AS answer', 'tm-new', transaction_mode => 'new')")[0]
                     .as<std::string>();
        caller_id = tx.exec1("SELECT df.start('SELECT 1', 'tm-caller')")[0].as<std::string>();
        // Committed already: another session sees it before the caller ends.
        CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE id = " + lit(new_id)) == 1);
        CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE id = " + lit(caller_id)) == 0);
        tx.abort();
    }
    CHECK(ec.await(new_id) == "completed");
    CHECK(ec.result(new_id) == R"({"rows":[{"answer":42}],"row_count":1})");
    CHECK(ec.query("", "SELECT submitted_by::text FROM df.instances WHERE id = " + lit(new_id)) == "alice");
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE id = " + lit(caller_id)) == 0);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'tm-caller'") == 0);
    // The worker is gone once df.start returned.
    REQUIRE_EVENTUALLY(workers(ec) == 0, 10s, ec.cluster().server_log());
}

TEST_CASE("transaction_mode 'new' snapshots only the caller's committed vars", "[transaction_mode]") {
    EngineCluster ec;
    ec.query("alice", "SELECT df.setvar('color', 'blue')");
    pqxx::connection conn(ec.cluster().conninfo("alice"));
    std::string id;
    {
        pqxx::work tx(conn);
        tx.exec("SELECT df.setvar('color', 'red')");
        tx.exec("SELECT df.setvar('shape', 'square')");
        id = tx.exec1("SELECT df.start('SELECT ''{color}/{shape}'' AS v', transaction_mode => 'new')")[0]
                 .as<std::string>();
        tx.commit();
    }
    CHECK(ec.await(id) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"v":"blue/{shape}"}],"row_count":1})");
    CHECK(ec.query("", "SELECT string_agg(name || '=' || value, ',' ORDER BY name) FROM df._instance_vars "
                       "WHERE instance_id = " + lit(id)) == "color=blue");
}

TEST_CASE("transaction_mode 'new' keeps the caller's role and row security", "[transaction_mode]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE secrets (owner name NOT NULL, v text NOT NULL)");
    ec.cluster().exec("INSERT INTO secrets VALUES ('alice', 'a1'), ('alice', 'a2'), ('bob', 'b1')");
    ec.cluster().exec("ALTER TABLE secrets ENABLE ROW LEVEL SECURITY");
    ec.cluster().exec("CREATE POLICY own_rows ON secrets USING (owner = current_user)");
    ec.cluster().exec("GRANT SELECT ON secrets TO alice, bob");
    const std::string step = lit("SELECT current_user::text AS who, string_agg(v, ',' ORDER BY v) AS seen FROM secrets");

    // A superuser session that SET ROLE alice captures alice (current_user), as 'caller' does.
    pqxx::connection conn(ec.cluster().conninfo());
    pqxx::nontransaction tx(conn);
    tx.exec("SET ROLE alice");
    const std::string caller_id = tx.exec1("SELECT df.start(" + step + ")")[0].as<std::string>();
    const std::string new_id = tx.exec1("SELECT df.start(" + step + ", transaction_mode => 'new')")[0].as<std::string>();
    tx.exec("RESET ROLE");
    CHECK(ec.await(caller_id) == "completed");
    CHECK(ec.await(new_id) == "completed");
    CHECK(ec.result(new_id) == R"({"rows":[{"who":"alice","seen":"a1,a2"}],"row_count":1})");
    CHECK(ec.result(new_id) == ec.result(caller_id));
    CHECK(ec.query("", "SELECT count(DISTINCT submitted_by) || ':' || min(submitted_by::text) FROM df.instances "
                       "WHERE id IN (" + lit(caller_id) + ", " + lit(new_id) + ")") == "1:alice");
    // Alice sees her instance through df.status, bob does not.
    CHECK(ec.query("alice", "SELECT df.status(" + lit(new_id) + ")") == "completed");
    CHECK(ec.error_of("bob", "SELECT df.status(" + lit(new_id) + ")").has_value() ==
          ec.error_of("bob", "SELECT df.status(" + lit(caller_id) + ")").has_value());
    // The same checks: a role without LOGIN is refused before any worker runs.
    ec.cluster().exec("CREATE ROLE nologin_role");
    ec.cluster().exec("SELECT df.grant_usage('nologin_role')");
    const auto refused = ec.error_of("", "SET ROLE nologin_role; SELECT df.start('SELECT 1', transaction_mode => 'new')");
    REQUIRE(refused.has_value());
    CHECK(refused->find("current_user \"nologin_role\" does not have LOGIN privilege") != std::string::npos);
}

TEST_CASE("transaction_mode 'new' is refused inside a workflow step", "[transaction_mode]") {
    EngineCluster ec;
    const std::string id = ec.start("'SELECT df.start(''SELECT 1'', transaction_mode => ''new'')'");
    CHECK(ec.await(id) == "failed");
    const auto error = ec.query("", "SELECT error FROM df.instances WHERE id = " + lit(id));
    REQUIRE(error.has_value());
    CHECK(error->find("df.start() with transaction_mode => 'new' cannot be called inside a workflow - a df.sql() "
                      "node already runs as a single autocommitted statement, so a plain df.start() there is "
                      "already independent of any caller transaction") != std::string::npos);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances") == 1);
}

TEST_CASE("transaction_mode 'new': the launch limit fails with the exact text after the timeout; a cancelled "
          "caller leaks no slot",
          "[transaction_mode]") {
    EngineCluster ec(limited(1, 2));
    // The test holds df.instances, so the one worker blocks on its insert.
    pqxx::connection holder(ec.cluster().conninfo());
    auto lock = std::make_unique<pqxx::work>(holder);
    lock->exec("LOCK TABLE df.instances IN ACCESS EXCLUSIVE MODE");

    pqxx::connection first_conn(ec.cluster().conninfo("alice"));
    const int first_pid = first_conn.backendpid();
    std::atomic<bool> first_done{false};
    std::string first_error;
    std::thread first([&] {
        try {
            pqxx::nontransaction tx(first_conn);
            tx.exec("SELECT df.start('SELECT 1', 'tm-cancelled', transaction_mode => 'new')");
        } catch (const std::exception &e) {
            first_error = e.what();
        }
        first_done = true;
    });
    REQUIRE_EVENTUALLY(blocked_workers(ec) == 1, 20s, ec.cluster().server_log());

    // The slot is taken: a second caller waits the timeout, then fails.
    const auto began = std::chrono::steady_clock::now();
    const auto limit = ec.error_of("bob", "SELECT df.start('SELECT 1', transaction_mode => 'new')");
    const auto waited = std::chrono::steady_clock::now() - began;
    REQUIRE(limit.has_value());
    CHECK(limit->find("pg_durable: transaction_mode => 'new' launch limit reached "
                      "(max_new_transaction_starts=1). Timed out after 2s waiting for a launch slot before "
                      "opening the loopback session.") != std::string::npos);
    CHECK(waited >= std::chrono::milliseconds(1900));
    CHECK(waited < std::chrono::seconds(15));
    // 'caller' starts are not limited (they wait for the lock like any writer; not here).

    // Cancel the first caller while it waits for its worker.
    ec.cluster().exec("SELECT pg_cancel_backend(" + std::to_string(first_pid) + ")");
    REQUIRE_EVENTUALLY(first_done.load(), 20s, ec.cluster().server_log());
    first.join();
    CHECK(first_error.find("canceling statement due to user request") != std::string::npos);
    // Its worker is stopped too, before it could commit anything.
    REQUIRE_EVENTUALLY(workers(ec) == 0, 20s, ec.cluster().server_log());
    lock->abort();
    lock.reset();
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'tm-cancelled'") == 0);

    // The slot came back: the next 'new' start goes through at once.
    const auto id = ec.query("bob", "SELECT df.start('SELECT 7 AS n', transaction_mode => 'new')");
    REQUIRE(id.has_value());
    CHECK(ec.await(*id) == "completed");
    // And again (a leaked slot would fail the second one).
    CHECK(ec.query("alice", "SELECT df.start('SELECT 8', transaction_mode => 'NEW')").has_value());
}

TEST_CASE("transaction_mode 'new': a worker error is re-raised in the caller with its SQLSTATE",
          "[transaction_mode]") {
    EngineCluster ec(limited(1, 5), false);
    // The caller itself holds df.nodes: its worker cannot insert and fails
    // after 30 s, the statement_timeout (57014) and lock_timeout (55P03) of
    // the autonomous part, instead of waiting for the caller forever.
    pqxx::connection conn(ec.cluster().conninfo());
    pqxx::work tx(conn);
    tx.exec("LOCK TABLE df.nodes IN ACCESS EXCLUSIVE MODE");
    tx.exec("SET LOCAL ROLE alice");
    const auto began = std::chrono::steady_clock::now();
    try {
        tx.exec("SELECT df.start('SELECT 1', transaction_mode => 'new')");
        FAIL("df.start should have failed");
    } catch (const pqxx::sql_error &e) {
        const std::string state = e.sqlstate();
        CHECK((state == "57014" || state == "55P03"));
        CHECK((std::string(e.what()).find("canceling statement due to statement timeout") != std::string::npos ||
               std::string(e.what()).find("canceling statement due to lock timeout") != std::string::npos));
    }
    const auto waited = std::chrono::steady_clock::now() - began;
    CHECK(waited >= std::chrono::seconds(29));
    CHECK(waited < std::chrono::seconds(60));
}
