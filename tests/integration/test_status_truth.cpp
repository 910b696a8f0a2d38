// Monitoring tells the truth (issue 11): an instance is 'running' as soon as
// the daemon has taken it up, not when its first step commits.
#include <chrono>
#include <string>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

TEST_CASE("status: an instance whose first step runs long reads 'running' within a second", "[monitor]") {
    EngineCluster ec;
    const auto id = ec.start("'SELECT pg_sleep(5)' ~> 'SELECT 1 AS one'");
    const auto started = std::chrono::steady_clock::now();
    REQUIRE_EVENTUALLY(ec.query("alice", "SELECT df.status(" + lit(id) + ")") == std::optional<std::string>("running"),
                       1s, ec.diagnostics(id));
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    // Still in its first step: the mark did not wait for it.
    CHECK(ec.cluster().query_value("SELECT count(*) FROM df._activations WHERE instance_id = " + lit(id) +
                                   " AND status = 'completed'") == std::optional<std::string>("0"));

    // A burst of starts is marked too (batched).
    std::vector<std::string> ids;
    for (int i = 0; i < 30; ++i) ids.push_back(ec.start("'SELECT pg_sleep(3)'", i % 2 ? "alice" : "bob"));
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT count(*) FROM df.instances WHERE status = 'running'") ==
                           std::optional<std::string>("31"),
                       2s, ec.diagnostics(id));
    CHECK(ec.await(id, 20s) == "completed");
}
