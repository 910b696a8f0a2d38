// The graph interpreter (see interpreter.hpp for the durability model).
//
// Each activation of a node is a Task in a tree that mirrors the running part
// of the graph. Children report completion through a queue drained
// iteratively (never by direct recursion), so replaying a long recorded
// history cannot exhaust the stack.
#include "daemon/interpreter.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/cron.hpp"
#include "common/leaf_config.hpp"
#include "common/protocol.hpp"
#include "common/substitute.hpp"
#include "common/truthiness.hpp"

namespace durable::engine {

namespace {

using Results = std::map<std::string, std::string>;
using ResultsPtr = std::shared_ptr<Results>;
using ordered_json = nlohmann::ordered_json;

constexpr const char *kRaceLoserError = "Branch cancelled after losing RACE";
constexpr const char *kBreakOutsideLoop =
    "df.break() was called outside of a loop. df.break() may only be used inside df.loop().";
constexpr const char *kLoopGuard =
    "Loop exceeded maximum iteration count of 100000. Use df.break() to exit the loop or restructure the workflow.";

// Node types whose result `|=>` can name (SPEC §10.10).
bool can_be_named(const std::string &type) {
    return type != "SLEEP" && type != "WAIT_SCHEDULE" && type != "BREAK";
}

std::string child_stamp(const std::string &parent_stamp, const std::string &child_root_id,
                        std::int64_t generation) {
    return protocol::child_stamp(parent_stamp, child_root_id, generation);
}

// A node's JSON config (query), or an empty object.
ordered_json config_of(const GraphNode &node) {
    if (!node.query) return ordered_json::object();
    ordered_json parsed = ordered_json::parse(*node.query, nullptr, false);
    return parsed.is_object() ? parsed : ordered_json::object();
}

std::string json_string(const std::string &s) { return ordered_json(s).dump(); }

}  // namespace

// ---------------------------------------------------------------------------
// Task tree

class Task {
public:
    Task(InstanceRun &run, NodeIndex node, Task *parent, std::string stamp, ResultsPtr results)
        : run_(run), node_(node), parent_(parent), stamp_(std::move(stamp)), results_(std::move(results)) {}
    virtual ~Task() = default;
    Task(const Task &) = delete;
    Task &operator=(const Task &) = delete;

    virtual void start() = 0;
    virtual void child_done(Task &child, const Outcome &outcome) {
        (void)child;
        (void)outcome;
    }
    // Timer due for this task (sleep, cron, signal timeout, loop pacing).
    virtual void timer_due() {}
    // Cancels this task and everything below it that still runs.
    void cancel(const std::string &error) {
        if (done_) return;
        done_ = true;
        cancel_self(error);
        for (auto &child : children_) child->cancel(error);
    }

    const GraphNode &node() const { return run_.graph_[node_]; }
    const std::string &id() const { return node().id; }
    const std::string &stamp() const { return stamp_; }
    Task *parent() const { return parent_; }
    bool done() const { return done_; }
    NodeIndex index() const { return node_; }
    // The attempt a RETRY is on (mirrored to df.nodes.attempts); none for others.
    virtual std::optional<std::int64_t> attempts() const { return std::nullopt; }

protected:
    friend class InstanceRun;
    virtual void cancel_self(const std::string &error) {
        run_.mirror(*this, "cancelled", std::nullopt, error);
    }
    Task &spawn(NodeIndex child, std::string stamp, ResultsPtr results) {
        children_.push_back(run_.make_task(child, this, std::move(stamp), std::move(results)));
        Task &task = *children_.back();
        run_.start_task(task);
        return task;
    }
    void finish(Outcome outcome) { run_.finish_task(*this, std::move(outcome)); }
    // Moves a finished child out of the tree; destroyed after the drain.
    void retire(Task &child) {
        auto it = std::find_if(children_.begin(), children_.end(),
                               [&](const std::unique_ptr<Task> &c) { return c.get() == &child; });
        if (it != children_.end()) {
            run_.graveyard_.push_back(std::move(*it));
            children_.erase(it);
        }
    }

    InstanceRun &run_;
    NodeIndex node_;
    Task *parent_;
    std::string stamp_;
    ResultsPtr results_;
    bool done_ = false;
    std::vector<std::unique_ptr<Task>> children_;
};

// A leaf whose outcome may already be recorded (replay).
class LeafTask : public Task {
public:
    using Task::Task;

protected:
    // Applies a recorded terminal outcome; true when there was one.
    bool replay_terminal() {
        const Record *rec = run_.recorded(stamp_, id());
        if (rec == nullptr) return false;
        if (rec->status == "completed") {
            finish(Outcome::completed(rec->result.value_or("null")));
            return true;
        }
        if (rec->status == "failed" || rec->status == "cancelled") {
            finish(Outcome::failed(rec->error.value_or(""), id()));
            return true;
        }
        return false;
    }
    void cancel_self(const std::string &error) override {
        if (!registered_) return;
        run_.unregister_leaf(*this);
        registered_ = false;
        run_.effects_.cancels.push_back({stamp_, id()});
        record("cancelled", std::nullopt, error);
    }
    // Records this activation in the batch's writes: `running` with its start
    // (and due time), or a terminal status with its result or error.
    void record(const std::string &status, std::optional<std::string> result = std::nullopt,
                std::optional<std::string> error = std::nullopt, std::optional<TimePoint> wake = std::nullopt) {
        ActivationWrite write;
        write.stamp = stamp_;
        write.node_id = id();
        write.status = status;
        write.result = std::move(result);
        write.error = std::move(error);
        if (status == "running")
            write.started_at = started_;
        else
            write.completed_at = run_.now_;
        write.wake_at = wake;
        run_.effects_.activations.push_back(std::move(write));
    }
    // Completes with `result`, recording it (a timer that came due).
    void complete_recorded(const std::string &result) {
        stop_waiting();
        record("completed", result);
        finish(Outcome::completed(result));
    }
    void wait() {
        run_.register_leaf(*this);
        registered_ = true;
    }
    void stop_waiting() {
        if (registered_) run_.unregister_leaf(*this);
        registered_ = false;
    }

