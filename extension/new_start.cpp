// df.start(..., transaction_mode => 'new') (SPEC §19.1): the start runs in a
// transaction of its own, in a dynamic background worker connected to the
// caller's database as the caller's current_user (no pg_hba change, no
// authentication), and has committed when df.start returns.
//
// Handover: a dsm segment holds the arguments, the caller's PGPROC (whose
// latch the worker sets when done) and the outcome: the new id, or the
// error's SQLSTATE, message, detail and hint, re-raised in the caller.
// The caller waits on its latch with CHECK_FOR_INTERRUPTS, so a cancel works.
//
// Launch slots: a counter in shared memory bounds concurrent starts by
// pg_durable.max_new_transaction_starts; a caller waits up to
// pg_durable.new_transaction_start_timeout for one. The slot is held inside
// PG_ENSURE_ERROR_CLEANUP, so an error, a cancel or the backend's exit
// releases it (and stops a worker still running).
//
// Pure PG zone: no C++ objects with destructors live here (DESIGN §2.11).
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
}

#include "extension/guc.hpp"
#include "extension/new_start.hpp"

extern "C" {
PGDLLEXPORT void pgd_new_start_main(Datum main_arg);
}

namespace {

constexpr int kAutonomousTimeoutMs = 30 * 1000;  // lock_timeout and statement_timeout of the worker
constexpr long kPollMs = 100;                     // latch wait granularity while waiting for a slot

struct SlotState {
    slock_t mutex;
    int in_use;
};

SlotState *slots = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

enum HandoverState : uint32 { kRunning = 0, kDone = 1, kFailed = 2 };

// The dsm segment. Strings follow the struct: fut, label, database, each
// NUL-terminated; has_label / has_database say whether the argument was NULL.
struct Handover {
    pg_atomic_uint32 state;
    PGPROC *caller;
    Oid database_oid;
    Oid role_oid;
    bool has_label;
    bool has_database;
    Size fut_len;
    Size label_len;
    Size database_len;
    char id[16];
    int sqlerrcode;
    char message[2048];
    char detail[1024];
    char hint[1024];
    char strings[FLEXIBLE_ARRAY_MEMBER];
};

void request_shmem() {
    if (previous_request_hook != nullptr) previous_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(SlotState)));
}

void startup_shmem() {
    if (previous_startup_hook != nullptr) previous_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    slots = static_cast<SlotState *>(ShmemInitStruct("pg_durable new transaction starts", sizeof(SlotState), &found));
    if (!found) {
        SpinLockInit(&slots->mutex);
        slots->in_use = 0;
    }
    LWLockRelease(AddinShmemInitLock);
}

bool try_take_slot() {
    bool taken = false;
    SpinLockAcquire(&slots->mutex);
    if (slots->in_use < pgd_max_new_transaction_starts) {
        ++slots->in_use;
        taken = true;
    }
    SpinLockRelease(&slots->mutex);
    return taken;
}

void release_slot() {
    SpinLockAcquire(&slots->mutex);
    if (slots->in_use > 0) --slots->in_use;
    SpinLockRelease(&slots->mutex);
}

// Waits for a launch slot up to new_transaction_start_timeout, then fails
// with the text of SPEC §19.1.
void take_slot() {
    const TimestampTz deadline =
        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int64)pgd_new_transaction_start_timeout * 1000);
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (try_take_slot()) return;
        const TimestampTz now = GetCurrentTimestamp();
        if (now >= deadline)
            ereport(ERROR,
                    (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                     errmsg("pg_durable: transaction_mode => 'new' launch limit reached "
                            "(max_new_transaction_starts=%d). Timed out after %ds waiting for a launch slot "
                            "before opening the loopback session.",
                            pgd_max_new_transaction_starts, pgd_new_transaction_start_timeout)));
        long wait_ms = (long)((deadline - now) / 1000);
        if (wait_ms > kPollMs) wait_ms = kPollMs;
        if (wait_ms < 1) wait_ms = 1;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

// What the cleanup callback needs: the worker to stop if still running.
struct LaunchCleanup {
    BackgroundWorkerHandle *handle;
};

void cleanup_launch(int, Datum arg) {
    auto *cleanup = reinterpret_cast<LaunchCleanup *>(DatumGetPointer(arg));
    if (cleanup->handle != nullptr) TerminateBackgroundWorker(cleanup->handle);
    release_slot();
}

char *copy_string(Handover *h, Size offset, Size len) {
    char *out = static_cast<char *>(palloc(len + 1));
    memcpy(out, h->strings + offset, len);
    out[len] = '\0';
    return out;
}

