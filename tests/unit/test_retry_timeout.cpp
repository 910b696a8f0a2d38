// RETRY and TIMEOUT in common/ (SPEC §19.3): the DSL's graph JSON with
// numbers as PostgreSQL's float8 prints them, the checks with their exact
// texts, raw graph JSON meeting the same checks (hostile parameter JSON
// included), the "Valid types" list and the explain rendering.
#include "catch_compat.hpp"

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/dsl.hpp"
#include "common/errors.hpp"
#include "common/explain.hpp"
#include "common/graph.hpp"
#include "common/leaf_config.hpp"

using namespace durable;
namespace ex = durable::explain;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string json_string(const std::string &text) { return dump_json(nlohmann::ordered_json(text)); }

// Raw graph JSON: a `type` node with the query `query` around one SQL child.
std::string wrapper(const std::string &type, const std::string &query) {
    return R"({"node_type":")" + type + R"(","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":)" +
           json_string(query) + "}";
}

std::string start_error(const std::string &fut) {
    int counter = 0;
    try {
        materialize(fut, [&] { return std::to_string(++counter); });
    } catch (const UserError &e) {
        return e.what();
    }
    return "";
}

std::string dsl_error(const std::function<void()> &call) {
    try {
        call();
    } catch (const UserError &e) {
        return e.what();
    }
    return "";
}

std::size_t code_points(const std::string &text) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < text.size();) {
        const auto lead = static_cast<unsigned char>(text[i]);
        i += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
        ++count;
    }
    return count;
}

std::string tree(const std::vector<std::string> &lines) {
    std::size_t longest = 0;
    for (const auto &line : lines) longest = std::max(longest, code_points(line));
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) out += '\n';
        out += lines[i] + std::string(longest + 4 - code_points(lines[i]), ' ');
    }
    return out;
}

const std::string kRetryError = "Invalid durable function graph: root: ";

}  // namespace

TEST_CASE("float8_text prints numbers as PostgreSQL's float8out does", "[retry]") {
    // Each pair checked against `SELECT x::float8` on PostgreSQL 15.
    CHECK(leaf::float8_text(1) == "1");
    CHECK(leaf::float8_text(0.5) == "0.5");
    CHECK(leaf::float8_text(1.5) == "1.5");
    CHECK(leaf::float8_text(60) == "60");
    CHECK(leaf::float8_text(0) == "0");
    CHECK(leaf::float8_text(-2.25) == "-2.25");
    CHECK(leaf::float8_text(1e14) == "100000000000000");
    CHECK(leaf::float8_text(1e15) == "1e+15");
    CHECK(leaf::float8_text(0.0001) == "0.0001");
    CHECK(leaf::float8_text(0.00001) == "1e-05");
    CHECK(leaf::float8_text(1.5e-7) == "1.5e-07");
    CHECK(leaf::float8_text(1e308) == "1e+308");
    CHECK(leaf::float8_text(1e100) == "1e+100");
    CHECK(leaf::float8_text(123456789012345678.0) == "1.2345678901234568e+17");
    CHECK(leaf::float8_text(0.1) == "0.1");
    CHECK(leaf::float8_text(kInf) == "Infinity");
    CHECK(leaf::float8_text(-kInf) == "-Infinity");
    CHECK(leaf::float8_text(kNaN) == "NaN");
}

TEST_CASE("df.retry and df.timeout write SPEC §19.3's graph JSON", "[retry]") {
    CHECK(dsl::retry("SELECT 1", 3) ==
          R"({"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},)"
          R"("query":"{\"max_attempts\":3,\"initial_interval_seconds\":1,\"backoff_rate\":2,\"max_interval_seconds\":60}"})");
    CHECK(dsl::retry("SELECT 1", 5, 0.5, 1.5, 10) ==
          R"({"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},)"
          R"("query":"{\"max_attempts\":5,\"initial_interval_seconds\":0.5,\"backoff_rate\":1.5,\"max_interval_seconds\":10}"})");
    CHECK(dsl::timeout("SELECT 1", 5) ==
          R"({"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"seconds\":5}"})");
    CHECK(dsl::timeout("SELECT 1", 0.25) ==
          R"({"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"seconds\":0.25}"})");
    // Named, nested, and a graph child used as is.
    const std::string nested = dsl::as(dsl::retry(dsl::timeout(dsl::sleep(1), 2), 2), "r");
    CHECK(nested ==
          R"({"node_type":"RETRY","left_node":{"node_type":"TIMEOUT","left_node":{"node_type":"SLEEP","query":"1"},)"
          R"("query":"{\"seconds\":2}"},"query":"{\"max_attempts\":2,\"initial_interval_seconds\":1,)"
          R"(\"backoff_rate\":2,\"max_interval_seconds\":60}","result_name":"r"})");
    // Identical calls, identical text; the text round-trips through the parser.
    CHECK(dsl::retry("SELECT 1", 3) == dsl::retry("SELECT 1", 3));
    CHECK(to_json(parse_graph(nested)) == nested);
    CHECK(start_error(nested).empty());
}

