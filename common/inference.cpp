#include "common/inference.hpp"

#include <functional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

namespace durable::monitor {

namespace {

using json = nlohmann::json;

bool is_terminal(const std::string &status) {
    return status == "completed" || status == "failed" || status == "cancelled";
}

std::vector<std::string> split_stamp(const std::string &stamp) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t at = stamp.find("::", start);
        if (at == std::string::npos) {
            parts.push_back(stamp.substr(start));
            return parts;
        }
        parts.push_back(stamp.substr(start, at - start));
        start = at + 2;
    }
}

std::optional<std::int64_t> to_int(const std::string &text) {
    if (text.empty() || text.size() > 18) return std::nullopt;
    std::int64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    return value;
}

class Inference {
public:
    Inference(const InstanceView &instance, const std::vector<NodeRow> &nodes, const std::vector<ScopeRecord> &records)
        : instance_(instance) {
        for (std::size_t i = 0; i < nodes.size(); ++i) index_[nodes[i].id] = i;
        nodes_ = &nodes;
        for (const auto &node : nodes) {
            auto link = [&](const std::optional<std::string> &child) {
                if (child) parent_[*child] = node.id;
            };
            link(node.left_node);
            link(node.right_node);
            if (node.query && (node.node_type == "IF" || node.node_type == "LOOP" || node.node_type == "JOIN")) {
                const json config = json::parse(*node.query, nullptr, false);
                if (config.is_object()) {
                    if (config.contains("condition_node") && config["condition_node"].is_string())
                        parent_[config["condition_node"].get<std::string>()] = node.id;
                    if (config.contains("extra_nodes") && config["extra_nodes"].is_array())
                        for (const auto &extra : config["extra_nodes"])
                            if (extra.is_string()) parent_[extra.get<std::string>()] = node.id;
                }
            }
        }
        for (const auto &[child, parent] : parent_) children_[parent].push_back(child);
        for (const auto &record : records) {
            const NodeRow *node = find(record.node_id);
            if (node == nullptr || !record.result) continue;
            const json value = json::parse(*record.result, nullptr, false);
            if (!value.is_object()) continue;
            if (node->node_type == "LOOP" && value.contains("iteration") && value["iteration"].is_number_integer())
                iterations_[{record.stamp, record.node_id}] = value["iteration"].get<std::int64_t>();
            if (node->node_type == "RACE" && value.contains("race_winner") && value["race_winner"].is_string())
                decisions_[record.node_id].push_back({record.stamp, value["race_winner"].get<std::string>()});
        }
    }

    std::map<std::string, Inferred> run() {
        std::map<std::string, Inferred> out;
        for (const auto &node : *nodes_) out[node.id] = infer(node);
        return out;
    }

private:
    const NodeRow *find(const std::string &id) const {
        auto it = index_.find(id);
        return it == index_.end() ? nullptr : &(*nodes_)[it->second];
    }
    std::optional<std::string> parent_of(const std::string &id) const {
        auto it = parent_.find(id);
        if (it == parent_.end()) return std::nullopt;
        return it->second;
    }

    // The LOOP whose newer generation supersedes a scope stamp, outermost first.
    std::optional<std::string> superseded(const std::optional<std::string> &stamp) const {
        if (!stamp) return std::nullopt;
        const auto parts = split_stamp(*stamp);
        if (parts.size() < 2) return std::nullopt;
        const auto root_generation = to_int(parts[1]);
        if (root_generation && *root_generation < instance_.execution) return instance_.root_node;
        std::string prefix = parts[0] + "::" + parts[1];
        for (std::size_t i = 2; i + 1 < parts.size(); i += 2) {
            const std::string &child = parts[i];
            const auto generation = to_int(parts[i + 1]);
            const auto parent = parent_of(child);
            if (parent && generation) {
                const NodeRow *loop = find(*parent);
                if (loop != nullptr && loop->node_type == "LOOP" && loop->left_node == child) {
                    auto it = iterations_.find({prefix, *parent});
                    const std::int64_t current = it == iterations_.end() ? 1 : it->second;
                    if (*generation < current) return *parent;
                }
            }
            prefix += "::" + child + "::" + parts[i + 1];
        }
        return std::nullopt;
    }

