// The graph interpreter against a fake executor and a fake clock: every node
// type, failure propagation, named results, replay from recorded history.
#include "catch_compat.hpp"

#include <deque>
#include <functional>
#include <map>
#include <string>

#include "common/dsl.hpp"
#include "common/graph.hpp"
#include "common/leaf_config.hpp"
#include "daemon/interpreter.hpp"

using namespace durable;
using namespace durable::engine;
using namespace std::chrono_literals;

namespace {

Graph build(const std::string &fut) {
    int counter = 0;
    MaterializedGraph m = materialize(fut, [&] {
        char buf[9];
        std::snprintf(buf, sizeof buf, "%08x", ++counter);
        return std::string(buf);
    });
    return load_stored(m.root_id, m.nodes);
}

std::string rows(const std::string &json_rows) {
    return "{\"rows\":" + json_rows + ",\"row_count\":" +
           std::to_string(json_rows == "[]" ? 0 : std::count(json_rows.begin(), json_rows.end(), '{')) + "}";
}

// The id materialisation gave the node with this query (or of this type).
std::string id_of(const Graph &g, const std::string &query_or_type) {
    for (NodeIndex i = 0; i < g.size(); ++i)
        if ((g[i].query && *g[i].query == query_or_type) || g[i].node_type == query_or_type) return g[i].id;
    FAIL("no node " << query_or_type);
    return "";
}

// Drives an InstanceRun like the daemon would, recording what happened.
struct Driver {
    explicit Driver(const std::string &fut, History history = {}, std::int64_t execution = 1,
                    EngineSettings settings = EngineSettings{0, "UTC", 100000})
        : run(build(fut), InstanceInfo{"abcd0001", std::string("lbl"), execution, {{"tbl", "users"}}},
              std::move(settings), std::move(history)) {}

    TimePoint now = TimePoint{} + 1000000h;
    InstanceRun run;
    std::function<Outcome(const std::string &query)> sql = [](const std::string &q) {
        return Outcome::completed(rows("[{\"q\":\"" + q + "\"}]"));
    };
    std::vector<std::string> executed;  // queries in order
    std::vector<ActivationWrite> writes;
    std::vector<NodeMirror> mirrors;
    std::vector<InstanceWrite> instance_writes;
    std::vector<HistoryTrim> trims;
    std::vector<RecordKey> cancels;
    std::deque<TimerArm> timers;
    std::vector<StepRun> pending;
    std::vector<SignalWait> waits;
    bool completed_by_step = false;

    void absorb(Effects e) {
        cancels.insert(cancels.end(), e.cancels.begin(), e.cancels.end());
        writes.insert(writes.end(), e.activations.begin(), e.activations.end());
        mirrors.insert(mirrors.end(), e.mirrors.begin(), e.mirrors.end());
        if (e.instance) instance_writes.push_back(*e.instance);
        trims.insert(trims.end(), e.trims.begin(), e.trims.end());
        for (auto &t : e.timers) timers.push_back(t);
        for (auto &w : e.signal_waits) waits.push_back(w);
        for (auto &s : e.steps) {
            mirrors.insert(mirrors.end(), s.mirrors.begin(), s.mirrors.end());
            pending.push_back(s);
        }
    }
    // Runs queued SQL steps (FIFO) until none is left.
    void run_steps() {
        while (!pending.empty()) {
            StepRun step = pending.front();
            pending.erase(pending.begin());
            executed.push_back(step.query);
            Outcome o = sql(step.query);
            if (step.completes_instance && o.kind == Outcome::Kind::Completed) completed_by_step = true;
            absorb(run.on_step(step.stamp, step.node_id, o, now));
        }
    }
    void start() {
        absorb(run.start(now));
        run_steps();
    }
    // Fires the earliest timer after advancing the clock to it.
    void fire_next_timer() {
        REQUIRE_FALSE(timers.empty());
        auto it = std::min_element(timers.begin(), timers.end(),
                                   [](const TimerArm &a, const TimerArm &b) { return a.wake_at < b.wake_at; });
        TimerArm t = *it;
        timers.erase(it);
        if (now < t.wake_at) now = t.wake_at;
        absorb(run.on_timer(t.stamp, t.node_id, now));
        run_steps();
    }
    std::string final_status() const {
        if (completed_by_step) return "completed";
        return instance_writes.empty() ? "" : instance_writes.back().status;
    }
    std::string root_result() const {
        const std::string root_id = run.graph()[run.graph().root()].id;
        for (auto it = mirrors.rbegin(); it != mirrors.rend(); ++it)
            if (it->node_id == root_id && it->result) return *it->result;
        return "";
    }
};

}  // namespace

