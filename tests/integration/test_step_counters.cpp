// The durable step counters (df._step_counters, docs/MONITORING.md
// "Operators"): every path that ends a SQL or HTTP step counts it exactly
// once, whoever writes the outcome — df._run_step in its own record statement
// (completed, failed, cancelled by df.cancel while it ran), the trigger on
// df._activations for every other writer (the daemon's HTTP steps and RACE
// losers, df.cancel of a running HTTP request). Timers and signal waits never
// count.
#include <string>

#include "http_test_server.hpp"
#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

// SQL/HTTP activations in a status, as the tables say.
std::string steps_in(const std::string &status) {
    return "SELECT count(*) FROM df._activations a JOIN df.nodes n ON n.instance_id = a.instance_id "
           "AND n.id = a.node_id WHERE n.node_type IN ('SQL', 'HTTP') AND a.status = '" + status + "'";
}

std::string counted(const std::string &column) {
    return "SELECT COALESCE(sum(" + column + "), 0) FROM df._step_counters";
}

}  // namespace

TEST_CASE("step counters: every writer of a SQL or HTTP outcome counts it exactly once", "[counters]") {
    ClusterOptions options;
    options.settings = {{"pg_durable.http_enabled", "on"},
                        {"pg_durable.http_allowed_hosts", "*"},
                        {"pg_durable.http_allow_private_networks", "on"}};
    EngineCluster ec(options);
    TestCluster &cluster = ec.cluster();
    HttpTestServer server;
    cluster.exec("GRANT EXECUTE ON FUNCTION df.http(text, text, text, jsonb, integer) TO alice");
    auto activation = [&](const std::string &id, const std::string &where) {
        return cluster.query_value("SELECT a.status || '/' || (a.executed_query IS NOT NULL) FROM df._activations a "
                                   "JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id "
                                   "WHERE a.instance_id = " + lit(id) + " AND " + where)
            .value_or("<none>");
    };

    // df._run_step records: two completed steps, one failed.
    const auto chain = ec.start("'SELECT 1' ~> 'SELECT 2'");
    const auto failing = ec.start("'SELECT 1/0'");
    CHECK(ec.await(chain) == "completed");
    CHECK(ec.await(failing) == "failed");
    CHECK(activation(failing, "n.node_type = 'SQL'") == "failed/true");

    // df.cancel while the step runs: df._run_step records the cancellation.
    const auto long_step = ec.start("'SELECT pg_sleep(60)'");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(long_step));
    ec.query("alice", "SELECT df.cancel(" + lit(long_step) + ")");
    REQUIRE_EVENTUALLY(activation(long_step, "n.node_type = 'SQL'") == "cancelled/true", 10s,
                       ec.diagnostics(long_step));

    // A RACE loser: interrupted, nothing recorded by df._run_step; the daemon
    // writes its cancellation. The winner's steps count as completed; the
    // timer does not count.
    const auto race = ec.start("'SELECT pg_sleep(60)' | (df.sleep(1) ~> 'SELECT 3')");
    CHECK(ec.await(race, 20s) == "completed");
    REQUIRE_EVENTUALLY(activation(race, "n.query LIKE '%pg_sleep%'") == "cancelled/false", 10s,
                       ec.diagnostics(race));

    // The daemon records HTTP outcomes; df.cancel cancels a held request's
    // activation.
    const auto http_done = ec.start("df.http(" + lit(server.url("/status/200")) + ")");
    CHECK(ec.await(http_done) == "completed");
    const auto http_held = ec.start("df.http(" + lit(server.url("/hold/60000")) + ", 'GET', NULL, '{}'::jsonb, 90)");
    REQUIRE_EVENTUALLY(server.holding() == 1, 20s, ec.diagnostics(http_held));
    ec.query("alice", "SELECT df.cancel(" + lit(http_held) + ")");
    REQUIRE_EVENTUALLY(activation(http_held, "n.node_type = 'HTTP'") == "cancelled/false", 10s,
                       ec.diagnostics(http_held));

    // A signal wait and a timer, never counted.
    const auto signal = ec.start("df.wait_for_signal('go') ~> 'SELECT 4'");
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df._activations WHERE instance_id = " + lit(signal) +
                                        " AND status = 'running'") == 1,
                       20s, ec.diagnostics(signal));
    ec.query("alice", "SELECT df.signal(" + lit(signal) + ", 'go')");
    CHECK(ec.await(signal) == "completed");

    // Exactly what the tables say, per status; and each kind of path was taken.
    CHECK(count_of(ec, steps_in("completed")) == 2 + 1 + 1 + 1);  // chain, race winner, http, after the signal
    CHECK(count_of(ec, counted("completed")) == count_of(ec, steps_in("completed")));
    CHECK(count_of(ec, steps_in("failed")) == 1);
    CHECK(count_of(ec, counted("failed")) == 1);
    CHECK(count_of(ec, steps_in("cancelled")) == 3);  // df.cancel of a SQL step, the RACE loser, df.cancel of HTTP
    CHECK(count_of(ec, counted("cancelled")) == 3);
    CHECK(count_of(ec, "SELECT count(*) FROM df._step_counters") == 17);
}
