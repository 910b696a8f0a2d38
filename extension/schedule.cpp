// Schedules (SPEC.md §19.4): df.schedule, df.unschedule, df.pause_schedule,
// df.resume_schedule, df.list_schedules, and df._start_scheduled, through
// which the daemon starts each tick's run as the schedule's owner.
//
// A schedule is a row of df._schedules (sql/parts/60_schedules.sql) owned by
// the role that created it (current_user, as df.start captures it). The
// writes run as the table owner after the checks, like df.start's; reads for
// df.list_schedules show the caller's rows (superusers: all), as row security
// does for df.instances. Every change queues NOTIFY df_wakeup, 'schedule' —
// delivered at commit, a hint only: the daemon re-reads the rows and re-arms
// its timer for the earliest next_run_at.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

#include <chrono>
#include <cstring>
#include <optional>
#include <string>

#include "common/cron.hpp"
#include "common/schedule.hpp"
#include "extension/boundary.hpp"
#include "extension/guc.hpp"
#include "extension/helper_guard.hpp"
#include "extension/spi_util.hpp"
#include "extension/start.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df_schedule);
Datum df_schedule(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_unschedule);
Datum df_unschedule(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_pause_schedule);
Datum df_pause_schedule(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_resume_schedule);
Datum df_resume_schedule(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df__list_schedules);
Datum df__list_schedules(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df__start_scheduled);
Datum df__start_scheduled(PG_FUNCTION_ARGS);
}

namespace {

// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
constexpr int64 kPgEpochOffsetUs = INT64CONST(946684800000000);

struct Validated {
    char *overlap;          // normalised ("skip", ...)
    bool has_next;
    TimestampTz next_run_at;
};

// C++ zone: the name, the expression and zone (§10.8 texts, including "no
// matching time in the next 8 years"), the overlap, and the first tick.
void validate_schedule(const char *name, const char *cron_expr, const char *timezone, const char *overlap,
                       Validated &out) {
    durable::schedule::validate_name(name);
    durable::cron::validate(cron_expr, timezone);
    const auto parsed = durable::schedule::validate_overlap(overlap);
    out.overlap = pgd::to_cstring(durable::schedule::to_string(parsed));
    const auto next = durable::schedule::next_tick(cron_expr, timezone, std::chrono::system_clock::now());
    out.has_next = next.has_value();
    if (next) {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(next->time_since_epoch()).count();
        out.next_run_at = static_cast<TimestampTz>(us) - kPgEpochOffsetUs;
    }
}

void check_name(const char *name) {
    pgd::Failure failure;
    if (!pgd::cpp_zone(failure, [&] { durable::schedule::validate_name(name ? name : ""); })) pgd::raise(failure);
}

// Queued now, delivered at commit: a rollback wakes nobody.
void notify_schedules() { Async_Notify("df_wakeup", "schedule"); }

SPIPlanPtr upsert_plan = nullptr;
SPIPlanPtr delete_plan = nullptr;
SPIPlanPtr pause_plan = nullptr;
SPIPlanPtr read_plan = nullptr;
SPIPlanPtr resume_plan = nullptr;
SPIPlanPtr list_plan = nullptr;
SPIPlanPtr epoch_plan = nullptr;
SPIPlanPtr definition_plan = nullptr;

// Runs `sql` (prepared once into *slot) as the table owner with the caller's
// role as $1 and `name` as $2; returns SPI_processed.
uint64 owner_write(SPIPlanPtr *slot, const char *sql, Oid role, const char *name, int expected) {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    Oid types[2] = {REGROLEOID, TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(slot, sql, 2, types);
    Datum values[2] = {ObjectIdGetDatum(role), CStringGetTextDatum(name)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), expected, "write of df._schedules");
    uint64 processed = SPI_processed;
    pgd::restore_user(saved);
    SPI_finish();
    return processed;
}

char *spi_copy(const char *value) {
    char *copy = static_cast<char *>(SPI_palloc(strlen(value) + 1));
    strcpy(copy, value);
    return copy;
}

// Same check as df._run_step's: the daemon's role (pg_durable.worker_role,
// else any superuser).
void check_daemon_role(Oid caller) {
    if (pgd_worker_role != nullptr && pgd_worker_role[0] != '\0') {
        Oid worker = get_role_oid(pgd_worker_role, true);
        if (OidIsValid(worker) && caller == worker) return;
    } else if (superuser_arg(caller)) {
        return;
    }
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("df._start_scheduled may only be called by the pg_durable daemon")));
}

}  // namespace

