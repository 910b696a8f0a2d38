// The daemon's SQL on df._schedules (SPEC §19.4; all SQL on df tables lives
// in the store module). Blocking libpqxx calls: run them on a DbWorker thread.
// The session must be bound to the worker epoch (store::bind_session_epoch):
// every tick is taken in a transaction that share-locks that epoch row.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "common/schedule.hpp"

namespace pgd::daemon::store {

using ScheduleTime = std::chrono::system_clock::time_point;

// The earliest next_run_at of the schedules that are not paused.
std::optional<ScheduleTime> earliest_schedule_tick(pqxx::connection &conn);

// Schedules due at `now` (next_run_at <= now, not paused), earliest first.
std::vector<std::int64_t> due_schedules(pqxx::connection &conn, ScheduleTime now, int limit);

struct ScheduleTick {
    std::int64_t id = 0;
    std::string name;
    std::string owner;
    durable::schedule::TickAction action = durable::schedule::TickAction::missed;
    std::optional<std::string> instance_id;  // the run started
    std::optional<std::string> cancelled;    // the previous run, cancelled (overlap 'cancel_previous')
    std::optional<std::string> error;        // the start failed its checks (the tick is taken all the same)
    std::optional<ScheduleTime> next_run_at;
};

enum class TickOutcome {
    taken,      // committed: `tick` says what happened
    not_due,    // paused, unscheduled, rescheduled or taken meanwhile: nothing to do
    busy,       // its row is locked by someone (a user's open transaction): try again later
    epoch_lost  // this daemon is no longer the attached one: nothing written
};

// Takes one due tick of schedule `id` in ONE transaction: share-locks our
// epoch row, locks the schedule row (NOWAIT), decides with
// durable::schedule::decide_tick, cancels the previous run (overlap
// 'cancel_previous', through df.cancel), starts the run as the owner
// (df._start_scheduled: df.start's checks and writes) and moves next_run_at
// on. So a tick is started at most once however daemons crash or overlap,
// and a run exists exactly when its tick is recorded. A start refused by
// df.start's checks (owner lost LOGIN, database dropped, ...) is recorded as
// the schedule's last_error and the tick taken; transient errors (locks,
// lost connection) throw and leave the tick to be taken again.
TickOutcome take_schedule_tick(pqxx::connection &conn, std::int64_t id, ScheduleTime now, ScheduleTime attached_at,
                               ScheduleTick &tick);

}  // namespace pgd::daemon::store
