// df.explain(input) (SPEC.md §16): a tree of an instance or of a graph that
// is only previewed. What to show is common/explain's business; this file
// reads df.instances / df.nodes rows and evaluates DSL text, both with the
// caller's privileges, so row security shows each role only its own
// instances and an expression can do no more than the caller could.
//
// The texts of §16 are returned, never raised. Data crosses from the PG zone
// to the C++ zone only as palloc'd C strings.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/explain.hpp"
#include "common/graph.hpp"
#include "extension/boundary.hpp"
#include "extension/spi_util.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df_explain);
}

namespace {

namespace ex = durable::explain;

// ---------------------------------------------------------------------------
// PG zone: reading an instance

// The df.instances row, copied out of SPI (NULL columns stay nullptr).
struct InstanceRow {
    bool found;
    char *root_node;
    char *label;
    char *status;
    char *error;
};

// The instance's nodes (df.instance_nodes, status = inferred) as parallel columns.
enum NodeColumn { kId, kNodeType, kQuery, kResultName, kLeftNode, kRightNode, kStatus, kResult, kAttempts, kNodeColumns };

struct NodeRows {
    int count;
    char **columns[kNodeColumns];
};

char *copy_value(MemoryContext target, HeapTuple tuple, TupleDesc desc, int column) {
    char *value = SPI_getvalue(tuple, desc, column);
    return value != nullptr ? MemoryContextStrdup(target, value) : nullptr;
}

void run_select(const char *sql, const char *instance_id) {
    Oid argtypes[1] = {TEXTOID};
    Datum args[1] = {CStringGetTextDatum(instance_id)};
    pgd::expect_spi(SPI_execute_with_args(sql, 1, argtypes, args, nullptr, true, 0), SPI_OK_SELECT, sql);
}

// Reads what the caller may see of the instance; all results are allocated
// in the caller's memory context so they outlive SPI_finish.
void fetch_instance(const char *instance_id, InstanceRow *instance, NodeRows *nodes) {
    MemoryContext caller = CurrentMemoryContext;
    *instance = InstanceRow{false, nullptr, nullptr, nullptr, nullptr};
    nodes->count = 0;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");

    run_select("SELECT root_node, label, status, error FROM df.instances WHERE id = $1", instance_id);
    if (SPI_processed > 0) {
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        instance->found = true;
        instance->root_node = copy_value(caller, tuple, desc, 1);
        instance->label = copy_value(caller, tuple, desc, 2);
        instance->status = copy_value(caller, tuple, desc, 3);
        instance->error = copy_value(caller, tuple, desc, 4);

        // Markers follow the inferred status of df.instance_nodes (SPEC §15.5):
        // untaken IF arms, RACE losers, the right of a failed THEN and what a
        // terminal instance never ran show as skipped.
        run_select("SELECT node_id, node_type, query, result_name, left_node, right_node, inferred_status, result, "
                   "       attempts FROM df.instance_nodes($1)",
                   instance_id);
        const int count = static_cast<int>(SPI_processed);
        nodes->count = count;
        for (int column = 0; column < kNodeColumns; ++column) {
            nodes->columns[column] =
                static_cast<char **>(MemoryContextAllocZero(caller, sizeof(char *) * static_cast<Size>(count + 1)));
            for (int row = 0; row < count; ++row)
                nodes->columns[column][row] =
                    copy_value(caller, SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column + 1);
        }
    }
    SPI_finish();
}

// ---------------------------------------------------------------------------
// PG zone: evaluating a DSL expression

struct Evaluation {
    char *value;  // the expression's text, nullptr when NULL or on error
    char *error;  // the error message, nullptr on success
};

// Runs `SELECT <expression>` as the caller in a subtransaction that is always
// rolled back: a preview leaves nothing behind, and an error in the
// expression becomes explain's answer instead of aborting the caller. Only a
// single statement is run, and a query cancel is not swallowed.
Evaluation evaluate_dsl(const char *expression) {
    MemoryContext caller_context = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(&sql, "SELECT %s", expression);

    char *volatile value = nullptr;
    ErrorData *volatile error = nullptr;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(caller_context);
    PG_TRY();
    {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        SPIPlanPtr plan = SPI_prepare(sql.data, 0, nullptr);
        if (plan == nullptr) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        // SPI would run "df.sql('x'); DROP TABLE t" as two statements.
        if (list_length(SPI_plan_get_plan_sources(plan)) != 1)
            ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("the input must be a single DSL expression")));
        const int rc = SPI_execute_plan(plan, nullptr, nullptr, false, 1);
        if (rc != SPI_OK_SELECT) elog(ERROR, "expression did not run as a SELECT: %s", SPI_result_code_string(rc));
        if (SPI_processed > 0 && SPI_tuptable->tupdesc->natts > 0)
            value = copy_value(caller_context, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
        SPI_finish();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        error = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(caller_context);
    CurrentResourceOwner = caller_owner;

    if (error != nullptr && error->sqlerrcode == ERRCODE_QUERY_CANCELED) ReThrowError(error);
    return Evaluation{error != nullptr ? nullptr : value, error != nullptr ? error->message : nullptr};
}

// ---------------------------------------------------------------------------
// C++ zone

std::optional<std::string> column_value(const NodeRows &rows, NodeColumn column, int row) {
    const char *value = rows.columns[column][row];
    return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
}

// The instance header and its tree, each node marked from its inferred status.
std::string instance_text(const char *instance_id, const InstanceRow &instance, const NodeRows &rows) {
    std::vector<durable::StoredNode> stored;
    std::map<std::string, std::string> status_by_id;
    std::map<std::string, long long> retry_attempts;  // RETRY id -> its attempt (SPEC §19.3)
    std::optional<std::string> root_result;
    const std::string root_id = instance.root_node;
    for (int row = 0; row < rows.count; ++row) {
        durable::StoredNode node;
        node.id = rows.columns[kId][row];
        node.node_type = rows.columns[kNodeType][row];
        node.query = column_value(rows, kQuery, row);
        node.result_name = column_value(rows, kResultName, row);
        node.left_node = column_value(rows, kLeftNode, row);
        node.right_node = column_value(rows, kRightNode, row);
        status_by_id[node.id] = rows.columns[kStatus][row];
        if (node.node_type == "RETRY" && rows.columns[kAttempts][row] != nullptr)
            retry_attempts[node.id] = std::atoll(rows.columns[kAttempts][row]);
        if (node.id == root_id) root_result = column_value(rows, kResult, row);
        stored.push_back(std::move(node));
    }
    const durable::Graph graph = durable::load_stored(root_id, stored);
    const std::string tree = ex::render_tree(
        graph, [&](durable::NodeIndex index) { return ex::marker_for_status(status_by_id.at(graph[index].id)); },
        [&](durable::NodeIndex index) {
            const auto it = retry_attempts.find(graph[index].id);
            return it == retry_attempts.end() ? std::string() : ex::attempt_note(it->second);
        });

    ex::InstanceSummary summary;
    summary.id = instance_id;
    if (instance.label != nullptr) summary.label = instance.label;
    summary.status = instance.status;
    // list_instances' output: the result when completed, the error or the
    // cancel reason when failed or cancelled.
    if (summary.status == "completed")
        summary.output = root_result;
    else if ((summary.status == "failed" || summary.status == "cancelled") && instance.error != nullptr)
        summary.output = instance.error;
    return ex::render_instance(summary, tree);
}

// ---------------------------------------------------------------------------
// PG zone: the modes

Datum plain_text(const char *message) { PG_RETURN_TEXT_P(cstring_to_text(message)); }

Datum explain_instance(const char *instance_id) {
    InstanceRow instance;
    NodeRows rows;
    fetch_instance(instance_id, &instance, &rows);
    if (!instance.found) return plain_text(psprintf("Instance '%s' not found", instance_id));
    if (rows.count == 0) return plain_text(psprintf("No nodes found for instance '%s'", instance_id));
    return pgd::text_result([&] { return instance_text(instance_id, instance, rows); });
}

Datum explain_expression(const char *expression) {
    const Evaluation evaluation = evaluate_dsl(expression);
    if (evaluation.error != nullptr)
        return plain_text(psprintf("Failed to evaluate expression: %s", evaluation.error));
    if (evaluation.value == nullptr) return plain_text("Expression returned NULL");
    const char *graph_json = evaluation.value;
    return pgd::text_result([&] { return ex::explain_graph_json(graph_json); });
}

}  // namespace

// df.explain(input text).
Datum df_explain(PG_FUNCTION_ARGS) {
    const char *input = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *trimmed = nullptr;
    ex::InputKind kind = ex::InputKind::unexplainable;
    pgd::Failure failure;
    if (!pgd::cpp_zone(failure, [&] {
            const std::string text = ex::trim(input);
            kind = ex::classify(text);
            trimmed = pgd::to_cstring(text);
        }))
        pgd::raise(failure);

    switch (kind) {
        case ex::InputKind::instance_id: return explain_instance(trimmed);
        case ex::InputKind::graph_json: return pgd::text_result([&] { return ex::explain_graph_json(trimmed); });
        case ex::InputKind::sql_statement: return pgd::text_result([&] { return ex::explain_sql(trimmed); });
        case ex::InputKind::dsl_expression: return explain_expression(trimmed);
        case ex::InputKind::unexplainable: break;
    }
    return plain_text(ex::kCannotExplain);
}
