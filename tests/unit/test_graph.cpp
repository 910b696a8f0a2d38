// The graph model (SPEC.md §8): canonical JSON, auto-wrap, validation with its
// paths and limits (§17), materialisation into df.nodes rows and back.
#include "catch_compat.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "common/graph.hpp"

using durable::auto_wrap;
using durable::Graph;
using durable::GraphError;
using durable::load_stored;
using durable::materialize;
using durable::MaterializedGraph;
using durable::parse_graph;
using durable::StoredNode;
using durable::to_json;
using durable::UserError;

namespace {

const std::string kValidTypes =
    "Valid types: SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, SIGNAL, RETRY, TIMEOUT";

std::string sql(const std::string &query) { return R"({"node_type":"SQL","query":")" + query + R"("})"; }

std::string then(const std::string &a, const std::string &b) {
    return R"({"node_type":"THEN","left_node":)" + a + R"(,"right_node":)" + b + "}";
}

// A left-nested chain as `~>` builds it: `links` THEN nodes, the deepest leaf
// at depth `links`.
std::string chain(int links) {
    std::string graph = sql("SELECT 0");
    for (int i = 1; i <= links; ++i) graph = then(graph, sql("SELECT " + std::to_string(i)));
    return graph;
}

// Deterministic ids "00000001", "00000002", ... in call order.
struct CountingIds {
    int calls = 0;
    std::string operator()() {
        char id[9];
        std::snprintf(id, sizeof id, "%08x", ++calls);
        return id;
    }
};

MaterializedGraph materialize_counting(const std::string &fut) {
    CountingIds ids;
    return materialize(fut, [&] { return ids(); });
}

std::string graph_error_of(const std::string &fut) {
    try {
        materialize_counting(fut);
    } catch (const GraphError &e) {
        return e.what();
    }
    return "(no GraphError)";
}

std::string repeat(const std::string &segment, int times) {
    std::string out;
    for (int i = 0; i < times; ++i) out += segment;
    return out;
}

}  // namespace

TEST_CASE("canonical JSON keeps the SPEC field order and drops unknown fields", "[graph]") {
    const std::string spec_example =
        R"({"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"}})";
    CHECK(to_json(parse_graph(spec_example)) == spec_example);

    // Reordered, spaced, with nulls and an unknown field: same canonical text.
    CHECK(to_json(parse_graph(R"( { "result_name" : "x", "extra" : [1], "query" : "SELECT 1",
                                    "left_node" : null, "node_type" : "SQL" } )")) ==
          R"({"node_type":"SQL","query":"SELECT 1","result_name":"x"})");

    const std::string every_field =
        R"({"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},)"
        R"("extra_nodes":[{"node_type":"SQL","query":"c"},{"node_type":"SQL","query":"d"}],"query":"{}","result_name":"j"})";
    CHECK(to_json(parse_graph(every_field)) == every_field);

    const std::string with_condition =
        R"({"node_type":"LOOP","left_node":{"node_type":"SQL","query":"a"},"condition_node":{"node_type":"SQL","query":"b"},"query":"{\"min_interval_ms\":5}"})";
    CHECK(to_json(parse_graph(with_condition)) == with_condition);
}

TEST_CASE("strings are escaped as compact JSON, UTF-8 kept", "[graph]") {
    const Graph g = durable::sql_graph("SELECT 'a\"b\\c'\n\t→ é");
    CHECK(to_json(g) == "{\"node_type\":\"SQL\",\"query\":\"SELECT 'a\\\"b\\\\c'\\n\\t→ é\"}");
    CHECK(to_json(parse_graph(to_json(g))) == to_json(g));
}

TEST_CASE("text that is not a graph object cannot be parsed as one", "[graph]") {
    CHECK_THROWS_WITH(parse_graph("SELECT 1"), Catch::StartsWith("Failed to parse Durofut JSON: parse error"));
    CHECK_THROWS_WITH(parse_graph("[1,2]"), "Failed to parse Durofut JSON: expected a JSON object, got array");
    CHECK_THROWS_WITH(parse_graph(R"({"query":"x"})"), "Failed to parse Durofut JSON: missing field 'node_type'");
}