    bool registered_ = false;
    TimePoint started_{};
};

class SqlTask : public LeafTask {
public:
    using LeafTask::LeafTask;
    void start() override {
        if (replay_terminal()) return;
        std::string query;
        try {
            query = run_.substitute_sql(*this, node().query.value_or(""));
        } catch (const UserError &e) {
            run_.mirror(*this, "failed", std::nullopt, std::string(e.what()));
            finish(Outcome::failed(e.what(), id()));
            return;
        }
        StepRun step;
        step.stamp = stamp_;
        step.node_id = id();
        step.query = std::move(query);
        step.completes_instance = run_.completes_instance_on_success(*this, step.completes_nodes);
        completes_instance_ = step.completes_instance;
        run_.effects_.steps.push_back(std::move(step));
        wait();
    }
    void outcome(Outcome outcome) {
        stop_waiting();
        if (outcome.origin.empty()) outcome.origin = id();
        if (completes_instance_ && outcome.kind == Outcome::Kind::Completed)
            run_.finish_committed_by_step_ = true;
        finish(outcome);
    }

private:
    bool completes_instance_ = false;
};

class HttpTask : public LeafTask {
public:
    using LeafTask::LeafTask;
    void start() override {
        if (replay_terminal()) return;
        HttpRun http;
        http.stamp = stamp_;
        http.node_id = id();
        try {
            ordered_json config = config_of(node());
            for (const char *field : {"url", "body"}) {
                if (config.contains(field) && config[field].is_string())
                    config[field] = run_.substitute_raw(*this, config[field].get<std::string>());
            }
            if (config.contains("headers") && config["headers"].is_object()) {
                for (auto &header : config["headers"].items())
                    if (header.value().is_string())
                        header.value() = run_.substitute_raw(*this, header.value().get<std::string>());
            }
            http.config = config.dump();
        } catch (const UserError &e) {
            run_.mirror(*this, "failed", std::nullopt, std::string(e.what()));
            finish(Outcome::failed(e.what(), id()));
            return;
        }
        run_.effects_.http.push_back(std::move(http));
        wait();
    }
    void outcome(Outcome outcome) {
        stop_waiting();
        if (outcome.origin.empty()) outcome.origin = id();
        finish(std::move(outcome));
    }
};

// SLEEP and WAIT_SCHEDULE: a durable due time, recorded when the node starts.
class TimerTask : public LeafTask {
public:
    using LeafTask::LeafTask;
    void start() override {
        if (replay_terminal()) return;
        const Record *rec = run_.recorded(stamp_, id());
        if (rec != nullptr && rec->wake_at) {
            arm(*rec->wake_at);  // keeps its due time across restarts
            return;
        }
        std::optional<TimePoint> wake;
        try {
            wake = compute_wake();
        } catch (const UserError &e) {
            run_.mirror(*this, "failed", std::nullopt, std::string(e.what()));
            finish(Outcome::failed(e.what(), id()));
            return;
        }
        started_ = run_.now_;
        record("running", std::nullopt, std::nullopt, *wake);
        arm(*wake);
    }
    void timer_due() override { complete_recorded(result_text()); }

private:
    void arm(TimePoint wake) {
        wait();
        run_.effects_.timers.push_back({stamp_, id(), wake});
    }
    // The graph was validated on load (graph.hpp validate_graph), so the
    // reads below do not throw for any instance the daemon runs.
    std::int64_t sleep_seconds() const { return leaf::read_sleep(node().query).seconds; }
    std::optional<TimePoint> compute_wake() const {
        // Bounded: df.sleep(1000000000000) must not overflow the clock.
        if (node().node_type == "SLEEP") return run_.now_ + leaf::bounded_delay(sleep_seconds());
        const leaf::ScheduleConfig config = leaf::read_schedule(node().query);
        const std::string zone = config.timezone.value_or(run_.settings_.cron_timezone);
        const auto schedule = cron::Schedule::parse(config.cron_expr);
        const auto next = schedule.next_after(run_.now_, cron::load_zone(zone));
        if (!next)
            throw UserError("Invalid cron expression '" + config.cron_expr +
                            "': no matching time in the next 8 years");
        return *next;
    }
    std::string result_text() const {
        if (node().node_type == "SLEEP")
            return "{\"slept\":true,\"seconds\":" + std::to_string(sleep_seconds()) + "}";
        return "{\"scheduled\":true}";
    }
};

class SignalTask : public LeafTask {
public:
    using LeafTask::LeafTask;
    void start() override {
        if (replay_terminal()) return;
        const leaf::SignalConfig config = leaf::read_signal(node().query);
        name_ = config.name;
        const Record *rec = run_.recorded(stamp_, id());
        started_ = run_.now_;
        std::optional<TimePoint> wake;
        if (rec != nullptr) {
            started_ = rec->started_at.value_or(run_.now_);
            wake = rec->wake_at;
        } else {
            if (config.timeout_seconds) wake = run_.now_ + leaf::bounded_delay(*config.timeout_seconds);
            record("running", std::nullopt, std::nullopt, wake);
        }
        wait();
        run_.effects_.signal_waits.push_back({stamp_, id(), name_, started_});
        if (wake) run_.effects_.timers.push_back({stamp_, id(), *wake});
    }
    void delivered(const std::string &result) {
        stop_waiting();
        finish(Outcome::completed(result));
    }
    void timer_due() override {  // timed out
        complete_recorded(durable::protocol::signal_result(name_, true, "null"));
    }

private:
    std::string name_;
};

class BreakTask : public Task {
public:
    using Task::Task;
    void start() override {
        const leaf::BreakConfig config = leaf::read_break(node().query);
        std::string value = "null";
        if (config.value) {
            std::string raw;
            try {
                raw = run_.substitute_raw(*this, *config.value);
            } catch (const UserError &e) {
                run_.mirror(*this, "failed", std::nullopt, std::string(e.what()));
                finish(Outcome::failed(e.what(), id()));
                return;
            }
            const auto parsed = ordered_json::parse(raw, nullptr, false);
            value = parsed.is_discarded() ? json_string(raw) : raw;
        }
        run_.mirror(*this, "completed", value, std::nullopt);
        finish({Outcome::Kind::Break, value, id()});
    }
};

class ThenTask : public Task {
public:
    using Task::Task;
    void start() override { first_ = &spawn(*node().left, stamp_, results_); }
    void child_done(Task &child, const Outcome &outcome) override {
        if (&child == first_ && outcome.kind == Outcome::Kind::Completed) {
            retire(child);
            first_ = nullptr;
            spawn(*node().right, stamp_, results_);
            return;
        }
        finish(outcome);
    }
    // By node, not by pointer: a step asks while it is being started.
    bool is_second(const Task &child) const { return child.index() == *node().right && first_ == nullptr; }

private:
    Task *first_ = nullptr;
};

class IfTask : public Task {
public:
    using Task::Task;
    void start() override {
        if (node().condition) {
            condition_ = &spawn(*node().condition, stamp_, results_);
            return;
        }
        decide_on_rows();
    }
    void child_done(Task &child, const Outcome &outcome) override {
        if (&child == condition_) {
            if (outcome.kind != Outcome::Kind::Completed) {
                finish(outcome);
                return;
            }
            condition_ = nullptr;
            retire(child);
            take_branch(is_truthy(outcome.value));
            return;
        }
        finish(outcome);
    }
    // By node, not by pointer: a condition step asks while it is being started.
    bool is_branch(const Task &child) const { return !node().condition || child.index() != *node().condition; }

private:
    // if_rows: judged on a named result, no query runs (SPEC §10.3).
    void decide_on_rows() {
        const ordered_json config = config_of(node());
        const std::string name = config.value("result_name", "");
        const auto found = results_->find(name);
        if (found == results_->end()) {
            fail_here("df.if_rows: result '" + name + "' not found");
            return;
        }
        const auto parsed = ordered_json::parse(found->second, nullptr, false);
        if (!parsed.is_object() || !parsed.contains("row_count") || !parsed["row_count"].is_number()) {
            fail_here("df.if_rows: result '" + name + "' is not a SQL result (missing row_count)");
            return;
        }
        take_branch(parsed["row_count"].get<double>() > 0);
    }
    void take_branch(bool truthy) { spawn(truthy ? *node().left : *node().right, stamp_, results_); }
    void fail_here(const std::string &error) {
        run_.mirror(*this, "failed", std::nullopt, error);
        finish(Outcome::failed(error, id()));
    }
    Task *condition_ = nullptr;
};

// JOIN: every branch in its own child scope with a copy of the named results.
class JoinTask : public Task {
public:
    using Task::Task;
    void start() override {
        std::vector<NodeIndex> roots{*node().left, *node().right};
        roots.insert(roots.end(), node().extras.begin(), node().extras.end());
        outcomes_.resize(roots.size());
        for (std::size_t i = 0; i < roots.size(); ++i) {
            auto copy = std::make_shared<Results>(*results_);
            branch_results_.push_back(copy);
            branches_.push_back(&spawn(roots[i], child_stamp(stamp_, run_.graph_[roots[i]].id, 1), copy));
        }
    }
    void child_done(Task &child, const Outcome &outcome) override {
        for (std::size_t i = 0; i < branches_.size(); ++i)
            if (branches_[i] == &child) outcomes_[i] = outcome;
        for (const auto &o : outcomes_)
            if (!o) return;  // waits for all
        for (std::size_t i = 0; i < outcomes_.size(); ++i) {
            if (outcomes_[i]->kind == Outcome::Kind::Failed) {
                finish(Outcome::failed("JOIN branch " + std::to_string(i + 1) + " failed: " + outcomes_[i]->value,
                                       outcomes_[i]->origin));
                return;
            }
        }
        for (const auto &o : outcomes_)
            if (o->kind == Outcome::Kind::Break) {
                finish(*o);
                return;
            }
        std::string array = "[";
        for (std::size_t i = 0; i < outcomes_.size(); ++i) {
            if (i) array += ",";
            array += outcomes_[i]->value;
            for (const auto &[name, value] : *branch_results_[i]) (*results_)[name] = value;
        }
        finish(Outcome::completed(array + "]"));
    }

private:
    std::vector<Task *> branches_;
    std::vector<ResultsPtr> branch_results_;
    std::vector<std::optional<Outcome>> outcomes_;
};

// RACE: the first branch to finish decides; the loser is cancelled.
class RaceTask : public Task {
public:
    using Task::Task;
    void start() override {
        const Record *decision = run_.recorded(stamp_, id());
        std::optional<int> winner;
        if (decision != nullptr && decision->result) {
            const auto parsed = ordered_json::parse(*decision->result, nullptr, false);
            if (parsed.is_object() && parsed.contains("race_winner"))
                winner = parsed["race_winner"] == "left" ? 0 : 1;
        }
        decided_ = winner.has_value();
        const NodeIndex roots[2] = {*node().left, *node().right};
        for (int i = 0; i < 2; ++i) {
            if (winner && *winner != i) {
                branches_[i] = nullptr;  // lost before the restart
                continue;
            }
            results_copy_[i] = std::make_shared<Results>(*results_);
            branches_[i] = &spawn(roots[i], child_stamp(stamp_, run_.graph_[roots[i]].id, 1), results_copy_[i]);
        }
    }
    void child_done(Task &child, const Outcome &outcome) override {
        const int side = &child == branches_[0] ? 0 : 1;
        if (!decided_) {
            decided_ = true;
            ActivationWrite write;
            write.stamp = stamp_;
            write.node_id = id();
            write.status = "completed";
            write.result = side == 0 ? "{\"race_winner\":\"left\"}" : "{\"race_winner\":\"right\"}";
            write.completed_at = run_.now_;
            run_.effects_.activations.push_back(std::move(write));
        }
        if (Task *loser = branches_[1 - side]) loser->cancel(kRaceLoserError);
        if (outcome.kind == Outcome::Kind::Failed) {
            finish(Outcome::failed(std::string("RACE ") + (side == 0 ? "left" : "right") +
                                       " branch failed: " + outcome.value,
                                   outcome.origin));
            return;
        }
        if (outcome.kind == Outcome::Kind::Completed)
            for (const auto &[name, value] : *results_copy_[side]) (*results_)[name] = value;
        finish(outcome);
    }

private:
    Task *branches_[2] = {nullptr, nullptr};
    ResultsPtr results_copy_[2];
    bool decided_ = false;
};

// LOOP: do-while with break, while-condition, pacing and the iteration guard.
// A root loop starts a new execution per iteration; a non-root loop runs each
// iteration in a child scope of the same execution (SPEC §10.6).
class LoopTask : public Task {
public:
    using Task::Task;
    void start() override {
        is_root_ = parent_ == nullptr;
        min_interval_ms_ =
            leaf::read_loop(node().query).min_interval_ms.value_or(run_.settings_.loop_min_interval_ms);
        iteration_ = is_root_ ? run_.info_.execution : 1;
        started_ = run_.now_;
        if (const Record *checkpoint = run_.recorded(state_stamp(), id())) restore(*checkpoint);
        begin_iteration();
    }
    void child_done(Task &child, const Outcome &outcome) override {
        const bool from_condition = &child == condition_;
        retire(child);
        if (outcome.kind == Outcome::Kind::Failed) {
            finish(outcome);
            return;
        }
        if (outcome.kind == Outcome::Kind::Break) {  // ends this loop, caught here
            finish(Outcome::completed(outcome.value));
            return;
        }
        if (!from_condition) {
            last_body_ = outcome.value;
            if (node().condition) {
                condition_ = &spawn(*node().condition, body_stamp(), iteration_results_);
                return;
            }
        } else {
            condition_ = nullptr;
            if (!is_truthy(outcome.value)) {
                finish(Outcome::completed(last_body_));
                return;
            }
        }
        pace();
    }
    void timer_due() override {
        run_.unregister_leaf(*this);
        pacing_ = false;
        advance();
    }

protected:
    void cancel_self(const std::string &error) override {
        if (pacing_) run_.unregister_leaf(*this);
        Task::cancel_self(error);
    }

private:
    // Root: the execution stamp of the iteration; non-root: the loop's own.
    std::string state_stamp() const {
        return is_root_ ? protocol::root_stamp(run_.info_.id, iteration_) : stamp_;
    }
    std::string body_stamp() const {
        return is_root_ ? protocol::root_stamp(run_.info_.id, iteration_)
                        : child_stamp(stamp_, run_.graph_[*node().left].id, iteration_);
    }
    void restore(const Record &checkpoint) {
        if (checkpoint.started_at) started_ = *checkpoint.started_at;
        wake_ = checkpoint.wake_at;  // the pace's due time, once recorded
        if (!checkpoint.result) return;
        const auto parsed = ordered_json::parse(*checkpoint.result, nullptr, false);
        if (!parsed.is_object()) return;
        if (!is_root_ && parsed.contains("iteration")) iteration_ = parsed["iteration"].get<std::int64_t>();
        if (!is_root_ && parsed.contains("results") && parsed["results"].is_object())
            for (const auto &item : parsed["results"].items())
                if (item.value().is_string()) (*results_)[item.key()] = item.value().get<std::string>();
    }
    void begin_iteration() {
        if (iteration_ >= run_.settings_.max_loop_iterations) {
            run_.mirror(*this, "failed", std::nullopt, std::string(kLoopGuard));
            finish(Outcome::failed(kLoopGuard, id()));
            return;
        }
        // A root loop's named results reset with each execution; vars persist.
        iteration_results_ = is_root_ ? std::make_shared<Results>() : results_;
        if (is_root_) run_.root_results_ = iteration_results_;
        spawn(*node().left, body_stamp(), iteration_results_);
    }
    // Each iteration lasts at least min_interval_ms from its start, on a
    // durable timer (SPEC §10.6): before the wait begins, the checkpoint
    // records the iteration's start and due time, so a restart keeps both
    // (only a loop that has to wait pays that commit).
    void pace() {
        if (!wake_ && min_interval_ms_ > 0) {
            const TimePoint due = started_ + std::chrono::milliseconds(min_interval_ms_);
            if (run_.now_ < due) {
                ActivationWrite checkpoint;
                checkpoint.stamp = state_stamp();
                checkpoint.node_id = id();
                checkpoint.status = "running";
                checkpoint.started_at = started_;
                checkpoint.wake_at = due;  // the result (iteration, results) stays as advance() wrote it
                run_.effects_.activations.push_back(std::move(checkpoint));
                wake_ = due;
            }
        }
        if (wake_ && run_.now_ < *wake_) {
            const TimePoint due = *wake_;
            pacing_ = true;
            run_.register_leaf(*this, timer_stamp());
            run_.effects_.timers.push_back({timer_stamp(), id(), due});
            return;
        }
        advance();
    }
    std::string timer_stamp() const { return state_stamp(); }
    void advance() {
        const std::string continued = last_body_;
        ++iteration_;
        started_ = run_.now_;
        wake_.reset();
        ActivationWrite checkpoint;
        checkpoint.node_id = id();
        checkpoint.status = "running";
        checkpoint.started_at = started_;
        if (is_root_) {
            InstanceWrite execution;
            execution.status = "running";
            execution.execution = iteration_;
            execution.continued_output = continued;
            run_.effects_.instance = execution;
            run_.info_.execution = iteration_;
            checkpoint.result = "{\"iteration\":" + std::to_string(iteration_) + "}";
        } else {
            ordered_json saved = ordered_json::object();
            for (const auto &[name, value] : *results_) saved[name] = value;
            checkpoint.result =
                ordered_json{{"iteration", iteration_}, {"results", saved}}.dump();
        }
        checkpoint.stamp = state_stamp();
        run_.effects_.activations.push_back(std::move(checkpoint));
        trim_history();
        begin_iteration();
    }

