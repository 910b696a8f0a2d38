// The instance counters (df._instance_counters; sql/parts/52_instance_counters.sql,
// docs/ARCHITECTURE.md "Instance counters"): df.metrics and the instance gauges
// of df_monitor.operator_metrics read 16 rows instead of every instance and
// activation. One trigger function, df._count_instances(), keeps them exact for
// every writer of df.instances, df._activations and df._executions:
//
//   df.instances     AFTER INSERT / DELETE, per statement (transition tables):
//                    counts by status and the execution numbers of the rows;
//                    AFTER UPDATE per row WHEN the status or the execution
//                    number changed, gathered here and written once by the
//                    AFTER UPDATE statement trigger; BEFORE DELETE per row: the
//                    events of the instance (see below)
//   df._activations  AFTER INSERT / DELETE per statement: the rows of their
//                    instance's current execution (events); AFTER UPDATE per
//                    row WHEN the execution or the instance changed
//   df._executions   AFTER INSERT / DELETE per statement, AFTER UPDATE per row
//                    WHEN event_count changed: event_count of the past executions
//   all three        AFTER TRUNCATE: recount (df._count_instance_rows())
//
// A write goes to one of the 16 rows: the backend's own (pid % 16) unless
// another transaction holds it, then any free one, so a writer never waits for
// another's count (as df._step_counters, with an in-memory lock per row instead
// of SKIP LOCKED: no lock record, no extra scan). A statement whose changes
// count nothing writes nothing.
//
// Deleting an instance deletes its activations and past executions by the
// foreign keys' cascades, one DELETE per instance, whose AFTER triggers
// PostgreSQL fires after the instance DELETE's own statement trigger, when
// the instance row is gone and it can no longer be told which activations
// were the current execution's. So the events of a deleted instance are taken
// by a BEFORE DELETE row trigger while its rows are still there, and the
// cascades' triggers skip the rows of instances that no longer exist. The
// row trigger only gathers (in `pending`); the instance DELETE's statement
// trigger writes the whole statement's count once, so a retention batch
// writes the counters once. `pending` belongs to one statement: it is tagged
// with the (local) transaction and subtransaction and dropped when read under
// another tag, so an error between a row and its statement trigger leaves
// nothing behind.
//
// The function runs its SQL as the table owner with plans prepared under a
// pinned search_path (extension/spi_util.hpp); EXECUTE on it is revoked from
// PUBLIC, and it refuses to count for any table but these three.
//
// PG zone only: no C++ object with a destructor lives here (DESIGN §2.11).
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
}

#include <cstring>

#include "extension/pg_compat.hpp"
#include "extension/spi_util.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df__count_instances);
Datum df__count_instances(PG_FUNCTION_ARGS);
}

