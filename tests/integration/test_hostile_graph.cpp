// Hostile graphs and rows (DESIGN §2.12, §2.13): a graph row written around
// df.start, or a row that makes the interpreter throw, fails only its own
// instance with a clear error. The daemon keeps running (same pid) and the
// other instances complete.
#include <string>
#include <vector>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

// Rewrites, as the superuser, the query of the instance's node of `type`.
void corrupt_node(EngineCluster &ec, const std::string &id, const std::string &type, const std::string &query) {
    ec.cluster().exec("UPDATE df.nodes SET query = " + lit(query) + " WHERE instance_id = " + lit(id) +
                      " AND node_type = " + lit(type));
}

std::string error_of_instance(EngineCluster &ec, const std::string &id) {
    return ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(id)).value_or("<null>");
}

}  // namespace

TEST_CASE("hostile: malformed leaf rows in df.nodes fail their instance at load; the daemon goes on",
          "[hostile]") {
    EngineCluster ec({}, /*start_daemon=*/false);
    struct Case {
        std::string type, query, error;
        std::string id;
    };
    std::vector<Case> cases = {
        {"SLEEP", "x", "root.left: query in SLEEP must be a whole number of seconds, got 'x'", ""},
        {"SLEEP", "99999999999999999999999",
         "root.left: query in SLEEP is out of range for type bigint: '99999999999999999999999'", ""},
        {"SLEEP", "-5", "root.left: Sleep duration must be non-negative", ""},
        {"SIGNAL", R"({"signal_name":null})", "root.left: Signal name cannot be empty", ""},
        {"SIGNAL", "{}", "root.left: Signal name cannot be empty", ""},
        {"WAIT_SCHEDULE", R"({"cron_expr":5})", "root.left: cron_expr in WAIT_SCHEDULE must be a string", ""},
    };
    for (auto &c : cases) {
        const std::string leaf = c.type == "SLEEP"    ? "df.sleep(1)"
                                 : c.type == "SIGNAL" ? "df.wait_for_signal('go')"
                                                      : "df.wait_for_schedule('* * * * *')";
        c.id = ec.start(leaf + " ~> 'SELECT 1'");
        corrupt_node(ec, c.id, c.type, c.query);
    }
    const auto good = ec.start("df.sleep(1) ~> 'SELECT 42 AS answer'");

    ec.start_daemon();
    const pid_t pid = ec.daemon()->pid();
    for (const auto &c : cases) {
        INFO(c.type << " " << c.query);
        CHECK(ec.await(c.id) == "failed");
        CHECK(error_of_instance(ec, c.id) == "Invalid durable function graph: " + c.error);
    }
    CHECK(ec.await(good) == "completed");
    CHECK(ec.result(good) == R"({"rows":[{"answer":42}],"row_count":1})");

    // A malformed graph committed while the daemon runs (NOTIFY at commit).
    const auto live = ec.query("", R"SQL(
        BEGIN;
        SET LOCAL ROLE alice;
        CREATE TEMP TABLE started ON COMMIT DROP AS SELECT df.start(df.sleep(1) ~> 'SELECT 1') AS id;
        RESET ROLE;
        UPDATE df.nodes SET query = 'x' WHERE node_type = 'SLEEP' AND instance_id = (SELECT id FROM started);
        SELECT set_config('pgd.live', (SELECT id FROM started), false);
        COMMIT;
        SELECT current_setting('pgd.live');
    )SQL");
    REQUIRE(live);
    const auto after = ec.start("'SELECT 7 AS after'");
    CHECK(ec.await(*live) == "failed");
    CHECK(error_of_instance(ec, *live) ==
          "Invalid durable function graph: root.left: query in SLEEP must be a whole number of seconds, got 'x'");
    CHECK(ec.await(after) == "completed");

    CHECK(ec.daemon()->running());
    CHECK(ec.daemon()->pid() == pid);
    CHECK_FALSE(ec.daemon()->log_contains("fatal error"));
}