TEST_CASE("a single SQL step completes the instance in its own transaction", "[interpreter]") {
    Driver d("SELECT 1");
    d.absorb(d.run.start(d.now));
    REQUIRE(d.pending.size() == 1);
    CHECK(d.pending[0].completes_instance);
    CHECK(d.pending[0].stamp == "abcd0001::1");
    d.run_steps();
    CHECK(d.run.finished());
    CHECK(d.final_status() == "completed");
    CHECK(d.instance_writes.empty());  // no extra commit
}

TEST_CASE("a THEN chain runs in order and only the last step completes the instance", "[interpreter]") {
    Driver d(dsl::seq(dsl::seq("SELECT 1", "SELECT 2"), "SELECT 3"));
    d.absorb(d.run.start(d.now));
    REQUIRE(d.pending.size() == 1);
    CHECK_FALSE(d.pending[0].completes_instance);
    d.run_steps();
    CHECK(d.executed == std::vector<std::string>{"SELECT 1", "SELECT 2", "SELECT 3"});
    CHECK(d.final_status() == "completed");
    CHECK(d.writes.empty());
}

TEST_CASE("a failing step fails the chain and nothing further starts", "[interpreter]") {
    Driver d(dsl::seq("SELECT 1/0", "SELECT 2"));
    d.sql = [](const std::string &q) {
        if (q == "SELECT 1/0") return Outcome::failed("SQL execution failed: division by zero", "");
        return Outcome::completed(rows("[]"));
    };
    d.start();
    CHECK(d.executed == std::vector<std::string>{"SELECT 1/0"});
    REQUIRE(d.instance_writes.size() == 1);
    CHECK(d.instance_writes[0].status == "failed");
    CHECK(d.instance_writes[0].error == "SQL execution failed: division by zero");
    CHECK(d.instance_writes[0].error_node == id_of(d.run.graph(), "SELECT 1/0"));  // the step, not the THEN
}

TEST_CASE("named results substitute into later steps", "[interpreter]") {
    Driver d(dsl::seq(dsl::as("SELECT 5 AS n", "five"), "SELECT $five + {tbl}"));
    d.sql = [](const std::string &q) {
        if (q == "SELECT 5 AS n") return Outcome::completed(rows("[{\"n\":5}]"));
        return Outcome::completed(rows("[]"));
    };
    d.start();
    CHECK(d.executed.back() == "SELECT 5 + users");
}

TEST_CASE("a substitution error fails the node without running it", "[interpreter]") {
    Driver d(dsl::seq(dsl::as("SELECT 1 WHERE false", "empty"), "SELECT $empty"));
    d.sql = [](const std::string &) { return Outcome::completed(rows("[]")); };
    d.start();
    CHECK(d.executed.size() == 1);
    REQUIRE(d.instance_writes.size() == 1);
    CHECK(d.instance_writes[0].error == "$empty has no rows — query returned zero results");
}

TEST_CASE("IF takes the branch its condition decides", "[interpreter]") {
    for (bool truthy : {true, false}) {
        Driver d(dsl::if_then_else("SELECT cond", "SELECT 'yes'", "SELECT 'no'"));
        d.sql = [truthy](const std::string &q) {
            if (q == "SELECT cond") return Outcome::completed(rows(truthy ? "[{\"c\":true}]" : "[{\"c\":false}]"));
            return Outcome::completed(rows("[{\"r\":1}]"));
        };
        d.absorb(d.run.start(d.now));
        REQUIRE(d.pending.size() == 1);
        CHECK_FALSE(d.pending[0].completes_instance);  // the condition's result is not the IF's
        d.run_steps();
        CHECK(d.executed.back() == (truthy ? "SELECT 'yes'" : "SELECT 'no'"));
        CHECK(d.final_status() == "completed");
    }
}

TEST_CASE("if_rows judges a named result without a query", "[interpreter]") {
    Driver d(dsl::seq(dsl::as("SELECT x", "r"), dsl::if_rows("r", "SELECT 'has'", "SELECT 'none'")));
    d.sql = [](const std::string &q) {
        if (q == "SELECT x") return Outcome::completed(rows("[]"));
        return Outcome::completed(rows("[{\"a\":1}]"));
    };
    d.start();
    CHECK(d.executed == std::vector<std::string>{"SELECT x", "SELECT 'none'"});

    Driver missing(dsl::if_rows("nope", "SELECT 1", "SELECT 2"));
    missing.start();
    REQUIRE(missing.instance_writes.size() == 1);
    CHECK(missing.instance_writes[0].error == "df.if_rows: result 'nope' not found");
}

