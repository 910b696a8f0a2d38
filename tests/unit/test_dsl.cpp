// The DSL constructors and operator helpers (SPEC.md §6, §7, §8, §10.10, §14):
// exact graph text, auto-wrap of step arguments, and the DSL-time errors.
#include "catch_compat.hpp"

#include <string>

#include "common/dsl.hpp"
#include "common/errors.hpp"

namespace dsl = durable::dsl;

namespace {

const std::string kSql1 = R"({"node_type":"SQL","query":"SELECT 1"})";
const std::string kSql2 = R"({"node_type":"SQL","query":"SELECT 2"})";
const std::string kSql3 = R"({"node_type":"SQL","query":"SELECT 3"})";

// What `cond ?> then` returns: jsonb_build_object(...)::text, keys in jsonb order.
std::string partial_if(const std::string &condition_literal, const std::string &then_literal) {
    return R"({"condition": )" + condition_literal + R"(, "_partial_if": true, "then_branch": )" + then_literal + "}";
}

dsl::HttpStep http_step(const std::string &url) {
    dsl::HttpStep step;
    step.url = url;
    return step;
}

}  // namespace

TEST_CASE("sql and seq give the SPEC's exact text", "[dsl]") {
    CHECK(dsl::sql("SELECT 1") == kSql1);
    CHECK(dsl::seq("SELECT 1", "SELECT 2") ==
          R"({"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"}})");
    // df.sql never reads its argument as a graph.
    CHECK(dsl::sql(kSql1) == R"({"node_type":"SQL","query":"{\"node_type\":\"SQL\",\"query\":\"SELECT 1\"}"})");
}

TEST_CASE("step arguments are auto-wrapped: graphs kept, text becomes SQL", "[dsl]") {
    const std::string chained = dsl::seq(dsl::seq("SELECT 1", "SELECT 2"), "SELECT 3");
    CHECK(chained == R"({"node_type":"THEN","left_node":{"node_type":"THEN","left_node":)" + kSql1 +
                         R"(,"right_node":)" + kSql2 + R"(},"right_node":)" + kSql3 + "}");
    // Identical calls, identical text; graph input in another key order comes out canonical.
    CHECK(dsl::seq("SELECT 1", "SELECT 2") == dsl::seq(kSql1, R"({ "query": "SELECT 2", "node_type": "SQL" })"));
    CHECK_THROWS_WITH(dsl::seq("SELECT 1", R"({"node_type":"X"})"),
                      "Invalid durable function: Unknown node_type 'X'. Valid types: SQL, THEN, IF, JOIN, LOOP, "
                      "BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, SIGNAL, RETRY, TIMEOUT");
    CHECK_THROWS_WITH(dsl::race(R"({"node_type":"THEN","left_node":1})", "SELECT 1"),
                      "Invalid durable function graph: root: Durofut children must be JSON objects");
}

TEST_CASE("as names the top node of any step", "[dsl]") {
    CHECK(dsl::as("SELECT 1", "a") == R"({"node_type":"SQL","query":"SELECT 1","result_name":"a"})");
    CHECK(dsl::as(dsl::seq("SELECT 1", "SELECT 2"), "_n1") ==
          R"({"node_type":"THEN","left_node":)" + kSql1 + R"(,"right_node":)" + kSql2 + R"(,"result_name":"_n1"})");
    CHECK(dsl::as(dsl::as("SELECT 1", "a"), "b") == R"({"node_type":"SQL","query":"SELECT 1","result_name":"b"})");
    CHECK_THROWS_WITH(dsl::as("SELECT 1", ""), "df.as: result name cannot be empty");
    CHECK_THROWS_WITH(dsl::as("SELECT 1", "9lives"),
                      "df.as: result name '9lives' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*");
    CHECK_THROWS_WITH(dsl::as("SELECT 1", "x) UNION SELECT 1--"), Catch::Contains("is not a valid identifier"));
}

TEST_CASE("sleep", "[dsl]") {
    CHECK(dsl::sleep(5) == R"({"node_type":"SLEEP","query":"5"})");
    CHECK(dsl::sleep(0) == R"({"node_type":"SLEEP","query":"0"})");
    CHECK_THROWS_WITH(dsl::sleep(-1), "Sleep duration must be non-negative");
}