TEST_CASE("hostile: an exception while running one instance fails that instance only", "[hostile]") {
    EngineCluster ec({}, /*start_daemon=*/false);
    // A forged loop checkpoint (df._activations) whose iteration is not a
    // number: the interpreter throws when the loop resumes from it, once at
    // instance start (a JOIN branch) and once after a step (a THEN's right).
    const auto at_start = ec.start("'SELECT 1' & df.loop('SELECT 2', 'SELECT false')");
    const auto after_step = ec.start("'SELECT 1' ~> df.loop('SELECT 2', 'SELECT false')");
    const auto good = ec.start("df.loop('SELECT 3', 'SELECT false') ~> 'SELECT 42 AS answer'");
    const auto loop_id = [&](const std::string &id) { return ec.node(id, "id", "node_type = 'LOOP'"); };
    const auto forge = [&](const std::string &id, const std::string &stamp) {
        ec.cluster().exec(
            "INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, result, started_at) "
            "VALUES (" + lit(id) + ", " + lit(stamp) + ", " + lit(loop_id(id)) +
            ", 1, 'running', '{\"iteration\":\"x\"}', now())");
    };
    forge(at_start, at_start + "::1::" + loop_id(at_start) + "::1");
    forge(after_step, after_step + "::1");

    ec.start_daemon();
    const pid_t pid = ec.daemon()->pid();
    for (const auto &id : {at_start, after_step}) {
        CHECK(ec.await(id) == "failed");
        CHECK_THAT(error_of_instance(ec, id),
                   Catch::StartsWith("pg_durable: instance " + id + " failed in the daemon: ") &&
                       Catch::Contains("type must be number"));
    }
    CHECK(ec.await(good) == "completed");
    CHECK(ec.result(good) == R"({"rows":[{"answer":42}],"row_count":1})");
    // The failed instances are left alone afterwards: nothing runs for them.
    CHECK(ec.cluster().query_value("SELECT count(*) FROM df.instances WHERE status = 'running'") ==
          std::optional<std::string>("0"));
    CHECK(ec.daemon()->running());
    CHECK(ec.daemon()->pid() == pid);
    CHECK_FALSE(ec.daemon()->log_contains("fatal error"));
}

// The daemon loads an instance's nodes, variables and history in one
// statement that carries the text columns as JSON strings: whatever a role
// puts in step text, variables or results must come back byte for byte, on
// the first load and on a reload of the history after a daemon restart.
TEST_CASE("hostile: awkward text in step queries, variables and results survives the daemon's load byte for byte",
          "[hostile]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE awk_sink (step int, t text); GRANT ALL ON awk_sink TO alice");
    const std::string awkward =
        "quote ' dq \" backslash \\ \\\\ slash / tab \t nl \n cr \r ctl \x01\x1f\x7f unicode \xc3\xa9 "
        "\xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x98\x80 json {\"a\":[1,null]} \\u0000 \\n \\\" $1 $$ }{ ]";
    REQUIRE(ec.query("alice", "SELECT df.setvar('awk', " + lit(lit(awkward)) + ")") ==
            std::optional<std::string>("OK"));
    const std::string select_awkward = "SELECT " + lit(awkward) + "::text AS t";
    const auto id = ec.start(lit("INSERT INTO awk_sink VALUES (1, {awk})") + " ~> (" + lit(select_awkward) +
                             " |=> 'r') ~> df.wait_for_signal('go') ~> " +
                             lit("INSERT INTO awk_sink VALUES (3, $r)"));
    // Step 1 (text from a variable) ran after the first load.
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.nodes WHERE instance_id = " + lit(id) +
                                        " AND node_type = 'SIGNAL' AND status = 'running'") == 1,
                       20s, ec.diagnostics(id));
    ec.kill_daemon();
    ec.start_daemon();  // loads the history again: $r's result comes from the rows
    REQUIRE(ec.query("alice", "SELECT df.signal(" + lit(id) + ", 'go', " + lit(R"({"k": "\u00e9\n"})") + ")") ==
            std::optional<std::string>("OK"));
    REQUIRE(ec.await(id, 30s) == "completed");
    INFO(ec.diagnostics(id));
    CHECK(count_of(ec, "SELECT count(*) FROM awk_sink WHERE step = 1 AND t = " + lit(awkward)) == 1);
    CHECK(count_of(ec, "SELECT count(*) FROM awk_sink WHERE step = 3 AND t = " + lit(awkward)) == 1);
    CHECK(count_of(ec, "SELECT count(*) FROM awk_sink") == 2);
}
