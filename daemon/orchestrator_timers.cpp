// Timers: one queue of due times, one Asio timer for its earliest entry, and
// parked instances (docs/ARCHITECTURE.md "Timers").
//
// An instance in memory keeps its armed timers (Instance::timers); the queue
// holds its earliest due time. An instance that waits for timers only, the
// next one more than park_after away, is parked: it leaves memory and only
// its queue entry stays, due load_ahead before its next timer. Its due times
// are in its rows already (a timer is armed only after the write that
// records it has committed), so when the entry comes due the instance is
// loaded again, exactly as a daemon restart would load it: the replay
// re-arms its timers from the rows, and the next one fires from memory on
// time (a late load makes it fire at once). A hint that names it meanwhile (a signal, a cancel) loads it
// too; a load that finds it ended drops the entry.
#include <cstdlib>  // defines __GLIBC__ on glibc
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <spdlog/spdlog.h>

#include "daemon/logging.hpp"
#include "daemon/orchestrator.hpp"
#include "daemon/orchestrator_instance.hpp"

namespace pgd::daemon {

namespace {
std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }
}  // namespace

std::size_t Orchestrator::parked_count() const {
    std::size_t parked = timers_.size();
    for (const auto &[id, inst] : instances_)
        if (timers_.due_of(id)) --parked;
    return parked;
}

// The queue entry of an instance in memory follows its earliest timer.
void Orchestrator::schedule_timers(Instance &inst) {
    const auto earliest = inst.earliest_timer();
    if (earliest)
        timers_.schedule(inst.row.id, *earliest);
    else
        timers_.cancel(inst.row.id);
    arm_driver();
}

// Drops the queue entry of `id` (parked or in memory), if it has one.
void Orchestrator::unschedule(const std::string &id) {
    if (timers_.cancel(id)) arm_driver();
}

// Points driver_ at the queue's earliest entry. A handler that was already
// due when the expiry moved runs all the same: on_timers_due takes what is
// due then, nothing more.
void Orchestrator::arm_driver() {
    const auto next = timers_.next();
    if (!next) {
        if (driver_due_) driver_.cancel();
        driver_due_.reset();
        return;
    }
    if (driver_due_ && *driver_due_ == *next) return;
    driver_due_ = *next;
    driver_.expires_at(*next);  // cancels the wait for the former earliest
    driver_.async_wait([this](const boost::system::error_code &ec) {
        if (ec) return;  // moved or cancelled: another wait is on its way, or none is wanted
        driver_due_.reset();
        on_timers_due();
    });
}

void Orchestrator::on_timers_due() {
    for (const auto &id : timers_.take_due(orchestrator_now())) fire_due_timers(id);
    arm_driver();
}

// The entry of `id` came due: its timers that are due fire in due order; a
// parked instance is loaded (its replay arms them again).
void Orchestrator::fire_due_timers(const std::string &id) {
    Instance *inst = find(id);
    if (inst == nullptr) {
        log()->debug("instance {}: timer due, loading it", id);
        load(id);
        return;
    }
    const auto now = orchestrator_now();
    while (inst != nullptr) {
        auto due = inst->timers.end();
        for (auto it = inst->timers.begin(); it != inst->timers.end(); ++it)
            if (it->second <= now && (due == inst->timers.end() || it->second < due->second)) due = it;
        if (due == inst->timers.end()) break;
        const Key key = due->first;
        inst->timers.erase(due);
        inst->waits.erase(key);  // a signal wait that timed out
        Instance &target = *inst;
        guarded(id, [&] { push(target, target.run->on_timer(key.first, key.second, orchestrator_now())); });
        inst = find(id);  // push may have finished, failed or parked it
    }
    if (inst != nullptr) schedule_timers(*inst);
}

// Parks the instance when it waits for nothing but timers, the next one
// more than park_after away: nothing in flight for it (writes, steps,
// interrupted steps, signal lookups) and nothing unwritten (status mirrors).
void Orchestrator::park_if_idle(const std::string &id) {
    Instance *inst = find(id);
    if (inst == nullptr || inst->busy || !inst->queue.empty() || !inst->waits.empty() || inst->delivering ||
        inst->redeliver || inst->run->finished() || !inst->run->parkable())
        return;
    const auto earliest = inst->earliest_timer();
    if (!earliest || *earliest - orchestrator_now() <= park_after_) return;
    const StepId first{id, "", ""};
    const auto deferred = deferred_records_.lower_bound(first);
    if (deferred != deferred_records_.end() && std::get<0>(deferred->first) == id) return;
    const auto between = between_attempts_.lower_bound(first);
    if (between != between_attempts_.end() && std::get<0>(*between) == id) return;
    timers_.schedule(id, *earliest - load_ahead_);
    instances_.erase(id);  // not forget(): the queue entry stays
    arm_driver();
    log()->debug("instance {} parked until its next timer", id);
    // After a burst (many parked, no load left), hand the freed pages back to
    // the system: glibc keeps them otherwise, and the RSS stays at the peak.
    if (++parked_since_trim_ >= 1000 && loading_.empty()) {
        parked_since_trim_ = 0;
#if defined(__GLIBC__)
        malloc_trim(0);
#endif
    }
}

}  // namespace pgd::daemon
