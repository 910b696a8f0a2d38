// df.explain's rendering (SPEC.md §16). Expected trees are written out line by
// line from §16's rules; `tree()` only adds the padding every line gets.
#include "catch_compat.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/dsl.hpp"
#include "common/explain.hpp"
#include "common/graph.hpp"

namespace dsl = durable::dsl;
namespace ex = durable::explain;

using durable::Graph;
using durable::NodeIndex;

namespace {

// Code points of UTF-8 text, counted by decoding lead bytes.
std::size_t code_points(const std::string &text) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < text.size();) {
        const auto lead = static_cast<unsigned char>(text[i]);
        i += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
        ++count;
    }
    return count;
}

// Lines right-padded to the longest + 4, joined with '\n'.
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

std::string dry_run(const std::string &graph_json) { return ex::explain_graph_json(graph_json); }

std::string label_of(const std::string &graph_json) {
    const Graph g = durable::parse_graph(graph_json);
    return ex::node_label(g[g.root()]);
}

std::vector<durable::StoredNode> stored_rows(const std::string &fut, std::string &root_id) {
    int next = 0;
    const auto m = durable::materialize(fut, [&] { return "0000000" + std::to_string(++next); });
    root_id = m.root_id;
    return m.nodes;
}

}  // namespace

TEST_CASE("the acceptance example", "[explain]") {
    // df.explain('SELECT 1' |=> 'a' ~> df.sleep(5) ~> ('SELECT $a > 0' ?> 'SELECT 1' !> 'SELECT 2')),
    // operators applied left to right as PostgreSQL does.
    const std::string partial = R"({"condition": "SELECT $a > 0", "_partial_if": true, "then_branch": "SELECT 1"})";
    const std::string fut =
        dsl::seq(dsl::seq(dsl::as("SELECT 1", "a"), dsl::sleep(5)), dsl::if_else_op(partial, "SELECT 2"));
    const std::string out = dry_run(fut);
    CHECK(out == tree({
                     "SQL: SELECT 1 |=> 'a'",
                     "→ SLEEP 5s",
                     "→ IF",
                     "    ? condition:",
                     "      └─SQL: SELECT $a > 0",
                     "    ✓ then:",
                     "      └─SQL: SELECT 1",
                     "    ✗ else:",
                     "      └─SQL: SELECT 2",
                 }));
    // The padding spelled out: the longest line ("      └─SQL: SELECT $a > 0")
    // has 26 characters, so every line is 30 wide.
    CHECK(out.substr(0, out.find('\n')) == "SQL: SELECT 1 |=> 'a'" + std::string(9, ' '));
    CHECK(out.substr(out.rfind('\n') + 1) == "      └─SQL: SELECT 2" + std::string(9, ' '));
    CHECK(out.back() == ' ');
}

TEST_CASE("ETL pipeline with parallel validation", "[explain]") {
    const std::string fut = dsl::seq(
        dsl::as("SELECT * FROM staging WHERE status = 'pending' LIMIT 1", "record"),
        dsl::if_then_else(
            "SELECT $record IS NOT NULL",
            dsl::seq(dsl::seq("UPDATE staging SET status = 'validating' WHERE id = $record.id",
                              dsl::join(dsl::as("SELECT validate_schema($record.data)", "schema_ok"),
                                        dsl::as("SELECT validate_rules($record.data)", "rules_ok"))),
                     dsl::if_then_else("SELECT $schema_ok AND $rules_ok",
                                       dsl::seq("INSERT INTO target SELECT * FROM staging WHERE id = $record.id",
                                                "UPDATE staging SET status = 'loaded' WHERE id = $record.id"),
                                       "UPDATE staging SET status = 'failed' WHERE id = $record.id")),
            "SELECT 'no pending records'"));
    CHECK(dry_run(fut) == tree({
                              "SQL: SELECT * FROM staging WHERE status = 'pending' ... |=> 'record'",
                              "→ IF",
                              "    ? condition:",
                              "      └─SQL: SELECT $record IS NOT NULL",
                              "    ✓ then:",
                              "      └─SQL: UPDATE staging SET status = 'validating' WHERE ...",
                              "      → JOIN (2)",
                              "          ║ branch 1:",
                              "            ├─SQL: SELECT validate_schema($record.data) |=> 'schema_ok'",
                              "          ║ branch 2:",
                              "            └─SQL: SELECT validate_rules($record.data) |=> 'rules_ok'",
                              "      → IF",
                              "          ? condition:",
                              "            └─SQL: SELECT $schema_ok AND $rules_ok",
                              "          ✓ then:",
                              "            └─SQL: INSERT INTO target SELECT * FROM staging WHERE ...",
                              "            → SQL: UPDATE staging SET status = 'loaded' WHERE id =...",
                              "          ✗ else:",
                              "            └─SQL: UPDATE staging SET status = 'failed' WHERE id =...",
                              "    ✗ else:",
                              "      └─SQL: SELECT 'no pending records'",
                          }));
}