    // Keeps the current iteration and the newest history_executions past
    // ones: the iteration that just fell out of that window goes.
    void trim_history() {
        const std::int64_t gone = iteration_ - std::max<std::int64_t>(run_.settings_.history_executions, 0) - 1;
        if (gone < 1) return;
        HistoryTrim trim;
        if (is_root_)
            trim.execution = gone;
        else
            trim.scope = child_stamp(stamp_, run_.graph_[*node().left].id, gone);
        run_.effects_.trims.push_back(std::move(trim));
    }

    bool is_root_ = false;
    bool pacing_ = false;
    std::int64_t min_interval_ms_ = 0;
    std::int64_t iteration_ = 1;
    TimePoint started_{};
    std::optional<TimePoint> wake_;  // the current iteration's recorded pace due time
    std::string last_body_ = "null";
    ResultsPtr iteration_results_;
    Task *condition_ = nullptr;
};

// RETRY (SPEC §19.3): runs its child up to max_attempts times, each attempt
// in a fresh child scope (generation = attempt number) with a fresh copy of
// the named results, waiting a durable backoff timer between attempts.
//
// Its checkpoint is one df._activations row at (stamp, RETRY id), rewritten
// as it goes: {"attempt":k,"waiting":true} with wake_at = the backoff's due
// time when attempt k-1 failed, then {"attempt":k} when attempt k starts.
// On replay the RETRY resumes at the recorded attempt (earlier attempts are
// over and need no replay) and keeps a waiting backoff's due time.
class RetryTask : public Task {
public:
    using Task::Task;
    void start() override {
        config_ = leaf::read_retry(node().query);
        if (const Record *checkpoint = run_.recorded(stamp_, id())) restore(*checkpoint);
        if (waiting_ && wake_) {
            wait_backoff();
            return;
        }
        begin_attempt();
    }
    void child_done(Task &child, const Outcome &outcome) override {
        retire(child);
        if (outcome.kind != Outcome::Kind::Failed) {
            // Success (or a break passing through to its loop): the
            // attempt's named results flow back to the parent.
            for (const auto &[name, value] : *attempt_results_) (*results_)[name] = value;
            finish(outcome);
            return;
        }
        if (attempt_ >= config_.max_attempts) {
            finish(Outcome::failed("Failed after " + std::to_string(attempt_) + " attempts: " + outcome.value,
                                   outcome.origin));
            return;
        }
        ++attempt_;
        const TimePoint due =
            run_.now_ + std::chrono::duration_cast<TimePoint::duration>(leaf::retry_interval(config_, attempt_));
        wake_ = due;
        waiting_ = true;
        checkpoint(due);
        wait_backoff();
    }
    void timer_due() override {
        if (!waiting_) return;
        run_.unregister_leaf(*this);
        waiting_ = false;
        wake_.reset();
        checkpoint(std::nullopt);
        begin_attempt();
    }
    std::optional<std::int64_t> attempts() const override { return attempt_; }

protected:
    void cancel_self(const std::string &error) override {
        if (waiting_) run_.unregister_leaf(*this);
        waiting_ = false;
        Task::cancel_self(error);
    }

private:
    void restore(const Record &checkpoint) {
        if (!checkpoint.result) return;
        const auto parsed = ordered_json::parse(*checkpoint.result, nullptr, false);
        if (!parsed.is_object() || !parsed.contains("attempt") || !parsed["attempt"].is_number_integer()) return;
        attempt_ = std::clamp<std::int64_t>(parsed["attempt"].get<std::int64_t>(), 1, config_.max_attempts);
        waiting_ = parsed.value("waiting", false) && checkpoint.wake_at.has_value();
        if (waiting_) wake_ = checkpoint.wake_at;
    }
    // Writes the checkpoint: the attempt about to run, and while waiting for
    // it the backoff's due time. A write with a start replaces the row's
    // wake_at (store_engine's upsert), so starting the attempt clears it.
    void checkpoint(std::optional<TimePoint> due) {
        ActivationWrite write;
        write.stamp = stamp_;
        write.node_id = id();
        write.status = "running";
        write.started_at = run_.now_;
        write.wake_at = due;
        ordered_json state{{"attempt", attempt_}};
        if (due) state["waiting"] = true;
        write.result = state.dump();
        run_.effects_.activations.push_back(std::move(write));
    }
    void wait_backoff() {
        run_.register_leaf(*this, stamp_);
        run_.effects_.timers.push_back({stamp_, id(), *wake_});
        run_.mirror(*this, "running", std::nullopt, std::nullopt);
    }
    void begin_attempt() {
        run_.mirror(*this, "running", std::nullopt, std::nullopt);
        attempt_results_ = std::make_shared<Results>(*results_);
        const NodeIndex child = *node().left;
        spawn(child, child_stamp(stamp_, run_.graph_[child].id, attempt_), attempt_results_);
    }

