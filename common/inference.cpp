#include "common/inference.hpp"

#include <functional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/leaf_config.hpp"
#include "common/protocol.hpp"
#include "common/truthiness.hpp"

namespace durable::monitor {

namespace {

using json = nlohmann::json;

bool is_terminal(const std::string &status) {
    return status == "completed" || status == "failed" || status == "cancelled";
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
                    if (config.contains("condition_node") && config["condition_node"].is_string()) {
                        parent_[config["condition_node"].get<std::string>()] = node.id;
                        conditions_[node.id] = config["condition_node"].get<std::string>();
                    }
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
            if (node->node_type == "RETRY" && value.contains("attempt") && value["attempt"].is_number_integer()) {
                iterations_[{record.stamp, record.node_id}] = value["attempt"].get<std::int64_t>();
                const bool waiting = value.contains("waiting") && value["waiting"] == true;
                retries_[record.node_id].push_back({record.stamp, waiting});
            }
            if (node->node_type == "TIMEOUT" && value.contains("timed_out") && value["timed_out"] == true)
                timeouts_[record.node_id].push_back(record.stamp);
        }
    }

    std::map<std::string, Inferred> run() {
        std::map<std::string, Inferred> out;
        for (const auto &node : *nodes_) out[node.id] = status_of(node);
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
        const auto parsed = protocol::parse_stamp(*stamp);
        if (!parsed) return std::nullopt;
        if (parsed->execution < instance_.execution) return instance_.root_node;
        std::string scope = protocol::root_stamp(parsed->instance_id, parsed->execution);
        for (const auto &[child, generation] : parsed->scopes) {
            const auto parent = parent_of(child);
            if (parent) {
                const NodeRow *loop = find(*parent);
                // A RETRY's attempts are generations of its child scope, as a
                // LOOP's iterations are.
                if (loop != nullptr && (loop->node_type == "LOOP" || loop->node_type == "RETRY") &&
                    loop->left_node == child) {
                    auto it = iterations_.find({scope, *parent});
                    const std::int64_t current = it == iterations_.end() ? 1 : it->second;
                    if (generation < current) return *parent;
                }
            }
            scope = protocol::child_stamp(scope, child, generation);
        }
        return std::nullopt;
    }

