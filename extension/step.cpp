// df._run_step: the extension half of a SQL step (SPEC.md §10.2, DESIGN.md
// §2.2-§2.4, docs/ARCHITECTURE.md "Engine: the extension side").
//
// The daemon calls this function on its own connection (authenticated as the
// daemon's role, pg_durable.worker_role), as one parameterised statement in
// autocommit mode. In that one statement, and therefore in one transaction, it
//
//   1. refuses callers that are not the daemon's role or lack the active
//      daemon's secret,
//   2. claims the activation row (instance, stamp, node) — a second call for an
//      activation that already ended returns "duplicate" without running,
//   3. runs the step's SQL through SPI AS THE SUBMITTER, inside an internal
//      subtransaction (the PL/pgSQL exception-block pattern), so a user error
//      rolls back only the step's effects. The identity switch is PostgreSQL's
//      own for user code in maintenance commands (REFRESH MATERIALIZED VIEW,
//      VACUUM's index functions): SetUserIdAndSecContext(submitter,
//      SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION) inside a
//      GUC nest level that also carries the submitter's role settings
//      (ALTER ROLE ... [IN DATABASE ...] SET). The step cannot leave that
//      identity (SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION fail) and
//      cannot leave session state behind (PostgreSQL refuses temp tables,
//      PREPARE, LISTEN, WITH HOLD cursors in a restricted operation; settings
//      and session advisory locks are undone here),
//   4. converts the rows with PostgreSQL's own row_to_json,
//   5. records the outcome on the activation, counts it in df._step_counters
//      and mirrors it onto df.nodes (and, with `finish`, completes the
//      instance),
//
// and returns the outcome as JSON. The step's effects and its completion
// record commit together or not at all: exactly once, one commit per step.
// User SQL errors never raise out of this function; they are recorded and
// returned, so the record commits. An error that does raise (a wrong secret,
// a serialization failure at commit, a lost connection) committed nothing,
// and calling again is safe.
//
// Wording: an *activation* is one run of a leaf node in one scope generation
// (its execution_id stamp, SPEC §15.5); an *attempt* is one call for it.
//
// PG zone only: SPI, subtransactions, StringInfo; no C++ object with a
// destructor lives in this file, so no ereport can skip one (DESIGN §2.11).
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_db_role_setting.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
}

#include <cstring>

#include "common/protocol.hpp"
#include "extension/guc.hpp"
#include "extension/node_state.hpp"
#include "extension/pg_compat.hpp"
#include "extension/spi_util.hpp"
#include "extension/uninstall.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df__run_step);
Datum df__run_step(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df__run_target_step);
Datum df__run_target_step(PG_FUNCTION_ARGS);
}

namespace {

// How the step's own SQL ended.
enum StepEnd {
    STEP_COMPLETED,  // ran; effects kept
    STEP_FAILED,     // raised; effects rolled back
    STEP_CANCELLED,  // the instance was cancelled by someone else; effects rolled back
};

// The activation the daemon asked for (all palloc'd in the call's context).
struct Activation {
    const char *instance_id;
    const char *stamp;
    const char *node_id;
    const char *query;
    int64 execution;
    int32 attempt;
    bool has_finish;
    Datum finish;  // jsonb
};

// What claiming the activation found.
enum ClaimKind { CLAIM_RUN, CLAIM_DUPLICATE, CLAIM_NOT_RUNNING };

struct Claim {
    ClaimKind kind;
    const char *status;  // duplicate: the activation's status; not running: the instance's (nullptr = gone)
    char *result;  // duplicate: recorded result JSON or nullptr
    char *error;   // duplicate: recorded error or nullptr
};

// The instance row as the bookkeeping sees it.
struct InstanceState {
    char *status;
    char *error;
    bool changed_by_us;  // last written by this transaction (e.g. the step cancelled itself)
};

struct StepResult {
    StepEnd end;
    char *result;        // STEP_COMPLETED: {"rows":[...],"row_count":N}
    char *error;         // STEP_FAILED / STEP_CANCELLED: the recorded error text
    char *instance_status;  // STEP_COMPLETED: instance status read under lock
    bool interrupted;       // STEP_FAILED by pg_cancel_backend (the daemon's cancel)
};

constexpr const char *kTransactionControl = "transaction control statements are not allowed in a workflow step";
constexpr const char *kRoleChange =
    "SET ROLE, RESET ROLE and SET SESSION AUTHORIZATION are not allowed in a workflow step: "
    "it runs as the role that started the workflow";

SPIPlanPtr call_plan = nullptr;
SPIPlanPtr lock_activation_plan = nullptr;
SPIPlanPtr insert_activation_plan = nullptr;
SPIPlanPtr lock_instance_plan = nullptr;
SPIPlanPtr to_running_plan = nullptr;
SPIPlanPtr record_plan = nullptr;
SPIPlanPtr finish_plan = nullptr;
SPIPlanPtr mirror_plan = nullptr;
SPIPlanPtr count_fallback_plan = nullptr;

// ---- bookkeeping identity -------------------------------------------------

// The bookkeeping runs as the table owner with search_path pinned to
// pg_catalog (pgd::become_table_owner), so a user schema placed before
// pg_catalog never runs user code with superuser rights.
using OwnerScope = pgd::SavedUser;
inline OwnerScope enter_owner() { return pgd::become_table_owner(); }
inline void leave_owner(const OwnerScope &scope) { pgd::restore_user(scope); }

char *copy_value(MemoryContext cxt, HeapTuple tuple, TupleDesc desc, int column) {
    char *value = SPI_getvalue(tuple, desc, column);
    return value == nullptr ? nullptr : MemoryContextStrdup(cxt, value);
}

// ---- 1. who may call --------------------------------------------------------

// Compares in time independent of where the texts differ.
bool secrets_equal(const char *a, size_t alen, const char *b, size_t blen) {
    size_t n = alen > blen ? alen : blen;
    unsigned int diff = alen == blen ? 0u : 1u;
    for (size_t i = 0; i < n; ++i) {
        unsigned char x = i < alen ? static_cast<unsigned char>(a[i]) : 0;
        unsigned char y = i < blen ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned int>(x ^ y);
    }
    return diff == 0 && n > 0;
}

// What the call reads before it writes anything: the active daemon's secret,
// and the instance's status (nullptr when it does not exist) and submitter,
// the role the step's SQL runs as. One read-only statement (each statement
// costs tens of µs of executor setup, whatever it reads); its instance
// columns are looked at only after the secret is checked. Runs as owner.
struct CallState {
    char *instance_status;
    Oid submitter;
};

// Raises 42501 unless `given` is the active daemon's secret; then returns
// the instance's state.
CallState read_call_state(MemoryContext cxt, text *given, const Activation &act) {
    Oid types[1] = {TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&call_plan,
        "SELECT (SELECT s.secret FROM df._daemon_secret s WHERE s.singleton), i.status, i.submitted_by"
        "  FROM (VALUES (1)) v LEFT JOIN df.instances i ON i.id = $1",
        1, types);
    Datum values[1] = {CStringGetTextDatum(act.instance_id)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, true, 1), SPI_OK_SELECT, "read of df._daemon_secret");
    bool ok = false;
    HeapTuple tuple = SPI_processed == 1 ? SPI_tuptable->vals[0] : nullptr;
    TupleDesc desc = SPI_tuptable->tupdesc;
    if (tuple != nullptr) {
        bool isnull = false;
        Datum d = SPI_getbinval(tuple, desc, 1, &isnull);
        if (!isnull) {
            text *stored = DatumGetTextPP(d);
            ok = secrets_equal(VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored), VARDATA_ANY(given),
                               VARSIZE_ANY_EXHDR(given));
        }
    }
    if (!ok)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("df._run_step may only be called by the pg_durable daemon")));
    CallState state = {nullptr, InvalidOid};
    state.instance_status = copy_value(cxt, tuple, desc, 2);
    bool isnull = false;
    Datum d = SPI_getbinval(tuple, desc, 3, &isnull);
    if (!isnull) state.submitter = DatumGetObjectId(d);
    SPI_freetuptable(SPI_tuptable);
    return state;
}

