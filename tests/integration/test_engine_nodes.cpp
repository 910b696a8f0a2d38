// Engine against a real cluster: every node type's result shape (SPEC.md
// §10), failure texts, df.result of a failed instance, load-time re-checks.
#include <string>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

// True when df.result(id) equals `expected` as jsonb (key order ignored).
bool result_is(EngineCluster &ec, const std::string &id, const std::string &expected) {
    return ec.cluster().query_value("SELECT df.result(" + lit(id) + ")::jsonb = " + lit(expected) + "::jsonb") ==
           std::optional<std::string>("t");
}

#define CHECK_RESULT(ec, id, expected)                                  \
    do {                                                                \
        INFO("df.result = " << (ec).result(id));                        \
        CHECK(result_is(ec, id, expected));                             \
    } while (0)

}  // namespace

TEST_CASE("engine: result shapes of SQL, THEN, IF, if_rows, JOIN, RACE, SLEEP, WAIT_SCHEDULE, SIGNAL", "[engine]") {
    EngineCluster ec;
    // Start everything first, then await: the instances run concurrently.
    const auto sql = ec.start("$$SELECT 1 AS b, 'x' AS a, NULL::int AS n, ARRAY[1,2] AS arr$$");
    const auto dml = ec.start("'CREATE TABLE shape_t (x int)'");
    const auto then = ec.start("'SELECT 1 AS a' ~> 'SELECT 2 AS b'");
    const auto if_true = ec.start("'SELECT true' ?> $$SELECT 'yes' AS r$$ !> $$SELECT 'no' AS r$$");
    const auto if_false = ec.start("df.if('SELECT 0', $$SELECT 'yes' AS r$$, $$SELECT 'no' AS r$$)");
    const auto if_rows = ec.start(
        "'SELECT 1 AS id WHERE false' |=> 'p' ~> df.if_rows('p', 'SELECT 1 AS t', 'SELECT 2 AS e')");
    const auto if_rows_missing = ec.start("df.if_rows('nope', 'SELECT 1', 'SELECT 2')");
    const auto join2 = ec.start("'SELECT 1 AS a' & 'SELECT 2 AS b'");
    const auto join3 = ec.start("df.join3('SELECT 1 AS a', 'SELECT 2 AS b', 'SELECT 3 AS c') |=> 'j' ~> "
                                "$$SELECT $j::jsonb->2->'rows'->0->>'c' AS c$$");
    const auto joinn = ec.start(
        lit(R"({"node_type":"JOIN","left_node":{"node_type":"SQL","query":"SELECT 1 AS a"},)"
            R"("right_node":{"node_type":"SQL","query":"SELECT 2 AS b"},)"
            R"("extra_nodes":[{"node_type":"SQL","query":"SELECT 3 AS c"},{"node_type":"SQL","query":"SELECT 4 AS d"}]})"));
    const auto nested_join = ec.start("('SELECT 1 AS a' & 'SELECT 2 AS b') & 'SELECT 3 AS c'");
    const auto join_named = ec.start("(('SELECT 1 AS a' |=> 'x') & ('SELECT 2 AS b' |=> 'y')) ~> 'SELECT $x + $y AS s'");
    const auto race = ec.start("df.sleep(30) | 'SELECT 7 AS w'");
    const auto sleep = ec.start("df.sleep(1)");
    const auto cron = ec.start("df.wait_for_schedule('* * * * * *')");
    const auto sig_timeout = ec.start("df.wait_for_signal('never', 1)");

    CHECK(ec.await(sql) == "completed");
    // Column order kept, PostgreSQL's own JSON conversion: exact text.
    CHECK(ec.result(sql) == R"({"rows":[{"b":1,"a":"x","n":null,"arr":[1,2]}],"row_count":1})");
    CHECK(ec.node(sql, "executed_query", "node_type = 'SQL'") == "SELECT 1 AS b, 'x' AS a, NULL::int AS n, ARRAY[1,2] AS arr");
    CHECK(ec.await(dml) == "completed");
    CHECK(ec.result(dml) == R"({"rows":[],"row_count":0})");
    CHECK(ec.await(then) == "completed");
    CHECK(ec.result(then) == R"({"rows":[{"b":2}],"row_count":1})");
    CHECK(ec.node(then, "status", "node_type = 'THEN'") == "completed");

    CHECK(ec.await(if_true) == "completed");
    CHECK(ec.result(if_true) == R"({"rows":[{"r":"yes"}],"row_count":1})");
    CHECK(ec.node(if_true, "status", "query LIKE '%''no''%'") == "pending");  // untaken arm
    CHECK(ec.await(if_false) == "completed");
    CHECK(ec.result(if_false) == R"({"rows":[{"r":"no"}],"row_count":1})");
    CHECK(ec.await(if_rows) == "completed");
    CHECK(ec.result(if_rows) == R"({"rows":[{"e":2}],"row_count":1})");
    CHECK(ec.await(if_rows_missing) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(if_rows_missing)) ==
          std::optional<std::string>("df.if_rows: result 'nope' not found"));

    CHECK(ec.await(join2) == "completed");
    CHECK_RESULT(ec, join2, R"([{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1}])");
    CHECK(ec.await(join3) == "completed");
    CHECK(ec.result(join3) == R"({"rows":[{"c":"3"}],"row_count":1})");
    CHECK(ec.await(joinn) == "completed");
    CHECK_RESULT(ec, joinn,
                 R"([{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1},)"
                 R"({"rows":[{"c":3}],"row_count":1},{"rows":[{"d":4}],"row_count":1}])");
    CHECK(ec.await(nested_join) == "completed");
    CHECK_RESULT(ec, nested_join,
                 R"([[{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1}],{"rows":[{"c":3}],"row_count":1}])");
    CHECK(ec.await(join_named) == "completed");
    CHECK(ec.result(join_named) == R"({"rows":[{"s":3}],"row_count":1})");

    CHECK(ec.await(race) == "completed");
    CHECK(ec.result(race) == R"({"rows":[{"w":7}],"row_count":1})");
    CHECK(ec.node(race, "status", "node_type = 'SLEEP'") == "cancelled");
    CHECK(ec.node(race, "error", "node_type = 'SLEEP'") == "Branch cancelled after losing RACE");

    CHECK(ec.await(sleep) == "completed");
    CHECK_RESULT(ec, sleep, R"({"slept":true,"seconds":1})");
    CHECK(ec.cluster().query_value("SELECT completed_at - created_at >= interval '1 second' FROM df.instances WHERE id = " +
                                   lit(sleep)) == std::optional<std::string>("t"));
    CHECK(ec.await(cron) == "completed");
    CHECK_RESULT(ec, cron, R"({"scheduled":true})");
    CHECK(ec.await(sig_timeout) == "completed");
    CHECK_RESULT(ec, sig_timeout, R"({"signal_name":"never","timed_out":true,"data":null})");
}

