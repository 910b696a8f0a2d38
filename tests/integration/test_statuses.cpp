// Node statuses tell the truth at every moment (issue 11 items 2 and 4):
// df.instance_nodes' status and inferred_status and df.explain's markers,
// live and after the end; loop pacing survives kill -9 of the daemon.
#include <chrono>
#include <string>
#include <vector>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

// "<status>|<inferred_status>|<inferred_status_from_ancestor_id>" of the node
// picked by a WHERE clause over df.instance_nodes (as alice).
std::string node_state(EngineCluster &ec, const std::string &id, const std::string &where) {
    return ec.query("alice", "SELECT status || '|' || inferred_status || '|' || "
                             "COALESCE(inferred_status_from_ancestor_id, '') FROM df.instance_nodes(" +
                                 lit(id) + ") WHERE " + where)
        .value_or("<no row>");
}

// Nodes whose inferred status is pending or running, as "<type>:<inferred>".
std::string unsettled(EngineCluster &ec, const std::string &id) {
    return ec.query("alice", "SELECT COALESCE(string_agg(node_type || ':' || inferred_status, ', '), '') "
                             "FROM df.instance_nodes(" + lit(id) + ") WHERE inferred_status IN ('pending', 'running')")
        .value_or("<null>");
}

std::string explain(EngineCluster &ec, const std::string &id) {
    return ec.query("alice", "SELECT df.explain(" + lit(id) + ")").value_or("<null>");
}

double seconds(EngineCluster &ec, const std::string &sql) {
    return std::stod(ec.cluster().query_value(sql).value_or("-1"));
}

}  // namespace

TEST_CASE("statuses: a nested loop that ended leaves no node pending or running; the old sleep arm is skipped",
          "[statuses]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE SEQUENCE rounds; GRANT USAGE ON rounds TO alice");
    // Execution 1 and 2 take the sleep arm, execution 3 the break.
    const auto id = ec.start("df.loop(df.loop('SELECT 1', 'SELECT false', 0) ~> "
                             "df.if('SELECT nextval(''rounds'') >= 3', df.break('done'), df.sleep(1)), NULL, 0)");
    REQUIRE(ec.await(id, 30s) == "completed");
    CHECK(ec.query("alice", "SELECT execution_count FROM df.instances WHERE id = " + lit(id)) ==
          std::optional<std::string>("3"));
    const std::string if_id = ec.node(id, "id", "node_type = 'IF'");
    CHECK(node_state(ec, id, "node_type = 'SLEEP'") == "completed|skipped|" + if_id);
    CHECK(unsettled(ec, id) == "");
    // The overload over executions shows the current one the same way.
    CHECK(ec.query("alice", "SELECT count(*) FROM df.instance_nodes(" + lit(id) +
                                ", 1) WHERE status IN ('pending', 'running')") == std::optional<std::string>("0"));
    CHECK(ec.query("alice", "SELECT status FROM df.instance_nodes(" + lit(id) + ", 1) WHERE node_type = 'SLEEP'") ==
          std::optional<std::string>("skipped"));
    const std::string tree = explain(ec, id);
    INFO(tree);
    CHECK(tree.find("○") == std::string::npos);
    CHECK(tree.find("⏳") == std::string::npos);
    CHECK(tree.find("SLEEP 1s ⊘") != std::string::npos);
}

TEST_CASE("statuses: a JOIN whose branch waits reads running; a finished branch's THEN reads completed at once",
          "[statuses]") {
    EngineCluster ec;
    const auto id = ec.start("df.join('SELECT 1' ~> 'SELECT 2', df.wait_for_signal('go'))");
    REQUIRE_EVENTUALLY(ec.query("alice", "SELECT status FROM df.instance_nodes(" + lit(id) +
                                             ") WHERE node_type = 'SIGNAL'") == std::optional<std::string>("running") &&
                           ec.query("alice", "SELECT status FROM df.instance_nodes(" + lit(id) +
                                                 ") WHERE query = 'SELECT 2'") ==
                               std::optional<std::string>("completed"),
                       20s, ec.diagnostics(id));
    // The THEN's own row waits for the daemon's next commit; its children
    // have decided.
    CHECK(node_state(ec, id, "node_type = 'THEN'").find("|completed|") != std::string::npos);
    CHECK(node_state(ec, id, "node_type = 'JOIN'") == "pending|running|");
    const std::string live = explain(ec, id);
    INFO(live);
    CHECK(live.find("JOIN (2) ⏳") != std::string::npos);
    CHECK(live.find("SIGNAL 'go' ⏳") != std::string::npos);

    REQUIRE(ec.query("alice", "SELECT df.signal(" + lit(id) + ", 'go')") == std::optional<std::string>("OK"));
    REQUIRE(ec.await(id) == "completed");
    // After the end the rows themselves are right, not only the inference.
    CHECK(node_state(ec, id, "node_type = 'THEN'") == "completed|completed|");
    CHECK(node_state(ec, id, "node_type = 'JOIN'") == "completed|completed|");
    CHECK(unsettled(ec, id) == "");
}