// ---- 2. claim the activation --------------------------------------------------

bool is_live_instance(const char *status) {
    return status != nullptr && (strcmp(status, "pending") == 0 || strcmp(status, "running") == 0);
}

bool is_terminal(const char *status) {
    return strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
}

// Raises 42501 unless the caller is the daemon's role: pg_durable.worker_role
// when set, else (the default: the daemon logs in as the bootstrap superuser)
// any superuser. The secret proves the caller is the ACTIVE daemon; this check
// keeps a leaked secret from being usable by any other role.
void check_caller(Oid caller) {
    if (pgd_worker_role != nullptr && pgd_worker_role[0] != '\0') {
        Oid worker = get_role_oid(pgd_worker_role, true);
        if (OidIsValid(worker) && caller == worker) return;
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("df._run_step: role \"%s\" is not the pg_durable daemon's role \"%s\" "
                               "(pg_durable.worker_role)",
                               GetUserNameFromId(caller, false), pgd_worker_role)));
    }
    if (!superuser_arg(caller))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("df._run_step: role \"%s\" is not a superuser; with pg_durable.worker_role "
                               "empty only a superuser runs steps",
                               GetUserNameFromId(caller, false))));
}

// Why the submitter may not run SQL now (nullptr: it may). A step runs as if
// the submitter had logged in, so what a login checks still applies: the role
// exists, has LOGIN, and has CONNECT on this database (an administrator who
// takes these away stops the role's workflows too).
char *submitter_refusal(MemoryContext cxt, const Activation &act, Oid submitter) {
    HeapTuple tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(submitter));
    if (!HeapTupleIsValid(tuple))
        return MemoryContextStrdup(
            cxt, psprintf("Instance %s: submitted_by role no longer exists in pg_roles", act.instance_id));
    Form_pg_authid role = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tuple));
    const bool can_login = role->rolcanlogin;
    char *name = pstrdup(NameStr(role->rolname));
    ReleaseSysCache(tuple);
    if (!can_login)
        return MemoryContextStrdup(cxt, psprintf("%srole \"%s\" is not permitted to log in",
                                                 durable::protocol::kSqlFailedPrefix, name));
    if (pgd_database_aclcheck(MyDatabaseId, submitter, ACL_CONNECT) != ACLCHECK_OK)
        return MemoryContextStrdup(cxt, psprintf("%spermission denied for database \"%s\"",
                                                 durable::protocol::kSqlFailedPrefix,
                                                 get_database_name(MyDatabaseId)));
    return nullptr;
}

