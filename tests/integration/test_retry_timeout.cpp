// RETRY and TIMEOUT wrappers end to end (SPEC.md §19.3): attempts in fresh
// scopes with durable backoff timers (kept across kill -9 of the daemon and a
// server restart), the final failure text, cancel during a backoff, timed-out
// statements interrupted and rolled back, RETRY of a TIMEOUT, HTTP inside a
// RETRY, and the attempts in df.instance_nodes and df.explain.
#include <string>

#include <nlohmann/json.hpp>

#include "http_test_server.hpp"
#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

// alice's counter table: one row, n = 0.
void counter_table(EngineCluster &ec, const std::string &name) {
    ec.cluster().exec("CREATE TABLE " + name + " (n int); INSERT INTO " + name + " VALUES (0); GRANT ALL ON " + name +
                      " TO alice");
}

// A child that bumps the counter (its own committed step) and then fails
// with division by zero until the counter reaches `succeed_at` (n / (n - n):
// a constant 1/0 would fail at plan time, whichever branch runs).
std::string flaky_child(const std::string &table, int succeed_at) {
    return "('UPDATE " + table + " SET n = n + 1' ~> 'SELECT CASE WHEN n < " + std::to_string(succeed_at) +
           " THEN n / (n - n) ELSE n END AS n FROM " + table + "')";
}

std::string retry_node(EngineCluster &ec, const std::string &id, const std::string &column) {
    return ec.node(id, column, "node_type = 'RETRY'");
}

// The RETRY's checkpoint waits for a backoff: its due time, as text.
std::optional<std::string> backoff_due(EngineCluster &ec, const std::string &id) {
    return ec.cluster().query_value(
        "SELECT a.wake_at FROM df._activations a JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id"
        " WHERE a.instance_id = " + lit(id) + " AND n.node_type = 'RETRY' AND a.status = 'running'"
        "   AND a.wake_at IS NOT NULL");
}

}  // namespace

TEST_CASE("retry: a step failing until a counter reaches 3 succeeds on the third attempt", "[retry]") {
    EngineCluster ec;
    counter_table(ec, "tries");
    const auto id = ec.start("df.retry(" + flaky_child("tries", 3) + ", 3, 0.5)");
    CHECK(ec.await(id, 30s) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"n":3}],"row_count":1})");
    CHECK(count_of(ec, "SELECT n FROM tries") == 3);
    // Backoffs of 0.5 s and 1 s lay between the attempts.
    CHECK(ec.cluster().query_value("SELECT completed_at - started_at >= interval '1.5 s' FROM df.nodes "
                                   "WHERE instance_id = " + lit(id) + " AND node_type = 'RETRY'") ==
          std::optional<std::string>("t"));

    // df.instance_nodes: the RETRY's attempts, its child's rows stamped with the third attempt's scope.
    CHECK(ec.query("alice", "SELECT attempts FROM df.instance_nodes(" + lit(id) + ") WHERE node_type = 'RETRY'") ==
          std::optional<std::string>("3"));
    const auto child = ec.query("alice", "SELECT left_node FROM df.instance_nodes(" + lit(id) +
                                             ") WHERE node_type = 'RETRY'");
    REQUIRE(child);
    CHECK(ec.query("alice", "SELECT status_details FROM df.instance_nodes(" + lit(id) + ") WHERE node_id = " +
                                lit(*child)) ==
          std::optional<std::string>(R"({"execution_id": ")" + id + "::1::" + *child + R"(::3"})"));
    CHECK(count_of(ec, "SELECT count(*) FROM df.instance_nodes(" + lit(id) +
                           ") WHERE inferred_status <> 'completed'") == 0);
    // Every attempt's step records are kept, one scope per attempt.
    CHECK(count_of(ec, "SELECT count(DISTINCT stamp) FROM df._activations WHERE instance_id = " + lit(id) +
                           " AND stamp LIKE " + lit(id + "::1::" + *child + "::%")) == 3);

    // df.explain shows the attempt the RETRY ended on.
    const auto explained = ec.query("alice", "SELECT df.explain(" + lit(id) + ")");
    REQUIRE(explained);
    INFO(*explained);
    CHECK(explained->find("RETRY (up to 3 attempts, 0.5s ×2 ≤60s) [attempt 3] ✓") != std::string::npos);
    CHECK(explained->find("\n    ↻ attempt:") != std::string::npos);
    CHECK(explained->find("\n      └─SQL: UPDATE tries SET n = n + 1 ✓") != std::string::npos);
}

