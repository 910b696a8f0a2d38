// Leaf node configurations (common/leaf_config.hpp): every check the DSL
// makes also guards raw graph JSON given to df.start and rows the daemon
// loads, with the same texts; shapes the DSL cannot produce are refused; long
// durations are bounded so no clock overflows.
#include "catch_compat.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/dsl.hpp"
#include "common/errors.hpp"
#include "common/graph.hpp"
#include "common/leaf_config.hpp"

using namespace durable;

namespace {

// A JSON string literal holding `text` (quotes and backslashes escaped).
std::string json_string(const std::string &text) { return dump_json(nlohmann::ordered_json(text)); }

// Raw graph JSON of one node of `type` whose query is `query`.
std::string node(const std::string &type, const std::string &query) {
    return R"({"node_type":")" + type + R"(","query":)" + json_string(query) + "}";
}

// The error df.start (materialisation) gives for `fut`, or "" when it passes.
std::string start_error(const std::string &fut) {
    int counter = 0;
    try {
        materialize(fut, [&] { return std::to_string(++counter); });
    } catch (const UserError &e) {
        return e.what();
    }
    return "";
}

// The error for a lone node of `type` with `query`, at the root.
std::string root_error(const std::string &type, const std::string &query) {
    return start_error(node(type, query));
}

std::string at_root(const std::string &reason) { return "Invalid durable function graph: root: " + reason; }

std::string dsl_error(const std::function<void()> &call) {
    try {
        call();
    } catch (const UserError &e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("DSL output reads back as the config it was built from", "[leaf]") {
    CHECK(start_error(dsl::sleep(5)).empty());
    CHECK(start_error(dsl::sleep(0)).empty());
    CHECK(start_error(dsl::sleep(std::numeric_limits<std::int64_t>::max())).empty());
    CHECK(start_error(dsl::wait_for_signal("approve", std::nullopt)).empty());
    CHECK(start_error(dsl::wait_for_signal("approve", std::optional<std::int64_t>(60))).empty());
    CHECK(start_error(dsl::wait_for_schedule("0 9 * * 1-5", std::string("Europe/Berlin"))).empty());
    CHECK(start_error(dsl::wait_for_schedule("*/5 * * * *", std::nullopt)).empty());
    CHECK(start_error(dsl::break_loop(std::nullopt)).empty());
    CHECK(start_error(dsl::break_loop(std::string("done"))).empty());
    CHECK(start_error(dsl::loop("SELECT 1", std::string("SELECT false"), std::optional<std::int64_t>(250))).empty());
    CHECK(start_error(dsl::loop("SELECT 1", std::nullopt, std::nullopt)).empty());
    dsl::HttpStep step;
    step.url = "https://api.example.com/hook";
    step.method = "patch";
    step.body = std::string("{\"a\":1}");
    step.headers_json = R"({"X-Token":"t"})";
    step.timeout_seconds = 5;
    CHECK(start_error(dsl::http(step, true)).empty());

    CHECK(leaf::read_sleep(std::string("42")).seconds == 42);
    const auto signal = leaf::read_signal(leaf::query(leaf::SignalConfig{"go", std::int64_t{7}}));
    CHECK(signal.name == "go");
    CHECK(signal.timeout_seconds == std::optional<std::int64_t>(7));
    const auto schedule = leaf::read_schedule(leaf::query(leaf::ScheduleConfig{"0 * * * *", std::string("UTC")}));
    CHECK(schedule.cron_expr == "0 * * * *");
    CHECK(schedule.timezone == std::optional<std::string>("UTC"));
    CHECK(leaf::read_break(leaf::query(leaf::BreakConfig{std::string("v")})).value == std::optional<std::string>("v"));
    CHECK_FALSE(leaf::read_break(std::nullopt).value);
    CHECK(leaf::read_loop(leaf::query(leaf::LoopConfig{std::int64_t{9}})).min_interval_ms ==
          std::optional<std::int64_t>(9));
    CHECK_FALSE(leaf::read_loop(std::nullopt).min_interval_ms);
    const auto http = leaf::read_http(std::string(R"({"url":"http://x"})"));  // defaults as df.http's
    CHECK(http.method == "POST");
    CHECK_FALSE(http.body);
    CHECK(http.headers == nlohmann::ordered_json::object());
    CHECK(http.timeout_seconds == 30);
}

TEST_CASE("SLEEP as raw JSON: a whole number of seconds within bigint, not negative", "[leaf]") {
    CHECK(root_error("SLEEP", "x") == at_root("query in SLEEP must be a whole number of seconds, got 'x'"));
    CHECK(root_error("SLEEP", "99999999999999999999999") ==
          at_root("query in SLEEP is out of range for type bigint: '99999999999999999999999'"));
    CHECK(root_error("SLEEP", "-99999999999999999999999") ==
          at_root("query in SLEEP is out of range for type bigint: '-99999999999999999999999'"));
    CHECK(root_error("SLEEP", "-5") == at_root("Sleep duration must be non-negative"));
    for (const char *bad : {"", " 5", "5 ", "+5", "5s", "1.5", "1e3", "-", "0x10"})
        CHECK(root_error("SLEEP", bad) ==
              at_root(std::string("query in SLEEP must be a whole number of seconds, got '") + bad + "'"));
    CHECK(start_error(R"({"node_type":"SLEEP"})") == at_root("SLEEP nodes require a query"));
    // A long query is quoted only by its start.
    const std::string long_query(5000, '7');
    CHECK(root_error("SLEEP", long_query + "x") ==
          at_root("query in SLEEP must be a whole number of seconds, got '" + std::string(64, '7') + "...'"));
    CHECK(root_error("SLEEP", "9223372036854775807").empty());
    // The DSL and the raw path give the same text.
    CHECK(at_root(dsl_error([] { dsl::sleep(-5); })) == root_error("SLEEP", "-5"));
}

TEST_CASE("SIGNAL as raw JSON: a non-empty name and a positive integer timeout", "[leaf]") {
    const std::string empty = at_root("Signal name cannot be empty");
    CHECK(root_error("SIGNAL", R"({"signal_name":null})") == empty);
    CHECK(root_error("SIGNAL", "{}") == empty);
    CHECK(root_error("SIGNAL", R"({"signal_name":"  "})") == empty);
    CHECK(root_error("SIGNAL", R"({"signal_name":5})") == at_root("signal_name in SIGNAL must be a string"));
    CHECK(root_error("SIGNAL", R"({"signal_name":["a"]})") == at_root("signal_name in SIGNAL must be a string"));
    CHECK(root_error("SIGNAL", R"({"signal_name":"a","timeout_seconds":0})") == at_root("Timeout must be positive"));
    CHECK(root_error("SIGNAL", R"({"signal_name":"a","timeout_seconds":-3})") == at_root("Timeout must be positive"));
    for (const char *bad : {R"("5")", "1.5", "true", "{}"})
        CHECK(root_error("SIGNAL", std::string(R"({"signal_name":"a","timeout_seconds":)") + bad + "}") ==
              at_root("timeout_seconds in SIGNAL must be an integer or null"));
    for (const char *big : {"2147483648", "-2147483649", "18446744073709551615", "99999999999999999999999"})
        CHECK(root_error("SIGNAL", std::string(R"({"signal_name":"a","timeout_seconds":)") + big + "}") ==
              at_root("timeout_seconds in SIGNAL is out of range for type integer"));
    CHECK(root_error("SIGNAL", R"({"signal_name":"a","timeout_seconds":2147483647})").empty());
    CHECK(root_error("SIGNAL", R"({"signal_name":"a","timeout_seconds":null})").empty());
    CHECK(root_error("SIGNAL", R"({"signal_name":"a"})").empty());
    CHECK(root_error("SIGNAL", "approve") == at_root("query in SIGNAL must be valid JSON config: not valid JSON"));
    CHECK(root_error("SIGNAL", R"(["approve"])") ==
          at_root("query in SIGNAL must be valid JSON config: not a JSON object"));
    CHECK(start_error(R"({"node_type":"SIGNAL"})") == at_root("SIGNAL nodes require a query"));
    CHECK(at_root(dsl_error([] { dsl::wait_for_signal("", std::nullopt); })) == empty);
    CHECK(at_root(dsl_error([] { dsl::wait_for_signal("a", std::int64_t{0}); })) ==
          root_error("SIGNAL", R"({"signal_name":"a","timeout_seconds":0})"));
}

TEST_CASE("WAIT_SCHEDULE as raw JSON: the DSL's cron and time zone checks", "[leaf]") {
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":5})") == at_root("cron_expr in WAIT_SCHEDULE must be a string"));
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":null})") ==
          at_root("cron_expr in WAIT_SCHEDULE must be a string"));
    CHECK(root_error("WAIT_SCHEDULE", "{}") == at_root("cron_expr in WAIT_SCHEDULE must be a string"));
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":"61 * * * *"})") ==
          at_root(dsl_error([] { dsl::wait_for_schedule("61 * * * *", std::nullopt); })));
    CHECK_THAT(root_error("WAIT_SCHEDULE", R"({"cron_expr":"61 * * * *"})"),
               Catch::StartsWith(at_root("Invalid cron expression '61 * * * *': minute field")));
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":"0 0 30 2 *"})") ==
          at_root("Invalid cron expression '0 0 30 2 *': no matching time in the next 8 years"));
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":"* * * * *","timezone":"Mars/Olympus"})") ==
          at_root("Invalid time zone 'Mars/Olympus'"));
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":"* * * * *","timezone":""})") ==
          at_root("Invalid time zone ''"));
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":"* * * * *","timezone":1})") ==
          at_root("timezone in WAIT_SCHEDULE must be a string or null"));
    CHECK(root_error("WAIT_SCHEDULE", R"({"cron_expr":"* * * * *","timezone":null})").empty());
    CHECK(root_error("WAIT_SCHEDULE", "* * * * *") ==
          at_root("query in WAIT_SCHEDULE must be valid JSON config: not valid JSON"));
    CHECK(start_error(R"({"node_type":"WAIT_SCHEDULE"})") == at_root("WAIT_SCHEDULE nodes require a query"));
}