TEST_CASE("the DSL checks of SPEC §19.3, in order, with their texts", "[retry]") {
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 0); }) == "max_attempts must be between 1 and 1000");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 1001); }) == "max_attempts must be between 1 and 1000");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", -5); }) == "max_attempts must be between 1 and 1000");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 2147483647); }) == "max_attempts must be between 1 and 1000");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 1); }).empty());
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 1000); }).empty());
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, -1); }) == "initial_interval_seconds must be non-negative");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, kNaN); }) == "initial_interval_seconds must be non-negative");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, kInf); }) == "initial_interval_seconds must be finite");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 0); }).empty());
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 1, 0.5); }) == "backoff_rate must be at least 1");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 1, kNaN); }) == "backoff_rate must be at least 1");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 1, kInf); }) == "backoff_rate must be finite");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 1, 1); }).empty());
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 1, 2, -0.5); }) == "max_interval_seconds must be non-negative");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 1, 2, -kInf); }) == "max_interval_seconds must be non-negative");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 3, 1, 2, kInf); }) == "max_interval_seconds must be finite");
    // The first failing check wins.
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 0, -1, 0, -1); }) == "max_attempts must be between 1 and 1000");
    CHECK(dsl_error([] { dsl::retry("SELECT 1", 2, -1, 0, -1); }) == "initial_interval_seconds must be non-negative");

    CHECK(dsl_error([] { dsl::timeout("SELECT 1", 0); }) == "seconds must be positive");
    CHECK(dsl_error([] { dsl::timeout("SELECT 1", -3); }) == "seconds must be positive");
    CHECK(dsl_error([] { dsl::timeout("SELECT 1", kNaN); }) == "seconds must be positive");
    CHECK(dsl_error([] { dsl::timeout("SELECT 1", kInf); }) == "seconds must be finite");
    CHECK(dsl_error([] { dsl::timeout("SELECT 1", 1e-9); }).empty());
    // A child that is a broken graph fails as in every composer.
    CHECK_THAT(dsl_error([] { dsl::retry(R"({"node_type":"X"})", 3); }),
               Catch::StartsWith("Invalid durable function: Unknown node_type 'X'."));
}

TEST_CASE("RETRY and TIMEOUT end the Valid types list, in that order", "[retry]") {
    CHECK(unknown_node_type_message("X") ==
          "Unknown node_type 'X'. Valid types: SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, "
          "SIGNAL, RETRY, TIMEOUT");
    CHECK(is_known_node_type("RETRY"));
    CHECK(is_known_node_type("TIMEOUT"));
    CHECK_FALSE(is_known_node_type("retry"));
}

