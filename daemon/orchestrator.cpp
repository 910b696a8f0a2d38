#include "daemon/orchestrator.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

#include <spdlog/spdlog.h>

#include "common/graph.hpp"
#include "common/protocol.hpp"
#include "daemon/logging.hpp"
#include "daemon/orchestrator_instance.hpp"
#include "daemon/pg_engine_store.hpp"

namespace pgd::daemon {

namespace {

using durable::engine::Effects;

std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }

// 32 random bytes from the OS, hex: the df._run_step secret.
std::string random_secret() {
    std::random_device device;
    std::string hex;
    for (int i = 0; i < 32; ++i) {
        char buf[3];
        std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(device() & 0xff));
        hex += buf;
    }
    return hex;
}

}  // namespace

durable::engine::TimePoint orchestrator_now() { return std::chrono::system_clock::now(); }

OrchestratorParts postgres_parts(boost::asio::io_context &io, const std::string &conninfo) {
    OrchestratorParts parts;
    parts.store = std::make_unique<PgEngineStore>(io, conninfo);
    parts.steps = std::make_unique<Executor>(io, conninfo);
    parts.http = std::make_unique<http::HttpClient>(io);
    parts.sweeper = std::make_unique<RetentionSweeper>(io, conninfo);
    parts.scheduler = std::make_unique<Scheduler>(io, std::make_unique<PgScheduleStore>(io, conninfo));
    return parts;
}

Orchestrator::Orchestrator(boost::asio::io_context &io, OrchestratorParts parts)
    : io_(io), store_(std::move(parts.store)), steps_(std::move(parts.steps)), http_(std::move(parts.http)),
      sweeper_(std::move(parts.sweeper)), scheduler_(std::move(parts.scheduler)), driver_(io),
      park_after_(parts.park_after), load_ahead_(std::min(parts.load_ahead, parts.park_after / 2)) {}

Orchestrator::~Orchestrator() { on_detached(); }

durable::engine::EngineSettings Orchestrator::engine_settings() const {
    durable::engine::EngineSettings s;
    s.loop_min_interval_ms = settings_.loop_min_interval_ms;
    s.cron_timezone = settings_.cron_timezone;
    s.history_executions = settings_.history_executions;
    return s;
}

void Orchestrator::on_settings(const ServerSettings &settings) {
    settings_ = settings;
    if (sweeper_) {
        store::RetentionLimits limits;
        limits.retention_days = settings.retention_days;
        limits.retention_max_instances = settings.retention_max_instances;
        limits.history_executions = settings.history_executions;
        sweeper_->configure(limits);
    }
    steps_->configure(settings.max_user_connections, settings.execution_acquire_timeout_s, settings.database);
    http_->set_max_concurrency(settings.max_http_concurrency);
}

namespace {

durable::ExtensionVersion served_version(const std::string &extversion) {
    const auto version = durable::parse_extension_version(extversion);
    if (!version || *version < durable::kOldestExtensionVersion) return durable::kOldestExtensionVersion;
    return *version;
}

}  // namespace

// df._schedules arrives with 1.1: against a 1.0 schema the scheduler waits
// for ALTER EXTENSION ... UPDATE instead of failing every round.
constexpr durable::ExtensionVersion kSchedulesVersion{1, 1};

void Orchestrator::on_extension_updated(const std::string &extension_version) {
    const bool had_schedules = schema_at_least(kSchedulesVersion);
    schema_version_ = served_version(extension_version);
    if (!had_schedules && attached_ && scheduler_ && schema_at_least(kSchedulesVersion)) scheduler_->start(epoch_id_);
}

void Orchestrator::on_attached(const AttachInfo &info) {
    schema_version_ = served_version(info.extension_version);
    epoch_id_ = info.epoch_id;
    on_settings(info.settings);
    attached_ = true;
    store_->attach(info.epoch_id, [this](const std::string &id, const std::string &error) {
        fail_after_bookkeeping_error(id, error);
    });
    const std::string secret = random_secret();
    store_->write_secret(secret, [this, secret] {
        steps_->set_secret(secret);
        rescan();
    });
    if (sweeper_) sweeper_->start(std::chrono::seconds(2), info.epoch_id);
    if (scheduler_ && schema_at_least(kSchedulesVersion)) scheduler_->start(info.epoch_id);
}

