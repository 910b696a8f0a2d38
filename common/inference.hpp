// df.instance_nodes' inferred_status (SPEC.md §15.5): what a node's state
// means for the current execution, computed from its physical df.nodes row,
// the scope stamp it was last written under, the loop checkpoints and the
// RACE decisions. df.explain's live markers use the same answer.
//
// Rules, first that applies:
//  (1) written under a superseded generation of its loop scope -> pending,
//      from that LOOP (a root loop's older execution, or an older iteration
//      of a non-root loop);
//  (2) terminal physical status -> itself;
//  (3) pending/running but unable to run -> skipped, from the deciding node:
//      the IF whose other arm was taken, the THEN whose left side failed (or
//      which ended without running its right side), the RACE whose other
//      branch won; else the root when the instance is terminal;
//  (4) the physical status.
//
// Pure C++: the extension reads the rows.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace durable::monitor {

struct NodeRow {
    std::string id;
    std::string node_type;
    std::optional<std::string> query;  // JSON config of IF/LOOP (condition_node) and JOIN (extra_nodes)
    std::optional<std::string> left_node;
    std::optional<std::string> right_node;
    std::string status;                // physical
    std::optional<std::string> stamp;  // status_details.execution_id
};

// A df._activations row of a LOOP (checkpoint {"iteration":k,...}) or a
// RACE (decision {"race_winner":"left"|"right"}).
struct ScopeRecord {
    std::string stamp;
    std::string node_id;
    std::optional<std::string> result;
};

struct InstanceView {
    std::string id;
    std::string status;
    std::string root_node;
    std::int64_t execution = 1;
};

struct Inferred {
    std::string status;
    std::optional<std::string> from_ancestor;
};

// One entry per node id.
std::map<std::string, Inferred> infer_statuses(const InstanceView &instance, const std::vector<NodeRow> &nodes,
                                               const std::vector<ScopeRecord> &records);

// The same as compact JSON: {"<node id>":["<status>","<ancestor>"|null],...}.
std::string infer_statuses_json(const InstanceView &instance, const std::vector<NodeRow> &nodes,
                                const std::vector<ScopeRecord> &records);

}  // namespace durable::monitor