    leaf::RetryConfig config_;
    std::int64_t attempt_ = 1;
    bool waiting_ = false;
    std::optional<TimePoint> wake_;
    ResultsPtr attempt_results_;
};

// TIMEOUT (SPEC §19.3): runs its child in its own scope; a durable due time
// recorded when it starts (df._activations row at (stamp, TIMEOUT id), kept
// across restarts) interrupts the child as a RACE loser is interrupted and
// fails the node. The decision is recorded on the same row: completed
// {"timed_out":false} when the child ended first, failed {"timed_out":true}
// when the time ran out, so a replay repeats it.
class TimeoutTask : public Task {
public:
    using Task::Task;
    void start() override {
        seconds_ = leaf::read_timeout(node().query).seconds;
        const Record *rec = run_.recorded(stamp_, id());
        if (rec != nullptr && rec->status == "failed") {  // timed out before a restart
            finish(Outcome::failed(rec->error.value_or(message()), id()));
            return;
        }
        const bool decided = rec != nullptr && rec->status == "completed";
        if (!decided) {
            if (rec != nullptr && rec->wake_at) {
                wake_ = *rec->wake_at;
            } else {
                wake_ = run_.now_ + std::chrono::duration_cast<TimePoint::duration>(
                                        leaf::bounded_delay_seconds(seconds_));
                record("running", std::nullopt, std::nullopt);
            }
            waiting_ = true;
            run_.register_leaf(*this, stamp_);
            run_.effects_.timers.push_back({stamp_, id(), *wake_});
        }
        child_ = &spawn(*node().left, stamp_, results_);
    }
    void child_done(Task &child, const Outcome &outcome) override {
        (void)child;
        if (waiting_) {
            run_.unregister_leaf(*this);
            waiting_ = false;
            record("completed", std::string("{\"timed_out\":false}"), std::nullopt);
        }
        child_ = nullptr;
        finish(outcome);
    }
    void timer_due() override {
        if (!waiting_ || done_) return;
        run_.unregister_leaf(*this);
        waiting_ = false;
        const std::string error = message();
        record("failed", std::string("{\"timed_out\":true}"), error);
        if (child_ != nullptr) child_->cancel(error);
        child_ = nullptr;
        finish(Outcome::failed(error, id()));
    }

protected:
    void cancel_self(const std::string &error) override {
        if (waiting_) run_.unregister_leaf(*this);
        waiting_ = false;
        Task::cancel_self(error);
    }

private:
    std::string message() const { return "Timed out after " + leaf::float8_text(seconds_) + "s"; }
    void record(const std::string &status, std::optional<std::string> result, std::optional<std::string> error) {
        ActivationWrite write;
        write.stamp = stamp_;
        write.node_id = id();
        write.status = status;
        write.result = std::move(result);
        write.error = std::move(error);
        if (status == "running") {
            write.started_at = run_.now_;
            write.wake_at = wake_;
        } else {
            write.completed_at = run_.now_;
        }
        run_.effects_.activations.push_back(std::move(write));
    }

