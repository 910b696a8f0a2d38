// The graph interpreter: what runs when, for one instance (SPEC.md §10).
//
// Pure: no database, no network, no clock of its own. The daemon feeds it
// events (a step finished, a timer fired, a signal was consumed) together with
// the current time, and carries out the Effects it returns. That keeps every
// transition unit-testable with a fake clock and a fake store.
//
// Durability model (docs/ARCHITECTURE.md "Engine"):
//  * Leaf activations (SQL, HTTP, SLEEP, WAIT_SCHEDULE, SIGNAL) are recorded
//    in df._activations, keyed by (stamp, node id). A SQL step's record
//    commits in the same transaction as the step (df._run_step).
//  * Everything else is derived: on load the interpreter replays the graph
//    from the root against the recorded History, satisfying recorded leaves
//    at once, so "which node runs next" is a pure function of recorded state
//    (DESIGN §2.3) and needs no commit of its own.
//  * Decisions that depend on timing and cannot be replayed are written
//    before anything depends on them: a RACE's winner, a loop iteration's
//    checkpoint (iteration number, start time, accumulated named results),
//    a root loop's new execution. The daemon commits Effects::writes before
//    it starts Effects::steps / timers (and issues Effects::cancels first).
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/graph.hpp"

namespace durable::engine {

using TimePoint = std::chrono::system_clock::time_point;

// ---------------------------------------------------------------------------
// Inputs

struct InstanceInfo {
    std::string id;
    std::optional<std::string> label;
    std::int64_t execution = 1;                // df.instances.execution_count
    std::map<std::string, std::string> vars;   // frozen df.vars snapshot
};

struct EngineSettings {
    std::int64_t loop_min_interval_ms = 1000;  // pg_durable.loop_min_interval_ms
    std::string cron_timezone = "UTC";         // pg_durable.cron_timezone
    std::int64_t max_loop_iterations = 100000; // SPEC §10.6 guard
    std::int64_t history_executions = 10;      // pg_durable.history_executions
};

// One df._activations row of the current execution.
struct Record {
    std::string status;  // running | completed | failed | cancelled
    std::optional<std::string> result;
    std::optional<std::string> error;
    std::optional<TimePoint> started_at;
    std::optional<TimePoint> wake_at;
};
using RecordKey = std::pair<std::string, std::string>;  // (stamp, node id)
using History = std::map<RecordKey, Record>;

// ---------------------------------------------------------------------------
// Effects

// A row of df._activations to upsert (and mirror onto df.nodes).
struct ActivationWrite {
    std::string stamp;
    std::string node_id;
    std::string status;
    std::optional<std::string> result;
    std::optional<std::string> error;
    std::optional<TimePoint> started_at;
    std::optional<TimePoint> completed_at;
    std::optional<TimePoint> wake_at;
};

// A df.nodes status mirror of a compound node (monitoring only; not needed
// for recovery, so it rides along with the next commit).
struct NodeMirror {
    std::string stamp;
    std::string node_id;
    std::string status;
    std::optional<std::string> result;
    std::optional<std::string> error;
    std::optional<std::int64_t> attempts;  // a RETRY's attempt number (df.nodes.attempts); none keeps the row's
};

// The instance row: terminal status or a new root-loop execution.
struct InstanceWrite {
    std::string status;                     // running | completed | failed
    std::optional<std::string> error;
    std::optional<std::string> error_node;
    std::optional<std::int64_t> execution;  // new execution_count (root loop)
    std::optional<std::string> continued_output;  // body result of the execution that went on
};

// A SQL step for the executor. When `completes_instance` is set, the step's
// success also completes the instance and `completes_nodes` (its ancestors up
// to the root) in the step's own transaction: one commit for the last step.
struct StepRun {
    std::string stamp;
    std::string node_id;
    std::string query;  // after substitution
    bool completes_instance = false;
    std::vector<std::string> completes_nodes;
    std::vector<NodeMirror> mirrors;  // piggybacked status mirrors
};

struct HttpRun {
    std::string stamp;
    std::string node_id;
    std::string config;  // the node's query JSON, before substitution
};

struct TimerArm {
    std::string stamp;
    std::string node_id;
    TimePoint wake_at;
};

struct SignalWait {
    std::string stamp;
    std::string node_id;
    std::string signal_name;
    TimePoint started_at;
};

// Loop history beyond pg_durable.history_executions, deleted in the same
// commit that starts the next iteration (DESIGN §2.8): each iteration removes
// at most one old iteration, so the rows a loop keeps do not depend on how
// long or how fast it runs.
struct HistoryTrim {
    std::optional<std::int64_t> execution;  // a root loop's past execution (activations and df._executions row)
    std::optional<std::string> scope;       // a non-root loop's past iteration scope (stamp and nested stamps)
};

struct Effects {
    std::vector<RecordKey> cancels;           // running steps to interrupt, before the writes
    std::vector<ActivationWrite> activations; // committed together, before anything below
    std::vector<NodeMirror> mirrors;          // ride with `activations` / `instance`
    std::optional<InstanceWrite> instance;
    std::vector<HistoryTrim> trims;           // ride with the writes
    std::vector<StepRun> steps;
    std::vector<HttpRun> http;
    std::vector<TimerArm> timers;
    std::vector<SignalWait> signal_waits;

