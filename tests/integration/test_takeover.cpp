// A paused or cut-off daemon (SIGSTOP here; a network partition looks the
// same to the server: an idle session that keeps its locks) is replaced by
// its standby within seconds, and when it resumes it writes nothing: every
// bookkeeping write is fenced by its worker epoch and every step by the
// secret the new daemon rotated (DESIGN §2.7, issue 8 item 8).
#include <signal.h>

#include <chrono>
#include <string>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

TEST_CASE("takeover: a SIGSTOPped daemon is replaced by its standby; resumed, it writes nothing", "[hostile]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE takeover_rows (n int PRIMARY KEY); GRANT ALL ON takeover_rows TO alice");
    DaemonProcess standby(ec.cluster(), {"--log-level", "debug"}, "standby");
    REQUIRE_EVENTUALLY(standby.log_contains("pg_durable: standby, another daemon holds the orchestrator lock"), 30s,
                       standby.log());

    std::string chain = "'INSERT INTO takeover_rows VALUES (1)'";
    for (int n = 2; n <= 12; ++n)
        chain += " ~> df.sleep(1) ~> 'INSERT INTO takeover_rows VALUES (" + std::to_string(n) + ")'";
    const auto id = ec.start(chain + " ~> 'SELECT count(*) AS n FROM takeover_rows'");
    REQUIRE_EVENTUALLY(std::stol(ec.cluster().query_value("SELECT count(*) FROM takeover_rows").value_or("0")) >= 2,
                       20s, ec.diagnostics(id));

    ec.daemon()->signal(SIGSTOP);
    const auto paused = std::chrono::steady_clock::now();
    REQUIRE_EVENTUALLY(standby.log_contains("orchestrator lock acquired, taking over from the previous daemon"), 30s,
                       standby.log());
    CHECK(std::chrono::steady_clock::now() - paused < 20s);
    CHECK(ec.await(id, 40s) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"n":12}],"row_count":1})");

    // Resumed, the old daemon finds its session gone and its epoch replaced.
    const auto before = ec.cluster().query_value(
        "SELECT string_agg(stamp || node_id || status || coalesce(result, ''), ',' ORDER BY stamp, node_id) "
        "FROM df._activations");
    ec.daemon()->signal(SIGCONT);
    REQUIRE_EVENTUALLY(ec.daemon()->log_contains("standby, another daemon holds the orchestrator lock"), 30s,
                       ec.daemon()->log());
    CHECK(ec.cluster().query_value(
              "SELECT string_agg(stamp || node_id || status || coalesce(result, ''), ',' ORDER BY stamp, node_id) "
              "FROM df._activations") == before);
    CHECK(ec.cluster().query_value("SELECT count(*) FROM takeover_rows") == std::optional<std::string>("12"));
    CHECK(ec.status(id) == "completed");
    // The new daemon runs new work.
    const auto next = ec.start("'SELECT 5 AS five'");
    CHECK(ec.await(next, 20s) == "completed");
}
