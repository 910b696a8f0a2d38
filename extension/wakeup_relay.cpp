// The wake-up relay (docs/ARCHITECTURE.md "Wake-ups are hints").
//
// PostgreSQL serialises the commits of transactions that issued NOTIFY
// (PreCommit_Notify takes a heavyweight lock on the notify queue and holds it
// through the commit's WAL flush, so such commits cannot group-commit). So
// df.start does not NOTIFY: it notes its instance id for the current
// transaction; at XACT_EVENT_COMMIT (the commit is durable and visible) the
// backend pushes the noted ids into a bounded ring in shared memory and sets
// the latch of the relay, a background worker connected to
// pg_durable.database; the relay drains the ring and sends the ids of many
// starts in one NOTIFY df_wakeup, 'starts:<id>,<id>,...' (one transaction,
// one commit per batch). A rollback (or a rolled-back savepoint) pushes
// nothing. Formats: common/protocol.hpp.
//
// Nothing is lost: a push that does not fit the ring sets its overflow flag,
// and the relay then sends 'rescan' ("look at every live instance", the
// daemon's answer to its own inbox overflow); so does a relay whose NOTIFY
// failed (e.g. a full notify queue). Ids pushed while no relay runs wait in
// the ring for the restarted one (the postmaster restarts it). df.start
// NOTIFYs directly, as before the relay, whenever the relay cannot be used
// when it is called or at PRE_COMMIT: pg_durable.wakeup_relay_slots = 0 (no
// shared memory), a database other than the relay's, no relay running.
//
// The idle relay sleeps on its latch without a timeout (DESIGN §2.5).
//
// Pure PG zone: no C++ objects with destructors live here (DESIGN §2.11);
// the transaction callbacks never raise an error after the commit.
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
}

#include <cstdio>
#include <cstdlib>

#include "common/protocol.hpp"
#include "extension/guc.hpp"
#include "extension/wakeup_relay.hpp"

extern "C" {
PGDLLEXPORT void pgd_wakeup_relay_main(Datum main_arg);
}

