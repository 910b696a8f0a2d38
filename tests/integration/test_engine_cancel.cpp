// Cancellation of running statements (SPEC.md §13, §10.5), role isolation
// (§5, §9), steps in another database, and user-guide examples.
#include <string>

#include "test_engine_common.hpp"

using namespace pgd::test;

TEST_CASE("engine: df.cancel interrupts a running pg_sleep(60) within a second", "[engine]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE cancel_rows (i int); GRANT ALL ON cancel_rows TO alice");
    const auto id = ec.start("'INSERT INTO cancel_rows VALUES (1); SELECT pg_sleep(60)' ~> 'INSERT INTO cancel_rows VALUES (2)'");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(id));

    CHECK(ec.query("alice", "SELECT df.cancel(" + lit(id) + ", 'stop now')") ==
          std::optional<std::string>("Instance " + id + " cancelled: stop now"));
    CHECK(ec.status(id) == "cancelled");
    // The statement ends within a second.
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 0, 1s, ec.diagnostics(id));
    const auto sql_node = "query LIKE '%pg_sleep(60)%'";
    REQUIRE_EVENTUALLY(ec.node(id, "status", sql_node) == "cancelled", 5s, ec.diagnostics(id));
    CHECK(ec.node(id, "error", sql_node) == "Cancelled: stop now");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(id)) ==
          std::optional<std::string>("stop now"));
    CHECK(ec.result(id) == "<null>");
    CHECK(count_of(ec, "SELECT count(*) FROM cancel_rows") == 0);  // rolled back, nothing further ran
    // On a terminal instance: unchanged, same text.
    CHECK(ec.query("alice", "SELECT df.cancel(" + lit(id) + ", 'again')") ==
          std::optional<std::string>("Instance " + id + " cancelled: again"));
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(id)) ==
          std::optional<std::string>("stop now"));
    CHECK(ec.error_of("alice", "SELECT df.signal(" + lit(id) + ", 'x')") ==
          std::optional<std::string>("Instance " + id + " is not running (status: cancelled)"));
}

TEST_CASE("engine: a RACE loser's running statement is rolled back", "[engine]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE race_rows (i int); GRANT ALL ON race_rows TO alice");
    const auto id = ec.start("'INSERT INTO race_rows VALUES (1); SELECT pg_sleep(60)' | "
                             "(df.sleep(1) ~> $$SELECT 'win' AS w$$)");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(id));
    CHECK(ec.await(id, 15s) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"w":"win"}],"row_count":1})");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 0, 2s, ec.diagnostics(id));
    const auto loser = "query LIKE '%pg_sleep(60)%'";
    REQUIRE_EVENTUALLY(ec.node(id, "status", loser) == "cancelled", 5s, ec.diagnostics(id));
    CHECK(ec.node(id, "error", loser) == "Branch cancelled after losing RACE");
    CHECK(count_of(ec, "SELECT count(*) FROM race_rows") == 0);
}