TEST_CASE("raw graph JSON meets the DSL's checks, and hostile parameter JSON is refused", "[retry]") {
    const auto retry = [](const std::string &query) { return start_error(wrapper("RETRY", query)); };
    const auto timeout = [](const std::string &query) { return start_error(wrapper("TIMEOUT", query)); };
    // What the DSL writes passes; optional fields may be absent or null.
    CHECK(retry(R"({"max_attempts":3,"initial_interval_seconds":1,"backoff_rate":2,"max_interval_seconds":60})")
              .empty());
    CHECK(retry(R"({"max_attempts":3})").empty());
    CHECK(retry(R"({"max_attempts":3,"backoff_rate":null,"extra":"ignored"})").empty());
    CHECK(retry(R"({"max_attempts":3,"max_interval_seconds":1e+308})").empty());
    CHECK(timeout(R"({"seconds":5})").empty());
    CHECK(timeout(R"({"seconds":1e-05})").empty());

    // Missing keys, wrong types.
    CHECK(retry("{}") == kRetryError + "max_attempts in RETRY must be an integer");
    CHECK(retry(R"({"max_attempts":null})") == kRetryError + "max_attempts in RETRY must be an integer");
    CHECK(retry(R"({"max_attempts":"3"})") == kRetryError + "max_attempts in RETRY must be an integer or null");
    CHECK(retry(R"({"max_attempts":2.5})") == kRetryError + "max_attempts in RETRY must be an integer or null");
    CHECK(retry(R"({"max_attempts":true})") == kRetryError + "max_attempts in RETRY must be an integer or null");
    CHECK(retry(R"({"max_attempts":3,"initial_interval_seconds":"1"})") ==
          kRetryError + "initial_interval_seconds in RETRY must be a number or null");
    CHECK(retry(R"({"max_attempts":3,"backoff_rate":[2]})") ==
          kRetryError + "backoff_rate in RETRY must be a number or null");
    CHECK(retry(R"({"max_attempts":3,"max_interval_seconds":{}})") ==
          kRetryError + "max_interval_seconds in RETRY must be a number or null");
    CHECK(timeout("{}") == kRetryError + "seconds in TIMEOUT must be a number");
    CHECK(timeout(R"({"seconds":"5"})") == kRetryError + "seconds in TIMEOUT must be a number or null");
    CHECK(timeout(R"({"seconds":false})") == kRetryError + "seconds in TIMEOUT must be a number or null");

    // Not JSON, not an object, NaN/Infinity literals (not JSON), 1e999 (beyond double).
    CHECK(retry("3") == kRetryError + "query in RETRY must be valid JSON config: not a JSON object");
    CHECK(retry("max_attempts=3") == kRetryError + "query in RETRY must be valid JSON config: not valid JSON");
    CHECK(retry(R"({"max_attempts":3,"initial_interval_seconds":NaN})") ==
          kRetryError + "query in RETRY must be valid JSON config: not valid JSON");
    CHECK(retry(R"({"max_attempts":3,"max_interval_seconds":Infinity})") ==
          kRetryError + "query in RETRY must be valid JSON config: not valid JSON");
    CHECK(retry(R"({"max_attempts":3,"max_interval_seconds":1e999})") ==
          kRetryError + "query in RETRY must be valid JSON config: not valid JSON");
    CHECK(timeout(R"({"seconds":1e999})") == kRetryError + "query in TIMEOUT must be valid JSON config: not valid JSON");
    CHECK(timeout(R"({"seconds":-1e999})") ==
          kRetryError + "query in TIMEOUT must be valid JSON config: not valid JSON");

    // Out of range: the checks' own texts; huge counts beyond int as for every integer field.
    CHECK(retry(R"({"max_attempts":0})") == kRetryError + "max_attempts must be between 1 and 1000");
    CHECK(retry(R"({"max_attempts":1001})") == kRetryError + "max_attempts must be between 1 and 1000");
    CHECK(retry(R"({"max_attempts":-1})") == kRetryError + "max_attempts must be between 1 and 1000");
    CHECK(retry(R"({"max_attempts":2147483648})") == kRetryError + "max_attempts in RETRY is out of range for type integer");
    CHECK(retry(R"({"max_attempts":99999999999999999999999})") ==
          kRetryError + "max_attempts in RETRY is out of range for type integer");
    CHECK(retry(R"({"max_attempts":3,"initial_interval_seconds":-1})") ==
          kRetryError + "initial_interval_seconds must be non-negative");
    CHECK(retry(R"({"max_attempts":3,"backoff_rate":0.99})") == kRetryError + "backoff_rate must be at least 1");
    CHECK(retry(R"({"max_attempts":3,"max_interval_seconds":-1e-300})") ==
          kRetryError + "max_interval_seconds must be non-negative");
    CHECK(timeout(R"({"seconds":0})") == kRetryError + "seconds must be positive");
    CHECK(timeout(R"({"seconds":-5})") == kRetryError + "seconds must be positive");

    // No query at all, no child, a second child, a condition.
    CHECK(start_error(R"({"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"}})") ==
          kRetryError + "RETRY nodes require a query");
    CHECK(start_error(R"({"node_type":"TIMEOUT","query":"{\"seconds\":1}"})") ==
          kRetryError + "TIMEOUT nodes require left_node (the child)");
    CHECK(start_error(R"({"node_type":"RETRY","query":"{\"max_attempts\":1}"})") ==
          kRetryError + "RETRY nodes require left_node (the child)");
    CHECK(start_error(R"({"node_type":"RETRY","left_node":{"node_type":"SQL","query":"a"},)"
                      R"("right_node":{"node_type":"SQL","query":"b"},"query":"{\"max_attempts\":1}"})") ==
          kRetryError + "right_node is not valid for RETRY nodes");
    CHECK(start_error(R"({"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"a"},)"
                      R"("condition_node":{"node_type":"SQL","query":"b"},"query":"{\"seconds\":1}"})") ==
          kRetryError + "condition_node is not valid for TIMEOUT nodes");
    // Deep inside a graph, the path names the node.
    CHECK(start_error(dsl::seq("SELECT 0", wrapper("TIMEOUT", R"({"seconds":0})"))) ==
          "Invalid durable function graph: root.right: seconds must be positive");
}

