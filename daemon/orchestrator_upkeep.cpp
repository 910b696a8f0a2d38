// The orchestrator's upkeep: wake-up hints reconciled against committed rows,
// instances cancelled from outside, batched 'running' marks, and failures
// contained to their instance (DESIGN §2.12, §2.13).
#include <spdlog/spdlog.h>

#include "common/protocol.hpp"
#include "daemon/logging.hpp"
#include "daemon/orchestrator.hpp"
#include "daemon/orchestrator_instance.hpp"

namespace pgd::daemon {

namespace {
std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }
}  // namespace

// Wake-ups are hints (DESIGN §2.12): whatever a payload says, the daemon
// acts on the named instances' committed rows. An id it does not run is
// loaded straight away (the load reads the row and finds nothing unless the
// instance is live: one statement, and dispatch waits for nothing else). For
// the ids it runs it looks up the rows in one statement per batch, with one
// lookup in flight: a live one gets its queued signals, a cancelled or ended
// one is stopped. Ids that name no instance cost one index probe. A parked
// instance (orchestrator_timers.cpp) named alone is loaded like any other;
// named in a batch, its row decides: an ended one loses its due time.
void Orchestrator::on_wakeups(const WakeupBatch &batch) {
    if (!attached_) return;
    if (batch.schedules && scheduler_) scheduler_->on_hint();
    wakeups_.merge(batch);
    reconcile_wakeups();
}

void Orchestrator::reconcile_wakeups() {
    if (reconciling_ || wakeups_.empty() || !attached_) return;
    WakeupBatch batch = wakeups_.take();
    // The common case, one df.start: load the instance at once (one
    // statement, no lookup first). Anything more goes through one lookup of
    // all the named rows, so a flood of forged ids costs one statement per
    // round, not one load per id (DESIGN §2.12).
    if (!batch.overflow && batch.ids.size() == 1 && find(*batch.ids.begin()) == nullptr) {
        load(*batch.ids.begin());
        return;
    }
    std::vector<std::string> ids(batch.ids.begin(), batch.ids.end());
    // On overflow the named ids are gone: look at every live instance and at
    // every one this daemon runs (one of them may have been cancelled).
    if (batch.overflow) {
        for (const auto &[id, inst] : instances_) ids.push_back(id);
        for (auto &id : timers_.ids())
            if (find(id) == nullptr) ids.push_back(std::move(id));  // parked ones
    }
    if (ids.empty() && !batch.overflow) return;
    reconciling_ = true;
    store_->instance_states(std::move(ids), batch.overflow, [this](std::vector<store::NamedInstanceState> rows) {
        reconciling_ = false;
        for (const auto &row : rows) {
            const bool live = durable::protocol::is_live(row.state.status);
            if (find(row.id) == nullptr) {
                // A parked instance waits for timers only: a live one has
                // nothing to take (no signal wait); an ended one leaves.
                const bool parked = timers_.due_of(row.id).has_value();
                if (live && !parked)
                    load(row.id);
                else if (!live && parked)
                    unschedule(row.id);
            } else if (live) {
                deliver_signals(row.id);
            } else {
                cancel_instance(row.id, row.state);
            }
        }
        reconcile_wakeups();
    });
}

// The instance's committed row reads 'cancelled' (or it ended elsewhere):
// interrupt its running steps at once and start nothing more.
void Orchestrator::cancel_instance(const std::string &id, const store::InstanceState &state) {
    Instance *inst = find(id);
    if (inst == nullptr) return;
    const auto running = inst->run->running_steps();
    const DeferredRecord record{inst->row.execution, durable::protocol::cancelled(state.error.value_or(""))};
    http_->cancel_instance(id);  // closes their sockets now; they record nothing
    forget(id);
    for (const auto &key : running) {
        const bool in_flight = interrupt(id, key);
        if (state.status != durable::protocol::kCancelled) continue;
        const StepId step{id, key.first, key.second};
        deferred_records_[step] = record;
        if (!in_flight) write_deferred_record(step);
    }
}

// "Is my job running?" gets the right answer within milliseconds of the
// take-up, not when the first step commits; batched, so it costs one commit
// per burst of starts, not one per step.
void Orchestrator::mark_running() {
    if (marking_running_ || to_mark_running_.empty()) return;
    std::vector<std::string> ids(to_mark_running_.begin(), to_mark_running_.end());
    to_mark_running_.clear();
    marking_running_ = true;
    store_->mark_running(std::move(ids), [this] {
        marking_running_ = false;
        mark_running();
    });
}

// Contains a bookkeeping error that does not go away to its instance: the
// instance fails with it and leaves memory; everyone else goes on.
void Orchestrator::fail_after_bookkeeping_error(const std::string &id, const std::string &error) {
    log()->error("instance {}: bookkeeping keeps failing, failing the instance: {}", id, error);
    forget(id);
    loading_.erase(id);
    if (loads_in_flight_.erase(id) > 0) send_queued_loads();  // a failed load never answers
    store_->fail_instance(id, "pg_durable could not record the progress of instance " + id + ": " + error);
}

void Orchestrator::guarded(const std::string &id, const std::function<void()> &work) {
    std::string what;
    try {
        work();
        return;
    } catch (const std::exception &e) {
        what = e.what();
    } catch (...) {
        what = "unknown exception";
    }
    // The instance's run is in an unknown state: stop its steps, drop it and
    // fail it, so neither the event loop nor a reload meets the exception again.
    const std::string error = "pg_durable: instance " + id + " failed in the daemon: " + what;
    log()->error("{}", error);
    if (Instance *inst = find(id)) {
        try {
            for (const auto &[stamp, node] : inst->run->running_steps()) steps_->cancel(id, stamp, node);
        } catch (const std::exception &e) {
            log()->warn("instance {}: could not interrupt its steps: {}", id, e.what());
        }
    }
    forget(id);
    store_->fail_instance(id, error);
}

}  // namespace pgd::daemon
