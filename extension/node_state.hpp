// The one writer of node states (df.nodes status, result, error, times and
// stamp; DESIGN §2.14), callable from C by df._run_step and from SQL as
// df._set_node_state (sql/parts/40_runtime.sql describes its arguments).
#pragma once

extern "C" {
#include "postgres.h"
}

namespace pgd {

// The arguments of df._set_node_state, in its order and with its types.
constexpr int kNodeStateArgs = 11;
enum NodeStateArg {
    NS_INSTANCE_ID,     // text
    NS_NODE_ID,         // text
    NS_STAMP,           // text, NULL keeps status_details
    NS_STATUS,          // text
    NS_RESULT,          // json
    NS_ERROR,           // text
    NS_STARTED_AT,      // timestamptz
    NS_COMPLETED_AT,    // timestamptz
    NS_EXECUTED_QUERY,  // text
    NS_ATTEMPTS,        // int4
    NS_MIN_ATTEMPTS,    // int4
};

// Writes the node's row; returns whether it exists. `nulls` as SPI's (' ' or
// 'n'). The caller is connected to SPI, runs as a role that may update
// df.nodes, and has search_path pinned (pgd::pin_search_path or
// pgd::become_table_owner).
bool set_node_state(const Datum *values, const char *nulls);

}  // namespace pgd