// df.schedule(name text, cron_expr text, fut text, timezone text DEFAULT 'UTC',
//             overlap text DEFAULT 'skip', database text DEFAULT NULL) RETURNS text
Datum df_schedule(PG_FUNCTION_ARGS) {
    const char *name = pgd::text_arg_or_null(fcinfo, 0);
    check_name(name);
    if (PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("df.schedule: cron_expr cannot be NULL")));
    if (PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("df.schedule: fut cannot be NULL")));
    const char *cron_expr = text_to_cstring(PG_GETARG_TEXT_PP(1));
    const char *fut = text_to_cstring(PG_GETARG_TEXT_PP(2));
    const char *timezone = PG_ARGISNULL(3) ? "UTC" : text_to_cstring(PG_GETARG_TEXT_PP(3));
    const char *overlap = PG_ARGISNULL(4) ? "skip" : text_to_cstring(PG_GETARG_TEXT_PP(4));
    const char *database = pgd::text_arg_or_null(fcinfo, 5);
    pgd_check_composer_input(fut);

    Validated v = {};
    pgd::Failure failure;
    if (!pgd::cpp_zone(failure, [&] { validate_schedule(name, cron_expr, timezone, overlap, v); }))
        pgd::raise(failure);

    // The graph, database, CONNECT, LOGIN and superuser checks of df.start,
    // for the role that will own the schedule (SET ROLE and SECURITY DEFINER count).
    const Oid role = GetUserId();
    const char *effective_db = pgd_check_start_as(fut, database, role);

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    Oid types[8] = {REGROLEOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
    // A replaced schedule keeps its counters, last run and paused state; its
    // next tick follows the new expression.
    SPIPlanPtr plan = pgd::keep_plan(&upsert_plan,
        "INSERT INTO df._schedules AS s (owner, name, cron_expr, timezone, overlap, definition, database, "
        "next_run_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (owner, name) DO UPDATE SET cron_expr = EXCLUDED.cron_expr, timezone = EXCLUDED.timezone, "
        "overlap = EXCLUDED.overlap, definition = EXCLUDED.definition, database = EXCLUDED.database, "
        "next_run_at = CASE WHEN s.paused THEN NULL ELSE EXCLUDED.next_run_at END, last_error = NULL, "
        "updated_at = now()",
        8, types);
    Datum values[8] = {ObjectIdGetDatum(role), CStringGetTextDatum(name), CStringGetTextDatum(cron_expr),
                       CStringGetTextDatum(timezone), CStringGetTextDatum(v.overlap), CStringGetTextDatum(fut),
                       CStringGetTextDatum(effective_db), TimestampTzGetDatum(v.next_run_at)};
    char nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', v.has_next ? ' ' : 'n'};
    pgd::expect_spi(SPI_execute_plan(plan, values, nulls, false, 0), SPI_OK_INSERT, "write of df._schedules");
    pgd::restore_user(saved);
    SPI_finish();
    notify_schedules();
    PG_RETURN_TEXT_P(cstring_to_text(name));
}

// df.unschedule(name text) RETURNS boolean: false if the caller has no such schedule.
Datum df_unschedule(PG_FUNCTION_ARGS) {
    const char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    uint64 n = owner_write(&delete_plan, "DELETE FROM df._schedules WHERE owner = $1 AND name = $2",
                           GetUserId(), name, SPI_OK_DELETE);
    if (n > 0) notify_schedules();
    PG_RETURN_BOOL(n > 0);
}

// df.pause_schedule(name text) RETURNS boolean: no ticks until resumed.
Datum df_pause_schedule(PG_FUNCTION_ARGS) {
    const char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    uint64 n = owner_write(&pause_plan,
                           "UPDATE df._schedules SET paused = true, next_run_at = NULL, updated_at = now() "
                           "WHERE owner = $1 AND name = $2",
                           GetUserId(), name, SPI_OK_UPDATE);
    if (n > 0) notify_schedules();
    PG_RETURN_BOOL(n > 0);
}

// df.resume_schedule(name text) RETURNS boolean: the next tick from now on
// (ticks that passed while paused are not caught up).
Datum df_resume_schedule(PG_FUNCTION_ARGS) {
    const char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const Oid role = GetUserId();
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    Oid types[2] = {REGROLEOID, TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&read_plan,
        "SELECT cron_expr, timezone, paused FROM df._schedules WHERE owner = $1 AND name = $2 FOR UPDATE", 2, types);
    Datum values[2] = {ObjectIdGetDatum(role), CStringGetTextDatum(name)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 1), SPI_OK_SELECT,
                    "read of df._schedules");
    if (SPI_processed == 0) {
        pgd::restore_user(saved);
        SPI_finish();
        PG_RETURN_BOOL(false);
    }
    char *cron_expr = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    char *timezone = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
    char *paused = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
    if (paused != nullptr && paused[0] == 't') {
        bool has_next = false;
        TimestampTz next_at = 0;
        pgd::Failure failure;
        if (!pgd::cpp_zone(failure, [&] {
                const auto next =
                    durable::schedule::next_tick(cron_expr, timezone, std::chrono::system_clock::now());
                has_next = next.has_value();
                if (next)
                    next_at = static_cast<TimestampTz>(
                                  std::chrono::duration_cast<std::chrono::microseconds>(next->time_since_epoch())
                                      .count()) -
                              kPgEpochOffsetUs;
            }))
            pgd::raise(failure);
        Oid utypes[3] = {REGROLEOID, TEXTOID, TIMESTAMPTZOID};
        SPIPlanPtr update = pgd::keep_plan(&resume_plan,
            "UPDATE df._schedules SET paused = false, next_run_at = $3, updated_at = now() "
            "WHERE owner = $1 AND name = $2",
            3, utypes);
        Datum uvalues[3] = {ObjectIdGetDatum(role), CStringGetTextDatum(name), TimestampTzGetDatum(next_at)};
        char unulls[3] = {' ', ' ', has_next ? ' ' : 'n'};
        pgd::expect_spi(SPI_execute_plan(update, uvalues, unulls, false, 0), SPI_OK_UPDATE,
                        "write of df._schedules");
        notify_schedules();
    }
    pgd::restore_user(saved);
    SPI_finish();
    PG_RETURN_BOOL(true);
}