// Inserts the activation, or finds and locks the existing row. A concurrent
// call for the same activation waits (in the insert, on the other's
// uncommitted row) until the first commits, then sees it ended: the SQL never
// runs twice. Runs as owner.
// The usual call, a new activation of a live instance, is one statement: the
// insert. Only when it finds the row already there (or the instance is not
// live) is the row read and locked.
// The row is inserted as 'pending', not 'running': no other transaction ever
// sees it before record() writes its outcome in this same transaction (or the
// call rolls back), and 'pending' keeps it out of the indexes of running
// activations (_activations_running_idx, _activations_wake_idx), which would
// otherwise get an entry per step that no query ever reads.
Claim claim_activation(MemoryContext cxt, const Activation &act, const char *instance_status) {
    Oid insert_types[5] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT4OID};
    SPIPlanPtr insert = pgd::keep_plan(&insert_activation_plan,
                                       "INSERT INTO df._activations "
                                       "(instance_id, stamp, node_id, execution, status, attempts, started_at) "
                                       "VALUES ($1, $2, $3, $4, 'pending', $5, now()) "
                                       "ON CONFLICT (instance_id, stamp, node_id) DO NOTHING",
                                       5, insert_types);
    Oid lock_types[3] = {TEXTOID, TEXTOID, TEXTOID};
    SPIPlanPtr lock = pgd::keep_plan(&lock_activation_plan,
                                     "SELECT status, result, error FROM df._activations "
                                     "WHERE instance_id = $1 AND stamp = $2 AND node_id = $3 FOR UPDATE",
                                     3, lock_types);
    Datum values[5] = {CStringGetTextDatum(act.instance_id), CStringGetTextDatum(act.stamp),
                       CStringGetTextDatum(act.node_id), Int64GetDatum(act.execution),
                       Int32GetDatum(act.attempt)};
    Claim claim = {CLAIM_RUN, nullptr, nullptr, nullptr};
    const bool live = is_live_instance(instance_status);

    // Two rounds: the second only when the row the insert ran into was gone
    // by the time it was read (READ COMMITTED: each statement sees new commits).
    for (int round = 0; round < 2; ++round) {
        if (live) {
            pgd::expect_spi(SPI_execute_plan(insert, values, nullptr, false, 0), SPI_OK_INSERT,
                            "insert into df._activations");
            if (SPI_processed == 1) return claim;  // new, ours, pending
        }
        pgd::expect_spi(SPI_execute_plan(lock, values, nullptr, false, 1), SPI_OK_SELECT,
                        "lock of df._activations");
        if (SPI_processed == 1) {
            HeapTuple tuple = SPI_tuptable->vals[0];
            TupleDesc desc = SPI_tuptable->tupdesc;
            char *status = copy_value(cxt, tuple, desc, 1);
            if (is_terminal(status)) {
                claim.kind = CLAIM_DUPLICATE;
                claim.status = status;
                claim.result = copy_value(cxt, tuple, desc, 2);
                claim.error = copy_value(cxt, tuple, desc, 3);
            } else if (!live) {
                claim.kind = CLAIM_NOT_RUNNING;
                claim.status = instance_status;
            }
            SPI_freetuptable(SPI_tuptable);
            return claim;  // CLAIM_RUN: pending or running row, now locked by us
        }
        SPI_freetuptable(SPI_tuptable);
        if (!live) {
            claim.kind = CLAIM_NOT_RUNNING;
            claim.status = instance_status;
            return claim;
        }
    }
    elog(ERROR, "could not claim activation %s/%s/%s", act.instance_id, act.stamp, act.node_id);
}

// Locks the instance row for the bookkeeping. Every writer of an instance's
// state (this function, df.cancel, the daemon) locks this row first, so they
// serialize without deadlocks; the lock is held only for the bookkeeping,
// never while the step's SQL runs, so df.cancel never waits for a step.
InstanceState lock_instance(MemoryContext cxt, const char *instance_id) {
    Oid types[1] = {TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&lock_instance_plan,
                                     "SELECT status, error, xmin FROM df.instances WHERE id = $1 FOR NO KEY UPDATE",
                                     1, types);
    Datum values[1] = {CStringGetTextDatum(instance_id)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 1), SPI_OK_SELECT, "lock of df.instances");
    InstanceState state = {nullptr, nullptr, false};
    if (SPI_processed == 1) {
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        state.status = copy_value(cxt, tuple, desc, 1);
        state.error = copy_value(cxt, tuple, desc, 2);
        bool isnull = false;
        TransactionId xmin = DatumGetTransactionId(SPI_getbinval(tuple, desc, 3, &isnull));
        state.changed_by_us = !isnull && TransactionIdIsCurrentTransactionId(xmin);
    }
    SPI_freetuptable(SPI_tuptable);
    return state;
}

// ---- 3./4. run the step --------------------------------------------------------
// Runs the step's text as the current user (the submitter). Raises on any
// error, including
// transaction control, which PostgreSQL refuses inside a function.
void execute_user_sql(const char *query) {
    int rc = SPI_execute(query, false, 0);
    if (rc == SPI_ERROR_TRANSACTION)
        ereport(ERROR, (errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION), errmsg("%s", kTransactionControl)));
    if (rc == SPI_ERROR_COPY)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("COPY to or from the client is not allowed in a workflow step")));
    if (rc < 0) elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
}

// SET CONSTRAINTS ALL IMMEDIATE, before the step's SQL. In a restricted
// operation PostgreSQL refuses to queue a deferred trigger event (it would fire
// at commit, after the identity switch back, as the daemon's role), so
// DEFERRABLE INITIALLY DEFERRED constraints are checked at the end of each of
// the step's statements, as the submitter; a step that says SET CONSTRAINTS
// ... DEFERRED itself fails with "cannot fire deferred trigger within
// security-restricted operation".
void constraints_immediate() {
    ConstraintsSetStmt *stmt = makeNode(ConstraintsSetStmt);
    stmt->constraints = NIL;
    stmt->deferred = false;
    AfterTriggerSetState(stmt);
}