TEST_CASE("cron job with cleanup loop", "[explain]") {
    // `wait ~> 'DELETE ...' |=> 'deleted' ~> if` names the THEN (wait ~> delete),
    // and THEN lines never show names.
    const std::string fut = dsl::loop(
        dsl::seq(dsl::as(dsl::seq(dsl::wait_for_schedule("0 * * * *", std::nullopt),
                                  "DELETE FROM logs WHERE created_at < now() - interval '7 days'"),
                         "deleted"),
                 dsl::if_then_else("SELECT $deleted > 0",
                                   "INSERT INTO audit (action, count) VALUES ('cleanup', $deleted)",
                                   "SELECT 'nothing to clean'")),
        std::nullopt, std::nullopt);
    CHECK(dry_run(fut) == tree({
                              "LOOP (infinite)",
                              "    ↻ body:",
                              "      └─WAIT '0 * * * *'",
                              "      → SQL: DELETE FROM logs WHERE created_at < now() - int...",
                              "      → IF",
                              "          ? condition:",
                              "            └─SQL: SELECT $deleted > 0",
                              "          ✓ then:",
                              "            └─SQL: INSERT INTO audit (action, count) VALUES ('clea...",
                              "          ✗ else:",
                              "            └─SQL: SELECT 'nothing to clean'",
                          }));
}

TEST_CASE("daily midnight order archive: multi-line SQL shows on one line", "[explain]") {
    const std::string fut = dsl::loop(
        dsl::seq(dsl::as(dsl::seq(dsl::wait_for_schedule("0 0 * * *", std::nullopt),
                                  "SELECT COUNT(*) as cnt FROM playground.orders\n"
                                  "WHERE status = 'completed'\n"
                                  "AND processed_at < now() - interval '7 days'"),
                         "to_archive"),
                 dsl::if_then_else("SELECT $to_archive > 0",
                                   dsl::seq(dsl::as("UPDATE playground.orders SET status = 'archived'\n"
                                                    "WHERE status = 'completed'\n"
                                                    "AND processed_at < now() - interval '7 days'",
                                                    "archived"),
                                            "INSERT INTO playground.logs (msg, level)\n"
                                            "VALUES ('Archived ' || $archived || ' orders', 'info')"),
                                   "INSERT INTO playground.logs (msg)\n"
                                   "VALUES ('No orders to archive')")),
        std::nullopt, std::nullopt);
    CHECK(dry_run(fut) == tree({
                              "LOOP (infinite)",
                              "    ↻ body:",
                              "      └─WAIT '0 0 * * *'",
                              "      → SQL: SELECT COUNT(*) as cnt FROM playground.orders W...",
                              "      → IF",
                              "          ? condition:",
                              "            └─SQL: SELECT $to_archive > 0",
                              "          ✓ then:",
                              "            └─SQL: UPDATE playground.orders SET status = 'archived... |=> 'archived'",
                              "            → SQL: INSERT INTO playground.logs (msg, level) VALUES...",
                              "          ✗ else:",
                              "            └─SQL: INSERT INTO playground.logs (msg) VALUES ('No o...",
                          }));
}