TEST_CASE("retry: after the last failure the node fails with 'Failed after <n> attempts: <last error>'",
          "[retry]") {
    EngineCluster ec;
    const auto id = ec.start("df.retry('SELECT 1/0', 3, 0) |=> 'r'");
    CHECK(ec.await(id, 30s) == "failed");
    const auto step = ec.node(id, "id", "node_type = 'SQL'");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(id)) ==
          std::optional<std::string>("Failed after 3 attempts: SQL execution failed: division by zero"));
    CHECK(ec.cluster().query_value("SELECT error_node FROM df.instances WHERE id = " + lit(id)) ==
          std::optional<std::string>(step));
    CHECK(retry_node(ec, id, "status") == "failed");
    CHECK(retry_node(ec, id, "error") == "Failed after 3 attempts: SQL execution failed: division by zero");
    CHECK(retry_node(ec, id, "attempts") == "3");
    CHECK(nlohmann::json::parse(ec.result(id))["error"] ==
          "Failed after 3 attempts: SQL execution failed: division by zero");

    // max_attempts 1: one run, no wait.
    const auto once = ec.start("df.retry('SELECT 1/0', 1)");
    CHECK(ec.await(once, 30s) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(once)) ==
          std::optional<std::string>("Failed after 1 attempts: SQL execution failed: division by zero"));
}

TEST_CASE("retry: named results made in a failed attempt are reset; the successful one's flow out", "[retry]") {
    EngineCluster ec;
    counter_table(ec, "named_tries");
    ec.cluster().exec("CREATE TABLE seen (v text); GRANT ALL ON seen TO alice");
    // Each attempt first records whether $mark exists yet (an unknown name
    // stays as it is), then names it, then fails until the second attempt.
    const auto id = ec.start(
        "df.join(df.retry($$INSERT INTO seen VALUES ('$mark?')$$ ~> ($$SELECT 'm' AS mark$$ |=> 'mark') ~> " +
        flaky_child("named_tries", 2) + ", 2, 0.2) |=> 'r', 'SELECT 2 AS two') ~> 'SELECT $r.n AS n, $mark AS mark'");
    CHECK(ec.await(id, 30s) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"n":2,"mark":"m"}],"row_count":1})");
    CHECK(ec.cluster().query_value("SELECT string_agg(v, ',' ORDER BY v) FROM seen") ==
          std::optional<std::string>("$mark?,$mark?"));
}