// The submitter's role settings, ALTER ROLE r SET first, then ALTER ROLE r IN
// DATABASE d SET (which wins), as "name=value" items (palloc'd in cxt), read
// before the identity switch. Straight from the catalog's index, as a login
// reads them (PostgreSQL's process_settings / ApplySetting: the catalog
// snapshot, so a setting changed since the last step applies to the next),
// not through SPI: an executor statement per step for a catalog row that is
// usually absent cost more than the rest of this function.
void append_role_settings(MemoryContext cxt, Relation rel, Snapshot snapshot, Oid database, Oid role,
                          List **items) {
    ScanKeyData keys[2];
    ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(database));
    ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(role));
    SysScanDesc scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, snapshot, 2, keys);
    HeapTuple tuple;
    while (HeapTupleIsValid(tuple = systable_getnext(scan))) {
        bool isnull = false;
        Datum config = heap_getattr(tuple, Anum_pg_db_role_setting_setconfig, RelationGetDescr(rel), &isnull);
        if (isnull) continue;
        Datum *elems = nullptr;
        bool *elem_nulls = nullptr;
        int count = 0;
        deconstruct_array(DatumGetArrayTypeP(config), TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls,
                          &count);
        MemoryContext old = MemoryContextSwitchTo(cxt);
        for (int i = 0; i < count; ++i)
            if (!elem_nulls[i]) *items = lappend(*items, TextDatumGetCString(elems[i]));
        MemoryContextSwitchTo(old);
    }
    systable_endscan(scan);
}

List *read_role_settings(MemoryContext cxt, Oid submitter) {
    Relation rel = table_open(DbRoleSettingRelationId, AccessShareLock);
    Snapshot snapshot = RegisterSnapshot(GetCatalogSnapshot(DbRoleSettingRelationId));
    List *items = NIL;
    append_role_settings(cxt, rel, snapshot, InvalidOid, submitter, &items);
    append_role_settings(cxt, rel, snapshot, MyDatabaseId, submitter, &items);
    UnregisterSnapshot(snapshot);
    table_close(rel, AccessShareLock);
    return items;
}

// Applies the role settings at the current GUC nest level, so AtEOXact_GUC
// takes them back. Not through ApplySetting: its login sources
// (PGC_S_USER...) also rewrite the session's reset values, which a nest level
// does not restore, so a role setting would outlive the step. As session
// settings instead, with the login's context (PGC_SUSET: ALTER ROLE checked
// the privilege). Skipped, as a login skips them: the connection's own
// client_encoding and application_name (the daemon needs UTF8), and with a
// WARNING what cannot change now (SET role, backend-only parameters).
void apply_role_settings(List *items) {
    ListCell *cell;
    foreach (cell, items) {
        char *name = nullptr;
        char *value = nullptr;
        ParseLongOption(static_cast<const char *>(lfirst(cell)), &name, &value);
        if (value == nullptr) continue;
        if (pg_strcasecmp(name, "client_encoding") == 0 || pg_strcasecmp(name, "application_name") == 0) continue;
        (void)set_config_option(name, value, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET, true, WARNING, false);
    }
}

// statement_timeout is armed by PostgreSQL when the daemon's statement starts,
// with the daemon's value; the step's value (its role setting) is known only
// now, so the step arms its own timer and removes it when its SQL is done.
// Returns whether it armed one.
bool arm_statement_timeout() {
    if (StatementTimeout > 0) {
        enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
        return true;
    }
    if (get_timeout_active(STATEMENT_TIMEOUT)) disable_timeout(STATEMENT_TIMEOUT, false);
    return false;
}

// Removes the step's timer; a timeout that fired but is not yet processed
// fails the step here (as a statement timeout), not the bookkeeping after it.
void disarm_statement_timeout(bool armed) {
    if (!armed) return;
    disable_timeout(STATEMENT_TIMEOUT, true);
    CHECK_FOR_INTERRUPTS();
}

// Builds {"rows":[...],"row_count":N} from the last statement's tuples, each
// row exactly as row_to_json gives it (every type through PostgreSQL's own
// to_json conversion, column order and duplicate names kept). Runs as the
// caller with the step's settings in force (TimeZone, user casts to json).
char *rows_to_json(MemoryContext cxt, SPITupleTable *table) {
    uint64 count = table != nullptr ? table->numvals : 0;

    MemoryContext old = MemoryContextSwitchTo(cxt);
    StringInfoData buf;
    initStringInfo(&buf);
    MemoryContextSwitchTo(old);
    appendStringInfoString(&buf, "{\"rows\":[");
    if (count > 0) {
        TupleDesc desc = BlessTupleDesc(table->tupdesc);  // a record type row_to_json can look up
        MemoryContext rowcxt = AllocSetContextCreate(cxt, "pg_durable step row", ALLOCSET_DEFAULT_SIZES);
        for (uint64 i = 0; i < count; ++i) {
            old = MemoryContextSwitchTo(rowcxt);
            Datum row = heap_copy_tuple_as_datum(table->vals[i], desc);  // also detoasts
            text *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));
            MemoryContextSwitchTo(old);
            if (i > 0) appendStringInfoChar(&buf, ',');
            appendBinaryStringInfo(&buf, VARDATA_ANY(json), static_cast<int>(VARSIZE_ANY_EXHDR(json)));
            MemoryContextReset(rowcxt);
            CHECK_FOR_INTERRUPTS();
        }
        MemoryContextDelete(rowcxt);
    }
    appendStringInfo(&buf, "],\"row_count\":" UINT64_FORMAT "}", count);
    if (table != nullptr) SPI_freetuptable(table);
    return buf.data;
}

// Session state a step may leave behind that neither the restricted
// operation refuses nor the settings rollback covers (DESIGN §2.4): its
// session-level advisory locks and the sequence values currval/lastval would
// show the next step. (Temporary objects, PREPARE, LISTEN and WITH HOLD
// cursors are refused in a restricted operation; DISCARD TEMP stays as a
// guard.) All of these are allowed inside a transaction, unlike DISCARD ALL.
void reset_session_state() {
    ResetTempTableNamespace();            // DISCARD TEMP
    LockReleaseSession(USER_LOCKMETHOD);  // pg_advisory_unlock_all()
    ResetSequenceCaches();                // DISCARD SEQUENCES
}