namespace {

// Columns of df._instance_counters, in the order of kApplySql's parameters.
enum Column { C_PENDING, C_RUNNING, C_COMPLETED, C_FAILED, C_CANCELLED, C_EXECUTIONS, C_EVENTS, C_COUNT };

struct Delta {
    int64 v[C_COUNT];
};

enum Table { T_INSTANCES, T_ACTIVATIONS, T_EXECUTIONS };

struct Pending {
    LocalTransactionId lxid;
    SubTransactionId subxid;
    Delta delta;
};

Pending pending = {InvalidLocalTransactionId, InvalidSubTransactionId, {{0, 0, 0, 0, 0, 0, 0}}};

// The counter row this (sub)transaction holds, once it has written one.
struct Held {
    LocalTransactionId lxid;
    SubTransactionId subxid;
    int shard;
};

Held held = {InvalidLocalTransactionId, InvalidSubTransactionId, 0};

constexpr int kShards = 16;

SPIPlanPtr apply_plan = nullptr;
SPIPlanPtr apply_missing_plan = nullptr;
SPIPlanPtr activations_inserted_plan = nullptr;
SPIPlanPtr activations_counted_plan = nullptr;
SPIPlanPtr activations_deleted_plan = nullptr;
SPIPlanPtr activation_moved_plan = nullptr;
SPIPlanPtr activations_of_plan = nullptr;
SPIPlanPtr events_of_plan = nullptr;
SPIPlanPtr executions_deleted_plan = nullptr;
SPIPlanPtr recount_plan = nullptr;

bool is_zero(const Delta &d) {
    for (int64 v : d.v)
        if (v != 0) return false;
    return true;
}

void add(Delta *to, const Delta &d) {
    for (int i = 0; i < C_COUNT; ++i) to->v[i] += d.v[i];
}

int status_column(const char *status) {
    if (strcmp(status, "pending") == 0) return C_PENDING;
    if (strcmp(status, "running") == 0) return C_RUNNING;
    if (strcmp(status, "completed") == 0) return C_COMPLETED;
    if (strcmp(status, "failed") == 0) return C_FAILED;
    if (strcmp(status, "cancelled") == 0) return C_CANCELLED;
    return -1;  // the table's CHECK constraint admits no other
}

Pending *current_pending() {
    const LocalTransactionId lxid = pgd_my_local_xid();
    const SubTransactionId subxid = GetCurrentSubTransactionId();
    if (pending.lxid != lxid || pending.subxid != subxid) {
        memset(&pending.delta, 0, sizeof pending.delta);
        pending.lxid = lxid;
        pending.subxid = subxid;
    }
    return &pending;
}

// Prepares once per backend, with search_path pinned (a kept plan is
// replanned under the search_path it was made with).
SPIPlanPtr plan_for(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types) {
    if (*slot != nullptr) return *slot;
    int nest = pgd::pin_search_path();
    SPIPlanPtr plan = pgd::keep_plan(slot, sql, nargs, types);
    pgd::unpin_search_path(nest);
    return plan;
}

// The lock a writer holds on counter row `shard` until its (sub)transaction
// ends: an advisory lock in a key space no SQL function reaches (advisory
// lock functions use field4 1 and 2), so no user can hold one.
LOCKTAG shard_tag(int shard) {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0x70676463 /* 'pgdc' */, static_cast<uint32>(shard), 5);
    return tag;
}

// The row a write goes to. The first write of a (sub)transaction takes one:
// the backend's own (pid % 16) when no other transaction holds it, else any
// free one, else (all 16 held by others) waits for its own. A row is only
// ever updated under its lock, so the UPDATE never waits for another
// writer's row lock. Later writes of that subtransaction use the same row.
int take_shard() {
    const LocalTransactionId lxid = pgd_my_local_xid();
    const SubTransactionId subxid = GetCurrentSubTransactionId();
    if (held.lxid == lxid && held.subxid == subxid) return held.shard;
    const int own = MyProcPid % kShards;
    int shard = -1;
    for (int i = 0; i < kShards && shard < 0; ++i) {
        const int candidate = (own + i) % kShards;
        LOCKTAG tag = shard_tag(candidate);
        if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL) shard = candidate;
    }
    if (shard < 0) {
        LOCKTAG tag = shard_tag(own);
        (void)LockAcquire(&tag, ExclusiveLock, false, false);
        shard = own;
    }
    held.lxid = lxid;
    held.subxid = subxid;
    held.shard = shard;
    return shard;
}

