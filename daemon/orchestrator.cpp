#include "daemon/orchestrator.hpp"

#include <algorithm>
#include <cstdlib>
#include <random>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/graph.hpp"
#include "common/protocol.hpp"
#include "daemon/http_policy.hpp"
#include "daemon/logging.hpp"
#include "daemon/store.hpp"
#include "daemon/store_engine.hpp"

namespace pgd::daemon {

namespace {

using durable::engine::Effects;
using durable::engine::Outcome;
using durable::engine::StepRun;

std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }

constexpr int kMaxInterruptedAttempts = 5;

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

durable::engine::TimePoint now() { return std::chrono::system_clock::now(); }

// Whether the instance still waits for this step (a RACE loser or a cancelled
// instance does not).
template <class Inst>
bool still_running(const Inst *inst, const std::string &stamp, const std::string &node_id) {
    if (inst == nullptr) return false;
    const auto running = inst->run->running_steps();
    return std::find(running.begin(), running.end(), durable::engine::RecordKey{stamp, node_id}) != running.end();
}

}  // namespace

struct Orchestrator::Instance {
    store::LoadedInstance row;
    std::unique_ptr<durable::engine::InstanceRun> run;
    std::deque<Effects> queue;  // effects not yet carried out, in order
    bool busy = false;          // a write batch is in flight
    std::map<Key, std::unique_ptr<boost::asio::system_timer>> timers;
    std::map<Key, durable::engine::SignalWait> waits;
    bool delivering = false;
    bool redeliver = false;
};

Orchestrator::Orchestrator(boost::asio::io_context &io, std::string conninfo)
    : io_(io), conninfo_(std::move(conninfo)),
      state_conn_(std::make_shared<std::unique_ptr<pqxx::connection>>()),
      executor_(io, conninfo_), http_client_(io), sweeper_(io, conninfo_) {}

Orchestrator::~Orchestrator() { on_detached(); }

namespace {

// Errors that say "not now" rather than "never": a lock held by someone else
// (a user's open transaction on their own instance), a deadlock or
// serialization victim, a statement or lock timeout, a lost connection or a
// commit whose outcome is unknown. Every bookkeeping job is idempotent, so
// these are retried as they are.
bool transient(const std::string &sqlstate) {
    return sqlstate.empty() || sqlstate == "55P03" || sqlstate == "57014" || sqlstate.rfind("40", 0) == 0 ||
           sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0 || sqlstate.rfind("53", 0) == 0;
}

constexpr int kPermanentFailureAttempts = 5;  // then the instance fails with the error

std::chrono::milliseconds retry_delay(int attempt) {
    const int shift = std::min(attempt - 1, 9);
    return std::min(std::chrono::milliseconds(10) * (1 << shift), std::chrono::milliseconds(5000));
}

}  // namespace