TEST_CASE("timeout: the child's result, or its running statement interrupted and rolled back", "[retry]") {
    EngineCluster ec;
    const auto fast = ec.start("df.timeout('SELECT 7 AS x', 5) |=> 't' ~> 'SELECT $t + 1 AS y'");
    CHECK(ec.await(fast, 30s) == "completed");
    CHECK(ec.result(fast) == R"({"rows":[{"y":8}],"row_count":1})");

    ec.cluster().exec("CREATE TABLE slow_rows (i int); GRANT ALL ON slow_rows TO alice");
    const auto id = ec.start("df.timeout('INSERT INTO slow_rows VALUES (1); SELECT pg_sleep(60)', 1.5) ~> "
                             "'INSERT INTO slow_rows VALUES (2)'");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(id));
    CHECK(ec.await(id, 20s) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(id)) ==
          std::optional<std::string>("Timed out after 1.5s"));
    CHECK(ec.cluster().query_value("SELECT error_node FROM df.instances WHERE id = " + lit(id)) ==
          std::optional<std::string>(ec.node(id, "id", "node_type = 'TIMEOUT'")));
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 0, 5s, ec.diagnostics(id));
    const auto slow = "query LIKE '%pg_sleep(60)%'";
    REQUIRE_EVENTUALLY(ec.node(id, "status", slow) == "cancelled", 5s, ec.diagnostics(id));
    CHECK(ec.node(id, "error", slow) == "Timed out after 1.5s");
    CHECK(ec.node(id, "status", "node_type = 'TIMEOUT'") == "failed");
    CHECK(count_of(ec, "SELECT count(*) FROM slow_rows") == 0);  // rolled back, nothing further ran
    // It timed out 1.5 s after the child started, not 60 s.
    CHECK(ec.cluster().query_value("SELECT updated_at - started_at < interval '10 s' FROM df.nodes "
                                   "WHERE instance_id = " + lit(id) + " AND node_type = 'TIMEOUT'") ==
          std::optional<std::string>("t"));
}

TEST_CASE("retry of a timeout: a hanging attempt is interrupted and the next one succeeds", "[retry]") {
    EngineCluster ec;
    counter_table(ec, "hang_tries");
    ec.cluster().exec("CREATE TABLE hang_rows (n int); GRANT ALL ON hang_rows TO alice");
    // Attempt 1 sleeps 60 s (timed out after 1 s, its INSERT rolled back); attempt 2 is quick.
    const auto id = ec.start(
        "df.retry('UPDATE hang_tries SET n = n + 1' ~> df.timeout($$INSERT INTO hang_rows SELECT n FROM hang_tries; "
        "SELECT pg_sleep(CASE WHEN n < 2 THEN 60 ELSE 0 END) FROM hang_tries; SELECT n FROM hang_tries$$, 1), 3, 0.2)");
    CHECK(ec.await(id, 30s) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"n":2}],"row_count":1})");
    CHECK(ec.cluster().query_value("SELECT string_agg(n::text, ',') FROM hang_rows") ==
          std::optional<std::string>("2"));
    CHECK(retry_node(ec, id, "attempts") == "2");

    // Every attempt timing out: the RETRY's text wraps the TIMEOUT's.
    const auto all = ec.start("df.retry(df.timeout('SELECT pg_sleep(60)', 0.5), 2, 0)");
    CHECK(ec.await(all, 30s) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(all)) ==
          std::optional<std::string>("Failed after 2 attempts: Timed out after 0.5s"));
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 0, 5s, ec.diagnostics(all));
}

TEST_CASE("retry: df.cancel during a backoff stops it at once; no further attempt runs", "[retry]") {
    EngineCluster ec;
    counter_table(ec, "cancel_tries");
    const auto id = ec.start("df.retry(" + flaky_child("cancel_tries", 99) + ", 5, 3)");
    REQUIRE_EVENTUALLY(backoff_due(ec, id).has_value(), 20s, ec.diagnostics(id));
    CHECK(count_of(ec, "SELECT n FROM cancel_tries") == 1);
    CHECK(ec.query("alice", "SELECT df.cancel(" + lit(id) + ")") ==
          std::optional<std::string>("Instance " + id + " cancelled: Cancelled by user"));
    CHECK(ec.status(id) == "cancelled");
    CHECK(retry_node(ec, id, "status") == "cancelled");
    // Well past the backoff's due time: still one attempt.
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT now() > max(updated_at) + interval '4 s' FROM df.nodes "
                                                "WHERE instance_id = " + lit(id)) == std::optional<std::string>("t"),
                       20s, ec.diagnostics(id));
    CHECK(count_of(ec, "SELECT n FROM cancel_tries") == 1);
    CHECK(ec.status(id) == "cancelled");
}

