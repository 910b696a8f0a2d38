// DROP EXTENSION pg_durable (and DROP SCHEMA df) must not hang behind a long
// step (SPEC §2, DESIGN §2.10). A step's transaction holds locks on df tables
// while the user's SQL runs (its activation row, the tables it read), so the
// drop's ACCESS EXCLUSIVE locks would wait for every running step, and every
// df.* call queued behind the drop's lock request with it. Instead, each
// df._run_step holds a shared transaction-level marker lock, and a utility
// hook interrupts the holders (as pg_cancel_backend does) before the drop
// takes its locks: their transactions roll back, nothing is recorded, and
// the drop proceeds.
//
// A step that starts while the drop is under way (the daemon reruns an
// interrupted step, or starts another) must not slip in between the
// interruption and the drop's locks: it would take locks on df tables and
// hold the drop until it ends. So there is a gate, a second advisory key: the
// drop takes it exclusively (until it commits) before it looks for marked
// steps, and a step, after setting its marker, passes the gate shared (takes
// it and lets it go at once). Either the step's marker is set before the drop
// looks (the step is interrupted, also while it waits at the gate), or the
// step reaches the gate after the drop took it and waits there, holding no
// df lock, until the drop commits; then it finds the extension gone. A step
// passes the gate before it touches any df table, or the drop and the
// waiting step would deadlock. Pure PG zone: no C++ objects live here.
extern "C" {
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/utility.h"
}

#include "extension/pg_compat.hpp"
#include "extension/uninstall.hpp"

namespace {

// The marker: an advisory lock tag in the extension's database with a key
// no user would pick by chance ("pgd" + 1); a user taking it only gets their
// own session interrupted by a drop.
constexpr uint32 kMarkerKey1 = 0x70676400;
constexpr uint32 kMarkerKey2 = 1;
// The gate: the same first key, second key 2.
constexpr uint32 kGateKey2 = 2;

LOCKTAG marker_tag() {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, kMarkerKey1, kMarkerKey2, 2);
    return tag;
}

LOCKTAG gate_tag() {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, kMarkerKey1, kGateKey2, 2);
    return tag;
}

ProcessUtility_hook_type previous_hook = nullptr;

bool names(List *objects, const char *name) {
    ListCell *cell;
    foreach (cell, objects) {
        Node *object = (Node *)lfirst(cell);
        if (IsA(object, String) && strcmp(strVal(object), name) == 0) return true;
    }
    return false;
}

bool drops_pg_durable(Node *statement) {
    if (!IsA(statement, DropStmt)) return false;
    DropStmt *drop = (DropStmt *)statement;
    return (drop->removeType == OBJECT_EXTENSION && names(drop->objects, "pg_durable")) ||
           (drop->removeType == OBJECT_SCHEMA && names(drop->objects, "df"));
}

// Closes the gate for the rest of this transaction, then interrupts every
// backend of this database inside df._run_step.
void interrupt_running_steps() {
    LOCKTAG gate = gate_tag();
    (void)LockAcquire(&gate, ExclusiveLock, false, false);
    LOCKTAG tag = marker_tag();
    VirtualTransactionId *holders = GetLockConflicts(&tag, ExclusiveLock, nullptr);
    int interrupted = 0;
    for (; VirtualTransactionIdIsValid(*holders); ++holders) {
        PGPROC *proc = pgd_vxid_proc(*holders);
        if (proc == nullptr || proc->pid == 0 || proc->pid == MyProcPid) continue;
#ifdef HAVE_SETSID
        if (kill(-proc->pid, SIGINT) == 0) ++interrupted;
#else
        if (kill(proc->pid, SIGINT) == 0) ++interrupted;
#endif
    }
    if (interrupted > 0)
        ereport(NOTICE, (errmsg("pg_durable: interrupted %d running workflow step(s) so the drop can proceed",
                                interrupted)));
}

void pgd_process_utility(PlannedStmt *pstmt, const char *query_string, bool read_only_tree,
                         ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *query_env,
                         DestReceiver *dest, QueryCompletion *qc) {
    if (drops_pg_durable(pstmt->utilityStmt)) interrupt_running_steps();
    if (previous_hook != nullptr)
        previous_hook(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
}

}  // namespace

void pgd_install_uninstall_hook() {
    previous_hook = ProcessUtility_hook;
    ProcessUtility_hook = pgd_process_utility;
}

void pgd_mark_running_step() {
    LOCKTAG tag = marker_tag();
    (void)LockAcquire(&tag, ShareLock, false, false);
    // Then through the gate: waits while a drop is under way.
    LOCKTAG gate = gate_tag();
    (void)LockAcquire(&gate, ShareLock, false, false);
    LockRelease(&gate, ShareLock, false);
}