TEST_CASE("engine: loops (root with while-condition, non-root, break values, min interval)", "[engine]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE loop_a (i int, at timestamptz DEFAULT clock_timestamp()); "
                      "CREATE TABLE loop_b (i int); CREATE TABLE loop_c (i int); "
                      "CREATE TABLE loop_d (i int, at timestamptz DEFAULT clock_timestamp()); "
                      "GRANT ALL ON loop_a, loop_b, loop_c, loop_d TO alice");
    const auto root = ec.start("df.loop('INSERT INTO loop_a (i) VALUES (1) RETURNING i', "
                               "'SELECT count(*) < 3 FROM loop_a')");
    const auto nonroot = ec.start("'SELECT 10 AS base' |=> 'base' ~> df.loop("
                                  "'INSERT INTO loop_b VALUES ($base) RETURNING (SELECT count(*) FROM loop_b) + 1 AS n', "
                                  "'SELECT count(*) < 4 FROM loop_b') |=> 'l' ~> 'SELECT $l + 100 AS after'");
    const auto brk = ec.start("df.loop('INSERT INTO loop_c VALUES (1)' ~> "
                              "df.if('SELECT count(*) >= 2 FROM loop_c', df.break('{\"done\": true}'), 'SELECT 1'))");
    const auto brk_text = ec.start("'SELECT 1' ~> df.loop(df.break('done'))");
    const auto paced = ec.start("df.loop('INSERT INTO loop_d (i) VALUES (1)', 'SELECT count(*) < 3 FROM loop_d', 400)");
    const auto outside = ec.start("df.break('x')");

    CHECK(ec.await(root) == "completed");
    CHECK(ec.result(root) == R"({"rows":[{"i":1}],"row_count":1})");
    CHECK(ec.cluster().query_value("SELECT count(*) FROM loop_a") == std::optional<std::string>("3"));
    CHECK(ec.cluster().query_value("SELECT execution_count FROM df.instances WHERE id = " + lit(root)) ==
          std::optional<std::string>("3"));

    CHECK(ec.await(nonroot) == "completed");
    CHECK(ec.cluster().query_value("SELECT count(*) FROM loop_b WHERE i = 10") == std::optional<std::string>("4"));
    // The loop's result is its last body result (n = 4: RETURNING sees the table as of statement start); it flows to the suffix.
    CHECK(ec.result(nonroot) == R"({"rows":[{"after":104}],"row_count":1})");
    CHECK(ec.cluster().query_value("SELECT execution_count FROM df.instances WHERE id = " + lit(nonroot)) ==
          std::optional<std::string>("1"));

    CHECK(ec.await(brk) == "completed");
    CHECK_RESULT(ec, brk, R"({"done": true})");
    CHECK(ec.cluster().query_value("SELECT count(*) FROM loop_c") == std::optional<std::string>("2"));
    CHECK(ec.node(brk, "status", "node_type = 'BREAK'") == "completed");
    CHECK(ec.await(brk_text) == "completed");
    CHECK(ec.result(brk_text) == R"("done")");

    CHECK(ec.await(paced) == "completed");
    // Iterations start >= 400 ms apart; the first insert may lag its
    // iteration's start more (new connection) than the last one does.
    INFO("spread: " << ec.cluster().query_value("SELECT (max(at) - min(at))::text FROM loop_d").value_or("?"));
    CHECK(ec.cluster().query_value("SELECT max(at) - min(at) >= interval '700 ms' FROM loop_d") ==
          std::optional<std::string>("t"));

    CHECK(ec.await(outside) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(outside)) ==
          std::optional<std::string>(
              "df.break() was called outside of a loop. df.break() may only be used inside df.loop()."));
}

