// See graph.hpp. Every walk over a graph here uses an explicit stack.
#include "common/graph.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/leaf_config.hpp"
#include "common/limits.hpp"

namespace durable {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr const char *kCharacterNotInRepertoire = "22021";

bool is_identifier_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_identifier_char(char c) { return is_identifier_start(c) || (c >= '0' && c <= '9'); }

bool holds_condition(const std::string &type) { return type == "IF" || type == "LOOP"; }

// nlohmann prefixes its messages with "[json.exception.parse_error.101] ";
// users get the part after it.
std::string without_exception_tag(const std::string &what) {
    if (!what.empty() && what.front() == '[') {
        const auto end = what.find("] ");
        if (end != std::string::npos) return what.substr(end + 2);
    }
    return what;
}

std::string quote(const std::string &text) { return dump_json(OrderedJson(text)); }

// An optional field of a node object: absent and null both mean "not given".
const Json *optional_field(const Json &object, const char *name) {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
}

// Parent links, kept so a node's path ("root.left.extra_nodes[2]") is spelled
// out only when an error needs it; deep graphs would make eager paths quadratic.
class PathBook {
public:
    void note(NodeIndex child, NodeIndex parent, std::string segment) {
        if (links_.size() <= child) links_.resize(child + 1);
        links_[child] = Link{parent, std::move(segment), true};
    }

    std::string path(NodeIndex node) const {
        std::vector<const std::string *> segments;
        while (node < links_.size() && links_[node].known) {
            segments.push_back(&links_[node].segment);
            node = links_[node].parent;
        }
        std::string out = "root";
        for (auto it = segments.rbegin(); it != segments.rend(); ++it) out += "." + **it;
        return out;
    }

private:
    struct Link {
        NodeIndex parent = 0;
        std::string segment;
        bool known = false;
    };
    std::vector<Link> links_;
};

// ---------------------------------------------------------------------------
// JSON -> Graph

// The parsed document when `text` is a JSON object carrying node_type, i.e.
// meant as a graph; nullopt for everything auto-wrap turns into SQL. Plain
// SQL never starts with '{', so it is recognised without a parse attempt.
std::optional<Json> parse_envelope(const std::string &text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos || text[first] != '{') return std::nullopt;
    Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("node_type")) return std::nullopt;
    return doc;
}

class GraphReader {
public:
    Graph read(const Json &root_object) {
        const NodeIndex root = graph_.add({});
        graph_.set_root(root);
        pending_.push_back({&root_object, root});
        while (!pending_.empty()) {
            const Pending next = pending_.back();
            pending_.pop_back();
            read_node(*next.object, next.index);
        }
        return std::move(graph_);
    }

private:
    struct Pending {
        const Json *object;
        NodeIndex index;
    };

    [[noreturn]] void fail(NodeIndex index, const std::string &reason) const {
        throw GraphError(paths_.path(index), reason);
    }

    std::optional<std::string> read_string(const Json &object, const char *field, NodeIndex index) const {
        const Json *value = optional_field(object, field);
        if (value == nullptr) return std::nullopt;
        if (!value->is_string()) fail(index, std::string(field) + " must be a string");
        return value->get<std::string>();
    }

    NodeIndex discover(const Json &child, NodeIndex parent, std::string segment,
                       std::vector<Pending> &children) {
        const NodeIndex index = graph_.add({});
        paths_.note(index, parent, std::move(segment));
        children.push_back({&child, index});
        return index;
    }

    void read_node(const Json &object, NodeIndex index) {
        GraphNode node;
        const auto type = object.find("node_type");
        if (type == object.end() || !type->is_string()) fail(index, "node_type must be a string");
        node.node_type = type->get<std::string>();

        std::vector<Pending> children;
        const auto read_branch = [&](const char *field, const char *segment) -> std::optional<NodeIndex> {
            const Json *child = optional_field(object, field);
            if (child == nullptr) return std::nullopt;
            if (!child->is_object()) fail(index, "Durofut children must be JSON objects");
            return discover(*child, index, segment, children);
        };
        node.left = read_branch("left_node", "left");
        node.right = read_branch("right_node", "right");
        if (const Json *condition = optional_field(object, "condition_node")) {
            if (!condition->is_object()) fail(index, "condition_node must be a Durofut JSON object");
            node.condition = discover(*condition, index, "condition_node", children);
        }
        if (const Json *extras = optional_field(object, "extra_nodes")) {
            if (!extras->is_array()) fail(index, "extra_nodes must be a JSON array");
            for (std::size_t i = 0; i < extras->size(); ++i) {
                const Json &extra = (*extras)[i];
                if (!extra.is_object()) fail(index, "extra_nodes entries must be Durofut JSON objects");
                node.extras.push_back(discover(extra, index, "extra_nodes[" + std::to_string(i) + "]", children));
            }
        }
        node.query = read_string(object, "query", index);
        node.result_name = read_string(object, "result_name", index);
        graph_[index] = std::move(node);
        // Reversed, so the stack hands them out left, right, condition, extras:
        // errors surface in the same depth-first order validation uses.
        pending_.insert(pending_.end(), children.rbegin(), children.rend());
    }

