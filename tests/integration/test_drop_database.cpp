// A workflow's target database can be dropped (DESIGN §2.10, issue 8 item
// 10): the daemon's pooled sessions there close when idle or when the server
// ends them, and losing them never takes the daemon down.
#include "catch_compat.hpp"

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kStepSessionsInOther =
    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'other' AND application_name = 'pg_durable step'";

}  // namespace

TEST_CASE("robust: a plain DROP DATABASE of a workflow's target database succeeds and the daemon lives on",
          "[robust]") {
    EngineCluster ec;
    const pid_t daemon = ec.daemon()->pid();
    ec.cluster().exec("CREATE DATABASE other");
    ec.cluster().exec("CREATE EXTENSION pg_durable_target; CREATE TABLE t (n int); GRANT ALL ON t TO alice", "other");

    const auto first = ec.start("'INSERT INTO t VALUES (1)', database => 'other'");
    REQUIRE(ec.await(first) == "completed");

    // An administrator ends the daemon's sessions there.
    ec.cluster().exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = 'other' AND application_name = 'pg_durable step'");
    REQUIRE_EVENTUALLY(ec.cluster().query_value(kStepSessionsInOther) == std::optional<std::string>("0"), 5s,
                       ec.diagnostics());

    // The next step there gets a working session, and completes.
    const auto second = ec.start("'INSERT INTO t VALUES (2)', database => 'other'");
    REQUIRE(ec.await(second) == "completed");
    CHECK(ec.cluster().query_value("SELECT string_agg(n::text, ',' ORDER BY n) FROM t", "other") ==
          std::optional<std::string>("1,2"));

    // Workflows that will reach a step there only after the drop (df.start
    // refuses a database that does not exist).
    std::vector<std::string> orphans;
    for (int i = 0; i < 10; ++i)
        orphans.push_back(ec.start("df.wait_for_signal('go') ~> 'SELECT 1', database => 'other'"));
    for (const auto &id : orphans)
        REQUIRE_EVENTUALLY(ec.node(id, "status", "node_type = 'SIGNAL'") == "running", 10s, ec.diagnostics(id));

    // Plain DROP DATABASE (no FORCE): the daemon's idle session must not be
    // "being accessed by other users" for long. The server itself waits up to
    // 5 s for sessions to leave, so one attempt normally does it.
    std::string last_error;
    const bool dropped = wait_until(
        [&] {
            try {
                ec.cluster().exec("DROP DATABASE other");
                return true;
            } catch (const std::exception &e) {
                last_error = e.what();
                return false;
            }
        },
        10s, 100ms);
    if (!dropped) {
        // Counter-check: the blocker was the daemon's pooled session.
        const auto blockers = ec.cluster().query_value(
            "SELECT string_agg(format('%s/%s/%s', pid, application_name, state), ', ') FROM pg_stat_activity "
            "WHERE datname = 'other'");
        ec.cluster().exec("DROP DATABASE other WITH (FORCE)");
        FAIL("DROP DATABASE other kept failing: " << last_error << "\nsessions there: " << blockers.value_or("none")
                                                   << "\n" << ec.diagnostics());
    }

    // Their steps fail with the server's message; each failed connection is
    // released without harm.
    for (const auto &id : orphans)
        CHECK(ec.query("alice", "SELECT df.signal(" + lit(id) + ", 'go')") == std::optional<std::string>("OK"));
    for (const auto &id : orphans) {
        REQUIRE(ec.await(id) == "failed");
        CHECK(ec.node(id, "error", "node_type = 'SQL'") ==
              "SQL execution failed: database \"other\" does not exist");
    }

    // Same daemon process, still at work in the main database.
    REQUIRE(ec.daemon()->running());
    CHECK(ec.daemon()->pid() == daemon);
    const auto later = ec.start("'SELECT 41 + 1 AS answer'");
    const auto later_status = ec.await(later);
    INFO(ec.diagnostics(later));
    REQUIRE(later_status == "completed");
    CHECK(ec.result(later) == R"({"rows":[{"answer":42}],"row_count":1})");
    CHECK_FALSE(ec.daemon()->log_contains("Resource deadlock avoided"));
}