TEST_CASE("engine: roles cannot see or touch each other's instances; steps run with the submitter's privileges",
          "[engine]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE secret (x int); INSERT INTO secret VALUES (1)");
    const auto waiting = ec.start("df.wait_for_signal('x')", "alice");
    const auto who = ec.start("'SELECT session_user::text AS s, current_user::text AS c'", "bob");
    const auto denied = ec.start("'SELECT * FROM secret'", "alice");

    REQUIRE_EVENTUALLY(ec.status(waiting) == "running", 10s, ec.diagnostics(waiting));
    CHECK(ec.query("alice", "SELECT df.status(" + lit(waiting) + ")") == std::optional<std::string>("running"));
    CHECK_FALSE(ec.query("bob", "SELECT df.status(" + lit(waiting) + ")"));
    CHECK_FALSE(ec.query("bob", "SELECT df.result(" + lit(waiting) + ")"));
    CHECK(ec.query("bob", "SELECT count(*) FROM df.nodes WHERE instance_id = " + lit(waiting)) ==
          std::optional<std::string>("0"));
    CHECK(ec.error_of("bob", "SELECT df.signal(" + lit(waiting) + ", 'x')") ==
          std::optional<std::string>("Instance not found or access denied: " + waiting));
    CHECK(ec.error_of("bob", "SELECT df.cancel(" + lit(waiting) + ")") ==
          std::optional<std::string>("Instance not found or access denied: " + waiting));
    CHECK(ec.status(waiting) == "running");

    CHECK(ec.await(who) == "completed");
    // current_user is the submitter; the session is the daemon's own login.
    CHECK(ec.query("bob", "SELECT df.result(" + lit(who) + ")") ==
          std::optional<std::string>(R"({"rows":[{"s":")" + ec.cluster().superuser() +
                                     R"(","c":"bob"}],"row_count":1})"));
    CHECK_FALSE(ec.query("alice", "SELECT df.result(" + lit(who) + ")"));

    CHECK(ec.await(denied) == "failed");
    CHECK(ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(denied)) ==
          std::optional<std::string>("SQL execution failed: permission denied for table secret"));

    CHECK(ec.query("alice", "SELECT df.signal(" + lit(waiting) + ", 'x', 'approve')") ==
          std::optional<std::string>("OK"));
    CHECK(ec.await(waiting) == "completed");
    CHECK(ec.query("alice", "SELECT df.result(" + lit(waiting) + ")::jsonb = "
                            "'{\"signal_name\":\"x\",\"timed_out\":false,\"data\":\"approve\"}'::jsonb") ==
          std::optional<std::string>("t"));
}

TEST_CASE("engine: steps run in another database", "[engine]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE DATABASE other");
    ec.cluster().exec("CREATE EXTENSION pg_durable_target; "
                      "CREATE TABLE where_ran (db text, who text); GRANT ALL ON where_ran TO alice",
                      "other");
    const auto id = ec.start("'INSERT INTO where_ran VALUES (current_database(), current_user)' ~> "
                             "'SELECT count(*) AS n FROM where_ran', database => 'other'");
    CHECK(ec.await(id) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"n":1}],"row_count":1})");
    CHECK(ec.cluster().query_value("SELECT db || '/' || who FROM where_ran", "other") ==
          std::optional<std::string>("other/alice"));
}

TEST_CASE("engine: signals queue FIFO per name and are consumed once", "[engine]") {
    EngineCluster ec;
    // Two waits of the same name, started after both signals were queued.
    const auto id = ec.start("df.wait_for_signal('gate') ~> df.wait_for_signal('s') |=> 'a' ~> "
                             "df.wait_for_signal('s') |=> 'b' ~> "
                             "$$SELECT $a::jsonb->'data' AS a, $b::jsonb->'data' AS b$$");
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(id) + ", 's', '1')") == std::optional<std::string>("OK"));
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(id) + ", 's', '{\"n\": 2}')") == std::optional<std::string>("OK"));
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(id) + ", 'gate')") == std::optional<std::string>("OK"));
    CHECK(ec.await(id) == "completed");
    CHECK(ec.result(id) == R"({"rows":[{"a":1,"b":{"n": 2}}],"row_count":1})");
}