TEST_CASE("numbers beyond double range are refused as user errors, never escape as others", "[graph]") {
    // nlohmann reports 1e999 with out_of_range, not parse_error (found by fuzz_graph_parse
    // and fuzz_materialize; corpus files number-overflow-*).
    CHECK_THROWS_AS(parse_graph(R"({"node_type":"SQL","query":"x","result_name":1e999})"), durable::NotAGraphError);
    CHECK_THROWS_WITH(parse_graph(R"({"node_type":"SQL","query":"x","result_name":1e999})"),
                      "Failed to parse Durofut JSON: number overflow parsing '1e999'");
    // auto_wrap reads text nlohmann cannot hold as plain SQL, like any other non-graph text.
    const MaterializedGraph wrapped = materialize_counting(R"({"node_type":"SLEEP","query":1e999})");
    REQUIRE(wrapped.nodes.size() == 1);
    CHECK(wrapped.nodes[0].node_type == "SQL");
    CHECK(graph_error_of(
              R"({"node_type":"JOIN","query":"{\"x\":1e999}","left_node":{"node_type":"SQL","query":"a"},)"
              R"("right_node":{"node_type":"SQL","query":"b"},"extra_nodes":[{"node_type":"SQL","query":"c"}]})") ==
          "Invalid durable function graph: root: query in JOIN must be valid JSON config: number overflow parsing "
          "'1e999'");
    CHECK(graph_error_of(
              R"({"node_type":"IF","query":"{\"x\":-1e999}","left_node":{"node_type":"SQL","query":"a"},)"
              R"("right_node":{"node_type":"SQL","query":"b"},"condition_node":{"node_type":"SQL","query":"c"}})") ==
          "Invalid durable function graph: root: query in IF must be valid JSON config: number overflow parsing "
          "'-1e999'");
}

TEST_CASE("shape errors name the node that holds the bad field", "[graph]") {
    CHECK_THROWS_WITH(parse_graph(R"({"node_type":"THEN","left_node":"SELECT 1","right_node":{}})"),
                      "Invalid durable function graph: root: Durofut children must be JSON objects");
    CHECK_THROWS_WITH(parse_graph(R"({"node_type":"IF","condition_node":[1]})"),
                      "Invalid durable function graph: root: condition_node must be a Durofut JSON object");
    CHECK_THROWS_WITH(
        parse_graph(R"({"node_type":"JOIN","left_node":{"node_type":"JOIN","extra_nodes":[{"node_type":"SQL"},2]}})"),
        "Invalid durable function graph: root.left: extra_nodes entries must be Durofut JSON objects");
    CHECK_THROWS_WITH(parse_graph(R"({"node_type":"SQL","query":1})"),
                      "Invalid durable function graph: root: query must be a string");
    CHECK_THROWS_WITH(parse_graph(R"({"node_type":"SQL","query":"x","result_name":false})"),
                      "Invalid durable function graph: root: result_name must be a string");
    CHECK_THROWS_WITH(parse_graph(R"({"node_type":"THEN","left_node":{"node_type":"SQL"},"right_node":{"type":"SQL"}})"),
                      "Invalid durable function graph: root.right: node_type must be a string");
    CHECK_THROWS_WITH(
        parse_graph(R"({"node_type":"JOIN","extra_nodes":[{"node_type":"SQL"},{"node_type":"IF","left_node":5}]})"),
        "Invalid durable function graph: root.extra_nodes[1]: Durofut children must be JSON objects");
}

