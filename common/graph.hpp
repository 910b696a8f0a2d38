// The workflow graph ("durable future", SPEC.md §8): the node model, its exact
// JSON text, auto-wrapping of plain SQL, validation with the limits of §17,
// and materialisation into the stored rows of df.nodes (and back).
//
// A Graph is an arena: nodes refer to their children by index. Users can build
// graphs far deeper than the 256 levels df.start accepts (a plpgsql loop doing
// `g := g ~> 'SELECT 1'`), and the composers must still pass them through so
// df.start can name the offending path. So nothing here recurses over the
// graph: parsing, serialising, validating, copying and destroying are all
// iterative, and no input can exhaust a backend's stack.
//
// Pure C++: no PostgreSQL headers, no I/O.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.hpp"

namespace durable {

// ---------------------------------------------------------------------------
// Node types

// The node types of SPEC §4, in the order error messages list them.
// RETRY and TIMEOUT (SPEC §19.3) come last, appended in that order.
inline constexpr const char *kNodeTypes[] = {"SQL",   "THEN",  "IF",         "JOIN",
                                             "LOOP",  "BREAK", "RACE",       "SLEEP",
                                             "WAIT_SCHEDULE",  "HTTP",       "SIGNAL",
                                             "RETRY", "TIMEOUT"};

bool is_known_node_type(std::string_view type);

// "Unknown node_type '<type>'. Valid types: SQL, THEN, ..., SIGNAL"
std::string unknown_node_type_message(std::string_view type);

// Why `name` cannot name a result (§4: ^[A-Za-z_][A-Za-z0-9_]*$), or nullopt:
// "result name cannot be empty" or
// "result name '<n>' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*".
std::optional<std::string> result_name_problem(const std::string &name);

// ---------------------------------------------------------------------------
// The model

using NodeIndex = std::size_t;

struct GraphNode {
    std::string node_type;
    std::optional<NodeIndex> left;       // THEN first, IF then, LOOP body, JOIN/RACE branch 1, RETRY/TIMEOUT child
    std::optional<NodeIndex> right;      // THEN second, IF else, JOIN/RACE branch 2
    std::optional<NodeIndex> condition;  // IF condition, LOOP while-condition
    std::vector<NodeIndex> extras;       // JOIN branches 3..N
    std::optional<std::string> query;    // SQL text or the node's JSON config
    std::optional<std::string> result_name;
    std::string id;  // the stored 8-hex id; empty until materialised
};

// Where a child hangs under its parent; names the path segment of errors.
enum class ChildSlot { left, right, condition, extra };

struct ChildRef {
    NodeIndex index;
    ChildSlot slot;
    std::size_t extra_position;  // meaningful for ChildSlot::extra only
};

// A node's children in the canonical order: left, right, condition, extras.
std::vector<ChildRef> children_of(const GraphNode &node);

// "left", "right", "condition_node" or "extra_nodes[<i>]".
std::string path_segment(const ChildRef &child);

class Graph {
public:
    NodeIndex add(GraphNode node);
    // Copies the nodes of `other` reachable from its root into this graph and
    // returns the new index of other's root.
    NodeIndex graft(const Graph &other);

    void set_root(NodeIndex root) { root_ = root; }
    NodeIndex root() const noexcept { return root_; }
    std::size_t size() const noexcept { return nodes_.size(); }

    const GraphNode &operator[](NodeIndex index) const { return nodes_.at(index); }
    GraphNode &operator[](NodeIndex index) { return nodes_.at(index); }

private:
    std::vector<GraphNode> nodes_;
    NodeIndex root_ = 0;
};

// A graph with a single SQL node.
Graph sql_graph(const std::string &query);

// ---------------------------------------------------------------------------
// Errors

// "Invalid durable function graph: <path>: <reason>" (§8); path like
// "root.left.extra_nodes[0]".
class GraphError : public UserError {
public:
    GraphError(std::string path, std::string reason,
               const char *sqlstate = sqlstate::kInvalidParameterValue);

    const std::string &path() const noexcept { return path_; }
    const std::string &reason() const noexcept { return reason_; }

private:
    std::string path_;
    std::string reason_;
};

// Text that is not a graph object at all: "Failed to parse Durofut JSON: <why>".
class NotAGraphError : public UserError {
public:
    explicit NotAGraphError(const std::string &why);
};

// ---------------------------------------------------------------------------
// JSON text

// Parses graph JSON: a JSON object with a node_type, children embedded.
// Checks the shape only (field types, children are objects); node types and
// limits are materialisation's business. Throws GraphError for a bad shape
// and NotAGraphError when the text is not such an object at all.
Graph parse_graph(std::string_view json_text);

// The canonical compact text: fields in the order node_type, left_node,
// right_node, condition_node, extra_nodes, query, result_name; absent ones
// omitted. Ids are not part of it.
std::string to_json(const Graph &graph);

// Compact text of a JSON value, keys in their insertion order. Throws
// UserError when a string in it is not valid UTF-8.
std::string dump_json(const nlohmann::ordered_json &value);

// Whether auto_wrap() reads `text` as a graph: a JSON object with node_type.
bool looks_like_graph(const std::string &text);

// SPEC §8 auto-wrap, the reading of every argument a composer or df.start
// takes as a step: text that is a JSON object with a node_type is a graph
// (an unknown type at the top raises UserError "Invalid durable function:
// Unknown node_type 'X'. Valid types: ..."; a bad shape raises GraphError);
// anything else is the query of one SQL node.
Graph auto_wrap(const std::string &text);

// ---------------------------------------------------------------------------
// Materialisation: df.nodes rows

struct StoredNode {            // one df.nodes row, stored form of SPEC §8
    std::string id;            // 8 hex
    std::string node_type;
    std::optional<std::string> query;  // condition_node / extra_nodes ids merged into the JSON object for IF/LOOP/JOIN
    std::optional<std::string> result_name;
    std::optional<std::string> left_node, right_node;  // child ids
};

struct MaterializedGraph {
    std::string root_id;
    std::vector<StoredNode> nodes;  // depth-first order from the root
};

// Parses and auto-wraps `fut` (plain SQL text -> one SQL node), validates it
// (errors "Invalid durable function graph: <path>: <msg>" and the others of
// SPEC §8; leaf node configs meet the DSL's checks, see leaf_config.hpp), and
// assigns ids from `random_hex8` (called once per node;
// re-called on a duplicate within the graph).
MaterializedGraph materialize(const std::string &fut, const std::function<std::string()> &random_hex8);

// The same for a graph already parsed: validates it depth-first from the root
// and produces the stored rows. Throws GraphError.
MaterializedGraph materialize_graph(const Graph &graph, const std::function<std::string()> &next_id);

// Every check materialisation makes (shape, limits, leaf configurations of
// leaf_config.hpp), for a graph read back from stored rows: the daemon runs
// it on load, so a row written around df.start fails its instance instead of
// the daemon. Throws GraphError.
void validate_graph(const Graph &graph);

// The inverse of materialisation: the tree of stored rows (any order) under
// `root_id`, conditions and JOIN extras turned back into children and removed
// from the queries, each GraphNode carrying its id. Throws UserError when a
// referenced row is missing or a row is reached twice.
Graph load_stored(const std::string &root_id, const std::vector<StoredNode> &rows);

}  // namespace durable