TEST_CASE("children of a compound node that is not last keep the vertical line", "[explain]") {
    const std::string fut = dsl::join(dsl::loop("SELECT 1", std::string("SELECT 0"), std::nullopt),
                                      dsl::race("SELECT 2", dsl::if_then_else("SELECT c", "SELECT t", "SELECT e")));
    CHECK(dry_run(fut) == tree({
                              "JOIN (2)",
                              "    ║ branch 1:",
                              "      ├─LOOP (while)",
                              "      │   ↻ body:",
                              "      │     └─SQL: SELECT 1",
                              "      │   ? while:",
                              "      │     └─SQL: SELECT 0",
                              "    ║ branch 2:",
                              "      └─RACE",
                              "          ║ branch 1:",
                              "            ├─SQL: SELECT 2",
                              "          ║ branch 2:",
                              "            └─IF",
                              "                ? condition:",
                              "                  └─SQL: SELECT c",
                              "                ✓ then:",
                              "                  └─SQL: SELECT t",
                              "                ✗ else:",
                              "                  └─SQL: SELECT e",
                          }));
}

TEST_CASE("THEN chains flatten on both sides; JOIN counts every branch", "[explain]") {
    const std::string fut = dsl::seq(dsl::seq("SELECT 1", dsl::seq("SELECT 2", "SELECT 3")),
                                     dsl::join3("SELECT 4", dsl::seq("SELECT 5", "SELECT 6"), "SELECT 7"));
    CHECK(dry_run(fut) == tree({
                              "SQL: SELECT 1",
                              "→ SQL: SELECT 2",
                              "→ SQL: SELECT 3",
                              "→ JOIN (3)",
                              "    ║ branch 1:",
                              "      ├─SQL: SELECT 4",
                              "    ║ branch 2:",
                              "      ├─SQL: SELECT 5",
                              "      → SQL: SELECT 6",
                              "    ║ branch 3:",
                              "      └─SQL: SELECT 7",
                          }));
}

TEST_CASE("labels of every node type", "[explain]") {
    CHECK(label_of(dsl::sql("SELECT 1")) == "SQL: SELECT 1");
    CHECK(label_of(dsl::as(dsl::sleep(30), "s")) == "SLEEP 30s |=> 's'");
    CHECK(label_of(dsl::wait_for_schedule("0 9 * * 1-5", std::nullopt)) == "WAIT '0 9 * * 1-5'");
    CHECK(label_of(dsl::wait_for_schedule("0 9 * * *", std::string("Europe/Berlin"))) ==
          "WAIT '0 9 * * *' (Europe/Berlin)");
    dsl::HttpStep step;
    step.url = "https://hooks.example.com/services/T000/B000/XXXXXXXX";
    step.method = "get";
    CHECK(label_of(dsl::as(dsl::http(step, true), "resp")) == "HTTP GET https://hooks.example.com/services/T0... |=> 'resp'");
    step.url = "https://example.com/a";
    CHECK(label_of(dsl::http(step, true)) == "HTTP GET https://example.com/a");
    CHECK(label_of(dsl::wait_for_signal("approve", std::nullopt)) == "SIGNAL 'approve'");
    CHECK(label_of(dsl::as(dsl::wait_for_signal("approve", std::int64_t{3600}), "ok")) ==
          "SIGNAL 'approve' (3600s) |=> 'ok'");
    CHECK(label_of(dsl::loop("SELECT 1", std::nullopt, std::nullopt)) == "LOOP (infinite)");
    CHECK(label_of(dsl::as(dsl::loop("SELECT 1", std::string("SELECT 2"), std::int64_t{5}), "l")) ==
          "LOOP (while) |=> 'l'");
    CHECK(label_of(dsl::break_loop(std::nullopt)) == "BREAK");
    CHECK(label_of(dsl::break_loop(std::string("done"))) == "BREAK 'done'");
    CHECK(label_of(dsl::break_loop(std::string("12345678901234567890"))) == "BREAK '12345678901234567890'");
    CHECK(label_of(dsl::break_loop(std::string("123456789012345678901"))) == "BREAK '12345678901234567...'");
    CHECK(label_of(dsl::as(dsl::if_then_else("a", "b", "c"), "i")) == "IF |=> 'i'");
    CHECK(label_of(dsl::as(dsl::join("a", "b"), "j")) == "JOIN (2) |=> 'j'");
    // RACE and THEN never show names.
    CHECK(label_of(dsl::as(dsl::race("a", "b"), "r")) == "RACE");
    CHECK(label_of(dsl::as(dsl::seq("a", "b"), "t")) == "SEQUENCE");
}