TEST_CASE("auto-wrap: graphs as they are, everything else one SQL node", "[graph]") {
    CHECK(to_json(auto_wrap("SELECT 1")) == R"({"node_type":"SQL","query":"SELECT 1"})");
    CHECK(to_json(auto_wrap(sql("x"))) == sql("x"));
    // JSON that is not a graph object is SQL text like any other.
    CHECK(to_json(auto_wrap(R"({"a": 1})")) == R"({"node_type":"SQL","query":"{\"a\": 1}"})");
    CHECK(to_json(auto_wrap("[1]")) == R"({"node_type":"SQL","query":"[1]"})");
    CHECK(to_json(auto_wrap("{not json")) == R"({"node_type":"SQL","query":"{not json"})");
    CHECK(to_json(auto_wrap("")) == R"({"node_type":"SQL","query":""})");

    CHECK_THROWS_WITH(auto_wrap(R"({"node_type":"BOGUS"})"),
                      "Invalid durable function: Unknown node_type 'BOGUS'. " + kValidTypes);
    CHECK_THROWS_AS(auto_wrap(R"({"node_type":"THEN","left_node":7})"), GraphError);
    CHECK_THROWS_WITH(auto_wrap(R"({"node_type":null})"),
                      "Invalid durable function graph: root: node_type must be a string");
}

TEST_CASE("materialisation: depth-first rows, child ids, the stored form of §8", "[graph]") {
    SECTION("a THEN chain") {
        const MaterializedGraph m = materialize_counting(then(sql("a"), sql("b")));
        REQUIRE(m.nodes.size() == 3);
        CHECK(m.root_id == "00000001");
        CHECK(m.nodes[0].id == "00000001");
        CHECK(m.nodes[0].node_type == "THEN");
        CHECK_FALSE(m.nodes[0].query);
        CHECK(m.nodes[0].left_node == std::optional<std::string>("00000002"));
        CHECK(m.nodes[0].right_node == std::optional<std::string>("00000003"));
        CHECK(m.nodes[1].query == std::optional<std::string>("a"));
        CHECK(m.nodes[2].query == std::optional<std::string>("b"));
    }
    SECTION("a 200-step ~> chain is 399 nodes, visited depth-first") {
        const MaterializedGraph m = materialize_counting(chain(199));
        REQUIRE(m.nodes.size() == 399);
        // Depth-first from the root: the THENs down the left spine, then the
        // first step, then back up through the right-hand steps.
        CHECK(m.nodes[0].node_type == "THEN");
        CHECK(m.nodes[198].node_type == "THEN");
        CHECK(m.nodes[199].query == std::optional<std::string>("SELECT 0"));
        CHECK(m.nodes[200].query == std::optional<std::string>("SELECT 1"));
        CHECK(m.nodes[398].query == std::optional<std::string>("SELECT 199"));
        std::set<std::string> ids;
        for (const auto &n : m.nodes) ids.insert(n.id);
        CHECK(ids.size() == 399);
    }
    SECTION("IF: condition id merged into the query object") {
        const MaterializedGraph m = materialize_counting(
            R"({"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},"right_node":{"node_type":"SQL","query":"e"},"condition_node":{"node_type":"SQL","query":"c"},"result_name":"r"})");
        REQUIRE(m.nodes.size() == 4);
        CHECK(m.nodes[0].query == std::optional<std::string>(R"({"condition_node":"00000004"})"));
        CHECK(m.nodes[0].result_name == std::optional<std::string>("r"));
        CHECK(m.nodes[3].query == std::optional<std::string>("c"));
    }
    SECTION("LOOP: the condition joins the existing config, keys in order") {
        const MaterializedGraph m = materialize_counting(
            R"({"node_type":"LOOP","left_node":{"node_type":"SQL","query":"b"},"condition_node":{"node_type":"SQL","query":"c"},"query":"{\"min_interval_ms\": 250}"})");
        CHECK(m.nodes[0].query == std::optional<std::string>(R"({"min_interval_ms":250,"condition_node":"00000003"})"));
        CHECK(m.nodes[0].left_node == std::optional<std::string>("00000002"));
        CHECK_FALSE(m.nodes[0].right_node);
    }
    SECTION("JOIN: extra branches as an id list") {
        const MaterializedGraph m = materialize_counting(
            R"({"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":[{"node_type":"SQL","query":"c"},{"node_type":"SQL","query":"d"}]})");
        REQUIRE(m.nodes.size() == 5);
        CHECK(m.nodes[0].query == std::optional<std::string>(R"({"extra_nodes":["00000004","00000005"]})"));
        CHECK(m.nodes[3].query == std::optional<std::string>("c"));
        CHECK(m.nodes[4].query == std::optional<std::string>("d"));
    }
    SECTION("if_rows: its config is stored as is") {
        const std::string config = R"({\"condition_type\":\"result_has_rows\",\"result_name\":\"x\"})";
        const MaterializedGraph m = materialize_counting(
            R"({"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},"right_node":{"node_type":"SQL","query":"e"},"query":")" +
            config + R"("})");
        CHECK(m.nodes[0].query == std::optional<std::string>(R"({"condition_type":"result_has_rows","result_name":"x"})"));
    }
    SECTION("plain SQL text becomes one SQL row") {
        const MaterializedGraph m = materialize_counting("SELECT 42");
        REQUIRE(m.nodes.size() == 1);
        CHECK(m.nodes[0].node_type == "SQL");
        CHECK(m.nodes[0].query == std::optional<std::string>("SELECT 42"));
    }
}