// Adds `d` to this (sub)transaction's counter row.
void apply(const Delta &d) {
    if (is_zero(d)) return;
    Oid types[C_COUNT + 1] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT4OID};
    Datum values[C_COUNT + 1];
    for (int i = 0; i < C_COUNT; ++i) values[i] = Int64GetDatum(d.v[i]);
    values[C_COUNT] = Int32GetDatum(take_shard());
    SPIPlanPtr plan = plan_for(&apply_plan,
        "UPDATE df._instance_counters c"
        "   SET pending = c.pending + $1, running = c.running + $2, completed = c.completed + $3,"
        "       failed = c.failed + $4, cancelled = c.cancelled + $5, executions = c.executions + $6,"
        "       events = c.events + $7"
        " WHERE c.shard = $8",
        C_COUNT + 1, types);
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_UPDATE, "count of instances");
    if (SPI_processed == 1) return;
    SPIPlanPtr missing = plan_for(&apply_missing_plan,  // a row deleted by hand
        "INSERT INTO df._instance_counters AS c (shard, pending, running, completed, failed, cancelled,"
        "                                        executions, events)"
        " VALUES ($8, $1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (shard) DO UPDATE"
        "    SET pending = c.pending + EXCLUDED.pending, running = c.running + EXCLUDED.running,"
        "        completed = c.completed + EXCLUDED.completed, failed = c.failed + EXCLUDED.failed,"
        "        cancelled = c.cancelled + EXCLUDED.cancelled, executions = c.executions + EXCLUDED.executions,"
        "        events = c.events + EXCLUDED.events",
        C_COUNT + 1, types);
    pgd::expect_spi(SPI_execute_plan(missing, values, nullptr, false, 0), SPI_OK_INSERT, "count of instances");
}