TEST_CASE("engine: user-guide order approval and multi-party approval", "[engine]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE orders (id int, total numeric, status text); "
                      "INSERT INTO orders VALUES (1, 10, 'new'), (2, 20, 'new'); "
                      "CREATE TABLE documents (id int, status text); INSERT INTO documents VALUES (1, 'draft'); "
                      "GRANT ALL ON orders, documents TO alice");
    auto approval = [](int order) {
        return "'SELECT id, total FROM orders WHERE id = " + std::to_string(order) + "' |=> 'order' "
               "~> df.wait_for_signal('approval', 86400) |=> 'sig' "
               "~> df.if('SELECT NOT ($sig::jsonb->>''timed_out'')::boolean "
               "AND ($sig::jsonb->''data''->>''approved'')::boolean', "
               "'UPDATE orders SET status = ''approved'' WHERE id = $order.id', "
               "'UPDATE orders SET status = ''rejected'' WHERE id = $order.id'), 'order-approval'";
    };
    const auto yes = ec.start(approval(1));
    const auto no = ec.start(approval(2));
    const auto multi = ec.start(
        "'SELECT id FROM documents WHERE id = 1' |=> 'doc' ~> df.join3(df.wait_for_signal('legal_approval'), "
        "df.wait_for_signal('tech_approval'), df.wait_for_signal('mgmt_approval')) |=> 'approvals' "
        "~> 'UPDATE documents SET status = ''approved'' WHERE id = $doc.id', 'multi-approval'");

    CHECK(ec.query("alice", "SELECT df.signal(" + lit(yes) +
                                ", 'approval', '{\"approved\": true, \"approver\": \"jane@acme.com\"}')") ==
          std::optional<std::string>("OK"));
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(no) + ", 'approval', '{\"approved\": false}')") ==
          std::optional<std::string>("OK"));
    for (const char *name : {"legal_approval", "tech_approval"})
        ec.query("alice", "SELECT df.signal(" + lit(multi) + ", '" + name + "', '{\"approved\": true}')");
    CHECK(ec.await(yes) == "completed");
    CHECK(ec.await(no) == "completed");
    CHECK(ec.cluster().query_value("SELECT string_agg(status, ',' ORDER BY id) FROM orders") ==
          std::optional<std::string>("approved,rejected"));
    // Two of three approvals: still waiting.
    CHECK(ec.status(multi) == "running");
    CHECK(ec.cluster().query_value("SELECT status FROM documents") == std::optional<std::string>("draft"));
    ec.query("alice", "SELECT df.signal(" + lit(multi) + ", 'mgmt_approval', '{\"approved\": true}')");
    CHECK(ec.await(multi) == "completed");
    CHECK(ec.cluster().query_value("SELECT status FROM documents") == std::optional<std::string>("approved"));
}

TEST_CASE("engine: user-guide cron loop ticks every second; batch loop breaks with a substituted value", "[engine]") {
    EngineCluster ec;
    ec.cluster().exec(R"SQL(
        CREATE TABLE ticks (at timestamptz);
        CREATE TABLE batches (n int);
        GRANT ALL ON ticks, batches TO alice;
        CREATE FUNCTION process_batch(OUT done boolean, OUT count bigint) LANGUAGE sql AS $f$
            INSERT INTO batches VALUES (1);
            SELECT count(*) >= 3, count(*) FROM batches;
        $f$;
    )SQL");
    const auto cron = ec.start("@> (df.wait_for_schedule('* * * * * *') ~> 'INSERT INTO ticks VALUES (now())'), "
                               "'every-second-tick'");
    // (The guide's bare '$batch.done' condition is not SQL once substituted: SELECT it.)
    const auto batch = ec.start("df.loop('SELECT * FROM process_batch()' |=> 'batch' ~> "
                                "('SELECT $batch.done' ?> df.break('{\"status\": \"complete\", \"total\": $batch.count}') "
                                "!> df.sleep(1))), 'batch-processor'");

    CHECK(ec.await(batch, 20s) == "completed");
    INFO("batch result: " << ec.result(batch));
    CHECK(ec.query("alice", "SELECT df.result(" + lit(batch) + ")::jsonb = '{\"status\": \"complete\", \"total\": 3}'") ==
          std::optional<std::string>("t"));

    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM ticks") >= 3, 15s, ec.diagnostics(cron));
    CHECK(ec.status(cron) == "running");
    // One tick per second: distinct whole seconds.
    CHECK(count_of(ec, "SELECT count(DISTINCT date_trunc('second', at)) - count(*) FROM ticks") == 0);
    CHECK(count_of(ec, "SELECT execution_count FROM df.instances WHERE id = " + lit(cron)) >= 3);
    CHECK(ec.query("alice", "SELECT df.cancel(" + lit(cron) + ", 'Stopping cron job')") ==
          std::optional<std::string>("Instance " + cron + " cancelled: Stopping cron job"));
    CHECK(ec.await(cron) == "cancelled");
}
