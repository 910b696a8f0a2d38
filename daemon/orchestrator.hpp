// The orchestrator: runs every instance's graph while the daemon holds the
// orchestrator lock (the WorkHandler of lifecycle.hpp).
//
// It lives on the io thread. Per instance it keeps an InstanceRun (the pure
// interpreter) and carries out its Effects strictly in order: interrupt
// cancelled steps, commit the writes (through the EngineStore), then start
// steps, arm timers and register signal waits. Nothing polls: NOTIFY wakes
// it, timers fire at due times, and a re-attach (lost LISTEN connection)
// triggers a full rescan.
//
// Its jobs live in one file each:
//   orchestrator.cpp          attaching, the instance table and the effect pump
//   orchestrator_steps.cpp    SQL and HTTP steps and what their ends mean (step_outcome.hpp)
//   orchestrator_signals.cpp  signal delivery (signal_delivery.hpp)
//   orchestrator_upkeep.cpp   wake-up hints, cancels, 'running' marks, contained failures
// Everything it touches outside the io thread sits behind an interface
// (EngineStore, StepRunner, http::StepClient), so its policies are
// unit-tested with fakes (tests/unit/test_daemon_orchestrator.cpp).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include <boost/asio/io_context.hpp>
#include <boost/asio/system_timer.hpp>

#include "common/extension_version.hpp"
#include "daemon/engine_store.hpp"
#include "daemon/executor.hpp"
#include "daemon/http.hpp"
#include "daemon/interpreter.hpp"
#include "daemon/retention_sweeper.hpp"
#include "daemon/scheduler.hpp"
#include "daemon/timer_queue.hpp"
#include "daemon/wakeup.hpp"
#include "daemon/work.hpp"

namespace pgd::daemon {

// What the orchestrator works through. `sweeper` may be null (no retention).
struct OrchestratorParts {
    std::unique_ptr<EngineStore> store;
    std::unique_ptr<StepRunner> steps;
    std::unique_ptr<http::StepClient> http;
    std::unique_ptr<RetentionSweeper> sweeper;
    std::unique_ptr<Scheduler> scheduler;  // schedules (SPEC §19.4); may be null
    // A waiting instance whose next timer is further away than park_after,
    // and that waits for nothing else, is parked: dropped from memory, only
    // its due time kept; it is loaded again load_ahead before that time, so
    // the timer fires from memory, on time, even when loads queue up behind
    // a burst of wake-ups (docs/ARCHITECTURE.md "Timers"). load_ahead <
    // park_after, or a reloaded instance would park again at once.
    std::chrono::milliseconds park_after{30000};
    std::chrono::milliseconds load_ahead{15000};
};

// The real parts: PostgreSQL through `conninfo`, the network for HTTP.
OrchestratorParts postgres_parts(boost::asio::io_context &io, const std::string &conninfo);

class Orchestrator final : public WorkHandler {
public:
    Orchestrator(boost::asio::io_context &io, OrchestratorParts parts);
    ~Orchestrator() override;
    Orchestrator(const Orchestrator &) = delete;
    Orchestrator &operator=(const Orchestrator &) = delete;

    void on_attached(const AttachInfo &info) override;
    void on_wakeups(const WakeupBatch &batch) override;
    void on_settings(const ServerSettings &settings) override;
    void drain(std::function<void()> done) override;
    void on_detached() override;
    void on_extension_updated(const std::string &extension_version) override;
    WorkGauges gauges() const override;

    // The schema version of the database attached to (docs/ARCHITECTURE.md
    // "Extension versions"): parts that need objects of a later version ask
    // schema_at_least() before touching them. An unknown version reads as
    // the oldest one served.
    durable::ExtensionVersion schema_version() const { return schema_version_; }
    bool schema_at_least(durable::ExtensionVersion version) const { return schema_version_ >= version; }

    // Instances it runs now, held in memory (for tests and logs).
    std::size_t instance_count() const { return instances_.size(); }
    // Instances parked until their next timer (in the timer queue only).
    std::size_t parked_count() const;

    // Loads in flight at most; more wait in line (a burst of 10,000 starts
    // would otherwise hold every one of them in memory, loaded, before the
    // first could commit its first write and park).
    static constexpr std::size_t kMaxLoadsInFlight = 128;

private:
    struct Instance;
    using Key = durable::engine::RecordKey;
    using StepId = std::tuple<std::string, std::string, std::string>;  // (instance, stamp, node)

