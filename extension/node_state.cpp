// The one writer of node states (DESIGN §2.14; docs/ARCHITECTURE.md "Engine:
// the extension side"). df._run_step calls set_node_state directly; every
// other writer (the instance's finish and its compound mirrors, the daemon's
// bookkeeping, df.cancel) calls it as df._set_node_state, so a node row means
// the same thing whoever wrote it.
//
// PG zone only: no C++ object with a destructor lives here (DESIGN §2.11).
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
}

#include "extension/node_state.hpp"
#include "extension/spi_util.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df__set_node_state);
Datum df__set_node_state(PG_FUNCTION_ARGS);
}

namespace {

SPIPlanPtr node_state_plan = nullptr;

}  // namespace

namespace pgd {

bool set_node_state(const Datum *values, const char *nulls) {
    Oid types[kNodeStateArgs] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONOID, TEXTOID,
                                 TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, INT4OID, INT4OID};
    // Arguments left NULL keep: executed_query and attempts keep the row's
    // (attempts is raised to min_attempts); started_at keeps the row's start,
    // or is now() for a node that begins running or ends without a start on
    // record (a never-started node that is cancelled has none); stamp keeps
    // the row's status_details. A terminal status gets completed_at (given,
    // else now); a live one has none.
    SPIPlanPtr plan = keep_plan(&node_state_plan,
        "UPDATE df.nodes n"
        "   SET status = $4, result = $5, error = $6,"
        "       executed_query = COALESCE($9, n.executed_query),"
        "       attempts = COALESCE($10, GREATEST(n.attempts, $11)),"
        "       started_at = COALESCE($7, n.started_at,"
        "                             CASE WHEN $4 IN ('running', 'completed', 'failed') THEN now() END),"
        "       completed_at = CASE WHEN $4 IN ('completed', 'failed', 'cancelled')"
        "                           THEN COALESCE($8, clock_timestamp()) END,"
        "       status_details = CASE WHEN $3 IS NULL THEN n.status_details"
        "                             ELSE jsonb_build_object('execution_id', $3) END,"
        "       updated_at = COALESCE($8, clock_timestamp())"
        " WHERE n.instance_id = $1 AND n.id = $2",
        kNodeStateArgs, types);
    expect_spi(SPI_execute_plan(plan, const_cast<Datum *>(values), nulls, false, 0), SPI_OK_UPDATE,
               "update of df.nodes");
    return SPI_processed > 0;
}

}  // namespace pgd

// df._set_node_state(p_instance_id text, p_node_id text, p_stamp text,
//                    p_status text, p_result json, p_error text,
//                    p_started_at timestamptz, p_completed_at timestamptz,
//                    p_executed_query text, p_attempts int, p_min_attempts int)
//   RETURNS boolean
// Runs with the caller's rights (the daemon's role, or the extension as table
// owner): EXECUTE is the engine's alone (sql/parts/90_privileges.sql).
Datum df__set_node_state(PG_FUNCTION_ARGS) {
    Datum values[pgd::kNodeStateArgs];
    char nulls[pgd::kNodeStateArgs];
    for (int i = 0; i < pgd::kNodeStateArgs; ++i) {
        const bool given = i < PG_NARGS() && !PG_ARGISNULL(i);
        values[i] = given ? PG_GETARG_DATUM(i) : (Datum)0;
        nulls[i] = given ? ' ' : 'n';
    }
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    int nest = pgd::pin_search_path();
    bool found = pgd::set_node_state(values, nulls);
    pgd::unpin_search_path(nest);
    SPI_finish();
    PG_RETURN_BOOL(found);
}