namespace {

namespace protocol = durable::protocol;

constexpr const char *kChannel = "df_wakeup";
constexpr const char *kTrancheName = "pg_durable wakeup relay";
// Payloads per relay transaction (one commit); the rest waits for the next round.
constexpr int kPayloadsPerTransaction = 16;
// After a failed NOTIFY (the ids became a rescan), the relay tries again after this long.
constexpr long kRetryMs = 1000;

struct RelayShared {
    slock_t mutex;      // relay and database
    PGPROC *relay;      // the running relay, nullptr when none runs
    Oid database;       // its database (valid while relay != nullptr)
    LWLock *lock;       // the ring and the counters below
    int capacity;
    int head;           // oldest id
    int count;
    bool overflow;      // ids were dropped: the relay sends 'rescan'
    uint64 pushed;      // ids pushed in all
    uint64 sent;        // ids sent in 'starts:' payloads
    uint64 payloads;    // NOTIFY payloads sent
    uint64 rescans;     // 'rescan' payloads sent
    uint32 ids[FLEXIBLE_ARRAY_MEMBER];  // an instance id's 8 hex digits as a number
};

RelayShared *shared = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

Size shared_size() {
    return add_size(offsetof(RelayShared, ids), mul_size(sizeof(uint32), (Size)pgd_wakeup_relay_slots));
}

void request_shmem() {
    if (previous_request_hook != nullptr) previous_request_hook();
    RequestAddinShmemSpace(MAXALIGN(shared_size()));
    RequestNamedLWLockTranche(kTrancheName, 1);
}

void startup_shmem() {
    if (previous_startup_hook != nullptr) previous_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    shared = static_cast<RelayShared *>(ShmemInitStruct("pg_durable wakeup relay", shared_size(), &found));
    if (!found) {
        SpinLockInit(&shared->mutex);
        shared->relay = nullptr;
        shared->database = InvalidOid;
        shared->lock = &(GetNamedLWLockTranche(kTrancheName))->lock;
        shared->capacity = pgd_wakeup_relay_slots;
        shared->head = 0;
        shared->count = 0;
        shared->overflow = false;
        shared->pushed = shared->sent = shared->payloads = shared->rescans = 0;
    }
    LWLockRelease(AddinShmemInitLock);
}

// The running relay when it serves this backend's database, else nullptr.
PGPROC *relay_for_this_database() {
    if (shared == nullptr) return nullptr;
    PGPROC *relay = nullptr;
    SpinLockAcquire(&shared->mutex);
    if (shared->relay != nullptr && shared->database == MyDatabaseId) relay = shared->relay;
    SpinLockRelease(&shared->mutex);
    return relay;
}

// ---- the submitting backend ----

// The ids this transaction's df.start calls noted, with the (sub)transaction
// nesting level of each; entries of deeper levels always form a suffix.
uint32 *pending_ids = nullptr;
int *pending_levels = nullptr;
int pending_allocated = 0;
int pending_count = 0;
bool pending_overflow = false;  // more than the ring holds: the relay sends 'rescan'
bool callbacks_registered = false;

void clear_pending() {
    pending_count = 0;
    pending_overflow = false;
}

bool has_pending() { return pending_count > 0 || pending_overflow; }

bool parse_id(const char *id, uint32 *out) {
    if (strlen(id) != protocol::kInstanceIdChars || !protocol::is_instance_id(id)) return false;
    *out = static_cast<uint32>(strtoul(id, nullptr, 16));
    return true;
}

// 'starts:<id>,...' of ids[0..n) into buf (at least kWakeupMaxPayloadBytes + 1 bytes).
void format_batch(char *buf, const uint32 *ids, int n) {
    Assert(n > 0 && (size_t)n <= protocol::kWakeupMaxIdsPerBatch);
    size_t at = protocol::kWakeupStartBatchPrefix.size();
    memcpy(buf, protocol::kWakeupStartBatchPrefix.data(), at);
    for (int i = 0; i < n; ++i) {
        if (i > 0) buf[at++] = protocol::kWakeupIdSeparator;
        snprintf(buf + at, protocol::kInstanceIdChars + 1, "%08x", ids[i]);
        at += protocol::kInstanceIdChars;
    }
    buf[at] = '\0';
}

// Before the commit (so still allowed to fail): the noted ids as direct
// NOTIFYs, delivered at commit like today's.
void notify_pending_directly() {
    char payload[protocol::kWakeupMaxPayloadBytes + 1];
    if (pending_overflow) {
        Async_Notify(kChannel, protocol::kWakeupRescan.data());
    } else {
        for (int at = 0; at < pending_count; at += (int)protocol::kWakeupMaxIdsPerBatch) {
            int n = Min(pending_count - at, (int)protocol::kWakeupMaxIdsPerBatch);
            format_batch(payload, pending_ids + at, n);
            Async_Notify(kChannel, payload);
        }
    }
    clear_pending();
}

// At XACT_EVENT_COMMIT: no error may be raised here.
void push_pending() {
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < pending_count; ++i) {
        if (shared->count >= shared->capacity) {
            shared->overflow = true;
            break;
        }
        shared->ids[(shared->head + shared->count) % shared->capacity] = pending_ids[i];
        ++shared->count;
        ++shared->pushed;
    }
    if (pending_overflow) shared->overflow = true;
    LWLockRelease(shared->lock);
    clear_pending();
    SpinLockAcquire(&shared->mutex);
    PGPROC *relay = shared->relay;
    SpinLockRelease(&shared->mutex);
    // No relay now: the ids wait in the ring for the restarted one.
    if (relay != nullptr) SetLatch(&relay->procLatch);
}

void on_xact(XactEvent event, void *) {
    if (!has_pending()) return;
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            // The relay went away (or never served this database): NOTIFY now.
            if (relay_for_this_database() == nullptr) notify_pending_directly();
            break;
        case XACT_EVENT_PRE_PREPARE:
            // A prepared transaction commits elsewhere: NOTIFY, which makes
            // PREPARE refuse, as it did before the relay.
            notify_pending_directly();
            break;
        case XACT_EVENT_COMMIT:
            push_pending();
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            clear_pending();
            break;
        default:
            break;
    }
}

