// df._run_step's outcome: what the step's transaction reported, as the JSON
// object df._run_step returns, and its parser. Pure (no libpqxx, no I/O), so
// the outcome parser has a fuzz target of its own (tests/fuzz).
#pragma once

#include <chrono>
#include <string>

namespace pgd::daemon {

// Where a step's time went, for the per-step timeline the daemon logs at
// debug level (steady clock; a zero time point: that phase did not happen).
struct StepTimings {
    using Time = std::chrono::steady_clock::time_point;
    Time requested;  // the orchestrator asked the executor to run it
    Time started;    // a connection took it (later than requested: it waited for one)
    Time connected;  // the connection finished logging in (only for a new connection)
    Time sent;       // the statement was handed to libpq
    Time returned;   // its result was read
};

struct StepResult {
    enum class Kind {
        completed,             // recorded (extension db) or to be recorded (target db)
        failed,                // the step's SQL failed; recorded in the extension db
        cancelled,             // df.cancel interrupted it; recorded
        duplicate,             // already recorded by an earlier attempt
        instance_not_running,  // the instance ended meanwhile; nothing ran
        interrupted,           // nothing committed (query cancel, lost connection): run again or drop
        connect_failed,        // could not connect to the step's database; nothing ran
    };
    Kind kind = Kind::interrupted;
    std::string result;  // result JSON (completed, duplicate completed)
    std::string error;   // failure text
    std::string status;  // duplicate: the recorded status
    bool recorded = true;  // false: the orchestrator must record the outcome
    // interrupted because df._run_step refused this daemon's secret or is
    // gone (another daemon took over, or the extension was dropped and
    // created again): the daemon's attachment is stale, not the step's fault.
    bool stale_attachment = false;
    StepTimings timings;  // filled by the executor
};

// Parses df._run_step's outcome JSON (exposed for unit tests and fuzzing).
// Never throws beyond std::bad_alloc: an outcome without the shape
// df._run_step writes becomes a failed, unrecorded step.
StepResult parse_run_step_outcome(const std::string &outcome);

// The failed, unrecorded step for an outcome without the expected shape:
// "unexpected df._run_step outcome: <the first 200 bytes>...".
StepResult malformed_outcome(const std::string &outcome);

}  // namespace pgd::daemon