    Graph graph_;
    PathBook paths_;
    std::vector<Pending> pending_;
};

// ---------------------------------------------------------------------------
// Validation

std::optional<OrderedJson> parse_object(const std::string &text) {
    OrderedJson doc = OrderedJson::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
    return doc;
}

bool is_if_rows_config(const std::optional<std::string> &query) {
    if (!query) return false;
    const auto config = parse_object(*query);
    if (!config) return false;
    const auto type = config->find("condition_type");
    const auto name = config->find("result_name");
    return type != config->end() && *type == "result_has_rows" && name != config->end() && name->is_string();
}

// Config children written into the query instead of their own fields are a
// leftover of an older graph format; refusing them keeps one way to say it.
std::optional<std::string> embedded_config_problem(const GraphNode &node) {
    const bool condition_holder = holds_condition(node.node_type);
    if (!node.query || (!condition_holder && node.node_type != "JOIN")) return std::nullopt;
    const auto config = parse_object(*node.query);
    if (!config) return std::nullopt;
    const char *field = condition_holder ? "condition_node" : "extra_nodes";
    if (!config->contains(field)) return std::nullopt;
    return std::string(field) + " in " + node.node_type +
           " must be a first-class Durofut field, not embedded in query";
}

// Children and queries a node type cannot run without. The daemon relies on
// these; checking them at submission gives the user the error at once.
std::optional<std::string> missing_part_problem(const GraphNode &node) {
    const std::string &type = node.node_type;
    if ((type == "THEN" || type == "JOIN" || type == "RACE") && (!node.left || !node.right))
        return type + " nodes require left_node and right_node";
    if (type == "IF") {
        if (!node.left || !node.right) return std::string("IF nodes require left_node (then) and right_node (else)");
        if (!node.condition && !is_if_rows_config(node.query))
            return std::string("IF nodes require a condition_node or a result_has_rows query");
    }
    if (type == "LOOP" && !node.left) return std::string("LOOP nodes require left_node (the body)");
    if (type == "RETRY" || type == "TIMEOUT") {
        if (!node.left) return type + " nodes require left_node (the child)";
        if (node.right) return "right_node is not valid for " + type + " nodes";
    }
    if (type == "SQL" && !node.query) return std::string("SQL nodes require a query");
    return std::nullopt;
}

// What is wrong with the node itself, first problem first; children and the
// stored query are checked separately.
std::optional<std::string> node_problem(const GraphNode &node) {
    if (!is_known_node_type(node.node_type)) return unknown_node_type_message(node.node_type);
    if (node.condition && !holds_condition(node.node_type))
        return "condition_node is not valid for " + node.node_type + " nodes";
    if (!node.extras.empty() && node.node_type != "JOIN")
        return "extra_nodes is not valid for " + node.node_type + " nodes";
    if (auto problem = embedded_config_problem(node)) return problem;
    if (auto problem = missing_part_problem(node)) return problem;
    if (auto problem = leaf::config_problem(node.node_type, node.query)) return problem;
    if (node.result_name) return result_name_problem(*node.result_name);
    return std::nullopt;
}

class Materializer {
public:
    Materializer(const Graph &graph, const std::function<std::string()> &next_id)
        : graph_(graph), next_id_(next_id), ids_(graph.size()), visited_(graph.size(), false) {}