// A bookkeeping job on the state connection. When it fails, only it is
// retried, after a backoff (DESIGN §2.13): the other instances go on, nothing
// is dropped or reloaded. A job of one instance that keeps failing with an
// error that is not transient fails that instance, with the error.
template <class R>
void Orchestrator::submit(std::optional<std::string> instance, std::function<R(pqxx::connection &)> job,
                          std::function<void(R)> then, int attempt) {
    if (!state_worker_) state_worker_ = std::make_unique<DbWorker>("state");
    const auto generation = generation_;
    auto conn_slot = state_conn_;
    const std::string conninfo = conninfo_;
    const std::string epoch = epoch_;
    state_worker_->post([this, instance, job = std::move(job), then = std::move(then), generation, conn_slot,
                         conninfo, attempt, epoch]() mutable {
        std::optional<R> result;
        std::string error;
        std::string sqlstate;
        try {
            if (!*conn_slot) {
                *conn_slot = std::make_unique<pqxx::connection>(conninfo);
                store::prepare_session(**conn_slot);
                store::bind_session_epoch(**conn_slot, epoch);
            }
            result = job(**conn_slot);
        } catch (const pqxx::broken_connection &e) {
            conn_slot->reset();
            error = e.what();
        } catch (const pqxx::sql_error &e) {
            error = e.what();
            sqlstate = e.sqlstate();
            if (*conn_slot && !(*conn_slot)->is_open()) conn_slot->reset();
        } catch (const std::exception &e) {
            error = e.what();
            sqlstate = "XX000";
            if (*conn_slot && !(*conn_slot)->is_open()) conn_slot->reset();
        }
        boost::asio::post(io_, [this, instance, job = std::move(job), then = std::move(then), generation, attempt,
                                result = std::move(result), error, sqlstate]() mutable {
            if (generation != generation_ || !attached_) return;
            if (result) {
                then(std::move(*result));
                return;
            }
            const bool retry = transient(sqlstate) || !instance || attempt < kPermanentFailureAttempts;
            if (!retry) {
                fail_after_bookkeeping_error(*instance, primary_message(error));
                return;
            }
            const auto delay = retry_delay(attempt);
            auto level = attempt < 3 ? spdlog::level::debug : spdlog::level::warn;
            log()->log(level, "bookkeeping{}{} failed (attempt {}), retrying in {} ms: {}",
                       instance ? " of instance " : "", instance.value_or(""), attempt, delay.count(),
                       primary_message(error));
            auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
            timer->async_wait([this, timer, instance, job = std::move(job), then = std::move(then), generation,
                               attempt](const boost::system::error_code &ec) mutable {
                if (ec || generation != generation_ || !attached_) return;
                submit<R>(instance, std::move(job), std::move(then), attempt + 1);
            });
        });
    });
}

template <class R>
void Orchestrator::on_state(std::function<R(pqxx::connection &)> job, std::function<void(R)> then) {
    submit<R>(std::nullopt, std::move(job), std::move(then), 1);
}

template <class R>
void Orchestrator::for_instance(const std::string &id, std::function<R(pqxx::connection &)> job,
                                std::function<void(R)> then) {
    submit<R>(id, std::move(job), std::move(then), 1);
}

// Contains a bookkeeping error that does not go away to its instance: the
// instance fails with it and leaves memory; everyone else goes on.
void Orchestrator::fail_after_bookkeeping_error(const std::string &id, const std::string &error) {
    log()->error("instance {}: bookkeeping keeps failing, failing the instance: {}", id, error);
    forget(id);
    loading_.erase(id);
    const std::string text = "pg_durable could not record the progress of instance " + id + ": " + error;
    on_state<bool>(
        [id, text](pqxx::connection &c) {
            store::fail_instance(c, id, text, std::nullopt);
            return true;
        },
        [](bool) {});
}

durable::engine::EngineSettings Orchestrator::engine_settings() const {
    durable::engine::EngineSettings s;
    s.loop_min_interval_ms = settings_.loop_min_interval_ms;
    s.cron_timezone = settings_.cron_timezone;
    s.history_executions = settings_.history_executions;
    return s;
}

void Orchestrator::on_settings(const ServerSettings &settings) {
    settings_ = settings;
    store::RetentionLimits limits;
    limits.retention_days = settings.retention_days;
    limits.retention_max_instances = settings.retention_max_instances;
    limits.history_executions = settings.history_executions;
    sweeper_.configure(limits);
    executor_.configure(settings.max_user_connections, settings.execution_acquire_timeout_s, settings.database);
    http_client_.set_max_concurrency(settings.max_http_concurrency);
}

void Orchestrator::on_attached(const AttachInfo &info) {
    on_settings(info.settings);
    attached_ = true;
    epoch_ = info.epoch_id;
    const std::string secret = random_secret();
    const std::string epoch = info.epoch_id;
    on_state<bool>(
        [secret, epoch](pqxx::connection &c) {
            store::write_daemon_secret(c, secret, epoch);
            return true;
        },
        [this, secret](bool) {
            executor_.set_secret(secret);
            rescan();
        });
    sweeper_.start(std::chrono::seconds(2));
}

void Orchestrator::rescan() {
    on_state<std::vector<std::string>>([](pqxx::connection &c) { return store::active_instance_ids(c); },
                                       [this](std::vector<std::string> ids) {
                                           log()->debug("rescan: {} active instance(s)", ids.size());
                                           for (const auto &id : ids) load(id);
                                       });
}