void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (pending_count == 0) return;
    const int level = GetCurrentTransactionNestLevel();
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        while (pending_count > 0 && pending_levels[pending_count - 1] >= level) --pending_count;
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (int i = pending_count - 1; i >= 0 && pending_levels[i] >= level; --i) pending_levels[i] = level - 1;
    }
}

void note_pending(uint32 id) {
    if (!callbacks_registered) {
        RegisterXactCallback(on_xact, nullptr);
        RegisterSubXactCallback(on_subxact, nullptr);
        callbacks_registered = true;
    }
    if (pending_count >= shared->capacity) {
        pending_overflow = true;  // more than the ring holds anyway
        return;
    }
    if (pending_count == pending_allocated) {
        const int grown = Min(Max(64, pending_allocated * 2), shared->capacity);
        if (pending_ids == nullptr) {
            pending_ids = static_cast<uint32 *>(MemoryContextAlloc(TopMemoryContext, sizeof(uint32) * grown));
            pending_levels = static_cast<int *>(MemoryContextAlloc(TopMemoryContext, sizeof(int) * grown));
        } else {
            pending_ids = static_cast<uint32 *>(repalloc(pending_ids, sizeof(uint32) * grown));
            pending_levels = static_cast<int *>(repalloc(pending_levels, sizeof(int) * grown));
        }
        pending_allocated = grown;
    }
    pending_ids[pending_count] = id;
    pending_levels[pending_count] = GetCurrentTransactionNestLevel();
    ++pending_count;
}

// ---- the relay worker ----

void relay_detach(int, Datum) {
    if (shared == nullptr) return;
    SpinLockAcquire(&shared->mutex);
    if (shared->relay == MyProc) {
        shared->relay = nullptr;
        shared->database = InvalidOid;
    }
    SpinLockRelease(&shared->mutex);
}

// Moves up to `max` ids out of the ring into `out`; *overflow takes the flag.
int take_ids(uint32 *out, int max, bool *overflow) {
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    *overflow = shared->overflow;
    shared->overflow = false;
    int n = 0;
    while (n < max && shared->count > 0) {
        out[n++] = shared->ids[shared->head];
        shared->head = (shared->head + 1) % shared->capacity;
        --shared->count;
    }
    LWLockRelease(shared->lock);
    return n;
}

void mark_overflow() {
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->overflow = true;
    LWLockRelease(shared->lock);
}

void count_sent(int ids, int payloads, bool rescan) {
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->sent += ids;
    shared->payloads += payloads;
    if (rescan) ++shared->rescans;
    LWLockRelease(shared->lock);
}

// NOTIFYs `n` ids (or a rescan) in one transaction; the number of payloads.
int notify_in_one_transaction(const uint32 *ids, int n, bool overflow) {
    char payload[protocol::kWakeupMaxPayloadBytes + 1];
    int payloads = 0;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (overflow) {
        // Every live instance is looked at: the ids taken with it need no payload.
        Async_Notify(kChannel, protocol::kWakeupRescan.data());
        ++payloads;
    } else {
        for (int at = 0; at < n; at += (int)protocol::kWakeupMaxIdsPerBatch) {
            const int batch = Min(n - at, (int)protocol::kWakeupMaxIdsPerBatch);
            format_batch(payload, ids + at, batch);
            Async_Notify(kChannel, payload);
            ++payloads;
        }
    }
    CommitTransactionCommand();
    return payloads;
}