    MaterializedGraph run() {
        MaterializedGraph out;
        out.root_id = assign_id(graph_.root());
        std::size_t discovered = 1;
        std::vector<Frame> pending{{graph_.root(), 0}};
        while (!pending.empty()) {
            const Frame frame = pending.back();
            pending.pop_back();
            const GraphNode &node = graph_[frame.index];
            if (visited_.at(frame.index)) throw std::logic_error("graph node reached twice");
            visited_[frame.index] = true;

            if (frame.depth > limits::kMaxGraphDepth)
                fail(frame.index,
                     "Graph exceeds maximum nesting depth of " + std::to_string(limits::kMaxGraphDepth) +
                         ". Simplify the workflow or break it into multiple instances.",
                     sqlstate::kProgramLimitExceeded);
            if (auto problem = node_problem(node)) fail(frame.index, *problem);

            const std::vector<ChildRef> children = children_of(node);
            for (const ChildRef &child : children) {
                paths_.note(child.index, frame.index, path_segment(child));
                if (discovered >= limits::kMaxGraphNodes)
                    fail(child.index,
                         "Workflow exceeds maximum node count of " + std::to_string(limits::kMaxGraphNodes) +
                             ". Simplify the workflow or break it into multiple instances.",
                         sqlstate::kProgramLimitExceeded);
                ++discovered;
                assign_id(child.index);
            }

            out.nodes.push_back(stored_row(frame.index, node));
            for (auto it = children.rbegin(); it != children.rend(); ++it)
                pending.push_back({it->index, frame.depth + 1});
        }
        return out;
    }

private:
    struct Frame {
        NodeIndex index;
        std::size_t depth;
    };

    // Ids only need to be unique within the graph; a repeat is re-rolled. The
    // bound turns a broken generator into an error instead of a hang.
    const std::string &assign_id(NodeIndex index) {
        constexpr int kMaxAttempts = 1000;
        for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
            std::string id = next_id_();
            if (used_.insert(id).second) return ids_.at(index) = std::move(id);
        }
        throw std::runtime_error("could not generate a unique node id");
    }

    std::optional<std::string> id_of(const std::optional<NodeIndex> &index) const {
        if (!index) return std::nullopt;
        return ids_.at(*index);
    }

    StoredNode stored_row(NodeIndex index, const GraphNode &node) const {
        StoredNode row;
        row.id = ids_.at(index);
        row.node_type = node.node_type;
        row.query = stored_query(index, node);
        row.result_name = node.result_name;
        row.left_node = id_of(node.left);
        row.right_node = id_of(node.right);
        return row;
    }

    // The df.nodes query: ids of the condition and JOIN extras merged into the
    // node's JSON config; other queries verbatim.
    std::optional<std::string> stored_query(NodeIndex index, const GraphNode &node) const {
        if (!node.condition && node.extras.empty()) return node.query;
        OrderedJson config = OrderedJson::object();
        if (node.query) {
            const std::string invalid = "query in " + node.node_type + " must be valid JSON config: ";
            try {
                config = OrderedJson::parse(*node.query);
            } catch (const OrderedJson::exception &e) {  // parse_error, or out_of_range (1e999)
                fail(index, invalid + without_exception_tag(e.what()));
            }
            if (!config.is_object()) fail(index, invalid + "not a JSON object");
        }
        if (node.condition) config["condition_node"] = ids_.at(*node.condition);
        if (!node.extras.empty()) {
            OrderedJson extra_ids = OrderedJson::array();
            for (NodeIndex extra : node.extras) extra_ids.push_back(ids_.at(extra));
            config["extra_nodes"] = std::move(extra_ids);
        }
        return dump_json(config);
    }

    [[noreturn]] void fail(NodeIndex index, const std::string &reason,
                           const char *state = sqlstate::kInvalidParameterValue) const {
        throw GraphError(paths_.path(index), reason, state);
    }

    const Graph &graph_;
    const std::function<std::string()> &next_id_;
    std::vector<std::string> ids_;
    std::vector<bool> visited_;
    std::unordered_set<std::string> used_;
    PathBook paths_;
};

// ---------------------------------------------------------------------------
// Stored rows -> Graph

