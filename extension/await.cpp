// df.await_instance (SPEC.md §15.1): waits until an instance the caller can
// see reaches a terminal status and returns it.
//
// Each check is its own SPI statement with read_only = false, so under READ
// COMMITTED it takes a fresh snapshot and sees what the daemon committed
// since the last check (under REPEATABLE READ or SERIALIZABLE the caller's
// transaction snapshot stays fixed and the wait can only time out — that is
// PostgreSQL's isolation, not ours to break). Between checks the backend
// sleeps on its latch for 100 ms, so query cancel, statement_timeout and
// postmaster death end the wait at once.
//
// Refused inside workflow steps: it would hold one of the daemon's user
// connections (and deadlock when awaiting its own instance).
//
// PG zone only (no C++ objects with destructors).
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <cstring>

#include "extension/helper_guard.hpp"
#include "extension/spi_util.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df_await_instance);
Datum df_await_instance(PG_FUNCTION_ARGS);
}

namespace {

constexpr long kPollIntervalMs = 100;

SPIPlanPtr await_status_plan = nullptr;

bool is_terminal(const char *status) {
    return strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
}

// The status as the caller sees it now (row security applies), copied into
// `cxt`, or nullptr when the instance is not visible.
char *current_status(MemoryContext cxt, const char *instance_id) {
    Oid types[1] = {TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&await_status_plan, "SELECT status FROM df.instances WHERE id = $1", 1, types);
    Datum values[1] = {CStringGetTextDatum(instance_id)};
    // read_only = false: a new snapshot for every check.
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 1), SPI_OK_SELECT, "read of df.instances");
    char *status = nullptr;
    if (SPI_processed == 1) {
        char *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
        if (value != nullptr) status = MemoryContextStrdup(cxt, value);
    }
    SPI_freetuptable(SPI_tuptable);
    return status;
}

}  // namespace

// df.await_instance(instance_id text, timeout_seconds int DEFAULT 30) RETURNS text
Datum df_await_instance(PG_FUNCTION_ARGS) {
    pgd_forbid_in_workflow(
        "df.await_instance() cannot be called inside a workflow - it would block a worker thread (and "
        "self-deadlock if waiting on the current instance). Use df.signal() and df.wait_for_signal() for "
        "cross-workflow coordination.");
    const char *instance_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const int32 timeout_seconds = PG_GETARG_INT32(1);
    if (timeout_seconds <= 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("Timeout must be positive")));

    MemoryContext cxt = CurrentMemoryContext;  // survives SPI_finish
    const TimestampTz deadline =
        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), static_cast<int64>(timeout_seconds) * 1000);

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    // Our query resolves in pg_catalog whatever search_path the caller set.
    int nest = pgd::pin_search_path();

    char *status = nullptr;
    for (;;) {
        status = current_status(cxt, instance_id);
        if (status == nullptr)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("Instance not found: %s", instance_id)));
        if (is_terminal(status)) break;

        long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (remaining <= 0)
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("Timeout after %ds waiting for instance %s (status: %s). Check if the pg_durable "
                            "daemon is running.",
                            timeout_seconds, instance_id, status)));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                        remaining < kPollIntervalMs ? remaining : kPollIntervalMs, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }

    pgd::unpin_search_path(nest);
    SPI_finish();
    pgd_note_helper_call("await_instance", status);
    PG_RETURN_TEXT_P(cstring_to_text(status));
}