TEST_CASE("wait_for_schedule checks the expression and the zone now", "[dsl]") {
    CHECK(dsl::wait_for_schedule("0 * * * *", std::nullopt) ==
          R"({"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"0 * * * *\"}"})");
    CHECK(dsl::wait_for_schedule("0 9 * * 1-5", std::string("Europe/Berlin")) ==
          R"({"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"0 9 * * 1-5\",\"timezone\":\"Europe/Berlin\"}"})");
    CHECK_THROWS_WITH(dsl::wait_for_schedule("61 * * * *", std::nullopt),
                      Catch::StartsWith("Invalid cron expression '61 * * * *': "));
    CHECK_THROWS_WITH(dsl::wait_for_schedule("0 * * * *", std::string("Mars/Olympus")),
                      "Invalid time zone 'Mars/Olympus'");
    CHECK_THROWS_WITH(dsl::wait_for_schedule("0 * * * *", std::string("")), "Invalid time zone ''");
}

TEST_CASE("loop: body, optional condition, interval only when given", "[dsl]") {
    CHECK(dsl::loop("SELECT 1", std::nullopt, std::nullopt) == R"({"node_type":"LOOP","left_node":)" + kSql1 + "}");
    CHECK(dsl::loop("SELECT 1", std::string("SELECT 2"), std::int64_t{250}) ==
          R"({"node_type":"LOOP","left_node":)" + kSql1 + R"(,"condition_node":)" + kSql2 +
              R"(,"query":"{\"min_interval_ms\":250}"})");
    CHECK(dsl::loop("SELECT 1", std::nullopt, std::int64_t{0}) ==
          R"({"node_type":"LOOP","left_node":)" + kSql1 + R"(,"query":"{\"min_interval_ms\":0}"})");
    CHECK_THROWS_WITH(dsl::loop("SELECT 1", std::nullopt, std::int64_t{-1}), "min_interval_ms must be non-negative");
}

TEST_CASE("break carries a literal value, never a step", "[dsl]") {
    CHECK(dsl::break_loop(std::nullopt) == R"({"node_type":"BREAK","query":"{\"break_value\":null}"})");
    CHECK(dsl::break_loop(std::string("done")) == R"({"node_type":"BREAK","query":"{\"break_value\":\"done\"}"})");
    CHECK(dsl::break_loop(kSql1) ==
          R"({"node_type":"BREAK","query":"{\"break_value\":\"{\\\"node_type\\\":\\\"SQL\\\",\\\"query\\\":\\\"SELECT 1\\\"}\"}"})");
}

TEST_CASE("if and if_rows: then left, else right", "[dsl]") {
    CHECK(dsl::if_then_else("SELECT 1", "SELECT 2", "SELECT 3") ==
          R"({"node_type":"IF","left_node":)" + kSql2 + R"(,"right_node":)" + kSql3 + R"(,"condition_node":)" + kSql1 +
              "}");
    CHECK(dsl::if_rows("batch", "SELECT 2", "SELECT 3") ==
          R"({"node_type":"IF","left_node":)" + kSql2 + R"(,"right_node":)" + kSql3 +
              R"(,"query":"{\"condition_type\":\"result_has_rows\",\"result_name\":\"batch\"}"})");
}

TEST_CASE("join, join3 and race", "[dsl]") {
    CHECK(dsl::join("SELECT 1", "SELECT 2") ==
          R"({"node_type":"JOIN","left_node":)" + kSql1 + R"(,"right_node":)" + kSql2 + "}");
    CHECK(dsl::join3("SELECT 1", "SELECT 2", "SELECT 3") ==
          R"({"node_type":"JOIN","left_node":)" + kSql1 + R"(,"right_node":)" + kSql2 + R"(,"extra_nodes":[)" + kSql3 +
              "]}");
    CHECK(dsl::race("SELECT 1", "SELECT 2") ==
          R"({"node_type":"RACE","left_node":)" + kSql1 + R"(,"right_node":)" + kSql2 + "}");
}

TEST_CASE("wait_for_signal", "[dsl]") {
    CHECK(dsl::wait_for_signal("approve", std::nullopt) ==
          R"({"node_type":"SIGNAL","query":"{\"signal_name\":\"approve\",\"timeout_seconds\":null}"})");
    CHECK(dsl::wait_for_signal("approve", std::int64_t{60}) ==
          R"({"node_type":"SIGNAL","query":"{\"signal_name\":\"approve\",\"timeout_seconds\":60}"})");
    CHECK_THROWS_WITH(dsl::wait_for_signal("", std::nullopt), "Signal name cannot be empty");
    CHECK_THROWS_WITH(dsl::wait_for_signal("  ", std::nullopt), "Signal name cannot be empty");
    CHECK_THROWS_WITH(dsl::wait_for_signal("s", std::int64_t{0}), "Timeout must be positive");
    CHECK_THROWS_WITH(dsl::wait_for_signal("s", std::int64_t{-5}), "Timeout must be positive");
}

