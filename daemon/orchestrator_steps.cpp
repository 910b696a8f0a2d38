// The orchestrator's steps: SQL steps through the StepRunner, HTTP steps
// through the http::StepClient, and what the end of each means
// (step_outcome.hpp decides; this carries the decision out).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/protocol.hpp"
#include "daemon/http_policy.hpp"
#include "daemon/logging.hpp"
#include "daemon/orchestrator.hpp"
#include "daemon/orchestrator_instance.hpp"
#include "daemon/step_outcome.hpp"

namespace pgd::daemon {

namespace {

using durable::engine::Outcome;
using durable::engine::StepRun;

std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }

// df._run_step's finish argument: what commits with the step when it
// succeeds (the instance's completion, compound nodes' status mirrors).
std::optional<std::string> finish_argument(const StepRun &step) {
    if (!step.completes_instance && step.mirrors.empty()) return std::nullopt;
    nlohmann::ordered_json finish = nlohmann::ordered_json::object();
    if (step.completes_instance) {
        finish["instance"] = durable::protocol::kCompleted;
        finish["root_node_ids"] = step.completes_nodes;
    }
    nlohmann::ordered_json mirrors = nlohmann::ordered_json::array();
    for (const auto &m : step.mirrors) {
        nlohmann::ordered_json item{{"node_id", m.node_id}, {"stamp", m.stamp}, {"status", m.status}};
        item["result"] = m.result ? nlohmann::ordered_json(*m.result) : nlohmann::ordered_json();
        item["error"] = m.error ? nlohmann::ordered_json(*m.error) : nlohmann::ordered_json();
        if (m.attempts) item["attempts"] = *m.attempts;
        mirrors.push_back(std::move(item));
    }
    if (!mirrors.empty()) finish["mirrors"] = std::move(mirrors);
    return finish.dump();
}

// The per-step timeline (debug level): where a SQL step's time went between
// the interpreter asking for it and the next decision made on its result.
void log_step_timeline(const std::string &id, const StepRun &step, const StepTimings &t,
                       std::chrono::steady_clock::time_point arrived, std::chrono::steady_clock::time_point decided) {
    using std::chrono::duration_cast;
    using std::chrono::microseconds;
    const auto us = [](auto from, auto to) -> long long {
        if (from.time_since_epoch().count() == 0 || to.time_since_epoch().count() == 0) return -1;
        return duration_cast<microseconds>(to - from).count();
    };
    const bool logged_in = t.connected.time_since_epoch().count() != 0;
    log()->debug("step timeline {} {}: queued {} us, login {} us, statement {} us, to orchestrator {} us, "
                 "next decision {} us",
                 id, step.node_id, us(t.requested, t.started), logged_in ? us(t.started, t.connected) : 0,
                 us(t.sent, t.returned), us(t.returned, arrived), us(arrived, decided));
}

}  // namespace

WorkGauges Orchestrator::gauges() const {
    WorkGauges g;
    g.steps_started = steps_started_;
    g.http_in_flight = http_ ? static_cast<std::int64_t>(http_->in_flight()) : 0;
    return g;
}

void Orchestrator::run_step(Instance &inst, StepRun step, int attempt) {
    StepRequest request;
    request.instance_id = inst.row.id;
    request.stamp = step.stamp;
    request.node_id = step.node_id;
    request.execution = inst.row.execution;
    request.database = inst.row.database;
    request.role = inst.row.submitted_by;
    request.role_oid = inst.row.submitted_by_oid;
    request.query = step.query;
    request.attempt = attempt;
    request.finish = finish_argument(step);
    const std::string id = inst.row.id;
    ++steps_started_;
    steps_->run(std::move(request), [this, id, step = std::move(step), attempt](StepResult result) {
        on_step_result(id, step, attempt, std::move(result));
    });
}

void Orchestrator::on_step_result(const std::string &id, const StepRun &step, int attempt, StepResult result) {
    const auto arrived = std::chrono::steady_clock::now();
    const bool timeline = log()->should_log(spdlog::level::debug);
    // An interrupted step whose record waited for its end: the interpreter
    // has moved on; only the record remains to be written (and never a rerun).
    const StepId step_id{id, step.stamp, step.node_id};
    if (deferred_records_.count(step_id)) {
        write_deferred_record(step_id);
        return;
    }
    const Instance *inst = find(id);
    if (inst == nullptr) return;  // cancelled or detached meanwhile
    StepDecision decision = decide_step_outcome(step, result, attempt, orchestrator_now());
    using Action = StepDecision::Action;
    switch (decision.action) {
    case Action::feed: {
        const StepTimings timings = result.timings;
        feed_step(id, step, std::move(decision.outcome));  // the next step, if any, is on its way when this returns
        if (timeline) log_step_timeline(id, step, timings, arrived, std::chrono::steady_clock::now());
        return;
    }
    case Action::record_then_feed: {
        // The interpreter counts on a last step completing the instance in its
        // own transaction (df._run_step's finish); here that is this record.
        auto record = std::make_shared<const durable::engine::Effects>(std::move(decision.record));
        store_->apply_effects(id, inst->row.execution, record,
                              [this, id, step, outcome = std::move(decision.outcome)](bool) {
                                  feed_step(id, step, outcome);
                              });
        return;
    }
    case Action::forget:
        forget(id);
        return;
    case Action::leave_to_next_attachment:
        // Not the step's fault: this daemon's attachment is stale. The
        // lifecycle notices (heartbeat) and re-attaches; its rescan resumes
        // the instance. Nothing ran, nothing is fed.
        log()->info("step of instance {} refused ({}); leaving it to the next attachment", id, result.error);
        forget(id);
        return;
    case Action::check_then_rerun:
        log()->debug("step {} of instance {} interrupted (attempt {}): {}", step.node_id, id, attempt, result.error);
        rerun_if_wanted(id, step, attempt);
        return;
    }
}