void Orchestrator::drain(std::function<void()> done) {
    // Steps in flight either commit (recorded) or roll back (run again by the
    // next daemon): nothing to wait for beyond dropping our state.
    attached_ = false;
    if (scheduler_) scheduler_->stop();  // no new runs while draining
    done();
}

void Orchestrator::on_detached() {
    attached_ = false;
    if (sweeper_) sweeper_->stop();
    if (scheduler_) scheduler_->stop();
    ++generation_;
    instances_.clear();
    loading_.clear();
    load_queue_.clear();
    loads_in_flight_.clear();
    timers_.clear();  // the next attachment's rescan re-arms every timer from the rows
    driver_.cancel();
    driver_due_.reset();
    wakeups_.take();
    reconciling_ = false;
    deferred_records_.clear();
    between_attempts_.clear();
    to_mark_running_.clear();
    marking_running_ = false;
    steps_->stop();
    http_->stop();
    store_->detach();
}

void Orchestrator::rescan() {
    store_->active_instance_ids([this](std::vector<std::string> ids) {
        log()->debug("rescan: {} active instance(s)", ids.size());
        for (const auto &id : ids) load(id);
    });
}

void Orchestrator::load(const std::string &id) {
    if (instances_.count(id) || loading_.count(id)) return;
    loading_.insert(id);
    if (loads_in_flight_.size() >= kMaxLoadsInFlight) {
        load_queue_.push_back(id);
        return;
    }
    send_load(id);
}

void Orchestrator::send_load(const std::string &id) {
    loads_in_flight_.insert(id);
    store_->load_instance(id, [this, id](std::optional<store::LoadedInstance> loaded) {
        loads_in_flight_.erase(id);
        const bool wanted = loading_.erase(id) > 0;
        if (wanted && !instances_.count(id)) {
            if (loaded) {
                start_instance(std::move(*loaded));
            } else {
                unschedule(id);  // a parked instance that ended (cancelled) meanwhile
            }
        }
        send_queued_loads();
    });
}

void Orchestrator::send_queued_loads() {
    while (loads_in_flight_.size() < kMaxLoadsInFlight && !load_queue_.empty()) {
        const std::string next = std::move(load_queue_.front());
        load_queue_.pop_front();
        if (loading_.count(next) && !loads_in_flight_.count(next)) send_load(next);
    }
}

void Orchestrator::start_instance(store::LoadedInstance loaded) {
    const std::string id = loaded.id;
    // Re-checks on load (SPEC §9).
    std::optional<std::string> refusal;
    if (!loaded.role_exists)
        refusal = "Instance " + id + ": submitted_by role no longer exists in pg_roles";
    else if (loaded.role_is_superuser && !settings_.enable_superuser_instances)
        refusal = "pg_durable blocked instance " + id + ": submitted_by role \"" + loaded.submitted_by +
                  "\" is a superuser, but pg_durable.enable_superuser_instances is off";
    std::unique_ptr<durable::engine::InstanceRun> run;
    if (!refusal) {
        try {
            durable::Graph graph = durable::load_stored(loaded.root_node, loaded.nodes);
            durable::validate_graph(graph);  // rows may have been written around df.start
            durable::engine::InstanceInfo info{id, loaded.label, loaded.execution, std::move(loaded.vars)};
            run = std::make_unique<durable::engine::InstanceRun>(std::move(graph), std::move(info), engine_settings(),
                                                                 std::move(loaded.history));
        } catch (const durable::GraphError &e) {
            refusal = e.what();  // "Invalid durable function graph: <path>: <reason>"
        } catch (const std::exception &e) {
            refusal = std::string("Invalid durable function graph: ") + e.what();
        }
    }
    if (refusal) {
        log()->info("failing instance {}: {}", id, *refusal);
        unschedule(id);
        store_->fail_instance(id, *refusal);
        return;
    }
    // The graph, vars and history now live in `run`: the row keeps only what
    // steps need (id, role, database, execution), so a sleeping instance
    // costs the daemon little memory (DESIGN §6: <= 2 KB each).
    // (Swapped with empty ones: `v = {}` is the initializer_list assignment,
    // which keeps a vector's capacity.)
    std::vector<durable::StoredNode>().swap(loaded.nodes);
    decltype(loaded.vars)().swap(loaded.vars);
    decltype(loaded.history)().swap(loaded.history);
    auto inst = std::make_unique<Instance>();
    inst->row = std::move(loaded);
    inst->run = std::move(run);
    Instance &ref = *inst;
    instances_[id] = std::move(inst);
    const bool pending = ref.row.status == durable::protocol::kPending;
    log()->debug("instance {} {}", id, pending ? "started" : "resumed");
    if (pending) {
        to_mark_running_.insert(id);
        mark_running();
    }
    guarded(id, [&] { push(ref, ref.run->start(orchestrator_now())); });
}