char *failure_text(MemoryContext cxt, const ErrorData *edata) {
    // COMMIT/ROLLBACK inside a procedure or DO block in a step: the same rule.
    const char *message = edata->sqlerrcode == ERRCODE_INVALID_TRANSACTION_TERMINATION ? kTransactionControl
                                                                                        : edata->message;
    // SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION (and set_config of
    // either): PostgreSQL words it for SECURITY DEFINER functions.
    if (edata->message_id != nullptr &&
        strcmp(edata->message_id, "cannot set parameter \"%s\" within security-definer function") == 0)
        message = kRoleChange;
    return MemoryContextStrdup(cxt, psprintf("%s%s", durable::protocol::kSqlFailedPrefix, message ? message : ""));
}

char *cancelled_text(MemoryContext cxt, const char *reason) {
    return MemoryContextStrdup(cxt, psprintf("%s%s", durable::protocol::kCancelledPrefix, reason ? reason : ""));
}

// Runs the step in an internal subtransaction and fills `out`. The caller's
// memory context and resource owner are restored on every path, as PL/pgSQL
// does for an exception block. Errors in the step's SQL are caught and
// described in `out`; errors in our own bookkeeping are re-thrown.
// Without `check_instance` (a target database: no df tables there) the step
// keeps its effects whenever its SQL succeeded.
void run_step_sql(MemoryContext cxt, const Activation &act, Oid submitter, List *role_settings,
                  bool check_instance, StepResult *out) {
    MemoryContext oldcontext = CurrentMemoryContext;
    ResourceOwner oldowner = CurrentResourceOwner;
    volatile bool in_bookkeeping = false;
    volatile bool timer_armed = false;

    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(oldcontext);

    PG_TRY();
    {
        // Every setting the step changes — its role settings, SET, SET
        // LOCAL, set_config() — is reverted below, before the bookkeeping and
        // before this function returns, even on success. (A function's SET
        // clause alone restores only the settings it names; a plain SET
        // inside would otherwise outlive the call and leak into the next step.)
        int step_gucs = NewGUCNestLevel();
        Oid daemon_user;
        int daemon_context;
        GetUserIdAndSecContext(&daemon_user, &daemon_context);
        SetUserIdAndSecContext(submitter,
                               daemon_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
        apply_role_settings(role_settings);
        constraints_immediate();
        timer_armed = arm_statement_timeout();
        execute_user_sql(act.query);
        SPITupleTable *tuples = SPI_tuptable;  // the last statement's rows
        char *result = rows_to_json(cxt, tuples);  // as the submitter, with its settings
        disarm_statement_timeout(timer_armed);
        timer_armed = false;
        reset_session_state();
        SetUserIdAndSecContext(daemon_user, daemon_context);
        AtEOXact_GUC(false, step_gucs);

        in_bookkeeping = true;
        InstanceState instance = {nullptr, nullptr, false};
        if (check_instance) {
            OwnerScope owner = enter_owner();
            instance = lock_instance(cxt, act.instance_id);
            leave_owner(owner);
        }

        // Cancelled by someone else while the step ran: its effects roll back
        // (SPEC §13). A step that cancelled its own instance keeps its effects,
        // which include that cancellation.
        if (instance.status != nullptr && strcmp(instance.status, "cancelled") == 0 && !instance.changed_by_us) {
            out->end = STEP_CANCELLED;
            out->error = cancelled_text(cxt, instance.error);
            RollbackAndReleaseCurrentSubTransaction();
        } else {
            out->end = STEP_COMPLETED;
            out->result = result;
            out->instance_status = instance.status;
            ReleaseCurrentSubTransaction();
        }
        MemoryContextSwitchTo(oldcontext);
        CurrentResourceOwner = oldowner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(oldcontext);
        if (timer_armed) disable_timeout(STATEMENT_TIMEOUT, false);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();

        // Undoes the step's effects, settings, user id and security context
        // (saved at subtransaction start) and locks (SPI frees what it
        // allocated inside the subtransaction).
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(oldcontext);
        CurrentResourceOwner = oldowner;
        LockReleaseSession(USER_LOCKMETHOD);  // session advisory locks survive a rollback

        if (in_bookkeeping) ReThrowError(edata);
        out->end = STEP_FAILED;
        out->error = failure_text(cxt, edata);
        // pg_cancel_backend, not a statement_timeout (same SQLSTATE; the
        // untranslated message tells them apart).
        out->interrupted = edata->sqlerrcode == ERRCODE_QUERY_CANCELED && edata->message_id != nullptr &&
                           strcmp(edata->message_id, "canceling statement due to user request") == 0;
        FreeErrorData(edata);
    }
    PG_END_TRY();
}

// ---- 5. record -------------------------------------------------------------------

void set_running_if_pending(const char *instance_id) {
    Oid types[1] = {TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&to_running_plan,
                                     "UPDATE df.instances SET status = 'running', updated_at = clock_timestamp() "
                                     "WHERE id = $1 AND status = 'pending'",
                                     1, types);
    Datum values[1] = {CStringGetTextDatum(instance_id)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_UPDATE, "update of df.instances");
}

// Writes the activation's outcome, counts it in df._step_counters and mirrors
// it onto the node's df.nodes row (only while the activation belongs to the
// instance's current execution). The count is made here, in the statement
// that records the outcome, as the trigger on df._activations does for every
// other writer (it skips rows with executed_query, which only this function
// writes; sql/parts/55_operator_metrics.sql): outcomes go to a counter row no
// other transaction holds (this backend's own, pid % 16, when free; SKIP
// LOCKED), so a step never waits for another's count; only when all 16 are
// taken does it wait for its own row.
void record(const Activation &act, const char *status, const char *result, const char *error) {
    Oid types[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID};
    SPIPlanPtr plan = pgd::keep_plan(&record_plan,
        "WITH a AS ("
        "  UPDATE df._activations"
        "     SET status = $4, result = $5, error = $6, executed_query = $7, attempts = $8, execution = $9,"
        "         started_at = COALESCE(started_at, now()), completed_at = clock_timestamp(),"
        "         updated_at = clock_timestamp()"
        "   WHERE instance_id = $1 AND stamp = $2 AND node_id = $3"
        "  RETURNING started_at, completed_at),"
        " c AS ("
        "  UPDATE df._step_counters c"
        "     SET completed = c.completed + ($4 = 'completed')::int, failed = c.failed + ($4 = 'failed')::int,"
        "         cancelled = c.cancelled + ($4 = 'cancelled')::int"
        "   WHERE c.shard = (SELECT s.shard FROM df._step_counters s WHERE s.shard < 16"
        "                     ORDER BY s.shard = pg_backend_pid() % 16 DESC, s.shard"
        "                     LIMIT 1 FOR UPDATE SKIP LOCKED)"
        "     AND EXISTS (SELECT 1 FROM a)"
        "  RETURNING 1)"
        " SELECT a.started_at, a.completed_at,"
        "        EXISTS (SELECT 1 FROM df.instances i WHERE i.id = $1 AND i.execution_count = $9),"
        "        EXISTS (SELECT 1 FROM c)"
        "   FROM a",
        9, types);
    Datum result_datum = result ? CStringGetTextDatum(result) : (Datum)0;
    Datum error_datum = error ? CStringGetTextDatum(error) : (Datum)0;
    Datum values[9] = {CStringGetTextDatum(act.instance_id), CStringGetTextDatum(act.stamp),
                       CStringGetTextDatum(act.node_id), CStringGetTextDatum(status), result_datum,
                       error_datum, CStringGetTextDatum(act.query), Int32GetDatum(act.attempt),
                       Int64GetDatum(act.execution)};
    char nulls[10] = "         ";
    if (result == nullptr) nulls[4] = 'n';
    if (error == nullptr) nulls[5] = 'n';
    pgd::expect_spi(SPI_execute_plan(plan, values, nulls, false, 0), SPI_OK_SELECT, "record of the activation");
    if (SPI_processed != 1) {  // the row is gone (a superuser's step deleted its own instance): nothing to count
        SPI_freetuptable(SPI_tuptable);
        return;
    }
    HeapTuple tuple = SPI_tuptable->vals[0];
    TupleDesc desc = SPI_tuptable->tupdesc;
    bool started_null = false, completed_null = false, isnull = false;
    Datum started_at = SPI_getbinval(tuple, desc, 1, &started_null);  // timestamptz: by value
    Datum completed_at = SPI_getbinval(tuple, desc, 2, &completed_null);
    const bool current = DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull));
    const bool counted = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
    SPI_freetuptable(SPI_tuptable);

    if (!counted) {  // all 16 counter rows held by other transactions: wait for our own
        Oid count_types[1] = {TEXTOID};
        SPIPlanPtr count = pgd::keep_plan(&count_fallback_plan,
            "INSERT INTO df._step_counters AS c (shard, completed, failed, cancelled)"
            " VALUES (pg_backend_pid() % 16, ($1 = 'completed')::int, ($1 = 'failed')::int,"
            "         ($1 = 'cancelled')::int)"
            " ON CONFLICT (shard) DO UPDATE"
            "    SET completed = c.completed + EXCLUDED.completed, failed = c.failed + EXCLUDED.failed,"
            "        cancelled = c.cancelled + EXCLUDED.cancelled",
            1, count_types);
        pgd::expect_spi(SPI_execute_plan(count, &values[3], nullptr, false, 0), SPI_OK_INSERT,
                        "count of the outcome");
    }

    if (current) {
        Datum node[pgd::kNodeStateArgs] = {values[0], values[2], values[1], values[3], result_datum, error_datum,
                                           started_at, completed_at, values[6], values[7], Int32GetDatum(0)};
        char node_nulls[pgd::kNodeStateArgs + 1] = "           ";
        if (result == nullptr) node_nulls[pgd::NS_RESULT] = 'n';
        if (error == nullptr) node_nulls[pgd::NS_ERROR] = 'n';
        if (started_null) node_nulls[pgd::NS_STARTED_AT] = 'n';
        if (completed_null) node_nulls[pgd::NS_COMPLETED_AT] = 'n';
        (void)pgd::set_node_state(node, node_nulls);
    }
}

