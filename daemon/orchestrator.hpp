// The orchestrator: runs every instance's graph while the daemon holds the
// orchestrator lock (the WorkHandler of lifecycle.hpp).
//
// It lives on the io thread. Per instance it keeps an InstanceRun (the pure
// interpreter) and carries out its Effects strictly in order: interrupt
// cancelled steps, commit the writes (one transaction on the state
// connection), then start steps, arm timers and register signal waits. The
// state connection's DbWorker runs every bookkeeping transaction in order.
// Nothing polls: NOTIFY wakes it, timers fire at due times, and a re-attach
// (lost LISTEN connection) triggers a full rescan.
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
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>
#include <pqxx/pqxx>

#include "daemon/db_worker.hpp"
#include "daemon/executor.hpp"
#include "daemon/http.hpp"
#include "daemon/interpreter.hpp"
#include "daemon/retention_sweeper.hpp"
#include "daemon/store_engine.hpp"
#include "daemon/work.hpp"

namespace pgd::daemon {

class Orchestrator final : public WorkHandler {
public:
    Orchestrator(boost::asio::io_context &io, std::string conninfo);
    ~Orchestrator() override;

    void on_attached(const AttachInfo &info) override;
    void on_wakeups(const WakeupBatch &batch) override;
    void on_settings(const ServerSettings &settings) override;
    void drain(std::function<void()> done) override;
    void on_detached() override;

private:
    struct Instance;
    using Key = durable::engine::RecordKey;

    // Runs `job` on the state connection (connected lazily), then `then` on
    // the io thread with its result. A failed job is retried on its own after
    // a backoff; for_instance ties the job to one instance, which fails when
    // the job keeps failing with an error that is not transient.
    template <class R>
    void on_state(std::function<R(pqxx::connection &)> job, std::function<void(R)> then);
    template <class R>
    void for_instance(const std::string &id, std::function<R(pqxx::connection &)> job,
                      std::function<void(R)> then);
    template <class R>
    void submit(std::optional<std::string> instance, std::function<R(pqxx::connection &)> job,
                std::function<void(R)> then, int attempt);
    void fail_after_bookkeeping_error(const std::string &id, const std::string &error);

    void rescan();
    void load(const std::string &id);
    void start_instance(store::LoadedInstance loaded);
    void push(Instance &inst, durable::engine::Effects effects);
    void pump(const std::string &id);
    void carry_out(Instance &inst, durable::engine::Effects effects);
    void run_step(Instance &inst, durable::engine::StepRun step, int attempt);
    void on_step_result(const std::string &id, const durable::engine::StepRun &step, int attempt, StepResult result);
    void feed_step(const std::string &id, const std::string &stamp, const std::string &node_id,
                   durable::engine::Outcome outcome);
    void run_http(Instance &inst, const durable::engine::HttpRun &http);
    void arm(Instance &inst, const durable::engine::TimerArm &timer);
    void deliver_signals(const std::string &id);
    void reconcile_wakeups();
    void cancel_instance(const std::string &id, const store::InstanceState &state);
    void forget(const std::string &id);
    // Runs `work` on behalf of instance `id`; an exception out of it fails
    // that instance and stays there (DESIGN §2.13).
    void guarded(const std::string &id, const std::function<void()> &work);
    Instance *find(const std::string &id);
    durable::engine::EngineSettings engine_settings() const;

    boost::asio::io_context &io_;
    std::string conninfo_;
    std::unique_ptr<DbWorker> state_worker_;
    std::shared_ptr<std::unique_ptr<pqxx::connection>> state_conn_;  // touched by state_worker_ jobs only
    Executor executor_;
    http::HttpClient http_client_;  // HTTP steps (SPEC §14)
    ServerSettings settings_;
    bool attached_ = false;
    std::string epoch_;  // the worker epoch of this attachment: fences every bookkeeping write
    std::uint64_t generation_ = 0;  // bumps on detach: late callbacks of an old attachment are dropped
    std::map<std::string, std::unique_ptr<Instance>> instances_;
    std::set<std::string> loading_;
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
    std::map<std::tuple<std::string, std::string, std::string>, DeferredRecord> deferred_records_;
    // Interrupted steps waiting to be run again (their next attempt is not in
    // the executor yet): for a cancel, as good as running.
    std::set<std::tuple<std::string, std::string, std::string>> between_attempts_;
    void write_deferred_record(const std::string &id, const std::string &stamp, const std::string &node_id,
                               const DeferredRecord &record);
    // Instances taken up while still 'pending': marked 'running' together,
    // one commit for all of them, one such commit in flight at a time.
    std::set<std::string> to_mark_running_;
    bool marking_running_ = false;
    void mark_running();
    WakeupInbox wakeups_;       // hints not yet looked up (bounded)
    bool reconciling_ = false;  // one wake-up lookup in flight at a time
    RetentionSweeper sweeper_;  // retention on its own connection (SPEC §17)
};

}  // namespace pgd::daemon