    // The status that counts for the current execution.
    const std::string &effective(const NodeRow &node) {
        auto it = effective_.find(node.id);
        if (it != effective_.end()) return it->second;
        static const std::string pending = "pending";
        // The root is the root of every execution: its row (stamped by
        // whichever execution first wrote it) is never a superseded one.
        const bool old = node.id != instance_.root_node && superseded(node.stamp);
        const std::string &status = old ? pending : node.status;
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

    std::optional<std::string> condition_of(const NodeRow &node) const {
        auto it = conditions_.find(node.id);
        if (it == conditions_.end()) return std::nullopt;
        return it->second;
    }

    // The terminal status a node has reached in the current execution: its
    // own row's, or, for a compound node whose row is not written yet (its
    // status rides along with the daemon's next commit, which may be a step
    // that is still running), the one its children have decided.
    std::optional<std::string> settled(const std::string &id) {
        auto it = settled_.find(id);
        if (it != settled_.end()) return it->second;
        settled_[id] = std::nullopt;  // guards against a malformed cycle
        const NodeRow *node = find(id);
        std::optional<std::string> result;
        if (node != nullptr) {
            const std::string &own = effective(*node);
            result = is_terminal(own) ? std::optional<std::string>(own) : decided_by_children(*node);
        }
        settled_[id] = result;
        return result;
    }
    std::optional<std::string> settled(const std::optional<std::string> &id) {
        if (!id) return std::nullopt;
        return settled(*id);
    }
    static bool failed_or_cancelled(const std::optional<std::string> &status) {
        return status && (*status == "failed" || *status == "cancelled");
    }

    // A compound node's outcome as its children show it (SPEC §10.3-§10.6).
    // A break's path is not derived: it completes with the daemon's next
    // commit.
    std::optional<std::string> decided_by_children(const NodeRow &node) {
        const std::string &type = node.node_type;
        if (type == "THEN") {
            if (auto second = settled(node.right_node)) return second;
            if (auto first = settled(node.left_node); failed_or_cancelled(first)) return first;
        } else if (type == "IF") {
            if (auto condition = settled(condition_of(node)); failed_or_cancelled(condition)) return condition;
            if (auto branch = settled(node.left_node)) return branch;
            if (auto branch = settled(node.right_node)) return branch;
        } else if (type == "JOIN") {
            bool failed = false;
            bool cancelled = false;
            for (const auto &branch : children_of(node)) {
                const auto status = settled(branch);
                if (!status) return std::nullopt;  // waits for all
                failed = failed || *status == "failed";
                cancelled = cancelled || *status == "cancelled";
            }
            // A cancelled branch means the instance was cancelled while the
            // JOIN waited: it never got to decide.
            return cancelled ? "cancelled" : failed ? "failed" : "completed";
        } else if (type == "RACE") {
            if (const auto winner = race_winner(node.id))
                return settled(*winner == "left" ? node.left_node : node.right_node);
        } else if (type == "LOOP") {
            if (auto body = settled(node.left_node); failed_or_cancelled(body)) return body;
            if (auto condition = settled(condition_of(node)); failed_or_cancelled(condition)) return condition;
        } else if (type == "RETRY") {
            // A failed attempt decides only when it was the last one.
            const auto child = settled(node.left_node);
            if (!child || *child != "failed") return child;
            const RetryState state = retry_state(node.id);
            if (state.waiting || state.attempt < max_attempts(node)) return std::nullopt;
            return child;
        } else if (type == "TIMEOUT") {
            if (timed_out(node.id)) return std::string("failed");
            return settled(node.left_node);
        }
        return std::nullopt;
    }

    struct RetryState {
        std::int64_t attempt = 1;
        bool waiting = false;
    };
    // The attempt a RETRY is on in its current activation, and whether it
    // waits for it (the backoff).
    RetryState retry_state(const std::string &retry_id) const {
        auto it = retries_.find(retry_id);
        if (it == retries_.end()) return {};
        for (const auto &[stamp, waiting] : it->second) {
            if (superseded(stamp)) continue;
            auto at = iterations_.find({stamp, retry_id});
            return {at == iterations_.end() ? 1 : at->second, waiting};
        }
        return {};
    }
    static std::int64_t max_attempts(const NodeRow &node) {
        try {
            return leaf::read_retry(node.query).max_attempts;
        } catch (const std::exception &) {
            return 1;
        }
    }
    bool timed_out(const std::string &timeout_id) const {
        auto it = timeouts_.find(timeout_id);
        if (it == timeouts_.end()) return false;
        for (const auto &stamp : it->second)
            if (!superseded(stamp)) return true;
        return false;
    }
    std::vector<std::string> children_of(const NodeRow &node) const {
        auto it = children_.find(node.id);
        return it == children_.end() ? std::vector<std::string>{} : it->second;
    }

    // The winner of the RACE in its current activation, if decided.
    std::optional<std::string> race_winner(const std::string &race_id) const {
        auto it = decisions_.find(race_id);
        if (it == decisions_.end()) return std::nullopt;
        for (const auto &[stamp, winner] : it->second)
            if (!superseded(stamp)) return winner;
        return std::nullopt;
    }

    // The IF arm its completed condition chooses (left = truthy), when the
    // condition's result is known.
    std::optional<std::string> chosen_arm(const NodeRow &node) {
        const auto condition = condition_of(node);
        if (!condition || settled(*condition) != std::optional<std::string>("completed")) return std::nullopt;
        const NodeRow *judged = find(*condition);
        if (judged == nullptr || !judged->result || effective(*judged) != "completed") return std::nullopt;
        return is_truthy(*judged->result) ? node.left_node : node.right_node;
    }

    // The ancestor that decided, in the current execution, that `node`
    // will not run (any more): an IF that took the other arm, a THEN whose
    // left side failed, a RACE whose other branch won, or any ancestor that
    // ended (completed or failed) without it. A cancelled ancestor is a
    // RACE's or the instance's doing: the decider is further up.
    std::optional<std::string> decider(const NodeRow &node) {
        std::string child = node.id;
        std::set<std::string> seen{child};
        for (auto parent = parent_of(child); parent && seen.insert(*parent).second; parent = parent_of(child)) {
            const NodeRow *p = find(*parent);
            if (p == nullptr) break;
            const bool left = p->left_node == child;
            const bool right = p->right_node == child;
            const auto status = settled(p->id);
            if (status && *status != "cancelled" && !active(child)) return p->id;
            if (p->node_type == "IF" && (left || right)) {
                const auto &other = left ? p->right_node : p->left_node;
                const auto arm = chosen_arm(*p);
                if (!active(child) && (active(other) || (arm && *arm != child))) return p->id;
            } else if (p->node_type == "THEN" && right) {
                if (settled(p->left_node) == std::optional<std::string>("failed")) return p->id;
            } else if (p->node_type == "RACE" && (left || right)) {
                const auto winner = race_winner(p->id);
                if (winner && *winner != (left ? "left" : "right")) return p->id;
            }
            child = *parent;
        }
        return std::nullopt;
    }

    // Whether a node that is neither terminal nor skipped is running: it is
    // the root of a running instance, something under it has happened in
    // the current execution, or its parent runs and, by the semantics of
    // the parent's type, runs it now (the daemon starts a node as soon as
    // its turn comes; a SQL step's own record commits only when it ends).
    bool in_progress(const NodeRow &node) {
        if (node.id == instance_.root_node) return instance_.status == "running";
        if (active(node.id)) return true;
        const auto parent = parent_of(node.id);
        const NodeRow *p = parent ? find(*parent) : nullptr;
        if (p == nullptr || status_of(*p).status != "running") return false;
        const std::string &type = p->node_type;
        const bool is_condition = condition_of(*p) == std::optional<std::string>(node.id);
        if (type == "THEN")
            return p->left_node == node.id ||
                   (p->right_node == node.id && settled(p->left_node) == std::optional<std::string>("completed"));
        if (type == "IF") {
            if (is_condition) return true;
            const auto arm = chosen_arm(*p);
            return arm && *arm == node.id;
        }
        if (type == "JOIN" || type == "RACE") return true;
        if (type == "LOOP") {
            if (is_condition) return settled(p->left_node) == std::optional<std::string>("completed");
            return p->left_node == node.id;
        }
        if (type == "RETRY") return p->left_node == node.id && !retry_state(p->id).waiting;
        if (type == "TIMEOUT") return p->left_node == node.id;
        return false;
    }

    const Inferred &status_of(const NodeRow &node) {
        auto it = inferred_.find(node.id);
        if (it != inferred_.end()) return it->second;
        inferred_[node.id] = {node.status, std::nullopt};  // guards against a malformed cycle
        Inferred result = infer(node);
        return inferred_[node.id] = std::move(result);
    }

    Inferred infer(const NodeRow &node) {
        const auto loop = node.id != instance_.root_node ? superseded(node.stamp) : std::nullopt;
        if (auto status = settled(node.id)) return {*status, std::nullopt};
        if (auto by = decider(node)) return {"skipped", by};
        if (is_terminal(instance_.status)) return {"skipped", instance_.root_node};
        if (instance_.status != "running") return {loop ? "pending" : node.status, loop};
        if (effective(node) == "running" || in_progress(node)) return {"running", std::nullopt};
        if (loop) return {"pending", loop};
        return {node.status, std::nullopt};
    }

    const InstanceView &instance_;
    const std::vector<NodeRow> *nodes_ = nullptr;
    std::map<std::string, std::size_t> index_;
    std::map<std::string, std::string> parent_;  // child id -> parent id
    std::map<std::string, std::vector<std::string>> children_;
    std::map<std::pair<std::string, std::string>, std::int64_t> iterations_;  // (loop stamp, loop id) -> iteration
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> decisions_;  // race id -> (stamp, winner)
    std::map<std::string, std::vector<std::pair<std::string, bool>>> retries_;  // retry id -> (stamp, waiting)
    std::map<std::string, std::vector<std::string>> timeouts_;  // timeout id -> stamps where it timed out
    std::map<std::string, std::string> conditions_;  // IF/LOOP id -> its condition node
    std::map<std::string, std::string> effective_;
    std::map<std::string, bool> active_;
    std::map<std::string, std::optional<std::string>> settled_;
    std::map<std::string, Inferred> inferred_;
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