TEST_CASE("ids repeated within a graph are rolled again", "[graph]") {
    const std::vector<std::string> rolls{"aaaaaaaa", "aaaaaaaa", "bbbbbbbb", "aaaaaaaa", "bbbbbbbb", "cccccccc"};
    std::size_t next = 0;
    const MaterializedGraph m = materialize(then(sql("a"), sql("b")), [&] { return rolls.at(next++); });
    CHECK(next == rolls.size());
    REQUIRE(m.nodes.size() == 3);
    CHECK(m.nodes[0].id == "aaaaaaaa");
    CHECK(m.nodes[1].id == "bbbbbbbb");
    CHECK(m.nodes[2].id == "cccccccc");
}

TEST_CASE("validation errors carry the SPEC texts and the path", "[graph]") {
    CHECK(graph_error_of(then(sql("a"), R"({"node_type":"NOPE"})")) ==
          "Invalid durable function graph: root.right: Unknown node_type 'NOPE'. " + kValidTypes);
    CHECK(graph_error_of(
              R"({"node_type":"THEN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"condition_node":{"node_type":"SQL","query":"c"}})") ==
          "Invalid durable function graph: root: condition_node is not valid for THEN nodes");
    CHECK(graph_error_of(
              R"({"node_type":"RACE","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":[{"node_type":"SQL","query":"c"}]})") ==
          "Invalid durable function graph: root: extra_nodes is not valid for RACE nodes");
    CHECK(graph_error_of(
              R"({"node_type":"IF","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"query":"{\"condition_node\":{\"node_type\":\"SQL\",\"query\":\"c\"}}"})") ==
          "Invalid durable function graph: root: condition_node in IF must be a first-class Durofut field, not embedded in query");
    CHECK(graph_error_of(
              R"({"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"query":"{\"extra_nodes\":[]}"})") ==
          "Invalid durable function graph: root: extra_nodes in JOIN must be a first-class Durofut field, not embedded in query");
    CHECK_THAT(graph_error_of(
                   R"({"node_type":"IF","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"condition_node":{"node_type":"SQL","query":"c"},"query":"not json"})"),
               Catch::StartsWith("Invalid durable function graph: root: query in IF must be valid JSON config: parse error"));
    CHECK(graph_error_of(
              R"({"node_type":"LOOP","left_node":{"node_type":"SQL","query":"a"},"condition_node":{"node_type":"SQL","query":"c"},"query":"[1]"})") ==
          "Invalid durable function graph: root: query in LOOP must be valid JSON config: not a JSON object");
    CHECK(graph_error_of(then(sql("a"), R"({"node_type":"SQL","query":"b","result_name":"1x"})")) ==
          "Invalid durable function graph: root.right: result name '1x' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*");
    CHECK(graph_error_of(R"({"node_type":"THEN","left_node":{"node_type":"SQL","query":"a"}})") ==
          "Invalid durable function graph: root: THEN nodes require left_node and right_node");
    CHECK(graph_error_of(
              R"({"node_type":"IF","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"}})") ==
          "Invalid durable function graph: root: IF nodes require a condition_node or a result_has_rows query");
    CHECK(graph_error_of(R"({"node_type":"LOOP"})") ==
          "Invalid durable function graph: root: LOOP nodes require left_node (the body)");
    CHECK(graph_error_of(then(sql("a"), R"({"node_type":"SQL"})")) ==
          "Invalid durable function graph: root.right: SQL nodes require a query");
}

TEST_CASE("the first problem in depth-first order is the one reported", "[graph]") {
    // Both branches are bad; the left one is reached first.
    CHECK(graph_error_of(then(R"({"node_type":"L1"})", R"({"node_type":"R1"})")) ==
          "Invalid durable function graph: root.left: Unknown node_type 'L1'. " + kValidTypes);
    CHECK(graph_error_of(
              R"({"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":[{"node_type":"SQL","query":"c"},{"node_type":"X"}]})") ==
          "Invalid durable function graph: root.extra_nodes[1]: Unknown node_type 'X'. " + kValidTypes);
}