TEST_CASE("retry: a backoff timer keeps its due time across kill -9 of the daemon and a server restart",
          "[retry]") {
    EngineCluster ec;
    counter_table(ec, "crash_tries");
    const auto id = ec.start("df.retry(" + flaky_child("crash_tries", 2) + ", 3, 6)");
    REQUIRE_EVENTUALLY(backoff_due(ec, id).has_value(), 20s, ec.diagnostics(id));
    const std::string due = *backoff_due(ec, id);
    ec.kill_daemon();
    ec.cluster().stop(StopMode::immediate);
    ec.cluster().start();
    CHECK(backoff_due(ec, id) == std::optional<std::string>(due));
    ec.start_daemon();
    CHECK(ec.await(id, 30s) == "completed");
    CHECK(count_of(ec, "SELECT n FROM crash_tries") == 2);
    // Attempt 2 began no earlier than the recorded due time; attempt 1 did
    // not run again (the counter would read 3).
    const auto child = retry_node(ec, id, "left_node");
    CHECK(ec.cluster().query_value("SELECT min(a.started_at) >= " + lit(due) +
                                   "::timestamptz FROM df._activations a WHERE a.instance_id = " + lit(id) +
                                   " AND a.stamp = " + lit(id + "::1::" + child + "::2")) ==
          std::optional<std::string>("t"));
    CHECK(retry_node(ec, id, "attempts") == "2");
}

TEST_CASE("retry: an HTTP step inside a RETRY is run again after a 500", "[retry]") {
    HttpTestServer server;
    ClusterOptions options;
    options.settings = {{"pg_durable.http_enabled", "on"},
                        {"pg_durable.http_allowed_hosts", "*"},
                        {"pg_durable.http_allow_private_networks", "on"},
                        {"pg_durable.http_max_attempts", "1"}};
    EngineCluster ec(options);
    ec.cluster().exec("SELECT df.grant_usage('alice', true)");
    const auto id = ec.start("df.retry(df.http(" + lit(server.url("/flaky/retry-a")) + ", 'GET'), 3, 0.2)");
    CHECK(ec.await(id, 30s) == "completed");
    const auto envelope = nlohmann::json::parse(ec.result(id));
    CHECK(envelope["status"] == 200);
    CHECK(server.hits("/flaky/retry-a").size() == 2);
    CHECK(retry_node(ec, id, "attempts") == "2");

    const auto failing = ec.start("df.retry(df.http(" + lit(server.url("/fail")) + ", 'GET'), 2, 0.2)");
    CHECK(ec.await(failing, 30s) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(failing)) ==
          std::optional<std::string>("Failed after 2 attempts: HTTP GET " + server.url("/fail") +
                                     " returned 500: always failing"));
    CHECK(server.hits("/fail").size() == 2);
}

TEST_CASE("retry and timeout nest anywhere: inside a loop, a RACE and each other", "[retry]") {
    EngineCluster ec;
    counter_table(ec, "loop_tries");
    // A loop of 2 iterations, each retrying a step that fails on odd counter values.
    const auto id = ec.start(
        "df.loop(df.retry('UPDATE loop_tries SET n = n + 1' ~> "
        "'SELECT CASE WHEN n % 2 = 1 THEN n / (n - n) ELSE n END AS n FROM loop_tries', 2, 0) |=> 'r' ~> "
        "df.if($$SELECT $r >= 4$$, df.break('done'), 'SELECT 0'))");
    CHECK(ec.await(id, 30s) == "completed");
    CHECK(ec.result(id) == "\"done\"");
    CHECK(count_of(ec, "SELECT n FROM loop_tries") == 4);

    const auto race = ec.start("df.timeout(df.sleep(30), 60) | df.retry(df.timeout('SELECT 5 AS five', 10), 2)");
    CHECK(ec.await(race, 30s) == "completed");
    CHECK(ec.result(race) == R"({"rows":[{"five":5}],"row_count":1})");
}
