// df.instance_nodes' inferred_status (SPEC.md §15.5): what a node's state
// means for the current execution, computed from its physical df.nodes row,
// the scope stamp it was last written under, the loop checkpoints and the
// RACE decisions. df.explain's live markers use the same answer.
//
// Rules, first that applies (SPEC §15.5, with the live states spelled out):
//  (a) terminal in the current execution -> that status: the node's own row
//      if written in the current generation of its loop scopes, else, for a
//      compound node, the outcome its children have decided (a THEN whose
//      right side ended or left side failed, an IF whose taken arm ended, a
//      JOIN whose branches all ended, a RACE whose winner ended, a LOOP whose
//      body or condition failed): a compound node's own row is written with
//      the daemon's next commit, which may be a step still running;
//  (b) unable to run in the current execution -> skipped, from the deciding
//      node: the IF whose other arm was taken (or chosen by its completed
//      condition), the THEN whose left side failed, the RACE whose other
//      branch won, an ancestor that ended without it; else the root when the
//      instance is terminal. This covers rows of superseded generations too,
//      so once an instance is terminal no node reads pending or running;
//  (c) running: its row says so, or the instance runs and the node is its
//      root, or something under it happened in the current execution, or its
//      parent runs and runs it now (a THEN's left side, or its right side
//      once the left completed; an IF's condition, or the arm its condition
//      chose; every JOIN and RACE branch; a LOOP's body, or its condition
//      once the body completed). A SQL step's own row commits with the step,
//      so its running state exists only here;
//  (d) written under a superseded generation of its loop scope -> pending,
//      from that LOOP (a root loop's older execution, or an older iteration
//      of a non-root loop);
//  (e) the physical status.
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
    std::optional<std::string> result; // needed only for IF conditions (which arm runs)
};

// A df._activations row of a LOOP (checkpoint {"iteration":k,...}), a RACE
// (decision {"race_winner":"left"|"right"}), a RETRY (checkpoint
// {"attempt":k} or {"attempt":k,"waiting":true}: attempts are generations of
// its child scope) or a TIMEOUT ({"timed_out":true|false}).
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