// Runs in the slot: launch the worker, wait for its outcome.
char *launch_and_wait(const char *fut, const char *label, const char *database, LaunchCleanup *cleanup) {
    const Size fut_len = strlen(fut);
    const Size label_len = label ? strlen(label) : 0;
    const Size database_len = database ? strlen(database) : 0;
    const Size size = offsetof(Handover, strings) + fut_len + label_len + database_len + 3;
    dsm_segment *seg = dsm_create(size, 0);
    auto *h = static_cast<Handover *>(dsm_segment_address(seg));
    memset(h, 0, offsetof(Handover, strings));
    pg_atomic_init_u32(&h->state, kRunning);
    h->caller = MyProc;
    h->database_oid = MyDatabaseId;
    h->role_oid = GetUserId();
    h->has_label = label != nullptr;
    h->has_database = database != nullptr;
    h->fut_len = fut_len;
    h->label_len = label_len;
    h->database_len = database_len;
    memcpy(h->strings, fut, fut_len + 1);
    if (label) memcpy(h->strings + fut_len + 1, label, label_len + 1);
    else h->strings[fut_len + 1] = '\0';
    if (database) memcpy(h->strings + fut_len + label_len + 2, database, database_len + 1);
    else h->strings[fut_len + label_len + 2] = '\0';

    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(worker.bgw_library_name, "pg_durable", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "pgd_new_start_main", BGW_MAXLEN);
    strlcpy(worker.bgw_name, "pg_durable new transaction start", BGW_MAXLEN);
    strlcpy(worker.bgw_type, "pg_durable new transaction start", BGW_MAXLEN);
    worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
    worker.bgw_notify_pid = MyProcPid;
    if (!RegisterDynamicBackgroundWorker(&worker, &cleanup->handle))
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("pg_durable: could not register a background worker for transaction_mode => 'new'"),
                        errhint("Raise max_worker_processes.")));

    for (;;) {
        CHECK_FOR_INTERRUPTS();
        uint32 state = pg_atomic_read_u32(&h->state);
        if (state != kRunning) {
            pg_read_barrier();
            if (state == kDone) {
                char *id = pstrdup(h->id);
                dsm_detach(seg);
                return id;
            }
            const int code = h->sqlerrcode;
            char *message = pstrdup(h->message);
            char *detail = h->detail[0] ? pstrdup(h->detail) : nullptr;
            char *hint = h->hint[0] ? pstrdup(h->hint) : nullptr;
            dsm_detach(seg);
            ereport(ERROR, (errcode(code), errmsg("%s", message), detail ? errdetail("%s", detail) : 0,
                            hint ? errhint("%s", hint) : 0));
        }
        pid_t pid;
        if (GetBackgroundWorkerPid(cleanup->handle, &pid) == BGWH_STOPPED &&
            pg_atomic_read_u32(&h->state) == kRunning)
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                            errmsg("pg_durable: the transaction_mode => 'new' worker exited without a result"),
                            errhint("The server log has the worker's error (e.g. a connection limit of the role "
                                    "or the database).")));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

void report_to_caller(Handover *h) {
    PGPROC *caller = h->caller;
    SetLatch(&caller->procLatch);
}

}  // namespace

void pgd_new_start_install_shmem_hooks() {
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_shmem;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = startup_shmem;
}

char *pgd_start_in_new_transaction(const char *fut, const char *label, const char *database) {
    if (slots == nullptr) elog(ERROR, "pg_durable: shared memory for transaction_mode => 'new' is not set up");
    // A standby starts no such worker (BgWorkerStart_RecoveryFinished) and
    // could not write anyway: fail as a write would, instead of waiting.
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot execute df.start() with transaction_mode => 'new' during recovery")));
    take_slot();
    LaunchCleanup cleanup = {nullptr};
    char *id = nullptr;
    PG_ENSURE_ERROR_CLEANUP(cleanup_launch, PointerGetDatum(&cleanup));
    {
        id = launch_and_wait(fut, label, database, &cleanup);
    }
    PG_END_ENSURE_ERROR_CLEANUP(cleanup_launch, PointerGetDatum(&cleanup));
    release_slot();
    return id;
}

// The worker: connect as the caller's role to the caller's database, run the
// start in one transaction, commit, hand back the id (or the error).
void pgd_new_start_main(Datum main_arg) {
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();

    CurrentResourceOwner = ResourceOwnerCreate(nullptr, "pg_durable new transaction start");
    dsm_segment *seg = dsm_attach(DatumGetUInt32(main_arg));
    if (seg == nullptr) proc_exit(0);  // the caller gave up already
    auto *h = static_cast<Handover *>(dsm_segment_address(seg));
    dsm_pin_mapping(seg);

    BackgroundWorkerInitializeConnectionByOid(h->database_oid, h->role_oid, 0);

    SetConfigOption("lock_timeout", "30s", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("statement_timeout", "30s", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("application_name", "pg_durable new transaction start", PGC_USERSET, PGC_S_OVERRIDE);

    MemoryContext worker_cxt = CurrentMemoryContext;
    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        enable_timeout_after(STATEMENT_TIMEOUT, kAutonomousTimeoutMs);
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, "df.start(transaction_mode => 'new')");
        const char *fut = copy_string(h, 0, h->fut_len);
        const char *label = h->has_label ? copy_string(h, h->fut_len + 1, h->label_len) : nullptr;
        const char *database =
            h->has_database ? copy_string(h, h->fut_len + h->label_len + 2, h->database_len) : nullptr;
        char *id = pgd_start_in_current_transaction(fut, label, database);
        strlcpy(h->id, id, sizeof h->id);
        PopActiveSnapshot();
        disable_timeout(STATEMENT_TIMEOUT, false);
        CommitTransactionCommand();
        pgstat_report_activity(STATE_IDLE, nullptr);
        pg_write_barrier();
        pg_atomic_write_u32(&h->state, kDone);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(worker_cxt);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();
        h->sqlerrcode = edata->sqlerrcode;
        strlcpy(h->message, edata->message ? edata->message : "", sizeof h->message);
        strlcpy(h->detail, edata->detail ? edata->detail : "", sizeof h->detail);
        strlcpy(h->hint, edata->hint ? edata->hint : "", sizeof h->hint);
        disable_all_timeouts(false);
        AbortCurrentTransaction();
        pg_write_barrier();
        pg_atomic_write_u32(&h->state, kFailed);
    }
    PG_END_TRY();
    report_to_caller(h);
    proc_exit(0);
}