TEST_CASE("engine: failures propagate with their texts; df.result of a failed instance", "[engine]") {
    EngineCluster ec;
    const auto plain = ec.start("'SELECT 1' ~> 'SELECT 1/0'");
    const auto join = ec.start("'SELECT 1' & 'SELECT 1/0'");
    const auto race = ec.start("'SELECT 1/0' | df.sleep(30)");
    const auto race_right = ec.start("df.sleep(30) | 'SELECT 1/0'");
    const auto txn = ec.start("'COMMIT'");
    // A statement_timeout hitting a step is the step's failure (not the
    // daemon's interrupt, which shares its SQLSTATE).
    ec.cluster().exec("CREATE ROLE erin " + kLogin + "; SELECT df.grant_usage('erin'); "
                      "ALTER ROLE erin SET statement_timeout = '300ms'");
    const auto timeout = ec.start("'SELECT pg_sleep(5)'", "erin");

    CHECK(ec.await(plain) == "failed");
    const auto node_id = ec.node(plain, "id", "query = 'SELECT 1/0'");
    CHECK_RESULT(ec, plain,
                 R"({"error": "SQL execution failed: division by zero", "node_id": ")" + node_id +
                     R"(", "node_type": "SQL"})");
    CHECK(ec.cluster().query_value("SELECT error_node FROM df.instances WHERE id = " + lit(plain)) ==
          std::optional<std::string>(node_id));
    CHECK(ec.node(plain, "status", "node_type = 'THEN'") == "failed");

    CHECK(ec.await(join) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(join)) ==
          std::optional<std::string>("JOIN branch 2 failed: SQL execution failed: division by zero"));
    CHECK(ec.await(race) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(race)) ==
          std::optional<std::string>("RACE left branch failed: SQL execution failed: division by zero"));
    CHECK(ec.await(race_right) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(race_right)) ==
          std::optional<std::string>("RACE right branch failed: SQL execution failed: division by zero"));
    CHECK(ec.await(txn) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(txn)) ==
          std::optional<std::string>(
              "SQL execution failed: transaction control statements are not allowed in a workflow step"));
    CHECK(ec.await(timeout) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(timeout)) ==
          std::optional<std::string>("SQL execution failed: canceling statement due to statement timeout"));
    // Recorded by the step's own transaction on its first attempt.
    CHECK(ec.node(timeout, "attempts::text || ' ' || executed_query", "node_type = 'SQL'") == "1 SELECT pg_sleep(5)");
}

TEST_CASE("engine: a dropped submitting role and a role turned superuser fail the instance at load", "[engine]") {
    EngineCluster ec({}, /*start_daemon=*/false);
    ec.cluster().exec("CREATE ROLE carol " + kLogin + "; SELECT df.grant_usage('carol'); "
                      "CREATE ROLE dave " + kLogin + "; SELECT df.grant_usage('dave')");
    const auto dropped = ec.start("'SELECT 1'", "carol");
    const auto promoted = ec.start("'SELECT 1'", "dave");
    const auto fine = ec.start("'SELECT 1'", "alice");
    ec.cluster().exec("DROP OWNED BY carol; DROP ROLE carol; ALTER ROLE dave SUPERUSER");
    ec.start_daemon();

    CHECK(ec.await(dropped) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(dropped)) ==
          std::optional<std::string>("Instance " + dropped + ": submitted_by role no longer exists in pg_roles"));
    CHECK_RESULT(ec, dropped,
                 R"({"error": "Instance )" + dropped +
                     R"(: submitted_by role no longer exists in pg_roles", "node_id": null, "node_type": null})");
    CHECK(ec.await(promoted) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(promoted)) ==
          std::optional<std::string>("pg_durable blocked instance " + promoted +
                                     ": submitted_by role \"dave\" is a superuser, but "
                                     "pg_durable.enable_superuser_instances is off"));
    CHECK(ec.await(fine) == "completed");
}