TEST_CASE("JOIN runs branches concurrently and returns their results in order", "[interpreter]") {
    Driver d(dsl::seq(dsl::join(dsl::as("SELECT 1 AS a", "a"), dsl::as("SELECT 2 AS b", "b")), "SELECT $a + $b"));
    d.sql = [](const std::string &q) {
        if (q == "SELECT 1 AS a") return Outcome::completed(rows("[{\"a\":1}]"));
        if (q == "SELECT 2 AS b") return Outcome::completed(rows("[{\"b\":2}]"));
        return Outcome::completed(rows("[]"));
    };
    d.absorb(d.run.start(d.now));
    CHECK(d.pending.size() == 2);  // both branches at once
    CHECK(d.pending[0].stamp == "abcd0001::1::" + id_of(d.run.graph(), "SELECT 1 AS a") + "::1");
    d.run_steps();
    CHECK(d.executed.back() == "SELECT 1 + 2");  // named results merged back
    const auto join = std::find_if(d.mirrors.begin(), d.mirrors.end(),
                                   [&](const NodeMirror &m) { return m.node_id == id_of(d.run.graph(), "JOIN"); });
    REQUIRE(join != d.mirrors.end());
    CHECK(*join->result == "[{\"rows\":[{\"a\":1}],\"row_count\":1},{\"rows\":[{\"b\":2}],\"row_count\":1}]");
}

TEST_CASE("a failed JOIN branch fails the JOIN with its index, after all branches end", "[interpreter]") {
    Driver d(dsl::join3("SELECT 1", "SELECT boom", "SELECT 3"));
    d.sql = [](const std::string &q) {
        if (q == "SELECT boom") return Outcome::failed("SQL execution failed: boom", "");
        return Outcome::completed(rows("[]"));
    };
    d.start();
    CHECK(d.executed.size() == 3);
    REQUIRE(d.instance_writes.size() == 1);
    CHECK(d.instance_writes[0].error == "JOIN branch 2 failed: SQL execution failed: boom");
}

TEST_CASE("RACE: the first finisher wins and the loser is cancelled", "[interpreter]") {
    Driver d(dsl::race("SELECT fast", dsl::seq("SELECT slow", "SELECT never")));
    d.absorb(d.run.start(d.now));
    REQUIRE(d.pending.size() == 2);
    // Finish the left branch first; the right one is still running.
    StepRun fast = d.pending[0];
    d.pending.erase(d.pending.begin());
    d.absorb(d.run.on_step(fast.stamp, fast.node_id, Outcome::completed(rows("[{\"w\":1}]")), d.now));
    CHECK(d.cancels.size() == 1);
    const auto cancelled = std::find_if(d.writes.begin(), d.writes.end(),
                                        [](const ActivationWrite &w) { return w.status == "cancelled"; });
    REQUIRE(cancelled != d.writes.end());
    CHECK(*cancelled->error == "Branch cancelled after losing RACE");
    const auto decision = std::find_if(d.writes.begin(), d.writes.end(), [](const ActivationWrite &w) {
        return w.result && *w.result == "{\"race_winner\":\"left\"}";
    });
    CHECK(decision != d.writes.end());
    CHECK(d.final_status() == "completed");
    // The loser's late outcome changes nothing.
    StepRun slow = d.pending[0];
    d.pending.clear();
    d.absorb(d.run.on_step(slow.stamp, slow.node_id, Outcome::completed(rows("[]")), d.now));
    CHECK(d.pending.empty());
}

TEST_CASE("SLEEP records its due time and completes when the timer fires", "[interpreter]") {
    Driver d(dsl::seq(dsl::sleep(60), "SELECT after"));
    d.start();
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == d.now + 60s);
    REQUIRE(d.writes.size() == 1);
    CHECK(d.writes[0].wake_at == d.now + 60s);
    CHECK(d.executed.empty());
    d.fire_next_timer();
    CHECK(d.executed == std::vector<std::string>{"SELECT after"});
}

TEST_CASE("a sleep of 10^12 seconds is due kMaxDelay ahead, not at an overflowed time", "[interpreter]") {
    Driver d(dsl::sleep(1000000000000));
    d.start();
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == d.now + leaf::kMaxDelay);
    d.fire_next_timer();
    CHECK(d.root_result() == "{\"slept\":true,\"seconds\":1000000000000}");
}

TEST_CASE("a SIGNAL timeout given as raw JSON arms its timer", "[interpreter]") {
    Driver d(R"({"node_type":"SIGNAL","query":"{\"signal_name\":\"a\",\"timeout_seconds\":2147483647}"})");
    d.start();
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == d.now + std::chrono::seconds(2147483647));
}

TEST_CASE("a recorded sleep keeps its due time after a restart", "[interpreter]") {
    const TimePoint due = TimePoint{} + 1000000h + 30s;
    History history;
    history[{"abcd0001::1", "00000002"}] = Record{"running", std::nullopt, std::nullopt, std::nullopt, due};
    Driver d(dsl::seq(dsl::sleep(60), "SELECT after"), history);
    d.start();
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == due);
    CHECK(d.writes.empty());  // nothing new to record
}