    double seconds_ = 0;
    bool waiting_ = false;
    std::optional<TimePoint> wake_;
    Task *child_ = nullptr;
};

// ---------------------------------------------------------------------------
// InstanceRun

InstanceRun::InstanceRun(Graph graph, InstanceInfo info, EngineSettings settings, History history)
    : graph_(std::move(graph)), info_(std::move(info)), settings_(std::move(settings)),
      history_(std::move(history)) {}

InstanceRun::~InstanceRun() = default;

std::unique_ptr<Task> InstanceRun::make_task(NodeIndex node, Task *parent, std::string stamp,
                                             ResultsPtr results) {
    const std::string &type = graph_[node].node_type;
    if (type == "SQL") return std::make_unique<SqlTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "THEN") return std::make_unique<ThenTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "IF") return std::make_unique<IfTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "JOIN") return std::make_unique<JoinTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "RACE") return std::make_unique<RaceTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "LOOP") return std::make_unique<LoopTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "BREAK") return std::make_unique<BreakTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "SLEEP" || type == "WAIT_SCHEDULE")
        return std::make_unique<TimerTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "SIGNAL") return std::make_unique<SignalTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "HTTP") return std::make_unique<HttpTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "RETRY") return std::make_unique<RetryTask>(*this, node, parent, std::move(stamp), std::move(results));
    if (type == "TIMEOUT")
        return std::make_unique<TimeoutTask>(*this, node, parent, std::move(stamp), std::move(results));
    throw std::logic_error("unknown node type " + type);
}