// Applies `finish` after a successful step: {"instance":"completed",
// "root_node_ids":[...]} completes the instance, marks the listed ancestors
// completed with the step's result (the root result lives in the root's
// df.nodes row) and drops its unconsumed signals (SPEC §13). A no-op when
// the instance is no longer pending or running. Unknown keys are ignored.
void apply_finish(const Activation &act, const char *result) {
    Oid types[4] = {TEXTOID, JSONBOID, JSONOID, TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&finish_plan,
        "WITH fin AS ("
        "  UPDATE df.instances"
        "     SET status = 'completed', completed_at = clock_timestamp(), updated_at = clock_timestamp()"
        "   WHERE id = $1 AND status IN ('pending', 'running') AND $2 ->> 'instance' = 'completed'"
        "  RETURNING id),"
        " roots AS ("
        "  SELECT df._set_node_state(fin.id, n.id, CASE WHEN n.status_details IS NULL THEN $4 END,"
        "                            'completed', $3, NULL)"
        "    FROM fin JOIN df.nodes n ON n.instance_id = fin.id"
        "   WHERE n.id IN (SELECT jsonb_array_elements_text(COALESCE($2 -> 'root_node_ids', '[]'::jsonb)))),"
        " sig AS (DELETE FROM df._signals s USING fin WHERE s.instance_id = fin.id RETURNING 1)"
        " SELECT (SELECT count(*) FROM fin), (SELECT count(*) FROM roots), (SELECT count(*) FROM sig)",
        4, types);
    Datum values[4] = {CStringGetTextDatum(act.instance_id), act.finish, CStringGetTextDatum(result),
                       CStringGetTextDatum(act.stamp)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_SELECT, "finish of the instance");
    SPI_freetuptable(SPI_tuptable);
}