TEST_CASE("replay skips recorded steps and resumes at the first unrecorded one", "[interpreter]") {
    const std::string fut = dsl::seq(dsl::seq(dsl::as("SELECT 7 AS n", "n"), "SELECT $n"), "SELECT 3");
    History history;
    history[{"abcd0001::1", id_of(build(fut), "SELECT 7 AS n")}] =
        Record{"completed", std::string(rows("[{\"n\":7}]")), std::nullopt, std::nullopt, std::nullopt};
    Driver d(fut, history);
    d.start();
    CHECK(d.executed == std::vector<std::string>{"SELECT 7", "SELECT 3"});  // $n from the recorded result
}

TEST_CASE("WAIT_SCHEDULE waits for the next cron tick strictly after its start", "[interpreter]") {
    Driver d(dsl::wait_for_schedule("*/5 * * * *", std::nullopt));
    d.start();
    REQUIRE(d.timers.size() == 1);
    const auto wait = d.timers[0].wake_at - d.now;
    CHECK(wait > 0s);
    CHECK(wait <= 300s);
    d.fire_next_timer();
    CHECK(d.root_result() == "{\"scheduled\":true}");
}

TEST_CASE("SIGNAL completes with the delivered payload or times out", "[interpreter]") {
    Driver d(dsl::wait_for_signal("approve", std::optional<std::int64_t>(10)));
    d.start();
    REQUIRE(d.waits.size() == 1);
    CHECK(d.waits[0].signal_name == "approve");
    d.absorb(d.run.on_signal(d.waits[0].stamp, d.waits[0].node_id,
                             "{\"signal_name\":\"approve\",\"timed_out\":false,\"data\":1}", d.now));
    CHECK(d.run.finished());

    Driver t(dsl::wait_for_signal("approve", std::optional<std::int64_t>(10)));
    t.start();
    t.fire_next_timer();
    CHECK(t.root_result() == "{\"signal_name\":\"approve\",\"timed_out\":true,\"data\":null}");
}

TEST_CASE("a non-root loop iterates until its condition is false, with a checkpoint per iteration",
          "[interpreter]") {
    Driver d(dsl::seq(dsl::loop(dsl::as("SELECT i", "i"), std::string("SELECT more"), std::nullopt), "SELECT done"));
    int iterations = 0;
    d.sql = [&](const std::string &q) {
        if (q == "SELECT i") return Outcome::completed(rows("[{\"i\":" + std::to_string(++iterations) + "}]"));
        if (q == "SELECT more") return Outcome::completed(rows(iterations < 3 ? "[{\"m\":true}]" : "[{\"m\":false}]"));
        return Outcome::completed(rows("[]"));
    };
    d.start();
    CHECK(iterations == 3);
    CHECK(d.executed.back() == "SELECT done");
    const auto checkpoints = std::count_if(d.writes.begin(), d.writes.end(), [&](const ActivationWrite &w) {
        return w.node_id == id_of(d.run.graph(), "LOOP") && w.status == "running";
    });
    CHECK(checkpoints == 2);  // iterations 2 and 3
}

TEST_CASE("df.break ends the nearest loop with its value", "[interpreter]") {
    Driver d(dsl::loop(dsl::seq("SELECT work", dsl::break_loop(std::string("done"))), std::nullopt, std::nullopt));
    d.start();
    CHECK(d.executed == std::vector<std::string>{"SELECT work"});
    CHECK(d.final_status() == "completed");
    CHECK(d.root_result() == "\"done\"");
}

TEST_CASE("df.break outside a loop fails the instance", "[interpreter]") {
    Driver d(dsl::seq("SELECT 1", dsl::break_loop(std::nullopt)));
    d.start();
    REQUIRE(d.instance_writes.size() == 1);
    CHECK(d.instance_writes[0].error ==
          "df.break() was called outside of a loop. df.break() may only be used inside df.loop().");
}

TEST_CASE("a root loop starts a new execution per iteration with fresh named results", "[interpreter]") {
    Driver d(dsl::loop(dsl::seq(dsl::as("SELECT n", "n"), "SELECT $n"), std::nullopt, std::nullopt));
    int runs = 0;
    d.sql = [&](const std::string &q) {
        if (q == "SELECT n") return Outcome::completed(rows("[{\"n\":" + std::to_string(++runs) + "}]"));
        return Outcome::completed(rows("[]"));
    };
    // Stop after a few iterations by failing the 4th read.
    d.sql = [&, inner = d.sql](const std::string &q) {
        if (q == "SELECT n" && runs == 3) return Outcome::failed("stop", "");
        return inner(q);
    };
    d.start();
    CHECK(runs == 3);
    std::vector<std::int64_t> executions;
    for (const auto &w : d.instance_writes)
        if (w.execution) executions.push_back(*w.execution);
    CHECK(executions == std::vector<std::int64_t>{2, 3, 4});
    CHECK(d.instance_writes.back().status == "failed");
}