    // The status that counts for the current execution.
    const std::string &effective(const NodeRow &node) {
        auto it = effective_.find(node.id);
        if (it != effective_.end()) return it->second;
        static const std::string pending = "pending";
        const std::string &status = superseded(node.stamp) ? pending : node.status;
        return effective_.emplace(node.id, status).first->second;
    }
    std::string effective(const std::optional<std::string> &id) {
        if (!id) return "pending";
        const NodeRow *node = find(*id);
        return node == nullptr ? "pending" : effective(*node);
    }

    // Anything in the subtree under `id` has happened in the current execution.
    bool active(const std::string &id) {
        auto it = active_.find(id);
        if (it != active_.end()) return it->second;
        const NodeRow *node = find(id);
        bool result = false;
        if (node != nullptr) {
            active_[id] = false;  // guards against a malformed cycle
            result = effective(*node) != "pending";
            auto kids = children_.find(id);
            if (kids != children_.end())
                for (const auto &child : kids->second)
                    if (!result) result = active(child);
        }
        active_[id] = result;
        return result;
    }
    bool active(const std::optional<std::string> &id) { return id && active(*id); }

    // The winner of the RACE in its current activation, if decided.
    std::optional<std::string> race_winner(const std::string &race_id) const {
        auto it = decisions_.find(race_id);
        if (it == decisions_.end()) return std::nullopt;
        for (const auto &[stamp, winner] : it->second)
            if (!superseded(stamp)) return winner;
        return std::nullopt;
    }

    Inferred infer(const NodeRow &node) {
        if (node.id != instance_.root_node) {
            if (auto loop = superseded(node.stamp)) return {"pending", loop};
        }
        if (is_terminal(node.status)) return {node.status, std::nullopt};
        std::string child = node.id;
        std::set<std::string> seen{child};
        for (auto parent = parent_of(child); parent && seen.insert(*parent).second; parent = parent_of(child)) {
            const NodeRow *p = find(*parent);
            if (p == nullptr) break;
            const bool left = p->left_node == child;
            const bool right = p->right_node == child;
            if (p->node_type == "IF" && (left || right)) {
                const auto &other = left ? p->right_node : p->left_node;
                if (!active(child) && (is_terminal(effective(*p)) || active(other))) return {"skipped", p->id};
            } else if (p->node_type == "THEN" && right) {
                const std::string first = effective(p->left_node);
                // A cancelled left side is a RACE's or the instance's doing:
                // the decider is further up.
                const std::string self = effective(*p);
                if (first == "failed" || ((self == "completed" || self == "failed") && !active(child)))
                    return {"skipped", p->id};
            } else if (p->node_type == "RACE" && (left || right)) {
                const auto winner = race_winner(p->id);
                if (winner && *winner != (left ? "left" : "right")) return {"skipped", p->id};
                if (is_terminal(effective(*p)) && (effective(child) == "cancelled" || !active(child)))
                    return {"skipped", p->id};
            }
            child = *parent;
        }
        if (is_terminal(instance_.status)) return {"skipped", instance_.root_node};
        return {node.status, std::nullopt};
    }

    const InstanceView &instance_;
    const std::vector<NodeRow> *nodes_ = nullptr;
    std::map<std::string, std::size_t> index_;
    std::map<std::string, std::string> parent_;  // child id -> parent id
    std::map<std::string, std::vector<std::string>> children_;
    std::map<std::pair<std::string, std::string>, std::int64_t> iterations_;  // (loop stamp, loop id) -> iteration
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> decisions_;  // race id -> (stamp, winner)
    std::map<std::string, std::string> effective_;
    std::map<std::string, bool> active_;
};

}  // namespace

std::map<std::string, Inferred> infer_statuses(const InstanceView &instance, const std::vector<NodeRow> &nodes,
                                               const std::vector<ScopeRecord> &records) {
    return Inference(instance, nodes, records).run();
}

std::string infer_statuses_json(const InstanceView &instance, const std::vector<NodeRow> &nodes,
                                const std::vector<ScopeRecord> &records) {
    json out = json::object();
    for (const auto &[id, inferred] : infer_statuses(instance, nodes, records))
        out[id] = json::array({inferred.status, inferred.from_ancestor ? json(*inferred.from_ancestor) : json()});
    return out.dump();
}

}  // namespace durable::monitor