TEST_CASE("SQL text: 50 characters shown whole, longer cut to 47 + ...; counted in characters", "[explain]") {
    const std::string fifty(50, 'x');
    CHECK(label_of(dsl::sql(fifty)) == "SQL: " + fifty);
    CHECK(label_of(dsl::sql(fifty + "y")) == "SQL: " + std::string(47, 'x') + "...");
    std::string accents;
    for (int i = 0; i < 60; ++i) accents += "é";
    std::string cut;
    for (int i = 0; i < 47; ++i) cut += "é";
    CHECK(label_of(dsl::sql(accents)) == "SQL: " + cut + "...");
    // Newlines, CRs and tabs display as spaces, one for one.
    CHECK(label_of(dsl::sql("SELECT\n\t1,\r\n2")) == "SQL: SELECT  1,  2");
    CHECK(label_of(dsl::as(dsl::break_loop(std::string("a\nb")), "x")) == "BREAK 'a b' |=> 'x'");
}

TEST_CASE("instance mode: the SPEC example with header and markers", "[explain]") {
    std::string root_id;
    const auto rows = stored_rows(dsl::seq(dsl::join("SELECT 1", "SELECT 2"), "SELECT 3 AS n"), root_id);
    const Graph g = durable::load_stored(root_id, rows);
    const std::string tree_text = ex::render_tree(g, [&](NodeIndex) { return ex::Marker::completed; });
    ex::InstanceSummary summary{"1a2b3c4d", std::string("demo"), "completed",
                                std::string(R"({"rows":[{"n":3}],"row_count":1})")};
    CHECK(ex::render_instance(summary, tree_text) ==
          "Instance: 1a2b3c4d (demo)\n"
          "Status:   ✓ Completed\n"
          "Output:   {\"rows\":[{\"n\":3}],\"row_count\":1}\n"
          "\n" +
              tree({
                  "JOIN (2) ✓",
                  "    ║ branch 1:",
                  "      ├─SQL: SELECT 1 ✓",
                  "    ║ branch 2:",
                  "      └─SQL: SELECT 2 ✓",
                  "→ SQL: SELECT 3 AS n ✓",
              }));
}

TEST_CASE("instance mode: one marker per node status", "[explain]") {
    std::string root_id;
    const auto rows = stored_rows(
        dsl::seq(dsl::seq(dsl::seq(dsl::seq("SELECT 1", "SELECT 2"), "SELECT 3"), "SELECT 4"), "SELECT 5"), root_id);
    const std::map<std::string, std::string> status_by_query{{"SELECT 1", "completed"}, {"SELECT 2", "failed"},
                                                             {"SELECT 3", "running"},   {"SELECT 4", "pending"},
                                                             {"SELECT 5", "cancelled"}};
    const Graph g = durable::load_stored(root_id, rows);
    const std::string out = ex::render_tree(g, [&](NodeIndex i) {
        const auto &query = g[i].query;
        return query ? ex::marker_for_status(status_by_query.at(*query)) : ex::Marker::none;
    });
    CHECK(out == tree({"SQL: SELECT 1 ✓", "→ SQL: SELECT 2 ✗", "→ SQL: SELECT 3 ⏳", "→ SQL: SELECT 4 ○",
                       "→ SQL: SELECT 5 ⊘"}));
    CHECK(ex::marker_for_status("skipped") == ex::Marker::skipped);
    CHECK(ex::marker_for_status("bogus") == ex::Marker::none);
}