TEST_CASE("each loop iteration trims the one that fell out of history_executions, in the same batch",
          "[interpreter]") {
    EngineSettings settings{0, "UTC", 100000};
    settings.history_executions = 2;
    SECTION("root loop: past executions") {
        Driver d(dsl::loop("SELECT tick", std::nullopt, std::nullopt), {}, 1, settings);
        int ticks = 0;
        d.sql = [&](const std::string &) {
            return ++ticks < 6 ? Outcome::completed(rows("[]")) : Outcome::failed("enough", "");
        };
        d.start();
        // Executions 2..6 started; keeping 2 past ones, starting 4 drops 1, 5 drops 2, 6 drops 3.
        std::vector<std::int64_t> trimmed;
        for (const auto &t : d.trims) {
            CHECK_FALSE(t.scope);
            if (t.execution) trimmed.push_back(*t.execution);
        }
        CHECK(trimmed == std::vector<std::int64_t>{1, 2, 3});
    }
    SECTION("non-root loop: past iteration scopes") {
        Driver d(dsl::seq("SELECT pre", dsl::loop("SELECT body", std::string("SELECT more"), std::nullopt)), {}, 1,
                 settings);
        int bodies = 0;
        d.sql = [&](const std::string &q) {
            if (q == "SELECT body") ++bodies;
            if (q == "SELECT more") return Outcome::completed(rows(bodies < 5 ? "[{\"m\":true}]" : "[{\"m\":false}]"));
            return Outcome::completed(rows("[]"));
        };
        d.start();
        CHECK(bodies == 5);
        const std::string body = id_of(d.run.graph(), "SELECT body");
        std::string loop_stamp;
        for (const auto &w : d.writes)
            if (w.node_id == id_of(d.run.graph(), "LOOP")) loop_stamp = w.stamp;
        REQUIRE(!loop_stamp.empty());
        std::vector<std::string> scopes;
        for (const auto &t : d.trims) {
            CHECK_FALSE(t.execution);
            if (t.scope) scopes.push_back(*t.scope);
        }
        CHECK(scopes == std::vector<std::string>{loop_stamp + "::" + body + "::1", loop_stamp + "::" + body + "::2"});
    }
}

TEST_CASE("loop pacing waits out the minimum interval on a timer", "[interpreter]") {
    Driver d(dsl::loop("SELECT tick", std::nullopt, std::optional<std::int64_t>(1000)));
    int ticks = 0;
    d.sql = [&](const std::string &) {
        ++ticks;
        return ticks < 3 ? Outcome::completed(rows("[]")) : Outcome::failed("enough", "");
    };
    d.start();
    CHECK(ticks == 1);
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == d.now + 1000ms);
    d.fire_next_timer();
    CHECK(ticks == 2);
}

TEST_CASE("loop pacing is a durable timer: the checkpoint records the iteration's start and due time",
          "[interpreter]") {
    SECTION("root loop, first iteration: recorded before the wait, kept by a restart") {
        const std::string fut = dsl::loop("SELECT tick", std::nullopt, std::optional<std::int64_t>(5000));
        const std::string loop = id_of(build(fut), "LOOP");
        Driver d(fut);
        const TimePoint begun = d.now;
        d.start();
        REQUIRE(d.timers.size() == 1);
        CHECK(d.timers[0].wake_at == begun + 5000ms);
        REQUIRE(d.writes.size() == 1);  // the pace's checkpoint, before the timer is armed
        CHECK(d.writes[0].stamp == "abcd0001::1");
        CHECK(d.writes[0].node_id == loop);
        CHECK(d.writes[0].started_at == begun);
        CHECK(d.writes[0].wake_at == begun + 5000ms);

        // The daemon restarts 2 s into the wait: the recorded step replays and
        // the timer keeps its due time; nothing is written again.
        History history;
        history[{"abcd0001::1", id_of(build(fut), "SELECT tick")}] =
            Record{"completed", rows("[]"), std::nullopt, begun, std::nullopt};
        history[{"abcd0001::1", loop}] =
            Record{"running", std::nullopt, std::nullopt, d.writes[0].started_at, d.writes[0].wake_at};
        Driver r(fut, history);
        r.now = begun + 2000ms;
        r.start();
        CHECK(r.executed.empty());
        REQUIRE(r.timers.size() == 1);
        CHECK(r.timers[0].wake_at == begun + 5000ms);
        CHECK(r.writes.empty());
        r.fire_next_timer();
        CHECK(r.executed == std::vector<std::string>{"SELECT tick"});
    }
    SECTION("non-root loop: each iteration's checkpoint carries that iteration's start, no stale due time") {
        const std::string fut =
            dsl::seq("SELECT pre", dsl::loop("SELECT tick", std::nullopt, std::optional<std::int64_t>(5000)));
        const std::string loop = id_of(build(fut), "LOOP");
        Driver d(fut);
        d.start();
        d.fire_next_timer();  // iteration 2 starts at +5 s
        const TimePoint second = d.now;
        std::vector<ActivationWrite> checkpoints;
        for (const auto &w : d.writes)
            if (w.node_id == loop) checkpoints.push_back(w);
        // pace 1, advance to 2, pace 2
        REQUIRE(checkpoints.size() == 3);
        CHECK(checkpoints[1].started_at == second);
        CHECK_FALSE(checkpoints[1].wake_at);  // cleared: the new iteration has not begun to wait
        CHECK(checkpoints[1].result == std::optional<std::string>(R"({"iteration":2,"results":{}})"));
        CHECK(checkpoints[2].started_at == second);
        CHECK(checkpoints[2].wake_at == second + 5000ms);
        CHECK_FALSE(checkpoints[2].result);  // keeps what advance() wrote
    }
}