int64 int8_of(TupleTableSlot *slot, int attnum) {
    bool isnull = false;
    Datum d = slot_getattr(slot, attnum, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

// Rows of a transition table of df.instances (sign +1 inserted, -1 deleted)
// or df._executions (event_count only).
Delta rows_delta(Table table, Relation rel, Tuplestorestate *rows, int sign) {
    Delta d = {{0, 0, 0, 0, 0, 0, 0}};
    if (rows == nullptr || tuplestore_tuple_count(rows) == 0) return d;
    TupleDesc desc = RelationGetDescr(rel);
    TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
    const int status_att = table == T_INSTANCES ? SPI_fnumber(desc, "status") : 0;
    const int number_att = SPI_fnumber(desc, table == T_INSTANCES ? "execution_count" : "event_count");
    if (number_att <= 0 || (table == T_INSTANCES && status_att <= 0))
        elog(ERROR, "df._count_instances: unexpected columns of %s", RelationGetRelationName(rel));
    tuplestore_select_read_pointer(rows, 0);
    tuplestore_rescan(rows);
    while (tuplestore_gettupleslot(rows, true, false, slot)) {
        if (table == T_INSTANCES) {
            bool isnull = false;
            Datum status = slot_getattr(slot, status_att, &isnull);
            const int col = isnull ? -1 : status_column(TextDatumGetCString(status));
            if (col >= 0) d.v[col] += sign;
            d.v[C_EXECUTIONS] += sign * int8_of(slot, number_att);
        } else {
            d.v[C_EVENTS] += sign * int8_of(slot, number_att);
        }
    }
    ExecDropSingleTupleTableSlot(slot);
    return d;
}

// One row's status and execution number (UPDATE of df.instances).
void row_delta(Relation rel, HeapTuple tuple, int sign, Delta *d, int64 *execution) {
    TupleDesc desc = RelationGetDescr(rel);
    bool isnull = false;
    Datum status = heap_getattr(tuple, SPI_fnumber(desc, "status"), desc, &isnull);
    const int col = isnull ? -1 : status_column(TextDatumGetCString(status));
    if (col >= 0) d->v[col] += sign;
    Datum number = heap_getattr(tuple, SPI_fnumber(desc, "execution_count"), desc, &isnull);
    *execution = isnull ? 0 : DatumGetInt64(number);
    d->v[C_EXECUTIONS] += sign * *execution;
}

char *text_column(Relation rel, HeapTuple tuple, const char *name) {
    return SPI_getvalue(tuple, RelationGetDescr(rel), SPI_fnumber(RelationGetDescr(rel), name));
}

int64 first_int8(int column) {
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

// Activations of the current execution among a statement's inserted rows,
// counted and written in one statement (every step's claim comes here).
void activations_inserted() {
    Oid types[1] = {INT4OID};
    Datum values[1] = {Int32GetDatum(take_shard())};
    SPIPlanPtr plan = plan_for(&activations_inserted_plan,
        "UPDATE df._instance_counters c"
        "   SET events = c.events + (SELECT count(*) FROM new_activations a"
        "                              JOIN df.instances i ON i.id = a.instance_id"
        "                                                 AND i.execution_count = a.execution)"
        " WHERE c.shard = $1",
        1, types);
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_UPDATE, "count of activations");
    if (SPI_processed == 1) return;
    SPIPlanPtr count = plan_for(&activations_counted_plan,  // the row was deleted by hand
        "SELECT count(*) FROM new_activations a"
        "  JOIN df.instances i ON i.id = a.instance_id AND i.execution_count = a.execution",
        0, nullptr);
    pgd::expect_spi(SPI_execute_plan(count, nullptr, nullptr, false, 0), SPI_OK_SELECT, "count of activations");
    Delta d = {{0, 0, 0, 0, 0, 0, first_int8(1)}};
    apply(d);
}

// Deleted activations of the current execution of instances still there (a
// trimmed loop iteration, a superuser's DELETE); those of deleted instances
// were counted by the instance's BEFORE DELETE trigger.
void activations_deleted() {
    SPIPlanPtr plan = plan_for(&activations_deleted_plan,
        "SELECT count(*) FROM old_activations a"
        "  JOIN df.instances i ON i.id = a.instance_id AND i.execution_count = a.execution",
        0, nullptr);
    pgd::expect_spi(SPI_execute_plan(plan, nullptr, nullptr, false, 0), SPI_OK_SELECT, "count of activations");
    Delta d = {{0, 0, 0, 0, 0, 0, -first_int8(1)}};
    apply(d);
}

// Deleted past executions of instances still there (history trims).
void executions_deleted() {
    SPIPlanPtr plan = plan_for(&executions_deleted_plan,
        "SELECT COALESCE(sum(e.event_count), 0)::bigint FROM old_executions e"
        " WHERE EXISTS (SELECT 1 FROM df.instances i WHERE i.id = e.instance_id)",
        0, nullptr);
    pgd::expect_spi(SPI_execute_plan(plan, nullptr, nullptr, false, 0), SPI_OK_SELECT, "count of executions");
    Delta d = {{0, 0, 0, 0, 0, 0, -first_int8(1)}};
    apply(d);
}

// An activation moved to another execution (or instance).
void activation_moved(Relation rel, HeapTuple old_tuple, HeapTuple new_tuple) {
    Oid types[4] = {TEXTOID, INT8OID, TEXTOID, INT8OID};
    SPIPlanPtr plan = plan_for(&activation_moved_plan,
        "SELECT (SELECT count(*) FROM df.instances i WHERE i.id = $3 AND i.execution_count = $4)"
        "     - (SELECT count(*) FROM df.instances i WHERE i.id = $1 AND i.execution_count = $2)",
        4, types);
    TupleDesc desc = RelationGetDescr(rel);
    const int id_att = SPI_fnumber(desc, "instance_id");
    const int exec_att = SPI_fnumber(desc, "execution");
    bool n1 = false, n2 = false, n3 = false, n4 = false;
    Datum values[4] = {heap_getattr(old_tuple, id_att, desc, &n1), heap_getattr(old_tuple, exec_att, desc, &n2),
                       heap_getattr(new_tuple, id_att, desc, &n3), heap_getattr(new_tuple, exec_att, desc, &n4)};
    char nulls[5] = "    ";
    if (n1) nulls[0] = 'n';
    if (n2) nulls[1] = 'n';
    if (n3) nulls[2] = 'n';
    if (n4) nulls[3] = 'n';
    pgd::expect_spi(SPI_execute_plan(plan, values, nulls, false, 0), SPI_OK_SELECT, "count of activations");
    Delta d = {{0, 0, 0, 0, 0, 0, first_int8(1)}};
    apply(d);
}

// Activations of an execution of an instance.
int64 activations_of(const char *instance_id, int64 execution) {
    Oid types[2] = {TEXTOID, INT8OID};
    SPIPlanPtr plan = plan_for(&activations_of_plan,
        "SELECT count(*) FROM df._activations a WHERE a.instance_id = $1 AND a.execution = $2", 2, types);
    Datum values[2] = {CStringGetTextDatum(instance_id), Int64GetDatum(execution)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_SELECT, "count of activations");
    return first_int8(1);
}

// The events of an instance: its current execution's activations and its
// past executions' event_count.
int64 events_of(const char *instance_id, int64 execution) {
    Oid types[2] = {TEXTOID, INT8OID};
    SPIPlanPtr plan = plan_for(&events_of_plan,
        "SELECT (SELECT count(*) FROM df._activations a WHERE a.instance_id = $1 AND a.execution = $2)"
        "     + (SELECT COALESCE(sum(e.event_count), 0) FROM df._executions e WHERE e.instance_id = $1)::bigint",
        2, types);
    Datum values[2] = {CStringGetTextDatum(instance_id), Int64GetDatum(execution)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_SELECT, "count of events");
    return first_int8(1);
}

void recount() {
    SPIPlanPtr plan = plan_for(&recount_plan, "SELECT df._count_instance_rows()", 0, nullptr);
    pgd::expect_spi(SPI_execute_plan(plan, nullptr, nullptr, false, 0), SPI_OK_SELECT, "recount of instances");
}

Table table_of(Relation rel) {
    const char *name = RelationGetRelationName(rel);
    char *schema = get_namespace_name(RelationGetNamespace(rel));
    const bool in_df = schema != nullptr && strcmp(schema, "df") == 0;
    if (in_df && strcmp(name, "instances") == 0) return T_INSTANCES;
    if (in_df && strcmp(name, "_activations") == 0) return T_ACTIVATIONS;
    if (in_df && strcmp(name, "_executions") == 0) return T_EXECUTIONS;
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("df._count_instances counts df.instances, df._activations and df._executions only")));
    return T_INSTANCES;
}