TEST_CASE("instance header: icons, capitalised status, label and output optional", "[explain]") {
    const std::string body = "SQL: x    ";
    CHECK(ex::render_instance({"0000abcd", std::nullopt, "pending", std::nullopt}, body) ==
          "Instance: 0000abcd\nStatus:   ○ Pending\n\n" + body);
    CHECK(ex::render_instance({"0000abcd", std::nullopt, "running", std::nullopt}, body) ==
          "Instance: 0000abcd\nStatus:   ⏳ Running\n\n" + body);
    CHECK(ex::render_instance({"0000abcd", std::string("nightly"), "failed", std::string("SQL execution failed: x")},
                              body) ==
          "Instance: 0000abcd (nightly)\nStatus:   ✗ Failed\nOutput:   SQL execution failed: x\n\n" + body);
    CHECK(ex::render_instance({"0000abcd", std::nullopt, "cancelled", std::string("Cancelled by user")}, body) ==
          "Instance: 0000abcd\nStatus:   ✗ Cancelled\nOutput:   Cancelled by user\n\n" + body);
    const std::string sixty(60, 'o');
    CHECK(ex::render_instance({"0000abcd", std::nullopt, "completed", sixty}, body) ==
          "Instance: 0000abcd\nStatus:   ✓ Completed\nOutput:   " + sixty + "\n\n" + body);
    CHECK(ex::render_instance({"0000abcd", std::nullopt, "completed", sixty + "p"}, body) ==
          "Instance: 0000abcd\nStatus:   ✓ Completed\nOutput:   " + std::string(57, 'o') + "...\n\n" + body);
}

TEST_CASE("input classification follows §16's order", "[explain]") {
    using K = ex::InputKind;
    CHECK(ex::classify("1a2b3c4d") == K::instance_id);
    CHECK(ex::classify("DEADBEEF") == K::instance_id);
    CHECK(ex::classify("1a2b3c4") == K::unexplainable);
    CHECK(ex::classify(dsl::sql("SELECT df.x ~> 1")) == K::graph_json);
    CHECK(ex::classify("SELECT 1") == K::sql_statement);
    CHECK(ex::classify("select * from t") == K::sql_statement);
    CHECK(ex::classify("SELECT\n1") == K::sql_statement);
    CHECK(ex::classify("with\nx AS (SELECT 1) SELECT * FROM x") == K::sql_statement);
    CHECK(ex::classify("DO $$ BEGIN END $$") == K::sql_statement);
    CHECK(ex::classify("TRUNCATE t") == K::sql_statement);
    CHECK(ex::classify("EXPLAIN SELECT 1") == K::sql_statement);
    // Only the first five keywords may be followed by a newline.
    CHECK(ex::classify("CREATE\nTABLE t ()") == K::unexplainable);
    CHECK(ex::classify("SELECTION") == K::unexplainable);
    // A marker anywhere makes it a DSL expression, SQL keyword or not.
    CHECK(ex::classify("SELECT df.sleep(1)") == K::dsl_expression);
    CHECK(ex::classify("'SELECT 1' ~> 'SELECT 2'") == K::dsl_expression);
    CHECK(ex::classify("'a' |=> 'b'") == K::dsl_expression);
    CHECK(ex::classify("'c' ?> 't' !> 'e'") == K::dsl_expression);
    CHECK(ex::classify("@> 'x'") == K::dsl_expression);
    CHECK(ex::classify("hello world") == K::unexplainable);
    CHECK(ex::classify(R"({"a": 1})") == K::unexplainable);
    CHECK(ex::trim("  \n\tSELECT 1 \n") == "SELECT 1");
}

TEST_CASE("dry runs return, not raise, what is wrong", "[explain]") {
    CHECK(ex::explain_sql("SELECT 1") == tree({"SQL: SELECT 1"}));
    CHECK_THAT(dry_run("OK"), Catch::StartsWith("Failed to parse Durofut JSON: parse error"));
    CHECK(dry_run(R"({"node_type":"NOPE"})") ==
          "Invalid durable function graph: root: Unknown node_type 'NOPE'. Valid types: SQL, THEN, IF, JOIN, LOOP, "
          "BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, SIGNAL, RETRY, TIMEOUT");
    CHECK(dry_run(R"({"node_type":"THEN","left_node":{"node_type":"SQL","query":"a"},"right_node":3})") ==
          "Invalid durable function graph: root: Durofut children must be JSON objects");
    std::string deep = dsl::sql("SELECT 0");
    for (int i = 0; i < 257; ++i) deep = dsl::seq(deep, "SELECT 1");
    CHECK_THAT(dry_run(deep), Catch::EndsWith(": Graph exceeds maximum nesting depth of 256. Simplify the workflow "
                                              "or break it into multiple instances."));
    CHECK(std::string(ex::kCannotExplain) ==
          "Cannot explain input: not a valid Durofut JSON, instance ID, SQL statement, or DSL expression.\n"
          "Hint: DSL expressions use df.*() functions and operators like ~>, |=>, &, |.");
}