TEST_CASE("the loop guard fails the 100000th iteration", "[interpreter]") {
    // A non-root loop resumed from its checkpoint at iteration 99999.
    const std::string fut =
        dsl::seq("SELECT pre", dsl::loop("SELECT body", std::nullopt, std::optional<std::int64_t>(0)));
    History history{{{"abcd0001::1", id_of(build(fut), "LOOP")},
                     Record{"running", std::string("{\"iteration\":99999,\"results\":{}}"), std::nullopt,
                            std::nullopt, std::nullopt}}};
    Driver d(fut, history);
    d.start();
    CHECK(d.executed == std::vector<std::string>{"SELECT pre", "SELECT body"});
    REQUIRE_FALSE(d.instance_writes.empty());
    CHECK(d.instance_writes.back().error ==
          "Loop exceeded maximum iteration count of 100000. Use df.break() to exit the loop or restructure the workflow.");
}

// ---------------------------------------------------------------------------
// RETRY and TIMEOUT (SPEC §19.3)

namespace {

// A SQL function that fails `failures` times, then succeeds.
std::function<Outcome(const std::string &)> failing(int failures, int &calls) {
    return [failures, &calls](const std::string &q) {
        if (++calls <= failures) return Outcome::failed("SQL execution failed: attempt " + std::to_string(calls), "");
        return Outcome::completed(rows("[{\"q\":\"" + q + "\"}]"));
    };
}

// Fires the earliest timer without running the steps it starts (they hang).
void fire_only(Driver &d) {
    REQUIRE_FALSE(d.timers.empty());
    auto it = std::min_element(d.timers.begin(), d.timers.end(),
                               [](const TimerArm &a, const TimerArm &b) { return a.wake_at < b.wake_at; });
    const TimerArm t = *it;
    d.timers.erase(it);
    if (d.now < t.wake_at) d.now = t.wake_at;
    d.absorb(d.run.on_timer(t.stamp, t.node_id, d.now));
}

std::vector<ActivationWrite> writes_of(const Driver &d, const std::string &node_id) {
    std::vector<ActivationWrite> out;
    for (const auto &w : d.writes)
        if (w.node_id == node_id) out.push_back(w);
    return out;
}

}  // namespace

TEST_CASE("RETRY: a step that fails twice succeeds on the third attempt, each in a fresh scope", "[interpreter][retry]") {
    int calls = 0;
    Driver d(dsl::seq(dsl::as(dsl::retry("SELECT flaky", 3, 1, 2, 60), "r"), "SELECT $r.q?"));
    d.sql = failing(2, calls);
    const std::string retry = id_of(d.run.graph(), "RETRY");
    const std::string step = id_of(d.run.graph(), "SELECT flaky");
    const TimePoint t0 = d.now;
    d.absorb(d.run.start(d.now));
    REQUIRE(d.pending.size() == 1);
    CHECK(d.pending[0].stamp == "abcd0001::1::" + step + "::1");
    d.run_steps();
    // Attempt 1 failed: a durable backoff of 1 s, recorded before the timer is armed.
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == t0 + 1s);
    auto checkpoints = writes_of(d, retry);
    REQUIRE(checkpoints.size() == 1);
    CHECK(checkpoints[0].stamp == "abcd0001::1");
    CHECK(checkpoints[0].result == std::optional<std::string>(R"({"attempt":2,"waiting":true})"));
    CHECK(checkpoints[0].wake_at == t0 + 1s);
    CHECK(d.final_status().empty());

    d.fire_next_timer();  // attempt 2 at +1 s fails; backoff 2 s
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == t0 + 3s);
    d.fire_next_timer();  // attempt 3 at +3 s succeeds
    CHECK(calls == 4);    // three attempts, then the step after the RETRY
    checkpoints = writes_of(d, retry);
    REQUIRE(checkpoints.size() == 4);
    CHECK(checkpoints[1].result == std::optional<std::string>(R"({"attempt":2})"));
    CHECK_FALSE(checkpoints[1].wake_at);
    CHECK(checkpoints[3].result == std::optional<std::string>(R"({"attempt":3})"));
    // The result of the successful run flows out under the RETRY's name.
    CHECK(d.executed.back() == "SELECT 'SELECT flaky'");
    CHECK(d.final_status() == "completed");
    // df.nodes.attempts of the RETRY: its attempt number rides on its mirrors.
    std::optional<std::int64_t> attempts;
    for (const auto &m : d.mirrors)
        if (m.node_id == retry) attempts = m.attempts;
    CHECK(attempts == std::optional<std::int64_t>(3));
}