Orchestrator::Instance *Orchestrator::find(const std::string &id) {
    auto it = instances_.find(id);
    return it == instances_.end() ? nullptr : it->second.get();
}

void Orchestrator::forget(const std::string &id) {
    instances_.erase(id);
    unschedule(id);
}

void Orchestrator::push(Instance &inst, Effects effects) {
    inst.queue.push_back(std::move(effects));
    const std::string id = inst.row.id;  // a copy: pump may forget (destroy) the instance
    pump(id);
}

// Carries out queued effects one batch at a time: cancels first, then the
// writes commit, then the batch's steps, timers and waits start.
void Orchestrator::pump(const std::string &id) {
    Instance *inst = find(id);
    while (inst != nullptr && !inst->busy && !inst->queue.empty()) {
        Effects effects = std::move(inst->queue.front());
        inst->queue.pop_front();
        for (const auto &key : effects.cancels) {
            if (!interrupt(id, key)) continue;
            // Still running: its 'cancelled' record waits for the step's end.
            auto &writes = effects.activations;
            for (auto w = writes.begin(); w != writes.end(); ++w) {
                if (w->stamp != key.first || w->node_id != key.second || w->status != durable::protocol::kCancelled)
                    continue;
                deferred_records_[{id, key.first, key.second}] =
                    DeferredRecord{inst->row.execution, w->error.value_or("")};
                writes.erase(w);
                break;
            }
        }
        const bool writes = effects.has_writes() || !effects.mirrors.empty();
        if (!writes) {
            carry_out(*inst, std::move(effects));
            inst = find(id);
            continue;
        }
        inst->busy = true;
        auto shared = std::make_shared<Effects>(std::move(effects));
        const std::int64_t execution = inst->row.execution;
        if (shared->instance && shared->instance->execution) inst->row.execution = *shared->instance->execution;
        store_->apply_effects(id, execution, shared, [this, id, shared](bool live) {
            Instance *target = find(id);
            if (target == nullptr) return;
            target->busy = false;
            if (!live) {  // cancelled (or ended) meanwhile
                forget(id);
                return;
            }
            guarded(id, [&] {
                carry_out(*target, std::move(*shared));
                pump(id);
            });
        });
        return;
    }
    park_if_idle(id);
}

void Orchestrator::carry_out(Instance &inst, Effects effects) {
    const std::string id = inst.row.id;
    if (inst.run->finished() && effects.steps.empty()) {
        log()->debug("instance {} finished", id);
        forget(id);
        return;
    }
    for (auto &step : effects.steps) run_step(inst, std::move(step), 1);
    for (const auto &http : effects.http) run_http(inst, http);
    for (const auto &timer : effects.timers) arm(inst, timer);
    bool waits = false;
    for (const auto &wait : effects.signal_waits) {
        inst.waits[{wait.stamp, wait.node_id}] = wait;
        waits = true;
    }
    if (waits) deliver_signals(id);
}

void Orchestrator::arm(Instance &inst, const durable::engine::TimerArm &timer) {
    inst.timers[{timer.stamp, timer.node_id}] = timer.wake_at;
    schedule_timers(inst);
}

}  // namespace pgd::daemon