    // orchestrator.cpp: the instance table and the effect pump.
    void rescan();
    void load(const std::string &id);
    void send_load(const std::string &id);
    void send_queued_loads();
    void start_instance(store::LoadedInstance loaded);
    void push(Instance &inst, durable::engine::Effects effects);
    void pump(const std::string &id);
    void carry_out(Instance &inst, durable::engine::Effects effects);
    void arm(Instance &inst, const durable::engine::TimerArm &timer);
    Instance *find(const std::string &id);
    void forget(const std::string &id);

    // orchestrator_timers.cpp: the timer queue and parked instances.
    void schedule_timers(Instance &inst);
    void unschedule(const std::string &id);
    void arm_driver();
    void on_timers_due();
    void fire_due_timers(const std::string &id);
    void park_if_idle(const std::string &id);
    durable::engine::EngineSettings engine_settings() const;

    // orchestrator_steps.cpp: steps and their ends.
    void run_step(Instance &inst, durable::engine::StepRun step, int attempt);
    void on_step_result(const std::string &id, const durable::engine::StepRun &step, int attempt, StepResult result);
    void rerun_if_wanted(const std::string &id, const durable::engine::StepRun &step, int attempt);
    void feed_step(const std::string &id, const durable::engine::StepRun &step, durable::engine::Outcome outcome);
    void run_http(Instance &inst, const durable::engine::HttpRun &http);
    bool interrupt(const std::string &id, const Key &step);
    void write_deferred_record(const StepId &step);

    // orchestrator_signals.cpp
    void deliver_signals(const std::string &id);

    // orchestrator_upkeep.cpp
    void reconcile_wakeups();
    void cancel_instance(const std::string &id, const store::InstanceState &state);
    void mark_running();
    void fail_after_bookkeeping_error(const std::string &id, const std::string &error);
    // Runs `work` on behalf of instance `id`; an exception out of it fails
    // that instance and stays there (DESIGN §2.13).
    void guarded(const std::string &id, const std::function<void()> &work);

    boost::asio::io_context &io_;
    std::unique_ptr<EngineStore> store_;
    std::unique_ptr<StepRunner> steps_;
    std::unique_ptr<http::StepClient> http_;
    std::unique_ptr<RetentionSweeper> sweeper_;  // retention on its own connection (SPEC §17); may be null
    std::string epoch_id_;  // of the current attachment (the scheduler starts later on a 1.0 schema)
    std::unique_ptr<Scheduler> scheduler_;       // schedule ticks on their own connection (SPEC §19.4); may be null
    ServerSettings settings_;
    bool attached_ = false;
    durable::ExtensionVersion schema_version_ = durable::kOldestExtensionVersion;
    std::uint64_t generation_ = 0;  // bumps on detach: late callbacks of an old attachment are dropped
    std::map<std::string, std::unique_ptr<Instance>> instances_;
    std::int64_t steps_started_ = 0;  // SQL step runs and HTTP requests begun (gauges())
    std::set<std::string> loading_;            // ids being loaded or waiting in load_queue_
    std::deque<std::string> load_queue_;       // loads waiting for a free slot, in order
    // Ids whose load is in flight (a set, not a count: a load that keeps
    // failing never answers, fail_after_bookkeeping_error frees its slot).
    std::set<std::string> loads_in_flight_;
    std::size_t parked_since_trim_ = 0;        // orchestrator_timers.cpp
    // The 'cancelled' record of a running step that was interrupted (a RACE
    // loser, a cancelled instance's step) waits here until the executor
    // reports that the step's transaction has ended. Writing it at once would
    // wait for the step's lock on its activation row while holding the
    // instance row: the reverse of the step's own order, a deadlock
    // (docs/ARCHITECTURE.md "Lock order").
    struct DeferredRecord {
        std::int64_t execution = 1;
        std::string error;
    };
    std::map<StepId, DeferredRecord> deferred_records_;
    // Interrupted steps waiting to be run again (their next attempt is not in
    // the executor yet): for a cancel, as good as running.
    std::set<StepId> between_attempts_;
    // Instances taken up while still 'pending': marked 'running' together,
    // one commit for all of them, one such commit in flight at a time.
    std::set<std::string> to_mark_running_;
    bool marking_running_ = false;
    WakeupInbox wakeups_;       // hints not yet looked up (bounded)
    bool reconciling_ = false;  // one wake-up lookup in flight at a time
    // The next due time of every instance with a timer, in memory or parked
    // (an entry without an instance in instances_ is a parked instance), and
    // the one Asio timer that waits for the earliest.
    TimerQueue timers_;
    boost::asio::system_timer driver_;
    std::optional<durable::engine::TimePoint> driver_due_;  // what driver_ waits for, if anything
    std::chrono::milliseconds park_after_;
    std::chrono::milliseconds load_ahead_;
};

}  // namespace pgd::daemon
