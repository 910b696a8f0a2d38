// DROP EXTENSION never hangs behind a running step (SPEC §2, DESIGN §2.10):
// steps in flight are interrupted (their transactions roll back) and the
// uninstall proceeds; the daemon survives and attaches to a new install.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

TEST_CASE("uninstall: DROP EXTENSION interrupts running steps instead of waiting for them", "[hostile][uninstall]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE drop_rows (i int); GRANT ALL ON drop_rows TO alice");
    const auto pid = ec.daemon()->pid();
    const auto a = ec.start("'INSERT INTO drop_rows VALUES (1); SELECT pg_sleep(60)'");
    const auto b = ec.start("df.sleep(1) ~> 'SELECT 1'" " & 'SELECT pg_sleep(60)'");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 2, 20s, ec.diagnostics(a) + ec.diagnostics(b));

    const auto started = std::chrono::steady_clock::now();
    {
        pqxx::connection conn(ec.cluster().conninfo(""));
        pqxx::nontransaction tx(conn);
        tx.exec("SET statement_timeout = '20s'");
        try {
            tx.exec("DROP EXTENSION pg_durable");
        } catch (const std::exception &e) {
            const std::string log = ec.cluster().server_log();
            FAIL(e.what() << "\n--- server log ---\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0)
                          << "\n--- daemon log ---\n" << ec.daemon()->log());
        }
    }
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 5s);
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 0, 5s, ec.daemon()->log());
    CHECK(count_of(ec, "SELECT count(*) FROM drop_rows") == 0);  // rolled back
    CHECK(count_of(ec, "SELECT count(*) FROM pg_namespace WHERE nspname = 'df'") == 0);

    // The daemon lives on and serves a fresh install.
    ec.cluster().exec("CREATE EXTENSION pg_durable");
    for (const char *role : {"alice", "bob"}) ec.cluster().exec(std::string("SELECT df.grant_usage('") + role + "')");
    const auto c = ec.start("'SELECT 3 AS three'");
    CHECK(ec.await(c, 30s) == "completed");
    INFO(ec.diagnostics(c) << "\n--- full daemon log ---\n" << ec.daemon()->log());
    CHECK(ec.result(c) == R"({"rows":[{"three":3}],"row_count":1})");
    CHECK(ec.daemon()->pid() == pid);
}

// The daemon reruns an interrupted step at once; here the rerun comes while
// the drop is still under way: past its interruption of running steps, before
// it locks the df tables (a session holds the extension with COMMENT ON, so
// the drop waits there as long as the test likes). The rerun must not slip in
// between: it waits at the gate the drop closed, holding no df lock, and the
// drop completes as soon as the extension is free. Without the gate the rerun
// took its df locks, ran its user SQL, and the drop waited for it (here until
// its statement_timeout).
TEST_CASE("uninstall: a step rerun while DROP EXTENSION is under way does not hold the drop",
          "[hostile][uninstall]") {
    EngineCluster ec;
    const auto pid = ec.daemon()->pid();
    const auto id = ec.start("'SELECT pg_sleep(60)'");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(id));

    pqxx::connection holder(ec.cluster().conninfo());
    auto holding = std::make_unique<pqxx::work>(holder);
    holding->exec("COMMENT ON EXTENSION pg_durable IS 'held by the test'");

    std::optional<std::string> drop_error;
    bool dropped = false;
    std::thread dropper([&] {
        try {
            pqxx::connection conn(ec.cluster().conninfo("") + " application_name='test dropper'");
            pqxx::nontransaction tx(conn);
            tx.exec("SET statement_timeout = '20s'");
            tx.exec("DROP EXTENSION pg_durable");
            dropped = true;
        } catch (const std::exception &e) {
            drop_error = e.what();
        }
    });
    // On a failed REQUIRE too: free the extension, let the drop end, join.
    struct Finish {
        std::unique_ptr<pqxx::work> &holding;
        std::thread &dropper;
        ~Finish() {
            if (holding) {
                try {
                    holding->abort();
                } catch (const std::exception &) {
                }
                holding.reset();
            }
            if (dropper.joinable()) dropper.join();
        }
    } finish{holding, dropper};
    // The drop has interrupted the running step and waits for the extension.
    const std::string drop_waits = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test dropper' "
                                   "AND wait_event_type = 'Lock' AND wait_event = 'object'";
    REQUIRE_EVENTUALLY(count_of(ec, drop_waits) == 1, 20s, ec.daemon()->log());
    // The rerun has begun since: in the user's pg_sleep, or waiting at the gate.
    REQUIRE_EVENTUALLY(
        count_of(ec, "SELECT count(*) FROM pg_stat_activity s, pg_stat_activity d "
                     "WHERE s.application_name = 'pg_durable step' AND s.state = 'active' "
                     "AND d.application_name = 'test dropper' AND s.query_start > d.query_start "
                     "AND (s.wait_event = 'PgSleep' OR (s.wait_event_type = 'Lock' AND s.wait_event = 'advisory'))") ==
            1,
        20s, ec.daemon()->log());

    const auto released = std::chrono::steady_clock::now();
    holding->commit();
    holding.reset();
    dropper.join();
    const auto took = std::chrono::steady_clock::now() - released;
    const std::string log = ec.cluster().server_log();
    INFO("drop error: " << drop_error.value_or("none") << "\n--- server log ---\n"
                        << log.substr(log.size() > 6000 ? log.size() - 6000 : 0) << "\n--- daemon log ---\n"
                        << ec.daemon()->log());
    CHECK(dropped);
    CHECK(took < 5s);
    CHECK(count_of(ec, "SELECT count(*) FROM pg_namespace WHERE nspname = 'df'") == 0);
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 0, 10s, ec.daemon()->log());

    // The daemon lives on and serves a fresh install.
    ec.cluster().exec("CREATE EXTENSION pg_durable");
    for (const char *role : {"alice", "bob"}) ec.cluster().exec(std::string("SELECT df.grant_usage('") + role + "')");
    const auto c = ec.start("'SELECT 3 AS three'");
    CHECK(ec.await(c, 30s) == "completed");
    CHECK(ec.daemon()->pid() == pid);
}