// The work of one firing, as table owner inside SPI.
HeapTuple count(TriggerData *td, Table table) {
    const TriggerEvent ev = td->tg_event;
    Relation rel = td->tg_relation;
    if (TRIGGER_FIRED_BY_TRUNCATE(ev)) {
        recount();
        return nullptr;
    }
    if (TRIGGER_FIRED_BEFORE(ev)) {
        // BEFORE DELETE of an instance: its events, while its rows are there.
        if (table != T_INSTANCES || !TRIGGER_FIRED_BY_DELETE(ev) || !TRIGGER_FIRED_FOR_ROW(ev))
            elog(ERROR, "df._count_instances: unexpected BEFORE trigger");
        Delta ignored = {{0, 0, 0, 0, 0, 0, 0}};
        int64 execution = 0;
        row_delta(rel, td->tg_trigtuple, 0, &ignored, &execution);
        const char *id = text_column(rel, td->tg_trigtuple, "id");
        current_pending()->delta.v[C_EVENTS] -= events_of(id, execution);
        return td->tg_trigtuple;
    }
    if (TRIGGER_FIRED_FOR_ROW(ev)) {
        if (!TRIGGER_FIRED_BY_UPDATE(ev)) elog(ERROR, "df._count_instances: unexpected row trigger");
        if (table == T_INSTANCES) {
            Delta d = {{0, 0, 0, 0, 0, 0, 0}};
            int64 old_execution = 0, new_execution = 0;
            row_delta(rel, td->tg_trigtuple, -1, &d, &old_execution);
            row_delta(rel, td->tg_newtuple, 1, &d, &new_execution);
            if (old_execution != new_execution) {
                const char *id = text_column(rel, td->tg_newtuple, "id");
                d.v[C_EVENTS] += activations_of(id, new_execution) -
                                 activations_of(id, old_execution);
            }
            add(&current_pending()->delta, d);  // written by the statement trigger
        } else if (table == T_ACTIVATIONS) {
            activation_moved(rel, td->tg_trigtuple, td->tg_newtuple);
        } else {
            TupleDesc desc = RelationGetDescr(rel);
            const int att = SPI_fnumber(desc, "event_count");
            bool n1 = false, n2 = false;
            Datum o = heap_getattr(td->tg_trigtuple, att, desc, &n1);
            Datum n = heap_getattr(td->tg_newtuple, att, desc, &n2);
            Delta d = {{0, 0, 0, 0, 0, 0, (n2 ? 0 : DatumGetInt64(n)) - (n1 ? 0 : DatumGetInt64(o))}};
            apply(d);
        }
        return nullptr;
    }
    // Statement triggers.
    if (table == T_INSTANCES) {
        Delta d = {{0, 0, 0, 0, 0, 0, 0}};
        if (TRIGGER_FIRED_BY_INSERT(ev)) d = rows_delta(table, rel, td->tg_newtable, 1);
        if (TRIGGER_FIRED_BY_DELETE(ev)) d = rows_delta(table, rel, td->tg_oldtable, -1);
        Pending *p = current_pending();
        if (!TRIGGER_FIRED_BY_INSERT(ev)) {  // UPDATE and DELETE write what their rows gathered
            add(&d, p->delta);
            memset(&p->delta, 0, sizeof p->delta);
        }
        apply(d);
    } else if (table == T_ACTIVATIONS) {
        if (TRIGGER_FIRED_BY_INSERT(ev) && td->tg_newtable != nullptr && tuplestore_tuple_count(td->tg_newtable) > 0)
            activations_inserted();
        if (TRIGGER_FIRED_BY_DELETE(ev) && td->tg_oldtable != nullptr && tuplestore_tuple_count(td->tg_oldtable) > 0)
            activations_deleted();
    } else {
        if (TRIGGER_FIRED_BY_INSERT(ev)) apply(rows_delta(table, rel, td->tg_newtable, 1));
        if (TRIGGER_FIRED_BY_DELETE(ev) && td->tg_oldtable != nullptr && tuplestore_tuple_count(td->tg_oldtable) > 0)
            executions_deleted();
    }
    return nullptr;
}

}  // namespace

