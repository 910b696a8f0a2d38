// The internal half of the monitoring reads (SPEC.md §15): df._monitor.
//
// The public monitoring functions are SQL (sql/parts/50_monitor.sql) and run
// with the caller's privileges, so row security decides what they show. The
// engine's internal tables (df._activations, df._executions) are granted to
// no one, so what the SQL needs from them comes through this one function:
// it first reads the instance as the caller (row security: unknown, invisible
// and other roles' ids alike give NULL), then runs one fixed query as the
// table owner with search_path pinned, and returns its answer as JSON text.
//
// Kinds:
//   'inference'  {"<node>":["<inferred_status>","<ancestor>"|null],...} (common/inference)
//   'executions' {"current_events":N,"current_started":ts|null,"past":[{execution,status,event_count,
//                 started_at,ended_at,output},...]} newest `arg` past executions
//   'history'    [{execution,node_id,status,result,updated_at},...] leaf activations of the past
//                executions among the newest `arg`
//
// Data crosses into the C++ zone only as palloc'd C strings (boundary.hpp).
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
}

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/inference.hpp"
#include "extension/boundary.hpp"
#include "extension/spi_util.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df__monitor);
Datum df__monitor(PG_FUNCTION_ARGS);
}

namespace {

SPIPlanPtr visible_plan = nullptr;
SPIPlanPtr nodes_plan = nullptr;
SPIPlanPtr records_plan = nullptr;
SPIPlanPtr executions_plan = nullptr;
SPIPlanPtr history_plan = nullptr;

const char *const kExecutionsSql =
    "SELECT json_build_object("
    "  'current_events', (SELECT count(*) FROM df._activations WHERE instance_id = $1 AND execution = $3),"
    "  'current_started', (SELECT max(ended_at) FROM df._executions WHERE instance_id = $1 AND execution < $3),"
    "  'past', COALESCE((SELECT json_agg(x ORDER BY x.execution DESC) FROM ("
    "      SELECT execution, status, event_count, started_at, ended_at, output FROM df._executions"
    "       WHERE instance_id = $1 AND execution < $3 ORDER BY execution DESC LIMIT $2) x), '[]'::json))::text";

const char *const kHistorySql =
    "SELECT COALESCE(json_agg(x ORDER BY x.execution DESC, x.node_id), '[]'::json)::text FROM ("
    "  SELECT DISTINCT ON (a.execution, a.node_id) a.execution, a.node_id, a.status, a.result, a.updated_at"
    "    FROM df._activations a"
    "    JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id"
    "   WHERE a.instance_id = $1 AND a.execution < $3 AND a.execution > $3 - $2"
    "     AND n.node_type IN ('SQL', 'HTTP', 'SLEEP', 'WAIT_SCHEDULE', 'SIGNAL')"
    "   ORDER BY a.execution, a.node_id, a.updated_at DESC) x";

struct Visible {
    bool found;
    char *status;
    char *root_node;
    int64 execution;
};

char *copy_value(MemoryContext cxt, HeapTuple tuple, TupleDesc desc, int column) {
    char *value = SPI_getvalue(tuple, desc, column);
    return value != nullptr ? MemoryContextStrdup(cxt, value) : nullptr;
}

// Runs as the caller: row security decides.
Visible visible_instance(MemoryContext cxt, const char *instance_id) {
    Oid types[1] = {TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(
        &visible_plan, "SELECT status, root_node, execution_count FROM df.instances WHERE id = $1", 1, types);
    Datum values[1] = {CStringGetTextDatum(instance_id)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 1), SPI_OK_SELECT, "read of df.instances");
    Visible v = {false, nullptr, nullptr, 1};
    if (SPI_processed == 1) {
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        v.found = true;
        v.status = copy_value(cxt, tuple, desc, 1);
        v.root_node = copy_value(cxt, tuple, desc, 2);
        bool isnull = false;
        Datum execution = SPI_getbinval(tuple, desc, 3, &isnull);
        v.execution = isnull ? 1 : DatumGetInt64(execution);
    }
    SPI_freetuptable(SPI_tuptable);
    return v;
}

// Rows of a query as palloc'd C strings, row-major.
struct Rows {
    int count;
    int width;
    char **cells;
    const char *cell(int row, int column) const { return cells[row * width + column]; }
};

Rows fetch(MemoryContext cxt, SPIPlanPtr plan, Datum *values) {
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, true, 0), SPI_OK_SELECT, "monitoring read");
    Rows rows;
    rows.count = static_cast<int>(SPI_processed);
    rows.width = SPI_tuptable->tupdesc->natts;
    rows.cells = static_cast<char **>(
        MemoryContextAllocZero(cxt, sizeof(char *) * static_cast<Size>(rows.count * rows.width + 1)));
    for (int r = 0; r < rows.count; ++r)
        for (int c = 0; c < rows.width; ++c)
            rows.cells[r * rows.width + c] = copy_value(cxt, SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1);
    SPI_freetuptable(SPI_tuptable);
    return rows;
}