TEST_CASE("HTTP as raw JSON: the DSL's scheme, method, timeout and headers checks", "[leaf]") {
    const auto http = [](const std::string &fields) { return root_error("HTTP", "{" + fields + "}"); };
    CHECK(http(R"("method":"GET")") == at_root("url in HTTP must be a string"));
    CHECK(http(R"("url":5)") == at_root("url in HTTP must be a string"));
    CHECK(http(R"("url":"ftp://x")") ==
          at_root("Blocked: unsupported URL scheme 'ftp'. Only http and https are allowed."));
    CHECK(http(R"("url":"x")") == at_root("Blocked: unsupported URL scheme ''. Only http and https are allowed."));
    CHECK(http(R"("url":"{base}/x")").empty());  // templated: scheme checked at run time
    CHECK(http(R"("url":"http://x","method":"FETCH")") ==
          at_root("Invalid HTTP method: FETCH. Must be GET, POST, PUT, DELETE, or PATCH"));
    // df.http writes the method uppercased; raw JSON must too.
    CHECK(http(R"("url":"http://x","method":"get")") ==
          at_root("Invalid HTTP method: get. Must be GET, POST, PUT, DELETE, or PATCH"));
    CHECK(http(R"("url":"http://x","method":1)") == at_root("method in HTTP must be a string"));
    CHECK(http(R"("url":"http://x","timeout_seconds":0)") == at_root("Timeout must be positive"));
    CHECK(http(R"("url":"http://x","timeout_seconds":"30")") ==
          at_root("timeout_seconds in HTTP must be an integer or null"));
    CHECK(http(R"("url":"http://x","timeout_seconds":4294967296)") ==
          at_root("timeout_seconds in HTTP is out of range for type integer"));
    CHECK(http(R"("url":"http://x","headers":[])") == at_root("HTTP headers must be a JSON object"));
    CHECK(http(R"("url":"http://x","headers":"{}")") == at_root("HTTP headers must be a JSON object"));
    CHECK(http(R"("url":"http://x","body":{"a":1})") == at_root("body in HTTP must be a string or null"));
    CHECK(http(R"("url":"http://x","method":"PUT","body":null,"headers":null,"timeout_seconds":null)").empty());
    CHECK(root_error("HTTP", "[]") == at_root("query in HTTP must be valid JSON config: not a JSON object"));
    CHECK(start_error(R"({"node_type":"HTTP"})") == at_root("HTTP nodes require a query"));
    // Order as in SPEC §14: scheme, method, timeout, then headers.
    CHECK(http(R"("url":"ftp://x","method":"X","timeout_seconds":0,"headers":[])") ==
          at_root("Blocked: unsupported URL scheme 'ftp'. Only http and https are allowed."));
    CHECK(http(R"("url":"http://x","method":"X","timeout_seconds":0,"headers":[])") ==
          at_root("Invalid HTTP method: X. Must be GET, POST, PUT, DELETE, or PATCH"));
    CHECK(http(R"("url":"http://x","timeout_seconds":0,"headers":[])") == at_root("Timeout must be positive"));
}

TEST_CASE("BREAK and LOOP configs as raw JSON", "[leaf]") {
    CHECK(start_error(R"({"node_type":"BREAK"})").empty());  // no value
    CHECK(root_error("BREAK", R"({"break_value":null})").empty());
    CHECK(root_error("BREAK", R"({"break_value":5})") == at_root("break_value in BREAK must be a string or null"));
    CHECK(root_error("BREAK", "done") == at_root("query in BREAK must be valid JSON config: not valid JSON"));

    const auto loop = [](const std::string &query) {
        return start_error(R"({"node_type":"LOOP","left_node":{"node_type":"SQL","query":"a"},"query":)" +
                           json_string(query) + "}");
    };
    CHECK(loop(R"({"min_interval_ms":-1})") == at_root("min_interval_ms must be non-negative"));
    CHECK(loop(R"({"min_interval_ms":-1})") ==
          at_root(dsl_error([] { dsl::loop("a", std::nullopt, std::int64_t{-1}); })));
    CHECK(loop(R"({"min_interval_ms":"5"})") == at_root("min_interval_ms in LOOP must be an integer or null"));
    CHECK(loop(R"({"min_interval_ms":2147483648})") ==
          at_root("min_interval_ms in LOOP is out of range for type integer"));
    CHECK(loop(R"({"min_interval_ms":0})").empty());
    CHECK(loop(R"({"min_interval_ms":null})").empty());
    // Without a condition the query used to pass unchecked.
    CHECK(loop("[1]") == at_root("query in LOOP must be valid JSON config: not a JSON object"));
}

TEST_CASE("a bad leaf config deep in a graph is reported with its path", "[leaf]") {
    const std::string bad_signal = node("SIGNAL", R"({"signal_name":null})");
    CHECK(start_error(R"({"node_type":"THEN","left_node":{"node_type":"SQL","query":"a"},"right_node":)" +
                      bad_signal + "}") ==
          "Invalid durable function graph: root.right: Signal name cannot be empty");
    CHECK(start_error(R"({"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":)"
                      R"({"node_type":"SQL","query":"b"},"extra_nodes":[)" +
                      node("SLEEP", "x") + "]}") ==
          "Invalid durable function graph: root.extra_nodes[0]: query in SLEEP must be a whole number of seconds, "
          "got 'x'");
    // A composer keeps a bad raw step as given; df.start refuses it.
    const std::string composed = dsl::seq("SELECT 1", node("SLEEP", "x"));
    CHECK(start_error(composed) ==
          "Invalid durable function graph: root.right: query in SLEEP must be a whole number of seconds, got 'x'");
}

TEST_CASE("validate_graph refuses stored rows written around df.start", "[leaf]") {
    int counter = 0;
    const auto ids = [&] { return std::to_string(++counter); };
    MaterializedGraph stored = materialize(dsl::seq(dsl::sleep(1), "SELECT 2"), ids);
    CHECK_NOTHROW(validate_graph(load_stored(stored.root_id, stored.nodes)));

    for (auto &row : stored.nodes)
        if (row.node_type == "SLEEP") row.query = "x";
    CHECK_THROWS_WITH(validate_graph(load_stored(stored.root_id, stored.nodes)),
                      "Invalid durable function graph: root.left: query in SLEEP must be a whole number of "
                      "seconds, got 'x'");
    for (auto &row : stored.nodes)
        if (row.node_type == "SLEEP") row.query = "1";
    for (auto &row : stored.nodes)
        if (row.node_type == "THEN") row.right_node.reset();
    CHECK_THROWS_WITH(validate_graph(load_stored(stored.root_id, stored.nodes)),
                      "Invalid durable function graph: root: THEN nodes require left_node and right_node");
}

TEST_CASE("durations are bounded so that no clock overflows", "[leaf]") {
    using std::chrono::system_clock;
    CHECK(leaf::bounded_delay(5) == std::chrono::seconds(5));
    CHECK(leaf::bounded_delay(-5) == std::chrono::seconds(0));
    CHECK(leaf::bounded_delay(1000000000000) == leaf::kMaxDelay);
    CHECK(leaf::bounded_delay(std::numeric_limits<std::int64_t>::max()) == leaf::kMaxDelay);
    // now() + the longest delay stays representable in the clock's own
    // (nanosecond) ticks and lies ahead.
    const auto now = system_clock::now();
    const auto due = now + leaf::kMaxDelay;
    CHECK(due > now);
    CHECK(std::chrono::duration_cast<std::chrono::hours>(due - now).count() == leaf::kMaxDelay.count() / 3600);
    CHECK(leaf::kMaxDelay.count() <
          std::chrono::duration_cast<std::chrono::seconds>(system_clock::time_point::max() - now).count());
}
