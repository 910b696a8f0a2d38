// What the orchestrator does with the end of a SQL step (the step-outcome
// policy; pure, unit-tested). The executor reports how the step's
// transaction ended; this decides whether the interpreter hears of it now,
// after a record is written, after a look at the instance, or never.
#pragma once

#include <optional>
#include <string>

#include "daemon/executor.hpp"
#include "daemon/interpreter.hpp"

namespace pgd::daemon {

// Runs of one step whose transactions were interrupted (nothing committed:
// a cancel, a lost connection) before it fails with the last error.
constexpr int kMaxInterruptedAttempts = 5;

struct StepDecision {
    enum class Action {
        feed,                      // recorded already: hand `outcome` to the interpreter
        record_then_feed,          // commit `record` first (no df._run_step recorded it), then feed
        forget,                    // the instance was cancelled or ended meanwhile: drop it
        leave_to_next_attachment,  // this daemon's attachment is stale: drop it, feed nothing
        check_then_rerun,          // nothing committed: run again if the instance still lives and wants it
    };
    Action action = Action::forget;
    durable::engine::Outcome outcome;
    durable::engine::Effects record;  // record_then_feed
};

StepDecision decide_step_outcome(const durable::engine::StepRun &step, const StepResult &result, int attempt,
                                 durable::engine::TimePoint now);

}  // namespace pgd::daemon