TEST_CASE("RETRY: after the last failure the node fails with 'Failed after <n> attempts: <last error>'",
          "[interpreter][retry]") {
    int calls = 0;
    Driver d(dsl::retry("SELECT bad", 2, 0, 2, 60));
    d.sql = failing(100, calls);
    d.start();
    d.fire_next_timer();  // a zero interval still goes through the durable timer
    CHECK(calls == 2);
    CHECK(d.timers.empty());
    REQUIRE(d.instance_writes.size() == 1);
    CHECK(d.instance_writes[0].status == "failed");
    CHECK(d.instance_writes[0].error == "Failed after 2 attempts: SQL execution failed: attempt 2");
    CHECK(d.instance_writes[0].error_node == id_of(d.run.graph(), "SELECT bad"));
}

TEST_CASE("RETRY with max_attempts 1 runs once and never waits", "[interpreter][retry]") {
    int calls = 0;
    Driver d(dsl::retry("SELECT bad", 1));
    d.sql = failing(100, calls);
    d.start();
    CHECK(calls == 1);
    CHECK(d.timers.empty());
    REQUIRE(d.instance_writes.size() == 1);
    CHECK(d.instance_writes[0].error == "Failed after 1 attempts: SQL execution failed: attempt 1");
}

TEST_CASE("RETRY: named results made inside an attempt are reset for the next one", "[interpreter][retry]") {
    // Attempt 1 names 'a' and then fails; attempt 2 must not see it: its
    // first step's $a stays untouched, as for any unknown name.
    int calls = 0;
    Driver d(dsl::retry(dsl::seq("SELECT pre $a", dsl::seq(dsl::as("SELECT make", "a"), "SELECT check")), 2, 0));
    d.sql = [&calls](const std::string &q) {
        if (q == "SELECT check" && ++calls == 1) return Outcome::failed("SQL execution failed: once", "");
        return Outcome::completed(rows("[{\"x\":1}]"));
    };
    d.start();
    d.fire_next_timer();
    CHECK(d.executed == std::vector<std::string>{"SELECT pre $a", "SELECT make", "SELECT check", "SELECT pre $a",
                                                 "SELECT make", "SELECT check"});
    CHECK(d.final_status() == "completed");
}

TEST_CASE("RETRY: a restart keeps a waiting backoff's due time and resumes at the recorded attempt",
          "[interpreter][retry]") {
    const std::string fut = dsl::retry("SELECT flaky", 5);
    const Graph g = build(fut);
    const std::string retry = id_of(g, "RETRY");
    const std::string step = id_of(g, "SELECT flaky");
    const TimePoint due = TimePoint{} + 1000000h + 40s;
    History history;
    history[{"abcd0001::1", retry}] =
        Record{"running", std::string(R"({"attempt":3,"waiting":true})"), std::nullopt, std::nullopt, due};
    history[{"abcd0001::1::" + step + "::2", step}] =
        Record{"failed", std::nullopt, std::string("SQL execution failed: x"), std::nullopt, std::nullopt};
    Driver d(fut, history);
    d.start();
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == due);  // kept, not recomputed
    CHECK(d.executed.empty());
    CHECK(d.writes.empty());
    d.fire_next_timer();
    REQUIRE(d.pending.empty());
    CHECK(d.executed == std::vector<std::string>{"SELECT flaky"});
    CHECK(d.final_status() == "completed");

    // Restarted after the attempt began: it runs again in the same scope, nothing rewritten.
    History running;
    running[{"abcd0001::1", retry}] = Record{"running", std::string(R"({"attempt":4})"), std::nullopt, std::nullopt,
                                             std::nullopt};
    Driver r(fut, running);
    r.absorb(r.run.start(r.now));
    REQUIRE(r.pending.size() == 1);
    CHECK(r.pending[0].stamp == "abcd0001::1::" + step + "::4");
    CHECK(r.writes.empty());
    CHECK(r.timers.empty());
}

TEST_CASE("TIMEOUT: the child finishing first decides; its result is the node's", "[interpreter][retry]") {
    Driver d(dsl::timeout("SELECT quick", 5));
    const std::string timeout = id_of(d.run.graph(), "TIMEOUT");
    const TimePoint t0 = d.now;
    d.absorb(d.run.start(d.now));
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == t0 + 5s);
    auto records = writes_of(d, timeout);
    REQUIRE(records.size() == 1);
    CHECK(records[0].status == "running");
    CHECK(records[0].wake_at == t0 + 5s);
    d.run_steps();
    records = writes_of(d, timeout);
    REQUIRE(records.size() == 2);
    CHECK(records[1].status == "completed");
    CHECK(records[1].result == std::optional<std::string>(R"({"timed_out":false})"));
    CHECK(d.final_status() == "completed");
    CHECK(d.root_result() == rows("[{\"q\":\"SELECT quick\"}]"));
    // The stale timer firing later changes nothing.
    const auto before = d.writes.size();
    d.fire_next_timer();
    CHECK(d.writes.size() == before);
}