void InstanceRun::start_task(Task &task) { task.start(); }

void InstanceRun::finish_task(Task &task, Outcome outcome) {
    if (task.done_) return;
    task.done_ = true;
    const GraphNode &node = graph_[task.node_];
    if (outcome.kind == Outcome::Kind::Completed && node.result_name && can_be_named(node.node_type))
        (*task.results_)[*node.result_name] = outcome.value;
    const bool leaf = node.node_type == "SQL" || node.node_type == "HTTP" || node.node_type == "SLEEP" ||
                      node.node_type == "WAIT_SCHEDULE" || node.node_type == "SIGNAL" ||
                      node.node_type == "BREAK";
    if (!leaf) {
        if (outcome.kind == Outcome::Kind::Failed)
            mirror(task, "failed", std::nullopt, outcome.value);
        else
            mirror(task, "completed", outcome.value, std::nullopt);
    }
    done_queue_.push_back({&task, std::move(outcome)});
}

void InstanceRun::drain() {
    while (!done_queue_.empty()) {
        Done done = std::move(done_queue_.front());
        done_queue_.pop_front();
        Task *parent = done.task->parent_;
        if (parent == nullptr) {
            root_done(done.outcome);
            continue;
        }
        if (!parent->done_) parent->child_done(*done.task, done.outcome);
    }
    graveyard_.clear();
}