// df._list_schedules() RETURNS text: the caller's schedules (a superuser's:
// everyone's) as a JSON array, for df.list_schedules. Read as the table
// owner, filtered as the row security policy on df._schedules filters.
Datum df__list_schedules(PG_FUNCTION_ARGS) {
    const Oid role = GetUserId();
    const bool all = superuser_arg(role);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    Oid types[2] = {REGROLEOID, BOOLOID};
    SPIPlanPtr plan = pgd::keep_plan(&list_plan,
        "SELECT COALESCE(json_agg(json_build_object("
        "  'name', s.name, 'cron_expr', s.cron_expr, 'timezone', s.timezone, 'overlap', s.overlap,"
        "  'database', s.database, 'paused', s.paused, 'next_run_at', s.next_run_at,"
        "  'last_instance_id', s.last_instance_id, 'last_status', i.status, 'runs', s.runs,"
        "  'created_at', s.created_at) ORDER BY s.name, s.owner::oid), '[]'::json)::text "
        "FROM df._schedules s LEFT JOIN df.instances i ON i.id = s.last_instance_id "
        "WHERE s.owner = $1 OR $2",
        2, types);
    Datum values[2] = {ObjectIdGetDatum(role), BoolGetDatum(all)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, true, 1), SPI_OK_SELECT, "read of df._schedules");
    char *json = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    text *result = static_cast<text *>(SPI_palloc(VARHDRSZ + strlen(json)));
    SET_VARSIZE(result, VARHDRSZ + strlen(json));
    memcpy(VARDATA(result), json, strlen(json));
    pgd::restore_user(saved);
    SPI_finish();
    PG_RETURN_TEXT_P(result);
}

// df._start_scheduled(schedule_id bigint) RETURNS text: starts one run of a
// schedule as its owner, through df.start's own path (checks, insert, vars
// snapshot, NOTIFY), labelled with the schedule's name; returns the instance
// id. Only the daemon's role, in a session bound to the attached worker
// epoch (the fence of every daemon write), may call it; the daemon calls it
// in the transaction that records the tick (daemon/store_schedules.cpp).
Datum df__start_scheduled(PG_FUNCTION_ARGS) {
    check_daemon_role(GetUserId());
    const int64 schedule_id = PG_GETARG_INT64(0);

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    SPIPlanPtr epoch = pgd::keep_plan(&epoch_plan,
        "SELECT 1 FROM df._worker_epoch "
        "WHERE epoch_id::text = current_setting('df_daemon.epoch', true) FOR KEY SHARE",
        0, nullptr);
    pgd::expect_spi(SPI_execute_plan(epoch, nullptr, nullptr, false, 1), SPI_OK_SELECT,
                    "read of df._worker_epoch");
    if (SPI_processed == 0)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("df._start_scheduled may only be called by the pg_durable daemon")));
    Oid types[1] = {INT8OID};
    SPIPlanPtr plan = pgd::keep_plan(&definition_plan,
        "SELECT owner::oid, name, definition, database FROM df._schedules WHERE id = $1", 1, types);
    Datum values[1] = {Int64GetDatum(schedule_id)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, true, 1), SPI_OK_SELECT, "read of df._schedules");
    if (SPI_processed == 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("schedule %lld does not exist",
                                                                  static_cast<long long>(schedule_id))));
    bool isnull = false;
    const Oid owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    char *name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
    char *definition = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
    char *database = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
    // Copies that outlive SPI_finish.
    char *name_copy = spi_copy(name);
    char *def_copy = spi_copy(definition);
    char *db_copy = spi_copy(database);
    pgd::restore_user(saved);
    SPI_finish();

    if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("Schedule %s: owner role no longer exists in pg_roles", name_copy)));
    char *id = pgd_start_as(def_copy, name_copy, db_copy, owner);
    PG_RETURN_TEXT_P(cstring_to_text(id));
}