// df._count_instances() RETURNS trigger (see the top of this file).
Datum df__count_instances(PG_FUNCTION_ARGS) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("df._count_instances: not called by trigger manager")));
    TriggerData *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    const Table table = table_of(td->tg_relation);
    const TriggerEvent ev = td->tg_event;
    // Row triggers of an UPDATE of df.instances only gather: no SPI.
    if (table == T_INSTANCES && TRIGGER_FIRED_AFTER(ev) && TRIGGER_FIRED_FOR_ROW(ev) &&
        TRIGGER_FIRED_BY_UPDATE(ev)) {
        Delta d = {{0, 0, 0, 0, 0, 0, 0}};
        int64 old_execution = 0, new_execution = 0;
        row_delta(td->tg_relation, td->tg_trigtuple, -1, &d, &old_execution);
        row_delta(td->tg_relation, td->tg_newtuple, 1, &d, &new_execution);
        if (old_execution == new_execution) {
            add(&current_pending()->delta, d);
            return PointerGetDatum(nullptr);
        }
    }
    // The UPDATE statement trigger with nothing gathered: nothing to do.
    if (table == T_INSTANCES && TRIGGER_FIRED_AFTER(ev) && TRIGGER_FIRED_FOR_STATEMENT(ev) &&
        TRIGGER_FIRED_BY_UPDATE(ev) && is_zero(current_pending()->delta))
        return PointerGetDatum(nullptr);

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    // The transition tables of df._activations and df._executions are read
    // by SQL; df.instances' are read here.
    if (table != T_INSTANCES && SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
        elog(ERROR, "SPI_register_trigger_data failed");
    Oid saved_user = InvalidOid;
    int saved_context = 0;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_context | SECURITY_LOCAL_USERID_CHANGE);
    HeapTuple result = count(td, table);
    SetUserIdAndSecContext(saved_user, saved_context);
    SPI_finish();
    return PointerGetDatum(result);
}