// Nothing committed: a cancel aimed at this instance or a lost connection.
// Ask the database which, and run again if still live and still wanted (it
// may have lost a RACE meanwhile: then its record was deferred to this
// moment, as for a running step).
void Orchestrator::rerun_if_wanted(const std::string &id, const StepRun &step, int attempt) {
    const StepId step_id{id, step.stamp, step.node_id};
    between_attempts_.insert(step_id);
    store_->instance_state(id, [this, id, step, attempt, step_id](std::optional<store::InstanceState> state) {
        between_attempts_.erase(step_id);
        if (deferred_records_.count(step_id)) {
            write_deferred_record(step_id);
            return;
        }
        Instance *target = find(id);
        if (target == nullptr) return;
        if (!state || !durable::protocol::is_live(state->status)) {
            forget(id);
            return;
        }
        if (!target->waits_for({step.stamp, step.node_id})) return;
        guarded(id, [&] { run_step(*target, step, attempt + 1); });
    });
}

void Orchestrator::feed_step(const std::string &id, const StepRun &step, Outcome outcome) {
    Instance *inst = find(id);
    if (inst == nullptr) return;
    guarded(id, [&] { push(*inst, inst->run->on_step(step.stamp, step.node_id, outcome, orchestrator_now())); });
}

// Stops a step the interpreter no longer wants: an HTTP request's socket
// closes, a timer or signal wait leaves its line (else it would stay the
// earliest wait for its name and take no signal). True when a SQL step is
// still in flight: its transaction ends later, and its record must wait.
bool Orchestrator::interrupt(const std::string &id, const Key &step) {
    http_->cancel({id, step.first, step.second});  // records nothing
    if (Instance *inst = find(id)) {
        inst->timers.erase(step);
        inst->waits.erase(step);
    }
    const bool running = steps_->cancel(id, step.first, step.second);
    return running || between_attempts_.count({id, step.first, step.second}) > 0;
}

// No instance lock: the one row is written alone (a 'completed' record stays).
void Orchestrator::write_deferred_record(const StepId &step) {
    auto node = deferred_records_.extract(step);
    if (!node) return;
    const auto &[id, stamp, node_id] = step;
    store_->record_cancelled(id, node.mapped().execution, {{stamp, node_id}}, node.mapped().error);
}

// HTTP steps: gates (0) http_enabled and (1) EXECUTE on df.http here, the
// rest in the HttpClient (no connection or transaction held during I/O); the
// outcome is recorded, then fed to the interpreter.
void Orchestrator::run_http(Instance &inst, const durable::engine::HttpRun &http) {
    namespace outbound = pgd::daemon::http;
    const std::string id = inst.row.id;
    const std::int64_t execution = inst.row.execution;
    const auto started = orchestrator_now();
    auto finish = [this, id, execution, http, started](outbound::Result result) {
        durable::engine::ActivationWrite write;
        write.stamp = http.stamp;
        write.node_id = http.node_id;
        write.status = result.ok ? durable::protocol::kCompleted : durable::protocol::kFailed;
        (result.ok ? write.result : write.error) = result.text;
        write.started_at = started;
        write.completed_at = orchestrator_now();
        store_->record_activation(id, execution, write, [this, id, http, result] {
            Instance *target = find(id);
            if (target == nullptr) return;
            const Outcome outcome =
                result.ok ? Outcome::completed(result.text) : Outcome::failed(result.text, http.node_id);
            guarded(id, [&] {
                push(*target, target->run->on_http(http.stamp, http.node_id, outcome, orchestrator_now()));
            });
        });
    };
    if (!settings_.http_enabled) {
        finish({false, outbound::disabled_error()});
        return;
    }
    const std::string role = inst.row.submitted_by;
    const std::string key = outbound::idempotency_key(id, http.node_id, execution);
    store_->has_http_privilege(id, inst.row.submitted_by_oid, [this, id, role, key, http, finish](bool allowed) {
        Instance *target = find(id);
        if (target == nullptr || !target->waits_for({http.stamp, http.node_id})) return;  // cancelled meanwhile
        if (!allowed) {
            finish({false, outbound::privilege_error(role)});
            return;
        }
        const outbound::Limits limits{settings_.http_allowed_hosts, settings_.http_allow_private_networks,
                                      settings_.http_max_attempts, settings_.http_max_response_bytes};
        log()->debug("http step {} of {}: max {} attempt(s), {} response bytes", http.node_id, id,
                     limits.max_attempts, limits.max_response_bytes);
        ++steps_started_;
        http_->run({id, http.stamp, http.node_id}, http.config, key, limits,
                   [this, generation = generation_, finish](outbound::Result result) {
                       if (generation != generation_ || !attached_) return;
                       finish(std::move(result));
                   });
    });
}

}  // namespace pgd::daemon