// Applies `finish`'s "mirrors": status mirrors of compound nodes the daemon
// derived since its last commit; they ride along here instead of costing a
// commit of their own. They are facts from before this step, so they are
// written whatever the step's outcome (a failed step must not lose them).
void apply_mirrors(const Activation &act) {
    Oid mirror_types[2] = {TEXTOID, JSONBOID};
    SPIPlanPtr mirrors = pgd::keep_plan(&mirror_plan,
        "SELECT df._set_node_state($1, m.node_id, m.stamp, m.status, m.result::json, m.error,"
        "                          NULL, NULL, NULL, m.attempts)"
        "  FROM jsonb_to_recordset(COALESCE($2 -> 'mirrors', '[]'::jsonb))"
        "       AS m(node_id text, stamp text, status text, result text, error text, attempts int)",
        2, mirror_types);
    Datum mirror_values[2] = {CStringGetTextDatum(act.instance_id), act.finish};
    pgd::expect_spi(SPI_execute_plan(mirrors, mirror_values, nullptr, false, 0), SPI_OK_SELECT,
                    "status mirrors of the finish");
    SPI_freetuptable(SPI_tuptable);
}

// ---- outcome JSON ------------------------------------------------------------------

void append_json_string_or_null(StringInfo buf, const char *value) {
    if (value == nullptr)
        appendStringInfoString(buf, "null");
    else
        escape_json(buf, value);
}

void append_raw_json_or_null(StringInfo buf, const char *value) {
    appendStringInfoString(buf, value == nullptr ? "null" : value);
}

const char *required_arg(FunctionCallInfo fcinfo, int n, const char *name) {
    if (PG_ARGISNULL(n))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("df._run_step: %s cannot be NULL", name)));
    return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

}  // namespace

// df._run_step(secret text, instance_id text, stamp text, node_id text,
//              execution bigint, query text, attempt int, finish jsonb) RETURNS text
//
// Outcomes (compact JSON):
//   {"outcome":"completed","result":{"rows":[...],"row_count":N}}
//   {"outcome":"failed","error":"SQL execution failed: ..."}
//   {"outcome":"cancelled","error":"Cancelled: <reason>"}
//   {"outcome":"duplicate","status":"<s>","result":<json|null>,"error":<text|null>}
//   {"outcome":"instance_not_running","status":"<s>"|null}
Datum df__run_step(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("df._run_step may only be called by the pg_durable daemon")));
    text *secret = PG_GETARG_TEXT_PP(0);
    Activation act;
    act.instance_id = required_arg(fcinfo, 1, "instance_id");
    act.stamp = required_arg(fcinfo, 2, "stamp");
    act.node_id = required_arg(fcinfo, 3, "node_id");
    if (PG_ARGISNULL(4) || PG_ARGISNULL(6))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("df._run_step: execution and attempt cannot be NULL")));
    act.execution = PG_GETARG_INT64(4);
    act.query = required_arg(fcinfo, 5, "query");
    act.attempt = PG_GETARG_INT32(6);
    act.has_finish = !PG_ARGISNULL(7);
    act.finish = act.has_finish ? PG_GETARG_DATUM(7) : (Datum)0;

    MemoryContext cxt = CurrentMemoryContext;  // survives SPI_finish and the subtransaction
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");

    // 1. and 2., as table owner.
    check_caller(GetUserId());
    // Before the first df table (the secret's): a DROP EXTENSION interrupts
    // us instead of waiting, or we wait for it holding no df lock.
    pgd_mark_running_step();
    OwnerScope owner = enter_owner();
    const CallState state = read_call_state(cxt, secret, act);  // raises on a wrong secret
    const Oid submitter = state.submitter;
    Claim claim = claim_activation(cxt, act, state.instance_status);
    leave_owner(owner);

    StringInfoData out;
    MemoryContext old = MemoryContextSwitchTo(cxt);
    initStringInfo(&out);
    MemoryContextSwitchTo(old);

    if (claim.kind == CLAIM_DUPLICATE) {
        appendStringInfoString(&out, "{\"outcome\":\"duplicate\",\"status\":");
        escape_json(&out, claim.status);
        appendStringInfoString(&out, ",\"result\":");
        append_raw_json_or_null(&out, claim.result);
        appendStringInfoString(&out, ",\"error\":");
        append_json_string_or_null(&out, claim.error);
        appendStringInfoChar(&out, '}');
    } else if (claim.kind == CLAIM_NOT_RUNNING) {
        appendStringInfoString(&out, "{\"outcome\":\"instance_not_running\",\"status\":");
        append_json_string_or_null(&out, claim.status);
        appendStringInfoChar(&out, '}');
    } else {
        // 3. and 4., as the submitter.
        StepResult step = {STEP_FAILED, nullptr, nullptr, nullptr, false};
        step.error = submitter_refusal(cxt, act, submitter);
        if (step.error == nullptr)
            run_step_sql(cxt, act, submitter, read_role_settings(cxt, submitter), true, &step);

        // 5., as table owner, in the same transaction.
        owner = enter_owner();
        // Interrupted by the daemon and the instance not cancelled (a RACE
        // loser): nothing is recorded, the whole call rolls back (SPEC
        // §10.5) and the daemon sees 57014. Decided without the instance
        // lock: the daemon may hold it while it waits for this activation.
        if (step.end == STEP_FAILED && step.interrupted) {
            Oid types[1] = {TEXTOID};
            Datum values[1] = {CStringGetTextDatum(act.instance_id)};
            // read_only = false: a fresh snapshot sees a df.cancel committed since the call began.
            pgd::expect_spi(SPI_execute_with_args("SELECT status FROM df.instances WHERE id = $1", 1, types, values,
                                                  nullptr, false, 1),
                            SPI_OK_SELECT, "read of df.instances");
            const char *now_status =
                SPI_processed == 1 ? copy_value(cxt, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : nullptr;
            if (now_status == nullptr || strcmp(now_status, "cancelled") != 0)
                ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("canceling statement due to user request")));
        }
        if (step.end == STEP_FAILED) {
            InstanceState instance = lock_instance(cxt, act.instance_id);
            if (instance.status != nullptr && strcmp(instance.status, "cancelled") == 0) {
                // Interrupted by df.cancel (57014), or failed after it: cancelled.
                step.end = STEP_CANCELLED;
                step.error = cancelled_text(cxt, instance.error);
            } else if (instance.status != nullptr && strcmp(instance.status, "pending") == 0) {
                set_running_if_pending(act.instance_id);
            }
        } else if (step.end == STEP_COMPLETED && step.instance_status != nullptr &&
                   strcmp(step.instance_status, "pending") == 0) {
            set_running_if_pending(act.instance_id);
        }

        if (step.end == STEP_COMPLETED) {
            record(act, "completed", step.result, nullptr);
            if (act.has_finish) {
                apply_finish(act, step.result);
                apply_mirrors(act);
            }
            appendStringInfoString(&out, "{\"outcome\":\"completed\",\"result\":");
            appendStringInfoString(&out, step.result);
        } else {
            const char *status = step.end == STEP_CANCELLED ? "cancelled" : "failed";
            record(act, status, nullptr, step.error);
            if (act.has_finish) apply_mirrors(act);
            appendStringInfo(&out, "{\"outcome\":\"%s\",\"error\":", status);
            escape_json(&out, step.error);
        }
        appendStringInfoChar(&out, '}');
        leave_owner(owner);
    }

    SPI_finish();
    PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}