TEST_CASE("http: the config of §8 after the checks of §14, in order", "[dsl]") {
    dsl::HttpStep step = http_step("https://api.example.com/hook");
    step.method = "patch";
    step.body = R"({"a":1})";
    step.headers_json = R"({"X-Token": "abc", "Accept": "application/json"})";
    step.timeout_seconds = 10;
    CHECK(dsl::http(step, true) ==
          R"({"node_type":"HTTP","query":"{\"url\":\"https://api.example.com/hook\",\"method\":\"PATCH\",)"
          R"(\"body\":\"{\\\"a\\\":1}\",\"headers\":{\"X-Token\":\"abc\",\"Accept\":\"application/json\"},)"
          R"(\"timeout_seconds\":10}"})");
    CHECK(dsl::http(http_step("http://x"), true) ==
          R"({"node_type":"HTTP","query":"{\"url\":\"http://x\",\"method\":\"POST\",\"body\":null,\"headers\":{},\"timeout_seconds\":30}"})");

    const std::string disabled =
        "df.http() is disabled. Set pg_durable.http_enabled = on to enable outbound HTTP requests.";
    CHECK_THROWS_WITH(dsl::http(http_step("ftp://x"), false), disabled);

    CHECK_THROWS_WITH(dsl::http(http_step("FTP://x"), true),
                      "Blocked: unsupported URL scheme 'ftp'. Only http and https are allowed.");
    CHECK_THROWS_WITH(dsl::http(http_step("example.com/x"), true),
                      "Blocked: unsupported URL scheme ''. Only http and https are allowed.");
    CHECK_NOTHROW(dsl::http(http_step("HTTPS://x"), true));
    // Templated URLs get their scheme at run time.
    CHECK_NOTHROW(dsl::http(http_step("{base_url}/hook"), true));
    CHECK_NOTHROW(dsl::http(http_step("$target.url"), true));

    step = http_step("ftp://x");
    step.method = "fetch";
    step.timeout_seconds = 0;
    CHECK_THROWS_WITH(dsl::http(step, true), Catch::StartsWith("Blocked: unsupported URL scheme"));
    step.url = "https://x";
    CHECK_THROWS_WITH(dsl::http(step, true), "Invalid HTTP method: FETCH. Must be GET, POST, PUT, DELETE, or PATCH");
    step.method = "get";
    CHECK_THROWS_WITH(dsl::http(step, true), "Timeout must be positive");
    step.timeout_seconds = 1;
    step.headers_json = "[]";
    CHECK_THROWS_WITH(dsl::http(step, true), "HTTP headers must be a JSON object");
}

TEST_CASE("?> and !>: the partial IF and its completion", "[dsl]") {
    const std::string partial = partial_if(R"("SELECT true")", R"("SELECT 2")");
    CHECK(dsl::if_else_op(partial, "SELECT 3") == dsl::if_then_else("SELECT true", "SELECT 2", "SELECT 3"));

    // Branches that are graphs arrive as JSON strings inside the jsonb.
    const std::string graph_then = partial_if(R"("SELECT 1")", R"("{\"node_type\":\"SQL\",\"query\":\"SELECT 2\"}")");
    CHECK(dsl::if_else_op(graph_then, "SELECT 3") == dsl::if_then_else("SELECT 1", "SELECT 2", "SELECT 3"));

    const std::string wrong = "Invalid if-then-else: left side of !> must be a ?> expression";
    CHECK_THROWS_WITH(dsl::if_else_op("SELECT 1", "SELECT 3"), wrong);
    CHECK_THROWS_WITH(dsl::if_else_op(kSql1, "SELECT 3"), wrong);
    CHECK_THROWS_WITH(dsl::if_else_op("[1]", "SELECT 3"), wrong);
    CHECK_THROWS_WITH(dsl::if_else_op(R"({"_partial_if": true})", "SELECT 3"), wrong);
}