// One round: take what the ring holds (up to one transaction's worth) and
// NOTIFY it in one transaction. False when the ring was empty; on a failed
// NOTIFY the ids become a rescan and the round reports an error via *failed.
bool relay_round(uint32 *ids, bool *failed) {
    constexpr int kMaxIds = kPayloadsPerTransaction * (int)protocol::kWakeupMaxIdsPerBatch;
    bool overflow = false;
    const volatile int n = take_ids(ids, kMaxIds, &overflow);
    if (n == 0 && !overflow) return false;

    volatile int payloads = 0;
    volatile bool ok = true;
    MemoryContext caller_context = CurrentMemoryContext;
    PG_TRY();
    {
        payloads = notify_in_one_transaction(ids, n, overflow);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        HOLD_INTERRUPTS();
        EmitErrorReport();
        AbortOutOfAnyTransaction();
        FlushErrorState();
        RESUME_INTERRUPTS();
        ok = false;
    }
    PG_END_TRY();
    if (!ok) {
        // Lost ids must still wake the daemon: the next round sends 'rescan'.
        mark_overflow();
        *failed = true;
        return true;
    }
    count_sent(overflow ? 0 : n, payloads, overflow);
    elog(DEBUG1, "pg_durable wakeup relay: sent %s%d id(s) in %d payload(s)", overflow ? "a rescan for " : "", n,
         payloads);
    return true;
}

}  // namespace

void pgd_wakeup_relay_register() {
    if (pgd_wakeup_relay_slots <= 0) return;
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_shmem;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = startup_shmem;

    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    // Killed or crashed: back after this long; df.start NOTIFYs directly meanwhile.
    worker.bgw_restart_time = 1;
    strlcpy(worker.bgw_library_name, "pg_durable", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "pgd_wakeup_relay_main", BGW_MAXLEN);
    strlcpy(worker.bgw_name, "pg_durable wakeup relay", BGW_MAXLEN);
    strlcpy(worker.bgw_type, "pg_durable wakeup relay", BGW_MAXLEN);
    worker.bgw_main_arg = (Datum)0;
    worker.bgw_notify_pid = 0;
    RegisterBackgroundWorker(&worker);
}

void pgd_wakeup_start(const char *instance_id) {
    uint32 id = 0;
    if (relay_for_this_database() != nullptr && parse_id(instance_id, &id)) {
        note_pending(id);
        return;
    }
    // Queued now, delivered at commit: a rollback wakes nobody.
    char payload[32];
    snprintf(payload, sizeof payload, "start:%s", instance_id);
    Async_Notify(kChannel, payload);
}

void pgd_wakeup_relay_main(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();

    const char *database = (pgd_database != nullptr && pgd_database[0] != '\0') ? pgd_database : "postgres";
    BackgroundWorkerInitializeConnection(database, nullptr, 0);
    SetConfigOption("application_name", "pg_durable wakeup relay", PGC_USERSET, PGC_S_OVERRIDE);
    // The relay's transactions write nothing but their NOTIFY, a hint: no
    // need to wait for its commit record to reach the disk (after a crash
    // the daemon reconnects and looks at every live instance anyway). The
    // notification is delivered at commit either way, a WAL flush sooner.
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    pgstat_report_appname("pg_durable wakeup relay");
    if (shared == nullptr) proc_exit(1);

    uint32 *ids = static_cast<uint32 *>(MemoryContextAlloc(
        TopMemoryContext, sizeof(uint32) * kPayloadsPerTransaction * protocol::kWakeupMaxIdsPerBatch));
    before_shmem_exit(relay_detach, (Datum)0);
    SpinLockAcquire(&shared->mutex);
    shared->relay = MyProc;
    shared->database = MyDatabaseId;
    SpinLockRelease(&shared->mutex);
    ereport(LOG, (errmsg("pg_durable wakeup relay: relaying df.start wake-ups of database \"%s\"", database)));

    for (;;) {
        // Reset before draining: a push from now on sets the latch again.
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        bool failed = false;
        while (!failed && relay_round(ids, &failed)) CHECK_FOR_INTERRUPTS();
        if (failed) {
            (void)WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kRetryMs, PG_WAIT_EXTENSION);
            continue;
        }
        // Idle: no timeout (DESIGN §2.5); a push, SIGHUP or SIGTERM sets the latch.
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
    }
}