// A single text value of a fixed query, run with ($1 id, $2 arg, $3 execution).
char *scalar(MemoryContext cxt, SPIPlanPtr *slot, const char *sql, const char *instance_id, int64 arg,
             int64 execution) {
    Oid types[3] = {TEXTOID, INT8OID, INT8OID};
    SPIPlanPtr plan = pgd::keep_plan(slot, sql, 3, types);
    Datum values[3] = {CStringGetTextDatum(instance_id), Int64GetDatum(arg), Int64GetDatum(execution)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, true, 1), SPI_OK_SELECT, "monitoring read");
    char *value = SPI_processed == 1 ? copy_value(cxt, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : nullptr;
    SPI_freetuptable(SPI_tuptable);
    return value;
}

std::optional<std::string> opt(const char *value) {
    return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
}

}  // namespace

// df._monitor(instance_id text, kind text, arg bigint) RETURNS text
Datum df__monitor(PG_FUNCTION_ARGS) {
    const char *instance_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char *kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
    const int64 arg = PG_GETARG_INT64(2);
    const bool inference = strcmp(kind, "inference") == 0;
    if (!inference && strcmp(kind, "executions") != 0 && strcmp(kind, "history") != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("df._monitor: unknown kind '%s'", kind)));

    MemoryContext cxt = CurrentMemoryContext;  // survives SPI_finish
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    int nest = pgd::pin_search_path();
    const Visible visible = visible_instance(cxt, instance_id);
    pgd::unpin_search_path(nest);
    if (!visible.found) {
        SPI_finish();
        PG_RETURN_NULL();
    }

    pgd::SavedUser saved = pgd::become_table_owner();
    char *answer = nullptr;
    Rows nodes = {0, 0, nullptr};
    Rows records = {0, 0, nullptr};
    if (inference) {
        Oid types[1] = {TEXTOID};
        Datum values[1] = {CStringGetTextDatum(instance_id)};
        nodes = fetch(cxt,
                      pgd::keep_plan(&nodes_plan,
                                     "SELECT n.id, n.node_type, n.query, n.left_node, n.right_node, n.status,"
                                     "       n.status_details ->> 'execution_id',"
                                     // IF conditions' results tell which arm runs; a regular
                                     // expression, not a cast, so no stored text can fail the read.
                                     "       CASE WHEN n.id IN (SELECT substring(c.query FROM"
                                     "                            '\"condition_node\"\\s*:\\s*\"([0-9a-f]{8})\"')"
                                     "                            FROM df.nodes c"
                                     "                           WHERE c.instance_id = $1 AND c.node_type = 'IF')"
                                     "            THEN n.result::text END"
                                     "  FROM df.nodes n WHERE n.instance_id = $1",
                                     1, types),
                      values);
        // Loop and RETRY checkpoints, RACE and TIMEOUT decisions (the scope
        // bookkeeping rows).
        records = fetch(cxt,
                        pgd::keep_plan(&records_plan,
                                       "SELECT a.stamp, a.node_id, a.result FROM df._activations a"
                                       "  JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id"
                                       " WHERE a.instance_id = $1 AND n.node_type IN ('LOOP', 'RACE', 'RETRY', 'TIMEOUT')",
                                       1, types),
                        values);
    } else if (strcmp(kind, "executions") == 0) {
        answer = scalar(cxt, &executions_plan, kExecutionsSql, instance_id, arg, visible.execution);
    } else {
        answer = scalar(cxt, &history_plan, kHistorySql, instance_id, arg, visible.execution);
    }
    pgd::restore_user(saved);
    SPI_finish();

    if (!inference) {
        if (answer == nullptr) PG_RETURN_NULL();
        PG_RETURN_TEXT_P(cstring_to_text(answer));
    }
    return pgd::text_result([&] {
        durable::monitor::InstanceView view;
        view.id = instance_id;
        view.status = visible.status != nullptr ? visible.status : "";
        view.root_node = visible.root_node != nullptr ? visible.root_node : "";
        view.execution = visible.execution;
        std::vector<durable::monitor::NodeRow> node_rows;
        node_rows.reserve(static_cast<std::size_t>(nodes.count));
        for (int r = 0; r < nodes.count; ++r) {
            durable::monitor::NodeRow row;
            row.id = nodes.cell(r, 0);
            row.node_type = nodes.cell(r, 1);
            row.query = opt(nodes.cell(r, 2));
            row.left_node = opt(nodes.cell(r, 3));
            row.right_node = opt(nodes.cell(r, 4));
            row.status = nodes.cell(r, 5);
            row.stamp = opt(nodes.cell(r, 6));
            row.result = opt(nodes.cell(r, 7));
            node_rows.push_back(std::move(row));
        }
        std::vector<durable::monitor::ScopeRecord> scope_records;
        for (int r = 0; r < records.count; ++r)
            scope_records.push_back({records.cell(r, 0), records.cell(r, 1), opt(records.cell(r, 2))});
        return durable::monitor::infer_statuses_json(view, node_rows, scope_records);
    });
}