TEST_CASE("TIMEOUT: on expiry the running step is interrupted and the node fails", "[interpreter][retry]") {
    Driver d(dsl::seq(dsl::timeout(dsl::seq("SELECT slow", "SELECT never"), 0.5), "SELECT after"));
    const std::string timeout = id_of(d.run.graph(), "TIMEOUT");
    const std::string slow = id_of(d.run.graph(), "SELECT slow");
    d.absorb(d.run.start(d.now));
    REQUIRE(d.pending.size() == 1);
    const StepRun running = d.pending[0];
    d.pending.clear();
    d.fire_next_timer();
    REQUIRE(d.cancels.size() == 1);
    CHECK(d.cancels[0] == RecordKey{running.stamp, slow});
    const auto cancelled = std::find_if(d.writes.begin(), d.writes.end(), [&](const ActivationWrite &w) {
        return w.node_id == slow && w.status == "cancelled";
    });
    REQUIRE(cancelled != d.writes.end());
    CHECK(cancelled->error == std::optional<std::string>("Timed out after 0.5s"));
    const auto records = writes_of(d, timeout);
    REQUIRE(records.size() == 2);
    CHECK(records[1].status == "failed");
    CHECK(records[1].error == std::optional<std::string>("Timed out after 0.5s"));
    REQUIRE(d.instance_writes.size() == 1);
    CHECK(d.instance_writes[0].error == "Timed out after 0.5s");
    CHECK(d.instance_writes[0].error_node == timeout);
    // The interrupted step's late outcome starts nothing.
    d.absorb(d.run.on_step(running.stamp, running.node_id, Outcome::completed(rows("[]")), d.now));
    CHECK(d.pending.empty());
    CHECK(d.executed.empty());
}

TEST_CASE("TIMEOUT: a restart keeps the due time from the child's start, and a recorded expiry stays",
          "[interpreter][retry]") {
    const std::string fut = dsl::timeout("SELECT slow", 60);
    const std::string timeout = id_of(build(fut), "TIMEOUT");
    const TimePoint due = TimePoint{} + 1000000h + 10s;
    History history;
    history[{"abcd0001::1", timeout}] = Record{"running", std::nullopt, std::nullopt, std::nullopt, due};
    Driver d(fut, history);
    d.absorb(d.run.start(d.now));
    REQUIRE(d.timers.size() == 1);
    CHECK(d.timers[0].wake_at == due);
    CHECK(d.writes.empty());
    CHECK(d.pending.size() == 1);  // the interrupted step runs again

    History expired;
    expired[{"abcd0001::1", timeout}] = Record{"failed", std::string(R"({"timed_out":true})"),
                                               std::string("Timed out after 60s"), std::nullopt, due};
    Driver e(fut, expired);
    e.absorb(e.run.start(e.now));
    CHECK(e.pending.empty());
    CHECK(e.timers.empty());
    REQUIRE(e.instance_writes.size() == 1);
    CHECK(e.instance_writes[0].error == "Timed out after 60s");
}

TEST_CASE("RETRY of a TIMEOUT retries each timed-out attempt", "[interpreter][retry]") {
    Driver d(dsl::retry(dsl::timeout("SELECT slow", 2), 3, 1));
    d.absorb(d.run.start(d.now));
    REQUIRE(d.pending.size() == 1);
    d.pending.clear();  // attempt 1 hangs
    fire_only(d);       // timeout at +2 s: interrupted; backoff 1 s
    CHECK(d.cancels.size() == 1);
    REQUIRE(d.timers.size() == 1);
    fire_only(d);       // attempt 2 starts, with a timeout of its own
    REQUIRE(d.pending.size() == 1);
    CHECK(d.pending[0].stamp.substr(d.pending[0].stamp.size() - 3) == "::2");
    CHECK(d.timers.size() == 1);
    d.run_steps();      // and completes in time
    CHECK(d.final_status() == "completed");

    Driver all(dsl::retry(dsl::timeout("SELECT slow", 2), 2, 1));
    all.absorb(all.run.start(all.now));
    all.pending.clear();
    fire_only(all);  // timeout 1
    fire_only(all);  // backoff
    all.pending.clear();
    fire_only(all);  // timeout 2
    REQUIRE(all.instance_writes.size() == 1);
    CHECK(all.instance_writes[0].error == "Failed after 2 attempts: Timed out after 2s");
}