    bool has_writes() const { return !activations.empty() || instance.has_value(); }
};

// How a node ended.
struct Outcome {
    enum class Kind { Completed, Failed, Break };
    Kind kind = Kind::Completed;
    std::string value;   // result JSON (Completed, Break) or error message (Failed)
    std::string origin;  // node id where a failure or break originated

    static Outcome completed(std::string result) { return {Kind::Completed, std::move(result), {}}; }
    static Outcome failed(std::string error, std::string origin) {
        return {Kind::Failed, std::move(error), std::move(origin)};
    }
};

// ---------------------------------------------------------------------------

class Task;

// Runs one instance's graph. Not thread-safe; lives on the daemon's loop.
class InstanceRun {
public:
    InstanceRun(Graph graph, InstanceInfo info, EngineSettings settings, History history);
    ~InstanceRun();
    InstanceRun(const InstanceRun &) = delete;
    InstanceRun &operator=(const InstanceRun &) = delete;

    // Starts (or, with a History, resumes) the instance.
    Effects start(TimePoint now);
    // A SQL step finished: completed with its result JSON or failed with its
    // error text (already recorded by df._run_step).
    Effects on_step(const std::string &stamp, const std::string &node_id, const Outcome &outcome,
                    TimePoint now);
    // An HTTP step finished (the daemon recorded it).
    Effects on_http(const std::string &stamp, const std::string &node_id, const Outcome &outcome,
                    TimePoint now);
    // A timer armed through Effects::timers is due.
    Effects on_timer(const std::string &stamp, const std::string &node_id, TimePoint now);
    // The daemon consumed a signal for this wait and recorded the completion.
    Effects on_signal(const std::string &stamp, const std::string &node_id, const std::string &result,
                      TimePoint now);

    bool finished() const noexcept { return finished_; }
    const InstanceInfo &info() const noexcept { return info_; }
    const Graph &graph() const noexcept { return graph_; }
    // The keys of SQL and HTTP steps currently running (for df.cancel).
    std::vector<RecordKey> running_steps() const;
    // Whether the run waits for timers only (no step, request or signal wait)
    // and holds nothing unwritten (status mirrors): then the daemon may drop
    // it and load it again when a timer is due; the replay arms the same
    // timers from the rows (docs/ARCHITECTURE.md "Timers").
    bool parkable() const;

private:
    friend class Task;
    friend class LeafTask;
    friend class SqlTask;
    friend class HttpTask;
    friend class TimerTask;
    friend class SignalTask;
    friend class ThenTask;
    friend class IfTask;
    friend class JoinTask;
    friend class RaceTask;
    friend class LoopTask;
    friend class BreakTask;
    friend class RetryTask;
    friend class TimeoutTask;

    struct Done {
        Task *task;
        Outcome outcome;
    };

    template <class StepTask>
    Effects step_finished(const std::string &stamp, const std::string &node_id, const Outcome &outcome,
                          TimePoint now);
    std::unique_ptr<Task> make_task(NodeIndex node, Task *parent, std::string stamp,
                                    std::shared_ptr<std::map<std::string, std::string>> results);
    void start_task(Task &task);
    void finish_task(Task &task, Outcome outcome);
    void drain();
    void root_done(const Outcome &outcome);
    Effects take_effects();
    const Record *recorded(const std::string &stamp, const std::string &node_id) const;
    void register_leaf(Task &task);
    void register_leaf(Task &task, const std::string &stamp);
    void unregister_leaf(const Task &task);
    Task *find_leaf(const std::string &stamp, const std::string &node_id) const;
    std::string substitute_sql(const Task &task, const std::string &text) const;
    std::string substitute_raw(const Task &task, const std::string &text) const;
    void mirror(const Task &task, const std::string &status, std::optional<std::string> result,
                std::optional<std::string> error);
    bool completes_instance_on_success(const Task &leaf, std::vector<std::string> &ancestors) const;

    Graph graph_;
    InstanceInfo info_;
    EngineSettings settings_;
    History history_;
    TimePoint now_{};
    std::unique_ptr<Task> root_;
    std::map<RecordKey, Task *> leaves_;
    std::list<Done> done_queue_;  // a list: empty, it allocates nothing (a deque allocates ~600 bytes)
    std::vector<std::unique_ptr<Task>> graveyard_;  // retired subtrees, freed after a drain
    std::shared_ptr<std::map<std::string, std::string>> root_results_;
    Effects effects_;
    std::vector<NodeMirror> pending_mirrors_;
    bool finished_ = false;
    bool finish_committed_by_step_ = false;
};

}  // namespace durable::engine
