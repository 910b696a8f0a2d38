// DROP EXTENSION never hangs behind a running step (SPEC §2, DESIGN §2.10):
// steps in flight are interrupted (their transactions roll back) and the
// uninstall proceeds; the daemon survives and attaches to a new install.
#include <chrono>
#include <string>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

TEST_CASE("uninstall: DROP EXTENSION interrupts running steps instead of waiting for them", "[hostile]") {
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
