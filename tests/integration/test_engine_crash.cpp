// Engine durability against real crashes (SPEC.md §17): an immediate server
// shutdown in the middle of a long chain, kill -9 of the daemon in the middle
// of a step and while instances wait on timers, signals and cron.
#include <ctime>
#include <string>

#include "test_engine_common.hpp"

using namespace pgd::test;

TEST_CASE("engine: immediate server shutdown mid-way through a 200-step chain; exactly 200 rows after restart",
          "[engine]") {
    EngineCluster ec;
    ec.cluster().exec(R"SQL(
        CREATE TABLE chain_rows (i int);
        GRANT ALL ON chain_rows TO alice;
        CREATE FUNCTION chain(n int) RETURNS text LANGUAGE plpgsql AS $f$
        DECLARE fut text := 'INSERT INTO chain_rows VALUES (1); SELECT pg_sleep(0.01)';
        BEGIN
            FOR i IN 2..n LOOP
                fut := fut ~> format('INSERT INTO chain_rows VALUES (%s); SELECT pg_sleep(0.01)', i);
            END LOOP;
            RETURN fut;
        END $f$;
    )SQL");
    const auto id = ec.start("chain(200)");
    CHECK(count_of(ec, "SELECT count(*) FROM df.nodes WHERE instance_id = " + lit(id)) == 399);

    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM chain_rows") >= 20, 60s, ec.diagnostics(id));
    ec.kill_daemon();
    ec.cluster().stop(StopMode::immediate);
    ec.cluster().start();
    const long before = count_of(ec, "SELECT count(*) FROM chain_rows");
    INFO("rows when the server went down: " << before);
    CHECK(before < 200);  // really stopped mid-way
    ec.start_daemon();

    CHECK(ec.await(id, 90s) == "completed");
    CHECK(count_of(ec, "SELECT count(*) FROM chain_rows") == 200);
    CHECK(count_of(ec, "SELECT count(DISTINCT i) FROM chain_rows") == 200);
    CHECK(count_of(ec, "SELECT count(*) FROM df.nodes WHERE instance_id = " + lit(id) +
                           " AND node_type = 'SQL' AND status = 'completed'") == 200);
}

TEST_CASE("engine: kill -9 of the daemon mid-step; the step's effects land exactly once", "[engine]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE once_rows (i int); GRANT ALL ON once_rows TO alice");
    const auto id = ec.start("'INSERT INTO once_rows VALUES (1); SELECT pg_sleep(2) AS slept' ~> 'SELECT 42 AS done'");
    // The step is running: its backend (the daemon's step connection) sleeps.
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable step' "
                                           "AND wait_event = 'PgSleep'") == 1,
                              20s, ec.diagnostics(id));
    ec.kill_daemon();
    ec.start_daemon();

    CHECK(ec.await(id, 30s) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"done":42}],"row_count":1})");
    CHECK(count_of(ec, "SELECT count(*) FROM once_rows") == 1);
}

TEST_CASE("engine: kill -9 of the daemon while instances sleep, wait for a signal and for cron", "[engine]") {
    EngineCluster ec;
    const auto sleeper = ec.start("df.sleep(6) ~> 'SELECT 1 AS after_sleep'");
    const auto waiter = ec.start("df.wait_for_signal('go') |=> 's' ~> $$SELECT $s::jsonb->'data'->>'k' AS k$$");
    // A cron tick ~5 s ahead (6-field expression, second precision).
    const std::time_t due = std::time(nullptr) + 5;
    const auto cron = ec.start("df.wait_for_schedule('" + std::to_string(due % 60) + " * * * * *') ~> 'SELECT 3 AS c'");

    // The sleep has been running for 2 s when the daemon dies.
    REQUIRE_EVENTUALLY(
        ec.cluster().query_value("SELECT now() - started_at >= interval '2 s' FROM df.nodes WHERE instance_id = " +
                                 lit(sleeper) + " AND node_type = 'SLEEP' AND status = 'running'") ==
            std::optional<std::string>("t"),
        20s, ec.diagnostics(sleeper));
    REQUIRE(ec.status(waiter) == "running");
    REQUIRE(ec.status(cron) == "running");
    ec.kill_daemon();
    // Sent while no daemon runs: buffered, delivered after the restart.
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(waiter) + ", 'go', '{\"k\": \"v\"}')") ==
          std::optional<std::string>("OK"));
    ec.start_daemon();

    CHECK(ec.await(sleeper, 20s) == "completed");
    CHECK(ec.result(sleeper) == R"({"rows":[{"after_sleep":1}],"row_count":1})");
    // The sleep kept its original due time: about 6 s after it started, not a new 6 s sleep.
    const auto elapsed = ec.cluster().query_value(
        "SELECT extract(epoch FROM completed_at - started_at) FROM df.nodes WHERE instance_id = " + lit(sleeper) +
        " AND node_type = 'SLEEP'");
    REQUIRE(elapsed);
    INFO("sleep lasted " << *elapsed << " s");
    CHECK(std::stod(*elapsed) >= 5.9);
    CHECK(std::stod(*elapsed) < 7.5);

    CHECK(ec.await(waiter, 20s) == "completed");
    CHECK(ec.result(waiter) == R"({"rows":[{"k":"v"}],"row_count":1})");
    CHECK(ec.await(cron, 70s) == "completed");
    CHECK(ec.result(cron) == R"({"rows":[{"c":3}],"row_count":1})");
    // Not before its tick, and not a minute late.
    CHECK(ec.cluster().query_value("SELECT extract(epoch FROM completed_at) BETWEEN " + std::to_string(due) + " AND " +
                                   std::to_string(due + 3) + " FROM df.nodes WHERE instance_id = " + lit(cron) +
                                   " AND node_type = 'WAIT_SCHEDULE'") == std::optional<std::string>("t"));
}