void Orchestrator::load(const std::string &id) {
    if (instances_.count(id) || loading_.count(id)) return;
    loading_.insert(id);
    for_instance<std::optional<store::LoadedInstance>>(id,
        [id](pqxx::connection &c) { return store::load_instance(c, id); },
        [this, id](std::optional<store::LoadedInstance> loaded) {
            loading_.erase(id);
            if (loaded && !instances_.count(id)) start_instance(std::move(*loaded));
        });
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
            durable::engine::InstanceInfo info{id, loaded.label, loaded.execution, loaded.vars};
            run = std::make_unique<durable::engine::InstanceRun>(std::move(graph), std::move(info), engine_settings(),
                                                                 loaded.history);
        } catch (const durable::GraphError &e) {
            refusal = e.what();  // "Invalid durable function graph: <path>: <reason>"
        } catch (const std::exception &e) {
            refusal = std::string("Invalid durable function graph: ") + e.what();
        }
    }
    if (refusal) {
        log()->info("failing instance {}: {}", id, *refusal);
        const std::string error = *refusal;
        for_instance<bool>(id,
            [id, error](pqxx::connection &c) {
                store::fail_instance(c, id, error, std::nullopt);
                return true;
            },
            [](bool) {});
        return;
    }
    auto inst = std::make_unique<Instance>();
    inst->row = std::move(loaded);
    inst->run = std::move(run);
    Instance &ref = *inst;
    instances_[id] = std::move(inst);
    log()->debug("instance {} {}", id, ref.row.status == "pending" ? "started" : "resumed");
    if (ref.row.status == "pending") {
        to_mark_running_.insert(id);
        mark_running();
    }
    guarded(id, [&] { push(ref, ref.run->start(now())); });
}

Orchestrator::Instance *Orchestrator::find(const std::string &id) {
    auto it = instances_.find(id);
    return it == instances_.end() ? nullptr : it->second.get();
}

void Orchestrator::push(Instance &inst, Effects effects) {
    inst.queue.push_back(std::move(effects));
    const std::string id = inst.row.id;  // a copy: pump may forget (destroy) the instance
    pump(id);
}

