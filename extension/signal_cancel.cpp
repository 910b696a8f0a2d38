// df.signal and df.cancel (SPEC.md §13): every input to the daemon enters
// through the extension as a row plus a NOTIFY, which PostgreSQL delivers only
// when the caller commits (DESIGN §1). Both are allowed inside workflow steps.
//
// Visibility is decided by a read as the caller, so row security decides
// exactly as it does for df.status: unknown, uncommitted and other roles'
// instances look alike ("Instance not found or access denied"), superusers
// see all. The writes then run as the table owner.
//
// Lock order: the instance row first, then its activations, nodes and
// signals — the order df._run_step and the daemon use — so concurrent
// writers of one instance serialize without deadlocks. df.cancel skips
// activation rows an in-flight step holds; that step sees the cancellation
// when it records its outcome (df._run_step rolls the step back and records
// it cancelled), and the daemon interrupts it on the NOTIFY.
//
// PG zone only (no C++ objects with destructors).
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
}

#include <cctype>
#include <cstring>

#include "common/protocol.hpp"
#include "extension/pg_compat.hpp"
#include "extension/spi_util.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df_signal);
PG_FUNCTION_INFO_V1(df_cancel);
Datum df_signal(PG_FUNCTION_ARGS);
Datum df_cancel(PG_FUNCTION_ARGS);
}

namespace {

SPIPlanPtr visible_plan = nullptr;
SPIPlanPtr insert_signal_plan = nullptr;
SPIPlanPtr status_plan = nullptr;
SPIPlanPtr cancel_instance_plan = nullptr;
SPIPlanPtr cancel_rest_plan = nullptr;

bool is_blank(const char *s) {
    for (; *s; ++s)
        if (!isspace(static_cast<unsigned char>(*s))) return false;
    return true;
}

// The instance's status as the caller sees it under row security, or nullptr.
// Runs as the caller.
char *visible_status(const char *instance_id) {
    Oid types[1] = {TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&visible_plan, "SELECT status FROM df.instances WHERE id = $1", 1, types);
    Datum values[1] = {CStringGetTextDatum(instance_id)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, true, 1), SPI_OK_SELECT, "read of df.instances");
    char *status = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : nullptr;
    SPI_freetuptable(SPI_tuptable);
    return status;
}

[[noreturn]] void not_found(const char *instance_id) {
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                    errmsg("Instance not found or access denied: %s", instance_id)));
    pg_unreachable();
}

[[noreturn]] void not_running(const char *instance_id, const char *status) {
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("Instance %s is not running (status: %s)", instance_id, status)));
    pg_unreachable();
}

bool is_live(const char *status) { return strcmp(status, "pending") == 0 || strcmp(status, "running") == 0; }

// The payload as stored: valid JSON text as is, anything else as a JSON string.
char *signal_payload(const char *data) {
    char *copy = pstrdup(data);
    if (pgd_is_valid_json(copy, static_cast<int>(strlen(copy)), GetDatabaseEncoding())) return copy;
    StringInfoData buf;
    initStringInfo(&buf);
    escape_json(&buf, data);
    return buf.data;
}

// Queues NOTIFY df_wakeup, '<kind>:<id>'; delivered only at commit.
void notify_daemon(const char *kind, const char *instance_id) {
    char payload[64];
    snprintf(payload, sizeof payload, "%s:%s", kind, instance_id);
    Async_Notify("df_wakeup", payload);
}

}  // namespace