void InstanceRun::root_done(const Outcome &outcome) {
    if (finished_) return;
    finished_ = true;
    leaves_.clear();
    if (outcome.kind == Outcome::Kind::Completed) {
        if (finish_committed_by_step_) return;  // the last step's transaction did it
        InstanceWrite write;
        write.status = "completed";
        effects_.instance = write;
        mirror(*root_, "completed", outcome.value, std::nullopt);
        return;
    }
    InstanceWrite write;
    write.status = "failed";
    write.error = outcome.kind == Outcome::Kind::Break ? kBreakOutsideLoop : outcome.value;
    write.error_node = outcome.origin;
    effects_.instance = write;
}

Effects InstanceRun::take_effects() {
    Effects out = std::move(effects_);
    effects_ = Effects{};
    // Status mirrors ride along with the next commit, whichever comes first.
    if (out.has_writes()) {
        out.mirrors.insert(out.mirrors.end(), pending_mirrors_.begin(), pending_mirrors_.end());
        pending_mirrors_.clear();
    } else if (!out.steps.empty()) {
        out.steps.front().mirrors = std::move(pending_mirrors_);
        pending_mirrors_.clear();
    }
    return out;
}

const Record *InstanceRun::recorded(const std::string &stamp, const std::string &node_id) const {
    auto it = history_.find({stamp, node_id});
    return it == history_.end() ? nullptr : &it->second;
}