// Carries out queued effects one batch at a time: writes commit before the
// batch's steps, timers and waits start.
void Orchestrator::pump(const std::string &id) {
    Instance *inst = find(id);
    while (inst != nullptr && !inst->busy && !inst->queue.empty()) {
        Effects effects = std::move(inst->queue.front());
        inst->queue.pop_front();
        for (const auto &[stamp, node] : effects.cancels) {
            const bool in_flight = executor_.cancel(id, stamp, node) || between_attempts_.count({id, stamp, node});
            if (!in_flight) continue;
            // Still running: its 'cancelled' record waits for the step's end.
            auto &writes = effects.activations;
            for (auto w = writes.begin(); w != writes.end(); ++w) {
                if (w->stamp != stamp || w->node_id != node || w->status != "cancelled") continue;
                deferred_records_[{id, stamp, node}] = DeferredRecord{inst->row.execution, w->error.value_or("")};
                writes.erase(w);
                break;
            }
        }
        // A cancelled signal wait (a RACE loser, say) leaves the line at once:
        // else it stays the earliest wait for its name and takes no signal.
        for (const auto &key : effects.cancels) {
            http_client_.cancel({id, key.first, key.second});  // closes its socket now; records nothing
            inst->timers.erase(key);
            inst->waits.erase(key);
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
        for_instance<bool>(id,
            [id, execution, shared](pqxx::connection &c) { return store::apply_effects(c, id, execution, *shared); },
            [this, id, shared](bool live) {
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

void Orchestrator::run_step(Instance &inst, StepRun step, int attempt) {
    StepRequest request;
    request.instance_id = inst.row.id;
    request.stamp = step.stamp;
    request.node_id = step.node_id;
    request.execution = inst.row.execution;
    request.database = inst.row.database;
    request.role = inst.row.submitted_by;
    request.query = step.query;
    request.attempt = attempt;
    if (step.completes_instance || !step.mirrors.empty()) {
        nlohmann::ordered_json finish = nlohmann::ordered_json::object();
        if (step.completes_instance) {
            finish["instance"] = "completed";
            finish["root_node_ids"] = step.completes_nodes;
        }
        nlohmann::ordered_json mirrors = nlohmann::ordered_json::array();
        for (const auto &m : step.mirrors) {
            nlohmann::ordered_json item{{"node_id", m.node_id}, {"stamp", m.stamp}, {"status", m.status}};
            item["result"] = m.result ? nlohmann::ordered_json(*m.result) : nlohmann::ordered_json();
            item["error"] = m.error ? nlohmann::ordered_json(*m.error) : nlohmann::ordered_json();
            mirrors.push_back(std::move(item));
        }
        if (!mirrors.empty()) finish["mirrors"] = std::move(mirrors);
        request.finish = finish.dump();
    }
    const std::string id = inst.row.id;
    executor_.run(std::move(request), [this, id, step = std::move(step), attempt](StepResult result) {
        on_step_result(id, step, attempt, std::move(result));
    });
}

void Orchestrator::on_step_result(const std::string &id, const StepRun &step, int attempt, StepResult result) {
    // An interrupted step whose record waited for its end: the interpreter
    // has moved on; only the record remains to be written (and never a rerun).
    if (auto deferred = deferred_records_.extract({id, step.stamp, step.node_id})) {
        write_deferred_record(id, step.stamp, step.node_id, deferred.mapped());
        return;
    }
    Instance *inst = find(id);
    if (inst == nullptr) return;  // cancelled or detached meanwhile
    using Kind = StepResult::Kind;
    switch (result.kind) {
    case Kind::completed:
    case Kind::failed:
    case Kind::connect_failed: {
        Outcome outcome = result.kind == Kind::completed ? Outcome::completed(result.result)
                                                         : Outcome::failed(result.error, step.node_id);
        if (result.recorded) {
            feed_step(id, step.stamp, step.node_id, std::move(outcome));
            return;
        }
        // Not recorded by df._run_step (another database, no connection, no
        // slot): record it, then move on.
        durable::engine::ActivationWrite write;
        write.stamp = step.stamp;
        write.node_id = step.node_id;
        write.status = result.kind == Kind::completed ? "completed" : "failed";
        if (result.kind == Kind::completed)
            write.result = result.result;
        else
            write.error = result.error;
        write.started_at = now();
        write.completed_at = now();
        const std::int64_t execution = inst->row.execution;
        // The interpreter counts on a last step completing the instance in its
        // own transaction (df._run_step's finish); here that is this write.
        auto batch = std::make_shared<Effects>();
        batch->activations.push_back(write);
        if (result.kind == Kind::completed && step.completes_instance) {
            batch->mirrors = step.mirrors;
            for (const auto &node : step.completes_nodes)
                batch->mirrors.push_back({step.stamp, node, "completed", result.result, std::nullopt});
            batch->instance.emplace();
            batch->instance->status = "completed";
        }
        for_instance<bool>(id,
            [id, execution, batch](pqxx::connection &c) {
                store::apply_effects(c, id, execution, *batch);
                return true;
            },
            [this, id, step, outcome](bool) { feed_step(id, step.stamp, step.node_id, outcome); });
        return;
    }
    case Kind::duplicate:
        if (result.status == "completed")
            feed_step(id, step.stamp, step.node_id, Outcome::completed(result.result));
        else
            feed_step(id, step.stamp, step.node_id, Outcome::failed(result.error, step.node_id));
        return;
    case Kind::cancelled:
    case Kind::instance_not_running:
        forget(id);
        return;
    case Kind::interrupted:
        log()->debug("step {} of instance {} interrupted (attempt {}{}): {}", step.node_id, id, attempt,
                     result.stale_attachment ? ", stale attachment" : "", result.error);
        if (result.stale_attachment) {
            // Not the step's fault: this daemon's attachment is stale. The
            // lifecycle notices (heartbeat) and re-attaches; its rescan
            // resumes the instance. Nothing ran, nothing is fed.
            log()->info("step of instance {} refused ({}); leaving it to the next attachment", id, result.error);
            forget(id);
            return;
        }
        if (attempt >= kMaxInterruptedAttempts) {
            feed_step(id, step.stamp, step.node_id,
                      Outcome::failed(durable::protocol::sql_failed(result.error), step.node_id));
            return;
        }
        // Nothing committed: a cancel aimed at this instance or a lost
        // connection. Ask the database which, and run again if still live
        // and still wanted (it may have lost a RACE meanwhile: then its
        // record was deferred to this moment, as for a running step).
        between_attempts_.insert({id, step.stamp, step.node_id});
        for_instance<std::optional<store::InstanceState>>(id,
            [id](pqxx::connection &c) { return store::instance_state(c, id); },
            [this, id, step, attempt](std::optional<store::InstanceState> state) {
                between_attempts_.erase({id, step.stamp, step.node_id});
                if (auto deferred = deferred_records_.extract({id, step.stamp, step.node_id})) {
                    write_deferred_record(id, step.stamp, step.node_id, deferred.mapped());
                    return;
                }
                Instance *target = find(id);
                if (target == nullptr) return;
                if (!state || (state->status != "pending" && state->status != "running")) {
                    forget(id);
                    return;
                }
                const auto waiting = target->run->running_steps();
                if (std::find(waiting.begin(), waiting.end(), Key{step.stamp, step.node_id}) == waiting.end()) return;
                guarded(id, [&] { run_step(*target, step, attempt + 1); });
            });
        return;
    }
}

void Orchestrator::feed_step(const std::string &id, const std::string &stamp, const std::string &node_id,
                             Outcome outcome) {
    Instance *inst = find(id);
    if (inst == nullptr) return;
    guarded(id, [&] { push(*inst, inst->run->on_step(stamp, node_id, outcome, now())); });
}

// HTTP steps: gates (0) http_enabled and (1) EXECUTE on df.http here, the
// rest in the HttpClient (no connection or transaction held during I/O); the
// outcome is recorded, then fed to the interpreter.
void Orchestrator::run_http(Instance &inst, const durable::engine::HttpRun &http) {
    namespace outbound = pgd::daemon::http;
    const std::string id = inst.row.id;
    const std::int64_t execution = inst.row.execution;
    const auto started = now();
    auto finish = [this, id, execution, http, started](outbound::Result result) {
        durable::engine::ActivationWrite write;
        write.stamp = http.stamp;
        write.node_id = http.node_id;
        write.status = result.ok ? "completed" : "failed";
        (result.ok ? write.result : write.error) = result.text;
        write.started_at = started;
        write.completed_at = now();
        for_instance<bool>(id,
            [id, execution, write](pqxx::connection &c) {
                store::record_activation(c, id, execution, write);
                return true;
            },
            [this, id, http, result](bool) {
                Instance *target = find(id);
                if (target == nullptr) return;
                const Outcome outcome =
                    result.ok ? Outcome::completed(result.text) : Outcome::failed(result.text, http.node_id);
                guarded(id, [&] { push(*target, target->run->on_http(http.stamp, http.node_id, outcome, now())); });
            });
    };
    if (!settings_.http_enabled) {
        finish({false, outbound::disabled_error()});
        return;
    }
    const std::int64_t role_oid = inst.row.submitted_by_oid;
    const std::string role = inst.row.submitted_by;
    const std::string key = outbound::idempotency_key(id, http.node_id, execution);
    for_instance<bool>(id, [role_oid](pqxx::connection &c) { return store::has_http_privilege(c, role_oid); },
                   [this, id, role, key, http, finish](bool allowed) {
                       if (!still_running(find(id), http.stamp, http.node_id)) return;  // cancelled meanwhile
                       if (!allowed) {
                           finish({false, outbound::privilege_error(role)});
                           return;
                       }
                       const outbound::Limits limits{settings_.http_allowed_hosts,
                                                     settings_.http_allow_private_networks,
                                                     settings_.http_max_attempts, settings_.http_max_response_bytes};
                       log()->debug("http step {} of {}: max {} attempt(s), {} response bytes", http.node_id, id,
                                    limits.max_attempts, limits.max_response_bytes);
                       http_client_.run({id, http.stamp, http.node_id}, http.config, key, limits,
                                        [this, generation = generation_, finish](outbound::Result result) {
                                            if (generation != generation_ || !attached_) return;
                                            finish(std::move(result));
                                        });
                   });
}

void Orchestrator::arm(Instance &inst, const durable::engine::TimerArm &timer) {
    auto t = std::make_unique<boost::asio::system_timer>(io_, timer.wake_at);
    const std::string id = inst.row.id;
    const Key key{timer.stamp, timer.node_id};
    t->async_wait([this, id, key](const boost::system::error_code &ec) {
        if (ec) return;  // cancelled
        Instance *target = find(id);
        if (target == nullptr) return;
        target->timers.erase(key);
        target->waits.erase(key);  // a signal wait that timed out
        guarded(id, [&] { push(*target, target->run->on_timer(key.first, key.second, now())); });
    });
    inst.timers[key] = std::move(t);
}

// Hands queued signals to waiting SIGNAL nodes: per name, the earliest-started
// wait takes the oldest signal (SPEC §13).
void Orchestrator::deliver_signals(const std::string &id) {
    Instance *inst = find(id);
    if (inst == nullptr || inst->waits.empty()) return;
    if (inst->delivering) {
        inst->redeliver = true;
        return;
    }
    // Per signal name, the earliest-started wait goes first.
    std::vector<durable::engine::SignalWait> candidates;
    std::set<std::string> names;
    for (const auto &[key, wait] : inst->waits) names.insert(wait.signal_name);
    for (const auto &name : names) {
        const durable::engine::SignalWait *earliest = nullptr;
        for (const auto &[key, wait] : inst->waits)
            if (wait.signal_name == name && (earliest == nullptr || wait.started_at < earliest->started_at))
                earliest = &wait;
        candidates.push_back(*earliest);
    }
    inst->delivering = true;
    inst->redeliver = false;
    for_instance<std::vector<std::pair<durable::engine::SignalWait, std::string>>>(id,
        [id, candidates](pqxx::connection &c) {
            std::vector<std::pair<durable::engine::SignalWait, std::string>> delivered;
            for (const auto &wait : candidates)
                if (auto result = store::consume_signal(c, id, wait.stamp, wait.node_id, wait.signal_name))
                    delivered.emplace_back(wait, *result);
            return delivered;
        },
        [this, id](std::vector<std::pair<durable::engine::SignalWait, std::string>> delivered) {
            Instance *target = find(id);
            if (target == nullptr) return;
            target->delivering = false;
            for (const auto &[wait, result] : delivered) {
                const Key key{wait.stamp, wait.node_id};
                target->waits.erase(key);
                target->timers.erase(key);
                guarded(id, [&] { push(*target, target->run->on_signal(wait.stamp, wait.node_id, result, now())); });
                target = find(id);
                if (target == nullptr) return;
            }
            // More may be queued for the next waits in line.
            if (!delivered.empty() || target->redeliver) deliver_signals(id);
        });
}

// The instance's committed row reads 'cancelled' (or it ended elsewhere):
// interrupt its running steps at once and start nothing more.
void Orchestrator::cancel_instance(const std::string &id, const store::InstanceState &state) {
    Instance *inst = find(id);
    if (inst == nullptr) return;
    const auto running = inst->run->running_steps();
    const DeferredRecord record{inst->row.execution, durable::protocol::cancelled(state.error.value_or(""))};
    http_client_.cancel_instance(id);  // closes their sockets now; they record nothing
    forget(id);
    for (const auto &[stamp, node] : running) {
        const bool in_flight = executor_.cancel(id, stamp, node) || between_attempts_.count({id, stamp, node});
        if (state.status != "cancelled") continue;
        if (in_flight)
            deferred_records_[{id, stamp, node}] = record;
        else
            write_deferred_record(id, stamp, node, record);
    }
}

// No instance lock: the one row is written alone (a 'completed' record stays).
void Orchestrator::write_deferred_record(const std::string &id, const std::string &stamp, const std::string &node_id,
                                         const DeferredRecord &record) {
    const std::vector<Key> keys{{stamp, node_id}};
    for_instance<bool>(id,
        [id, record, keys](pqxx::connection &c) {
            store::record_cancelled(c, id, record.execution, keys, record.error);
            return true;
        },
        [](bool) {});
}

void Orchestrator::forget(const std::string &id) { instances_.erase(id); }

// "Is my job running?" gets the right answer within milliseconds of the
// take-up, not when the first step commits; batched, so it costs one commit
// per burst of starts, not one per step.
void Orchestrator::mark_running() {
    if (marking_running_ || to_mark_running_.empty()) return;
    std::vector<std::string> ids(to_mark_running_.begin(), to_mark_running_.end());
    to_mark_running_.clear();
    marking_running_ = true;
    on_state<bool>(
        [ids](pqxx::connection &c) {
            store::mark_running(c, ids);
            return true;
        },
        [this](bool) {
            marking_running_ = false;
            mark_running();
        });
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
            for (const auto &[stamp, node] : inst->run->running_steps()) executor_.cancel(id, stamp, node);
        } catch (const std::exception &e) {
            log()->warn("instance {}: could not interrupt its steps: {}", id, e.what());
        }
    }
    forget(id);
    on_state<bool>(
        [id, error](pqxx::connection &c) {
            store::fail_instance(c, id, error, std::nullopt);
            return true;
        },
        [](bool) {});
}

// Wake-ups are hints (DESIGN §2.12): whatever a payload says, the daemon
// looks up the named instances' committed rows, in one statement per batch
// with one lookup in flight, and acts on the rows: a live instance it does not
// run is loaded, a live one it runs gets its queued signals, a cancelled or
// ended one it runs is stopped. Ids that name no instance cost one index probe.
void Orchestrator::on_wakeups(const WakeupBatch &batch) {
    if (!attached_) return;
    wakeups_.merge(batch);
    reconcile_wakeups();
}

void Orchestrator::reconcile_wakeups() {
    if (reconciling_ || wakeups_.empty() || !attached_) return;
    WakeupBatch batch = wakeups_.take();
    std::vector<std::string> ids(batch.ids.begin(), batch.ids.end());
    // On overflow the named ids are gone: look at every live instance and at
    // every one this daemon runs (one of them may have been cancelled).
    if (batch.overflow)
        for (const auto &[id, inst] : instances_) ids.push_back(id);
    if (ids.empty() && !batch.overflow) return;
    reconciling_ = true;
    const bool all_active = batch.overflow;
    on_state<std::vector<store::NamedInstanceState>>(
        [ids, all_active](pqxx::connection &c) { return store::instance_states(c, ids, all_active); },
        [this](std::vector<store::NamedInstanceState> rows) {
            reconciling_ = false;
            for (const auto &row : rows) {
                const bool live = row.state.status == "pending" || row.state.status == "running";
                if (find(row.id) == nullptr) {
                    if (live) load(row.id);
                } else if (live) {
                    deliver_signals(row.id);
                } else {
                    cancel_instance(row.id, row.state);
                }
            }
            reconcile_wakeups();
        });
}

void Orchestrator::drain(std::function<void()> done) {
    // Steps in flight either commit (recorded) or roll back (run again by the
    // next daemon): nothing to wait for beyond dropping our state.
    attached_ = false;
    done();
}

void Orchestrator::on_detached() {
    attached_ = false;
    sweeper_.stop();
    ++generation_;
    instances_.clear();
    loading_.clear();
    wakeups_.take();
    reconciling_ = false;
    deferred_records_.clear();
    between_attempts_.clear();
    to_mark_running_.clear();
    marking_running_ = false;
    executor_.stop();
    http_client_.stop();
    // The state connection belongs to its worker: let the worker drop it.
    if (state_worker_) {
        auto slot = state_conn_;
        state_worker_->post([slot]() { slot->reset(); });
        state_worker_.reset();  // joins after the posted jobs
    }
}

}  // namespace pgd::daemon