TEST_CASE("nesting depth: 256 levels below the root pass, 257 do not", "[graph]") {
    CHECK(materialize_counting(chain(256)).nodes.size() == 513);
    const std::string error = graph_error_of(chain(257));
    CHECK(error == "Invalid durable function graph: root" + repeat(".left", 257) +
                       ": Graph exceeds maximum nesting depth of 256. Simplify the workflow or break it into "
                       "multiple instances.");
    try {
        materialize_counting(chain(257));
    } catch (const GraphError &e) {
        CHECK(std::string(e.sqlstate()) == "54000");
    }
}

TEST_CASE("node count: 10000 nodes pass, the 10001st is refused where it hangs", "[graph]") {
    const auto join_with_extras = [](int extras) {
        std::string g = R"({"node_type":"JOIN","left_node":)" + sql("l") + R"(,"right_node":)" + sql("r") +
                        R"(,"extra_nodes":[)";
        for (int i = 0; i < extras; ++i) g += (i ? "," : "") + sql("e");
        return g + "]}";
    };
    CHECK(materialize_counting(join_with_extras(9997)).nodes.size() == 10000);
    CHECK(graph_error_of(join_with_extras(9998)) ==
          "Invalid durable function graph: root.extra_nodes[9997]: Workflow exceeds maximum node count of 10000. "
          "Simplify the workflow or break it into multiple instances.");
}

TEST_CASE("graphs far deeper than the limit pass through without recursion", "[graph]") {
    // What a plpgsql loop of 100 000 `~>` builds: composers must carry it to
    // df.start, which names the depth problem.
    // Built as prefix + core + suffix: wrapping the text 100 000 times would
    // copy it each time (quadratic, minutes under a sanitizer).
    std::string deep;
    const std::string opening = R"({"node_type":"THEN","left_node":)";
    const std::string closing = R"(,"right_node":)" + sql("s") + "}";
    deep.reserve(100000 * (opening.size() + closing.size()) + 64);
    for (int i = 0; i < 100000; ++i) deep += opening;
    deep += sql("SELECT 0");
    for (int i = 0; i < 100000; ++i) deep += closing;
    const Graph g = auto_wrap(deep);
    CHECK(g.size() == 200001);
    CHECK(to_json(g) == deep);
    Graph copy;
    copy.set_root(copy.graft(g));
    CHECK(to_json(copy) == deep);
    CHECK_THROWS_WITH(materialize_counting(deep), Catch::Contains("Graph exceeds maximum nesting depth of 256"));
}

TEST_CASE("stored rows load back into the same graph", "[graph]") {
    const std::string original =
        R"({"node_type":"THEN","left_node":{"node_type":"LOOP","left_node":{"node_type":"JOIN","left_node":)"
        R"({"node_type":"SQL","query":"a","result_name":"a"},"right_node":{"node_type":"SLEEP","query":"5"},)"
        R"("extra_nodes":[{"node_type":"SQL","query":"c"}]},"condition_node":{"node_type":"SQL","query":"w"},)"
        R"("query":"{\"min_interval_ms\":0}","result_name":"l"},"right_node":{"node_type":"IF","left_node":)"
        R"({"node_type":"SQL","query":"t"},"right_node":{"node_type":"BREAK","query":"{\"break_value\":null}"},)"
        R"("condition_node":{"node_type":"SQL","query":"c"}}})";
    const MaterializedGraph m = materialize_counting(original);

    std::vector<StoredNode> shuffled = m.nodes;
    std::reverse(shuffled.begin(), shuffled.end());
    const Graph loaded = load_stored(m.root_id, shuffled);
    CHECK(to_json(loaded) == original);
    CHECK(loaded[loaded.root()].id == m.root_id);
    // Every node carries its stored id.
    std::set<std::string> ids;
    for (std::size_t i = 0; i < loaded.size(); ++i) ids.insert(loaded[i].id);
    CHECK(ids.size() == m.nodes.size());
}

TEST_CASE("loading refuses broken stored graphs", "[graph]") {
    MaterializedGraph m = materialize_counting(then(sql("a"), sql("b")));
    std::vector<StoredNode> rows = m.nodes;
    rows.pop_back();
    CHECK_THROWS_WITH(load_stored(m.root_id, rows), "Stored graph is missing node '00000003'");
    rows = m.nodes;
    rows[2] = rows[1];
    rows[0].right_node = rows[0].left_node;
    CHECK_THROWS_WITH(load_stored(m.root_id, rows), "Stored graph reaches node '00000002' twice");
}