void InstanceRun::register_leaf(Task &task) { leaves_[{task.stamp_, task.id()}] = &task; }
void InstanceRun::register_leaf(Task &task, const std::string &stamp) { leaves_[{stamp, task.id()}] = &task; }

void InstanceRun::unregister_leaf(const Task &task) {
    for (auto it = leaves_.begin(); it != leaves_.end();) {
        if (it->second == &task)
            it = leaves_.erase(it);
        else
            ++it;
    }
}

Task *InstanceRun::find_leaf(const std::string &stamp, const std::string &node_id) const {
    auto it = leaves_.find({stamp, node_id});
    return it == leaves_.end() ? nullptr : it->second;
}

std::vector<RecordKey> InstanceRun::running_steps() const {
    std::vector<RecordKey> keys;
    for (const auto &[key, task] : leaves_)
        if (graph_[task->node_].node_type == "SQL" || graph_[task->node_].node_type == "HTTP") keys.push_back(key);
    return keys;
}

bool InstanceRun::parkable() const {
    if (finished_ || leaves_.empty() || !pending_mirrors_.empty() || effects_.has_writes() ||
        !effects_.steps.empty() || !effects_.http.empty() || !effects_.timers.empty() ||
        !effects_.signal_waits.empty())
        return false;
    for (const auto &[key, task] : leaves_) {
        const std::string &type = graph_[task->node_].node_type;
        if (type == "SQL" || type == "HTTP" || type == "SIGNAL") return false;
    }
    return true;
}

std::string InstanceRun::substitute_sql(const Task &task, const std::string &text) const {
    SubstitutionContext ctx{info_.id, info_.label, &info_.vars, task.results_.get()};
    return substitute(text, ctx, SubstitutionMode::Sql);
}

std::string InstanceRun::substitute_raw(const Task &task, const std::string &text) const {
    SubstitutionContext ctx{info_.id, info_.label, &info_.vars, task.results_.get()};
    return substitute(text, ctx, SubstitutionMode::Raw);
}

void InstanceRun::mirror(const Task &task, const std::string &status, std::optional<std::string> result,
                         std::optional<std::string> error) {
    // One df.nodes row per node: only its newest state needs writing (and a
    // step's mirrors are applied as one UPDATE ... FROM, where two rows for
    // one node would leave it to chance which one wins).
    pending_mirrors_.erase(std::remove_if(pending_mirrors_.begin(), pending_mirrors_.end(),
                                          [&](const NodeMirror &m) { return m.node_id == task.id(); }),
                           pending_mirrors_.end());
    pending_mirrors_.push_back({task.stamp_, task.id(), status, std::move(result), std::move(error), task.attempts()});
}

// True when the leaf's success completes every ancestor up to the root with
// the same result: each link is a THEN's second child or an IF's branch.
bool InstanceRun::completes_instance_on_success(const Task &leaf, std::vector<std::string> &ancestors) const {
    const Task *child = &leaf;
    for (const Task *parent = leaf.parent_; parent != nullptr; child = parent, parent = parent->parent_) {
        const std::string &type = graph_[parent->node_].node_type;
        if (type == "THEN" && static_cast<const ThenTask *>(parent)->is_second(*child)) {
            ancestors.push_back(parent->id());
            continue;
        }
        if (type == "IF" && static_cast<const IfTask *>(parent)->is_branch(*child)) {
            ancestors.push_back(parent->id());
            continue;
        }
        ancestors.clear();
        return false;
    }
    return true;
}

Effects InstanceRun::start(TimePoint now) {
    now_ = now;
    root_results_ = std::make_shared<Results>();
    root_ = make_task(graph_.root(), nullptr, protocol::root_stamp(info_.id, info_.execution), root_results_);
    start_task(*root_);
    drain();
    return take_effects();
}

// Hands a step's outcome to its waiting task, if it still waits (a late
// outcome of a cancelled RACE loser finds none).
template <class StepTask>
Effects InstanceRun::step_finished(const std::string &stamp, const std::string &node_id, const Outcome &outcome,
                                   TimePoint now) {
    now_ = now;
    if (auto *task = dynamic_cast<StepTask *>(find_leaf(stamp, node_id))) {
        task->outcome(outcome);
        drain();
    }
    return take_effects();
}

Effects InstanceRun::on_step(const std::string &stamp, const std::string &node_id, const Outcome &outcome,
                             TimePoint now) {
    return step_finished<SqlTask>(stamp, node_id, outcome, now);
}

Effects InstanceRun::on_http(const std::string &stamp, const std::string &node_id, const Outcome &outcome,
                             TimePoint now) {
    return step_finished<HttpTask>(stamp, node_id, outcome, now);
}

Effects InstanceRun::on_timer(const std::string &stamp, const std::string &node_id, TimePoint now) {
    now_ = now;
    if (Task *task = find_leaf(stamp, node_id)) {
        task->timer_due();
        drain();
    }
    return take_effects();
}

Effects InstanceRun::on_signal(const std::string &stamp, const std::string &node_id, const std::string &result,
                               TimePoint now) {
    now_ = now;
    if (auto *task = dynamic_cast<SignalTask *>(find_leaf(stamp, node_id))) {
        task->delivered(result);
        drain();
    }
    return take_effects();
}

}  // namespace durable::engine