TEST_CASE("statuses: the SQL step that runs and its ancestors read running; after a cancel nothing does",
          "[statuses]") {
    EngineCluster ec;
    const auto id = ec.start("'SELECT 1' ~> df.if('SELECT true', 'SELECT pg_sleep(30)', 'SELECT 3')");
    REQUIRE_EVENTUALLY(std::stol(ec.cluster()
                                     .query_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                                  "'pg_durable step' AND wait_event = 'PgSleep'")
                                     .value_or("0")) == 1,
                       20s, ec.diagnostics(id));
    CHECK(node_state(ec, id, "query = 'SELECT pg_sleep(30)'") == "pending|running|");
    CHECK(node_state(ec, id, "query = 'SELECT 3'") == "pending|skipped|" + ec.node(id, "id", "node_type = 'IF'"));
    CHECK(node_state(ec, id, "node_type = 'IF'") == "pending|running|");
    CHECK(node_state(ec, id, "node_type = 'THEN'") == "pending|running|");
    const std::string live = explain(ec, id);
    INFO(live);
    CHECK(live.find("SQL: SELECT pg_sleep(30) ⏳") != std::string::npos);
    CHECK(live.find("IF ⏳") != std::string::npos);

    REQUIRE(ec.query("alice", "SELECT df.cancel(" + lit(id) + ")").has_value());
    REQUIRE(ec.await(id) == "cancelled");
    REQUIRE_EVENTUALLY(ec.query("alice", "SELECT status FROM df.instance_nodes(" + lit(id) +
                                             ") WHERE query = 'SELECT pg_sleep(30)'") ==
                           std::optional<std::string>("cancelled"),
                       20s, ec.diagnostics(id));
    CHECK(unsettled(ec, id) == "");
}

TEST_CASE("statuses: compound nodes that completed before a failing step keep their completed rows",
          "[statuses]") {
    EngineCluster ec;
    // The IF and the inner THEN complete; their rows ride with the next
    // commit, which is the failing step's own.
    const auto id = ec.start("df.if('SELECT true', 'SELECT 1' ~> 'SELECT 2', 'SELECT 3') ~> 'SELECT 1/0'");
    REQUIRE(ec.await(id) == "failed");
    CHECK(node_state(ec, id, "node_type = 'IF'") == "completed|completed|");
    CHECK(node_state(ec, id, "node_type = 'THEN' AND left_node = " + lit(ec.node(id, "id", "query = 'SELECT 1'"))) ==
          "completed|completed|");
    CHECK(node_state(ec, id, "node_type = 'THEN' AND right_node = " + lit(ec.node(id, "id", "query = 'SELECT 1/0'"))) ==
          "failed|failed|");
    CHECK(unsettled(ec, id) == "");
}

TEST_CASE("statuses: a root loop's pace survives kill -9 of the daemon in its first iteration", "[statuses]") {
    EngineCluster ec;
    const auto id = ec.start("df.loop('SELECT clock_timestamp()', NULL, 6000)");
    const std::string first_start = "(SELECT started_at FROM df._activations WHERE instance_id = " + lit(id) +
                                    " AND execution = 1 AND node_id <> (SELECT root_node FROM df.instances WHERE id = " +
                                    lit(id) + "))";
    // Two seconds into the first iteration's wait the daemon dies.
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT clock_timestamp() - " + first_start +
                                                " >= interval '2 s'") == std::optional<std::string>("t"),
                       20s, ec.diagnostics(id));
    ec.kill_daemon();
    ec.start_daemon();
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT execution_count >= 2 FROM df.instances WHERE id = " +
                                                lit(id)) == std::optional<std::string>("t"),
                       30s, ec.diagnostics(id));
    // The second iteration started 6 s after the first, not 6 s after the restart.
    const double gap = seconds(ec, "SELECT extract(epoch FROM (SELECT started_at FROM df._activations WHERE "
                                   "instance_id = " + lit(id) + " AND stamp = " + lit(id + "::2") +
                                   " AND node_id = (SELECT root_node FROM df.instances WHERE id = " + lit(id) +
                                   ")) - " + first_start + ")");
    INFO("second iteration began " << gap << " s after the first");
    CHECK(gap >= 5.9);
    CHECK(gap < 7.5);
    ec.query("alice", "SELECT df.cancel(" + lit(id) + ")");
}

TEST_CASE("statuses: a non-root loop's pace survives kill -9 of the daemon in a later iteration", "[statuses]") {
    EngineCluster ec;
    const auto id = ec.start("'SELECT 0' ~> df.loop('SELECT clock_timestamp()', NULL, 3000)");
    const std::string body = ec.node(id, "id", "query = 'SELECT clock_timestamp()'");
    auto start_of = [&](int iteration) {
        return "(SELECT started_at FROM df._activations WHERE instance_id = " + lit(id) + " AND node_id = " +
               lit(body) + " AND stamp LIKE " + lit("%::" + std::to_string(iteration)) + " AND status = 'completed')";
    };
    // The third iteration's step is done: its pace runs for 3 s.
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT " + start_of(3) + " IS NOT NULL") ==
                           std::optional<std::string>("t"),
                       30s, ec.diagnostics(id));
    ec.kill_daemon();
    ec.start_daemon();
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT " + start_of(4) + " IS NOT NULL") ==
                           std::optional<std::string>("t"),
                       30s, ec.diagnostics(id));
    const double gap = seconds(ec, "SELECT extract(epoch FROM " + start_of(4) + " - " + start_of(3) + ")");
    INFO("fourth iteration began " << gap << " s after the third");
    CHECK(gap >= 2.9);
    CHECK(gap < 4.5);
    ec.query("alice", "SELECT df.cancel(" + lit(id) + ")");
}