// Splits the ids materialisation merged into an IF/LOOP/JOIN query back out.
void unmerge_config(GraphNode &node, std::optional<std::string> &condition_id,
                    std::vector<std::string> &extra_ids) {
    const bool condition_holder = holds_condition(node.node_type);
    if (!node.query || (!condition_holder && node.node_type != "JOIN")) return;
    auto config = parse_object(*node.query);
    if (!config) return;
    bool merged = false;
    if (condition_holder) {
        const auto it = config->find("condition_node");
        if (it != config->end() && it->is_string()) {
            condition_id = it->get<std::string>();
            config->erase(it);
            merged = true;
        }
    } else {
        const auto it = config->find("extra_nodes");
        if (it != config->end() && it->is_array() &&
            std::all_of(it->begin(), it->end(), [](const OrderedJson &v) { return v.is_string(); })) {
            for (const auto &id : *it) extra_ids.push_back(id.get<std::string>());
            config->erase(it);
            merged = true;
        }
    }
    if (!merged) return;
    if (config->empty())
        node.query.reset();
    else
        node.query = dump_json(*config);
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API

bool is_known_node_type(std::string_view type) {
    return std::any_of(std::begin(kNodeTypes), std::end(kNodeTypes),
                       [&](const char *known) { return type == known; });
}

std::string unknown_node_type_message(std::string_view type) {
    std::string message = "Unknown node_type '" + std::string(type) + "'. Valid types: ";
    for (std::size_t i = 0; i < std::size(kNodeTypes); ++i) {
        if (i > 0) message += ", ";
        message += kNodeTypes[i];
    }
    return message;
}

std::optional<std::string> result_name_problem(const std::string &name) {
    if (name.empty()) return std::string("result name cannot be empty");
    if (!is_identifier_start(name.front()) || !std::all_of(name.begin(), name.end(), is_identifier_char))
        return "result name '" + name + "' is not a valid identifier — must match [a-zA-Z_][a-zA-Z0-9_]*";
    return std::nullopt;
}

std::vector<ChildRef> children_of(const GraphNode &node) {
    std::vector<ChildRef> children;
    if (node.left) children.push_back({*node.left, ChildSlot::left, 0});
    if (node.right) children.push_back({*node.right, ChildSlot::right, 0});
    if (node.condition) children.push_back({*node.condition, ChildSlot::condition, 0});
    for (std::size_t i = 0; i < node.extras.size(); ++i)
        children.push_back({node.extras[i], ChildSlot::extra, i});
    return children;
}

std::string path_segment(const ChildRef &child) {
    switch (child.slot) {
        case ChildSlot::left: return "left";
        case ChildSlot::right: return "right";
        case ChildSlot::condition: return "condition_node";
        case ChildSlot::extra: return "extra_nodes[" + std::to_string(child.extra_position) + "]";
    }
    throw std::logic_error("unknown child slot");
}

NodeIndex Graph::add(GraphNode node) {
    nodes_.push_back(std::move(node));
    return nodes_.size() - 1;
}

NodeIndex Graph::graft(const Graph &other) {
    // Copy first, then rewrite the child indices of the copies; `mapped` takes
    // other's indices to ours.
    std::unordered_map<NodeIndex, NodeIndex> mapped;
    std::vector<NodeIndex> pending{other.root()};
    std::vector<NodeIndex> copies;
    while (!pending.empty()) {
        const NodeIndex source = pending.back();
        pending.pop_back();
        if (mapped.count(source) != 0) continue;
        mapped[source] = add(other[source]);
        copies.push_back(mapped[source]);
        for (const ChildRef &child : children_of(other[source])) pending.push_back(child.index);
    }
    const auto remap = [&](std::optional<NodeIndex> &index) {
        if (index) index = mapped.at(*index);
    };
    for (NodeIndex copy : copies) {
        GraphNode &node = nodes_[copy];
        remap(node.left);
        remap(node.right);
        remap(node.condition);
        for (NodeIndex &extra : node.extras) extra = mapped.at(extra);
    }
    return mapped.at(other.root());
}

Graph sql_graph(const std::string &query) {
    Graph graph;
    GraphNode node;
    node.node_type = "SQL";
    node.query = query;
    graph.set_root(graph.add(std::move(node)));
    return graph;
}

GraphError::GraphError(std::string path, std::string reason, const char *sqlstate)
    : UserError("Invalid durable function graph: " + path + ": " + reason, sqlstate),
      path_(std::move(path)),
      reason_(std::move(reason)) {}

NotAGraphError::NotAGraphError(const std::string &why) : UserError("Failed to parse Durofut JSON: " + why) {}

Graph parse_graph(std::string_view json_text) {
    Json doc;
    try {
        doc = Json::parse(json_text.begin(), json_text.end());
    } catch (const Json::exception &e) {  // parse_error; out_of_range for a number beyond double (1e999)
        throw NotAGraphError(without_exception_tag(e.what()));
    }
    if (!doc.is_object()) throw NotAGraphError(std::string("expected a JSON object, got ") + doc.type_name());
    if (!doc.contains("node_type")) throw NotAGraphError("missing field 'node_type'");
    return GraphReader().read(doc);
}

std::string to_json(const Graph &graph) {
    // Work items: literal text to append, or a node to expand in place.
    struct Item {
        std::optional<NodeIndex> node;
        std::string text;
    };
    std::string out;
    std::vector<Item> pending{{graph.root(), {}}};
    while (!pending.empty()) {
        Item item = std::move(pending.back());
        pending.pop_back();
        if (!item.node) {
            out += item.text;
            continue;
        }
        const GraphNode &node = graph[*item.node];
        out += "{\"node_type\":" + quote(node.node_type);
        std::vector<Item> parts;
        const auto text = [&](std::string t) { parts.push_back({std::nullopt, std::move(t)}); };
        const auto child = [&](NodeIndex index) { parts.push_back({index, {}}); };
        const auto field = [&](const char *name, NodeIndex index) {
            text(std::string(",\"") + name + "\":");
            child(index);
        };
        if (node.left) field("left_node", *node.left);
        if (node.right) field("right_node", *node.right);
        if (node.condition) field("condition_node", *node.condition);
        if (!node.extras.empty()) {
            text(",\"extra_nodes\":[");
            for (std::size_t i = 0; i < node.extras.size(); ++i) {
                if (i > 0) text(",");
                child(node.extras[i]);
            }
            text("]");
        }
        std::string tail;
        if (node.query) tail += ",\"query\":" + quote(*node.query);
        if (node.result_name) tail += ",\"result_name\":" + quote(*node.result_name);
        text(tail + "}");
        pending.insert(pending.end(), std::make_move_iterator(parts.rbegin()),
                       std::make_move_iterator(parts.rend()));
    }
    return out;
}

std::string dump_json(const nlohmann::ordered_json &value) {
    try {
        return value.dump();
    } catch (const nlohmann::ordered_json::type_error &e) {
        throw UserError("Workflow text is not valid UTF-8: " + without_exception_tag(e.what()),
                        kCharacterNotInRepertoire);
    }
}

bool looks_like_graph(const std::string &text) { return parse_envelope(text).has_value(); }

Graph auto_wrap(const std::string &text) {
    const std::optional<Json> doc = parse_envelope(text);
    if (!doc) return sql_graph(text);
    const Json &type = doc->at("node_type");
    if (type.is_string() && !is_known_node_type(type.get_ref<const std::string &>()))
        throw UserError("Invalid durable function: " + unknown_node_type_message(type.get<std::string>()));
    return GraphReader().read(*doc);
}

MaterializedGraph materialize(const std::string &fut, const std::function<std::string()> &random_hex8) {
    return materialize_graph(auto_wrap(fut), random_hex8);
}

MaterializedGraph materialize_graph(const Graph &graph, const std::function<std::string()> &next_id) {
    return Materializer(graph, next_id).run();
}

void validate_graph(const Graph &graph) {
    // Materialising checks everything df.start checks; the rows are dropped.
    std::uint64_t next = 0;
    materialize_graph(graph, [&] { return std::to_string(++next); });
}

Graph load_stored(const std::string &root_id, const std::vector<StoredNode> &rows) {
    std::unordered_map<std::string, const StoredNode *> by_id;
    for (const StoredNode &row : rows) by_id.emplace(row.id, &row);
    const auto row_of = [&](const std::string &id) -> const StoredNode & {
        const auto it = by_id.find(id);
        if (it == by_id.end()) throw UserError("Stored graph is missing node '" + id + "'", sqlstate::kDataException);
        return *it->second;
    };

    Graph graph;
    std::unordered_set<std::string> seen;
    struct Pending {
        std::string id;
        NodeIndex index;
    };
    graph.set_root(graph.add({}));
    std::vector<Pending> pending{{root_id, graph.root()}};
    while (!pending.empty()) {
        Pending next = std::move(pending.back());
        pending.pop_back();
        if (!seen.insert(next.id).second)
            throw UserError("Stored graph reaches node '" + next.id + "' twice", sqlstate::kDataException);
        const StoredNode &row = row_of(next.id);

        GraphNode node;
        node.id = row.id;
        node.node_type = row.node_type;
        node.query = row.query;
        node.result_name = row.result_name;
        std::optional<std::string> condition_id;
        std::vector<std::string> extra_ids;
        unmerge_config(node, condition_id, extra_ids);

        std::vector<Pending> children;
        const auto link = [&](const std::optional<std::string> &id) -> std::optional<NodeIndex> {
            if (!id) return std::nullopt;
            const NodeIndex index = graph.add({});
            children.push_back({*id, index});
            return index;
        };
        node.left = link(row.left_node);
        node.right = link(row.right_node);
        node.condition = link(condition_id);
        for (const std::string &id : extra_ids) node.extras.push_back(*link(id));
        graph[next.index] = std::move(node);
        pending.insert(pending.end(), std::make_move_iterator(children.rbegin()),
                       std::make_move_iterator(children.rend()));
    }
    return graph;
}

}  // namespace durable