// df.signal(instance_id text, signal_name text, signal_data text DEFAULT '{}') RETURNS text
Datum df_signal(PG_FUNCTION_ARGS) {
    const char *instance_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char *signal_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
    const char *data = text_to_cstring(PG_GETARG_TEXT_PP(2));
    if (is_blank(instance_id))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("Instance ID cannot be empty")));
    if (is_blank(signal_name))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("Signal name cannot be empty")));
    char *payload = signal_payload(data);

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    int nest = pgd::pin_search_path();
    char *status = visible_status(instance_id);
    if (status == nullptr) not_found(instance_id);
    if (!is_live(status)) not_running(instance_id, status);

    // Insert only while the instance is still live (the statement sees the
    // latest commits): a signal never lands on an instance that has ended.
    pgd::SavedUser saved = pgd::become_table_owner();
    Oid types[3] = {TEXTOID, TEXTOID, TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&insert_signal_plan,
                                     "INSERT INTO df._signals (instance_id, signal_name, payload) "
                                     "SELECT i.id, $2, $3 FROM df.instances i "
                                     "WHERE i.id = $1 AND i.status IN ('pending', 'running')",
                                     3, types);
    Datum values[3] = {CStringGetTextDatum(instance_id), CStringGetTextDatum(signal_name),
                       CStringGetTextDatum(payload)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_INSERT, "insert into df._signals");
    bool inserted = SPI_processed == 1;
    if (!inserted) {
        Oid status_types[1] = {TEXTOID};
        SPIPlanPtr read = pgd::keep_plan(&status_plan, "SELECT status FROM df.instances WHERE id = $1", 1,
                                         status_types);
        pgd::expect_spi(SPI_execute_plan(read, values, nullptr, false, 1), SPI_OK_SELECT, "read of df.instances");
        status = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : nullptr;
    }
    pgd::restore_user(saved);
    if (!inserted) {
        if (status == nullptr) not_found(instance_id);
        not_running(instance_id, status);
    }
    pgd::unpin_search_path(nest);
    SPI_finish();

    notify_daemon("signal", instance_id);
    PG_RETURN_TEXT_P(cstring_to_text("OK"));
}

// df.cancel(instance_id text, reason text DEFAULT 'Cancelled by user') RETURNS text
Datum df_cancel(PG_FUNCTION_ARGS) {
    const char *instance_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char *reason = text_to_cstring(PG_GETARG_TEXT_PP(1));

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    int nest = pgd::pin_search_path();
    if (visible_status(instance_id) == nullptr) not_found(instance_id);

    pgd::SavedUser saved = pgd::become_table_owner();
    Oid types[3] = {TEXTOID, TEXTOID, TEXTOID};
    // A terminal instance is left unchanged (the WHERE re-checks the latest
    // committed status); pending and running ones become cancelled at once.
    SPIPlanPtr cancel_instance = pgd::keep_plan(&cancel_instance_plan,
        "UPDATE df.instances SET status = 'cancelled', error = $2, updated_at = clock_timestamp() "
        "WHERE id = $1 AND status IN ('pending', 'running')",
        2, types);
    // $3: the node error prefix of the step protocol (common/protocol.hpp).
    Datum values[3] = {CStringGetTextDatum(instance_id), CStringGetTextDatum(reason),
                       CStringGetTextDatum(durable::protocol::kCancelledPrefix)};
    pgd::expect_spi(SPI_execute_plan(cancel_instance, values, nullptr, false, 0), SPI_OK_UPDATE,
                    "cancel of df.instances");
    bool cancelled = SPI_processed == 1;
    if (cancelled) {
        // Its waiting activations (timers, signal waits, recorded steps) and
        // their nodes become cancelled; its queued signals go (SPEC §13).
        SPIPlanPtr rest = pgd::keep_plan(&cancel_rest_plan,
            "WITH acts AS ("
            "  UPDATE df._activations a"
            "     SET status = 'cancelled', error = $3 || $2,"
            "         completed_at = clock_timestamp(), updated_at = clock_timestamp()"
            "    FROM (SELECT instance_id, stamp, node_id FROM df._activations"
            "           WHERE instance_id = $1 AND status IN ('pending', 'running')"
            "           FOR UPDATE SKIP LOCKED) l"
            "   WHERE a.instance_id = l.instance_id AND a.stamp = l.stamp AND a.node_id = l.node_id"
            "  RETURNING a.node_id),"
            " nodes AS ("
            "  SELECT df._set_node_state($1, n.id, NULL, 'cancelled', n.result, $3 || $2)"
            "    FROM (SELECT DISTINCT node_id FROM acts) c"
            "    JOIN df.nodes n ON n.instance_id = $1 AND n.id = c.node_id"
            "   WHERE n.status IN ('pending', 'running')),"
            " sig AS (DELETE FROM df._signals s WHERE s.instance_id = $1 RETURNING 1)"
            " SELECT (SELECT count(*) FROM acts), (SELECT count(*) FROM nodes), (SELECT count(*) FROM sig)",
            3, types);
        pgd::expect_spi(SPI_execute_plan(rest, values, nullptr, false, 0), SPI_OK_SELECT, "cancel of activations");
    }
    pgd::restore_user(saved);
    pgd::unpin_search_path(nest);
    SPI_finish();

    if (cancelled) notify_daemon("cancel", instance_id);
    PG_RETURN_TEXT_P(cstring_to_text(psprintf("Instance %s cancelled: %s", instance_id, reason)));
}