// df._run_step(instance_id text, submitter oid, query text) RETURNS text, in a
// TARGET database: one where extension pg_durable_target, not pg_durable, is
// installed (steps of `database => ...`, SPEC §10.2). The same identity switch,
// session reset and row_to_json conversion as above, without the bookkeeping:
// this database holds no df tables, so the daemon records the outcome in the
// extension's database afterwards (at-least-once).
//
// Who may make a step run as a role here (docs/ARCHITECTURE.md "Steps in
// another database"): the caller must be the daemon's role (check_caller,
// the same check as above). There is no secret: the active daemon's secret
// lives in the extension's database, which this function cannot read, and
// what the secret adds there — fencing a replaced daemon's late completion
// records, for exactly-once — has no object here. The submitter must exist,
// have LOGIN and CONNECT on this database, and not be a superuser unless
// pg_durable.enable_superuser_instances is on, so the daemon's own role
// (not a superuser when pg_durable.worker_role is set) cannot borrow a
// superuser's rights through this function.
//
// Outcomes: {"outcome":"completed","result":{...}} or
// {"outcome":"failed","error":"..."}. Interrupted by the daemon's
// pg_cancel_backend it raises 57014, as above.
Datum df__run_target_step(PG_FUNCTION_ARGS) {
    Activation act = {};
    act.instance_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
    act.stamp = "";
    act.node_id = "";
    const Oid submitter = PG_GETARG_OID(1);
    act.query = text_to_cstring(PG_GETARG_TEXT_PP(2));

    MemoryContext cxt = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    check_caller(GetUserId());

    StepResult step = {STEP_FAILED, nullptr, nullptr, nullptr, false};
    step.error = submitter_refusal(cxt, act, submitter);
    if (step.error == nullptr && superuser_arg(submitter) && !pgd_enable_superuser_instances)
        step.error = MemoryContextStrdup(
            cxt, psprintf("pg_durable blocked instance %s: submitted_by role \"%s\" is a superuser, but "
                          "pg_durable.enable_superuser_instances is off",
                          act.instance_id, GetUserNameFromId(submitter, false)));
    if (step.error == nullptr) run_step_sql(cxt, act, submitter, read_role_settings(cxt, submitter), false, &step);
    if (step.end == STEP_FAILED && step.interrupted)
        ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("canceling statement due to user request")));

    StringInfoData out;
    MemoryContext old = MemoryContextSwitchTo(cxt);
    initStringInfo(&out);
    MemoryContextSwitchTo(old);
    if (step.end == STEP_COMPLETED) {
        appendStringInfoString(&out, "{\"outcome\":\"completed\",\"result\":");
        appendStringInfoString(&out, step.result);
    } else {
        appendStringInfoString(&out, "{\"outcome\":\"failed\",\"error\":");
        escape_json(&out, step.error);
    }
    appendStringInfoChar(&out, '}');
    SPI_finish();
    PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
