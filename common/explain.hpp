// df.explain's text (SPEC.md §16): the tree of a graph, one line per node,
// with an optional status marker per node and the instance header, plus the
// classification of explain's input and the dry runs that need no database.
//
// Pure C++: the extension fetches rows and evaluates DSL text, this file
// decides what to show.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/graph.hpp"

namespace durable::explain {

// Per-node markers of instance mode: ✓ ✗ ⏳ ○ and ⊘ (skipped or cancelled).
enum class Marker { none, completed, failed, running, pending, skipped };

// The marker for a node status (physical or inferred): completed, failed,
// running, pending, skipped/cancelled; anything else shows none.
Marker marker_for_status(std::string_view status);

// Which marker a node of the graph gets; an empty function marks nothing
// (dry runs).
using MarkerOf = std::function<Marker(NodeIndex)>;

// Text instance mode puts between a node's label and its marker (a RETRY's
// " [attempt 2]"); empty for none.
using NoteOf = std::function<std::string(NodeIndex)>;

// The note of a RETRY that has made `attempts` attempts: " [attempt <n>]",
// empty when it has made none.
std::string attempt_note(long long attempts);

// The node's label: "SQL: SELECT 1 |=> 'a'", "SLEEP 5s", "JOIN (3)",
// "RETRY (up to 3 attempts, 1s ×2 ≤60s)", "TIMEOUT 5s", ...
// Newlines, CRs and tabs show as spaces; truncation counts characters.
std::string node_label(const GraphNode &node);

// The tree under graph.root(): THEN chains flattened with "→ ", child blocks
// under headers, every line right-padded to the longest line + 4 characters,
// lines joined with '\n' and no trailing newline.
std::string render_tree(const Graph &graph, const MarkerOf &marker_of = {}, const NoteOf &note_of = {});

// The header of instance mode. `output` is list_instances' output column.
struct InstanceSummary {
    std::string id;
    std::optional<std::string> label;
    std::string status;  // lowercase, as stored
    std::optional<std::string> output;
};

// "Instance: <id> (<label>)", "Status:   <icon> <Status>", "Output:   <output>"
// (over 60 characters cut to 57 + "..."), a blank line, then the tree.
std::string render_instance(const InstanceSummary &summary, const std::string &tree);

// ---------------------------------------------------------------------------
// Input

enum class InputKind { instance_id, graph_json, sql_statement, dsl_expression, unexplainable };

// Leading and trailing whitespace removed.
std::string trim(std::string_view input);

// §16's reading of the (trimmed) input, in its order.
InputKind classify(std::string_view trimmed_input);

// What df.explain returns for input it cannot read.
extern const char *const kCannotExplain;

// Dry run of graph JSON text (given, or what a DSL expression evaluated to):
// the tree, or the text of what is wrong with it ("Failed to parse Durofut
// JSON: ...", "Invalid durable function graph: <path>: <msg>"). Validation is
// df.start's own, so a graph explains exactly when it would start.
std::string explain_graph_json(const std::string &json_text);

// Dry run of one plain SQL statement: a single SQL node.
std::string explain_sql(const std::string &statement);

}  // namespace durable::explain
