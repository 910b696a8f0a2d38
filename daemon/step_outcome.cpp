#include "daemon/step_outcome.hpp"

#include "common/protocol.hpp"

namespace pgd::daemon {

namespace {

using durable::engine::Effects;
using durable::engine::Outcome;

// The batch that records an outcome df._run_step did not record: the step's
// activation and, when the step was the instance's last, its completion
// (which df._run_step's finish would have committed with the step).
Effects record_of(const durable::engine::StepRun &step, const Outcome &outcome, durable::engine::TimePoint now) {
    const bool completed = outcome.kind == Outcome::Kind::Completed;
    durable::engine::ActivationWrite write;
    write.stamp = step.stamp;
    write.node_id = step.node_id;
    write.status = completed ? durable::protocol::kCompleted : durable::protocol::kFailed;
    (completed ? write.result : write.error) = outcome.value;
    write.started_at = now;
    write.completed_at = now;
    Effects record;
    record.activations.push_back(std::move(write));
    record.mirrors = step.mirrors;  // facts from before the step, whatever its outcome
    if (completed && step.completes_instance) {
        for (const auto &node : step.completes_nodes)
            record.mirrors.push_back(
                {step.stamp, node, durable::protocol::kCompleted, outcome.value, std::nullopt, std::nullopt});
        record.instance.emplace();
        record.instance->status = durable::protocol::kCompleted;
    }
    return record;
}

}  // namespace

StepDecision decide_step_outcome(const durable::engine::StepRun &step, const StepResult &result, int attempt,
                                 durable::engine::TimePoint now) {
    using Kind = StepResult::Kind;
    using Action = StepDecision::Action;
    StepDecision decision;
    switch (result.kind) {
    case Kind::completed:
    case Kind::failed:
    case Kind::connect_failed:
        decision.outcome = result.kind == Kind::completed ? Outcome::completed(result.result)
                                                          : Outcome::failed(result.error, step.node_id);
        if (result.recorded) {
            decision.action = Action::feed;
        } else {
            decision.action = Action::record_then_feed;
            decision.record = record_of(step, decision.outcome, now);
        }
        return decision;
    case Kind::duplicate:
        decision.action = Action::feed;
        decision.outcome = result.status == durable::protocol::kCompleted
                               ? Outcome::completed(result.result)
                               : Outcome::failed(result.error, step.node_id);
        return decision;
    case Kind::cancelled:
    case Kind::instance_not_running:
        decision.action = Action::forget;
        return decision;
    case Kind::interrupted:
        if (result.stale_attachment) {
            decision.action = Action::leave_to_next_attachment;
        } else if (attempt >= kMaxInterruptedAttempts) {
            decision.action = Action::record_then_feed;
            decision.outcome = Outcome::failed(durable::protocol::sql_failed(result.error), step.node_id);
            decision.record = record_of(step, decision.outcome, now);
        } else {
            decision.action = Action::check_then_rerun;
        }
        return decision;
    }
    return decision;
}

}  // namespace pgd::daemon