TEST_CASE("the retry interval: min(initial x rate^(n-1), max), bounded, never overflowing", "[retry]") {
    using std::chrono::microseconds;
    const leaf::RetryConfig config{5, 1, 2, 60};
    CHECK(leaf::retry_interval(config, 2) == microseconds(1000000));   // after attempt 1
    CHECK(leaf::retry_interval(config, 3) == microseconds(2000000));   // after attempt 2
    CHECK(leaf::retry_interval(config, 4) == microseconds(4000000));
    CHECK(leaf::retry_interval(leaf::RetryConfig{20, 1, 2, 60}, 9) == microseconds(60000000));  // 128 > 60
    CHECK(leaf::retry_interval(leaf::RetryConfig{3, 0.5, 1, 60}, 3) == microseconds(500000));
    CHECK(leaf::retry_interval(leaf::RetryConfig{3, 0, 2, 60}, 3) == microseconds(0));
    CHECK(leaf::retry_interval(leaf::RetryConfig{3, 5, 2, 0}, 2) == microseconds(0));
    // rate^999 overflows to infinity: capped by max, then by kMaxDelay.
    CHECK(leaf::retry_interval(leaf::RetryConfig{1000, 1, 1e300, 1e308}, 1000) ==
          std::chrono::duration_cast<microseconds>(leaf::kMaxDelay));
    CHECK(leaf::retry_interval(leaf::RetryConfig{1000, 1e308, 1e308, 1e308}, 1000) ==
          std::chrono::duration_cast<microseconds>(leaf::kMaxDelay));
    CHECK(leaf::bounded_delay_seconds(1e300) == std::chrono::duration_cast<microseconds>(leaf::kMaxDelay));
    CHECK(leaf::bounded_delay_seconds(0.0000001) == microseconds(1));
}

TEST_CASE("explain: RETRY and TIMEOUT headers with their child blocks laid out like LOOP's", "[retry]") {
    CHECK(ex::explain_graph_json(dsl::retry("SELECT 1", 3)) ==
          tree({"RETRY (up to 3 attempts, 1s ×2 ≤60s)", "    ↻ attempt:", "      └─SQL: SELECT 1"}));
    CHECK(ex::explain_graph_json(dsl::as(dsl::timeout("SELECT 1", 5), "t")) ==
          tree({"TIMEOUT 5s |=> 't'", "    ⏱ within:", "      └─SQL: SELECT 1"}));
    CHECK(ex::explain_graph_json(dsl::retry("SELECT 1", 5, 0.5, 1.5, 10)) ==
          tree({"RETRY (up to 5 attempts, 0.5s ×1.5 ≤10s)", "    ↻ attempt:", "      └─SQL: SELECT 1"}));
    // Nested, inside a THEN chain and as a JOIN branch that is not last.
    const std::string fut = dsl::seq(dsl::retry(dsl::timeout(dsl::seq("SELECT a", "SELECT b"), 0.25), 2),
                                     dsl::join(dsl::timeout("SELECT c", 1e15), "SELECT d"));
    CHECK(ex::explain_graph_json(fut) == tree({
                                             "RETRY (up to 2 attempts, 1s ×2 ≤60s)",
                                             "    ↻ attempt:",
                                             "      └─TIMEOUT 0.25s",
                                             "          ⏱ within:",
                                             "            └─SQL: SELECT a",
                                             "            → SQL: SELECT b",
                                             "→ JOIN (2)",
                                             "    ║ branch 1:",
                                             "      ├─TIMEOUT 1e+15s",
                                             "      │   ⏱ within:",
                                             "      │     └─SQL: SELECT c",
                                             "    ║ branch 2:",
                                             "      └─SQL: SELECT d",
                                         }));
    // Errors are returned, not raised.
    CHECK(ex::explain_graph_json(wrapper("RETRY", R"({"max_attempts":0})")) ==
          "Invalid durable function graph: root: max_attempts must be between 1 and 1000");
}

TEST_CASE("explain instance mode: a RETRY shows the attempt it is on before its marker", "[retry]") {
    int next = 0;
    const auto m = materialize(dsl::retry("SELECT 1", 3), [&] { return "0000000" + std::to_string(++next); });
    const Graph g = load_stored(m.root_id, m.nodes);
    const std::string out = ex::render_tree(
        g,
        [&](NodeIndex i) { return g[i].node_type == "RETRY" ? ex::Marker::completed : ex::Marker::failed; },
        [&](NodeIndex i) { return g[i].node_type == "RETRY" ? ex::attempt_note(3) : std::string(); });
    CHECK(out == tree({"RETRY (up to 3 attempts, 1s ×2 ≤60s) [attempt 3] ✓", "    ↻ attempt:",
                       "      └─SQL: SELECT 1 ✗"}));
    CHECK(ex::attempt_note(0).empty());
    CHECK(ex::attempt_note(1) == " [attempt 1]");
}
