// The orchestrator's policies against a fake store, a fake step runner and a
// fake HTTP client (fake_engine_parts.hpp): take-up, the step-outcome
// policy, signal delivery, wake-up hints, cancels and contained failures.
#include "catch_compat.hpp"

#include <algorithm>

#include "common/dsl.hpp"
#include "daemon/bookkeeping_retry.hpp"
#include "daemon/orchestrator.hpp"
#include "daemon/signal_delivery.hpp"
#include "daemon/step_outcome.hpp"
#include "fake_engine_parts.hpp"

using namespace pgd::daemon;
using namespace pgd::daemon::testing;
namespace dsl = durable::dsl;
using Kind = StepResult::Kind;

namespace {

const std::string kRows = R"({"rows":[{"n":1}],"row_count":1})";

struct Harness {
    boost::asio::io_context io;
    FakeEngineStore *store = nullptr;
    FakeStepRunner *steps = nullptr;
    FakeHttpClient *http = nullptr;
    std::unique_ptr<Orchestrator> orchestrator;

    Harness() {
        OrchestratorParts parts;
        auto s = std::make_unique<FakeEngineStore>(io);
        auto r = std::make_unique<FakeStepRunner>();
        auto h = std::make_unique<FakeHttpClient>();
        store = s.get();
        steps = r.get();
        http = h.get();
        parts.store = std::move(s);
        parts.steps = std::move(r);
        parts.http = std::move(h);
        parts.park_after = std::chrono::seconds(2);  // parks a sleep(3) (the daemon's: 30 s, 15 s)
        parts.load_ahead = std::chrono::seconds(1);
        orchestrator = std::make_unique<Orchestrator>(io, std::move(parts));
    }

    void attach() {
        AttachInfo info;
        info.epoch_id = "1";
        orchestrator->on_attached(info);
        settle();
    }

    // Runs every handler that is ready, including the ones they post.
    void settle() {
        io.restart();
        io.poll();
    }

    void finish(const std::string &query, StepResult result) {
        REQUIRE(steps->finish(query, std::move(result)));
        settle();
    }

    void wake(const std::string &id) {
        WakeupBatch batch;
        batch.ids.insert(id);
        batch.received = 1;
        orchestrator->on_wakeups(batch);
        settle();
    }

    bool started(const std::string &query) const {
        return std::any_of(steps->started.begin(), steps->started.end(),
                           [&](const StepRequest &r) { return r.query == query; });
    }
};

// The stored id of the node with this query.
std::string node_with_query(const FakeRow &row, const std::string &query) {
    for (const auto &node : row.loaded.nodes)
        if (node.query && *node.query == query) return node.id;
    FAIL("no node " << query);
    return "";
}

// The recorded activation of this node, in whatever scope it ran.
const durable::engine::ActivationWrite *record_of(const FakeRow &row, const std::string &node_id) {
    for (const auto &[key, write] : row.activations)
        if (key.second == node_id) return &write;
    return nullptr;
}

}  // namespace

TEST_CASE("instances taken up together are marked running in at most two commits", "[orchestrator]") {
    Harness h;
    for (int i = 0; i < 10; ++i) h.store->add_instance("SELECT " + std::to_string(i));
    h.attach();
    REQUIRE(h.steps->running.size() == 10);
    CHECK(h.store->mark_running_batches.size() <= 2);
    std::size_t marked = 0;
    for (const auto &batch : h.store->mark_running_batches) marked += batch.size();
    CHECK(marked == 10);
    for (const auto &[id, row] : h.store->rows) CHECK(row.status == "running");
}

TEST_CASE("a chain runs one step at a time and its last step carries the instance's completion", "[orchestrator]") {
    Harness h;
    const std::string id = h.store->add_instance(dsl::seq("SELECT 1", "SELECT 2"));
    h.attach();
    REQUIRE(h.steps->running.size() == 1);
    CHECK(h.steps->running[0].request.query == "SELECT 1");
    CHECK_FALSE(h.steps->running[0].request.finish);
    h.finish("SELECT 1", completed(kRows));
    REQUIRE(h.steps->running.size() == 1);
    const auto &last = h.steps->running[0].request;
    CHECK(last.query == "SELECT 2");
    REQUIRE(last.finish);
    CHECK(last.finish->find("\"instance\":\"completed\"") != std::string::npos);
    CHECK(h.orchestrator->instance_count() == 1);
    h.finish("SELECT 2", completed(kRows));
    CHECK(h.orchestrator->instance_count() == 0);  // df._run_step committed the completion
    CHECK(h.store->count("apply_effects " + id) == 0);  // nothing for the daemon to write
}

TEST_CASE("an outcome df._run_step did not record is recorded before the interpreter moves on", "[orchestrator]") {
    Harness h;
    SECTION("a failed connection fails the step and the instance") {
        const std::string id = h.store->add_instance(dsl::seq("SELECT 1", "SELECT 2"));
        h.attach();
        StepResult result = with_kind(Kind::connect_failed, "could not connect");
        result.recorded = false;
        h.finish("SELECT 1", result);
        const auto &row = h.store->rows[id];
        const auto record = row.activations.at({durable::protocol::root_stamp(row.loaded.id, 1), node_with_query(row, "SELECT 1")});
        CHECK(record.status == "failed");
        CHECK(record.error == std::optional<std::string>("could not connect"));
        CHECK(row.status == "failed");
        CHECK_FALSE(h.started("SELECT 2"));
        CHECK(h.orchestrator->instance_count() == 0);
    }
    SECTION("a last step completed elsewhere completes the instance in the same record") {
        const std::string id = h.store->add_instance("SELECT 1");
        h.attach();
        h.finish("SELECT 1", completed(kRows, false));
        const auto &row = h.store->rows[id];
        CHECK(row.activations.at({durable::protocol::root_stamp(row.loaded.id, 1), row.loaded.root_node}).status == "completed");
        CHECK(row.status == "completed");
        CHECK(h.store->count("apply_effects " + id) == 1);
    }
}

TEST_CASE("an interrupted step runs again after a look at the instance, five times at most", "[orchestrator]") {
    Harness h;
    const std::string id = h.store->add_instance(dsl::seq("SELECT 1", "SELECT 2"));
    h.attach();
    for (int attempt = 1; attempt < kMaxInterruptedAttempts; ++attempt) {
        REQUIRE(h.steps->running.size() == 1);
        CHECK(h.steps->running[0].request.attempt == attempt);
        h.finish("SELECT 1", with_kind(Kind::interrupted, "terminating connection"));
        CHECK(h.store->count("instance_state " + id) == static_cast<std::size_t>(attempt));
    }
    REQUIRE(h.steps->running.size() == 1);
    CHECK(h.steps->running[0].request.attempt == kMaxInterruptedAttempts);
    h.finish("SELECT 1", with_kind(Kind::interrupted, "terminating connection"));
    const auto &row = h.store->rows[id];
    const auto record = row.activations.at({durable::protocol::root_stamp(row.loaded.id, 1), node_with_query(row, "SELECT 1")});
    CHECK(record.status == "failed");
    CHECK(record.error == std::optional<std::string>("SQL execution failed: terminating connection"));
    CHECK(row.status == "failed");
    CHECK_FALSE(h.started("SELECT 2"));
}

TEST_CASE("an interrupted step of an instance cancelled meanwhile is not run again", "[orchestrator]") {
    Harness h;
    const std::string id = h.store->add_instance("SELECT 1");
    h.attach();
    h.store->rows[id].status = "cancelled";
    h.finish("SELECT 1", with_kind(Kind::interrupted, "canceling statement due to user request"));
    CHECK(h.steps->running.empty());
    CHECK(h.steps->started.size() == 1);
    CHECK(h.orchestrator->instance_count() == 0);
}

TEST_CASE("a step refused for a stale attachment leaves the instance to the next attachment", "[orchestrator]") {
    Harness h;
    const std::string id = h.store->add_instance("SELECT 1");
    h.attach();
    StepResult refused = with_kind(Kind::interrupted, "pg_durable: df._run_step called with a stale secret");
    refused.stale_attachment = true;
    h.finish("SELECT 1", refused);
    CHECK(h.steps->started.size() == 1);  // no rerun
    CHECK(h.store->count("instance_state " + id) == 0);
    CHECK(h.store->rows[id].activations.empty());  // nothing recorded
    CHECK(h.store->rows[id].status == "running");  // nothing failed
    CHECK(h.orchestrator->instance_count() == 0);
}

TEST_CASE("a RACE loser's cancelled record waits until its transaction has ended", "[orchestrator]") {
    Harness h;
    const std::string id = h.store->add_instance(dsl::race("SELECT 1", "SELECT 2"));
    h.attach();
    REQUIRE(h.steps->running.size() == 2);
    h.finish("SELECT 1", completed(kRows));
    auto *loser = h.steps->find("SELECT 2");
    REQUIRE(loser != nullptr);
    CHECK(loser->cancel_requested);
    const auto &row = h.store->rows[id];
    const std::string loser_node = node_with_query(row, "SELECT 2");
    // Written now, it would wait for the loser's lock while holding the
    // instance row (docs/ARCHITECTURE.md "Lock order").
    CHECK(h.store->count("record_cancelled " + id) == 0);
    CHECK(record_of(row, loser_node) == nullptr);
    h.finish("SELECT 2", with_kind(Kind::cancelled));
    CHECK(h.store->count("record_cancelled " + id) == 1);
    REQUIRE(record_of(row, loser_node) != nullptr);
    CHECK(record_of(row, loser_node)->status == "cancelled");
}

TEST_CASE("per signal name the earliest wait takes the oldest signal", "[orchestrator]") {
    Harness h;
    const std::string id =
        h.store->add_instance(dsl::join(dsl::wait_for_signal("go", std::nullopt),
                                        dsl::seq("SELECT 1", dsl::wait_for_signal("go", std::nullopt))));
    h.attach();
    h.finish("SELECT 1", completed(kRows));  // the second wait starts later
    std::string first_wait, second_wait;
    for (const auto &node : h.store->rows[id].loaded.nodes)
        if (node.node_type == "JOIN") first_wait = *node.left_node;
    for (const auto &node : h.store->rows[id].loaded.nodes)
        if (node.node_type == "SIGNAL" && node.id != first_wait) second_wait = node.id;
    REQUIRE_FALSE(first_wait.empty());
    REQUIRE_FALSE(second_wait.empty());
    h.store->rows[id].signals["go"] = {"first", "second"};
    h.wake(id);
    CHECK(h.store->consumed_by[first_wait] == std::vector<std::string>{"first"});
    CHECK(h.store->consumed_by[second_wait] == std::vector<std::string>{"second"});
    CHECK(h.orchestrator->instance_count() == 0);  // both waits done: the JOIN and the instance completed
    CHECK(h.store->rows[id].status == "completed");
}

TEST_CASE("next_in_line: one wait per name, the earliest started, ties by node", "[orchestrator]") {
    using durable::engine::SignalWait;
    const auto t0 = durable::engine::TimePoint{} + std::chrono::hours(1000);
    std::map<RecordKey, SignalWait> waits;
    waits[{"0", "b"}] = SignalWait{"0", "b", "go", t0 + std::chrono::seconds(1)};
    waits[{"0", "c"}] = SignalWait{"0", "c", "go", t0};
    waits[{"0", "d"}] = SignalWait{"0", "d", "stop", t0};
    waits[{"0", "a"}] = SignalWait{"0", "a", "stop", t0};
    const auto line = next_in_line(waits);
    REQUIRE(line.size() == 2);
    CHECK(line[0].signal_name == "go");
    CHECK(line[0].node_id == "c");
    CHECK(line[1].signal_name == "stop");
    CHECK(line[1].node_id == "a");
}

TEST_CASE("wake-ups are hints: only committed rows decide", "[orchestrator]") {
    Harness h;
    const std::string id = h.store->add_instance("SELECT 1");
    h.attach();
    REQUIRE(h.steps->running.size() == 1);
    SECTION("an id that names no instance loads nothing and stops nothing") {
        h.wake("deadbeef");
        // One lookup of its row (the load, which finds nothing), no other call.
        CHECK(h.store->count("load_instance deadbeef") == 1);
        CHECK(h.store->count("instance_states") == 0);
        CHECK(h.orchestrator->instance_count() == 1);
        CHECK_FALSE(h.steps->running[0].cancel_requested);
    }
    SECTION("a flood of forged ids costs one lookup, not one load per id") {
        WakeupBatch batch;
        for (int i = 0; i < 500; ++i) {
            char forged[9];
            std::snprintf(forged, sizeof forged, "%08x", 0x10000000 + i);
            batch.ids.insert(forged);
        }
        batch.received = batch.ids.size();
        h.orchestrator->on_wakeups(batch);
        h.settle();
        CHECK(h.store->count("instance_states") == 1);
        CHECK(h.store->count_prefix("load_instance ") == 1);  // the one at attach
        CHECK(h.orchestrator->instance_count() == 1);
    }
    SECTION("a live instance that the daemon runs is not disturbed") {
        h.wake(id);
        CHECK(h.store->count("instance_states") == 1);  // its row is looked up, it is not loaded again
        CHECK(h.store->count("load_instance " + id) == 1);
        CHECK_FALSE(h.steps->running[0].cancel_requested);
        CHECK(h.orchestrator->instance_count() == 1);
    }
    SECTION("a committed cancel interrupts the step; its record is written when it ends") {
        h.store->rows[id].status = "cancelled";
        h.store->rows[id].error = "by alice";
        h.wake(id);
        CHECK(h.steps->running[0].cancel_requested);
        CHECK(h.orchestrator->instance_count() == 0);
        CHECK(h.store->count("record_cancelled " + id) == 0);
        h.finish("SELECT 1", with_kind(Kind::cancelled));
        const auto &row = h.store->rows[id];
        const auto record = row.activations.at({durable::protocol::root_stamp(row.loaded.id, 1), row.loaded.root_node});
        CHECK(record.status == "cancelled");
        CHECK(record.error == std::optional<std::string>("Cancelled: by alice"));
    }
    SECTION("a pending instance started after the rescan is loaded") {
        const std::string late = h.store->add_instance("SELECT 2");
        h.wake(late);
        CHECK(h.started("SELECT 2"));
        CHECK(h.orchestrator->instance_count() == 2);
    }
}

TEST_CASE("a bookkeeping call that keeps failing fails its instance and no other", "[orchestrator]") {
    Harness h;
    const std::string broken = h.store->add_instance("SELECT 1");
    const std::string healthy = h.store->add_instance("SELECT 2");
    h.store->broken[{"load_instance", broken}] = "value too long for type character varying(8)";
    h.attach();
    CHECK(h.store->rows[broken].status == "failed");
    CHECK(h.store->rows[broken].error->find("could not record the progress of instance " + broken) !=
          std::string::npos);
    CHECK_FALSE(h.started("SELECT 1"));
    CHECK(h.started("SELECT 2"));
    CHECK(h.store->rows[healthy].status == "running");
}

TEST_CASE("loads that keep failing free their slots: the instances in line after them still load", "[orchestrator]") {
    Harness h;
    for (std::size_t i = 0; i < Orchestrator::kMaxLoadsInFlight + 2; ++i) {
        char id[9];
        std::snprintf(id, sizeof id, "a%07zu", i);
        h.store->add_instance("SELECT 1", id);
        h.store->broken[{"load_instance", id}] = "value too long for type character varying(8)";
    }
    h.store->add_instance("SELECT 2", "zzzzzzzz");  // last in line
    h.attach();
    CHECK(h.started("SELECT 2"));
    CHECK(h.store->rows["a0000000"].status == "failed");
}

TEST_CASE("a graph broken around df.start fails its instance on load, the others run", "[orchestrator]") {
    Harness h;
    const std::string bad = h.store->add_instance(dsl::sleep(5));
    h.store->rows[bad].loaded.nodes[0].query = "x";  // written to df.nodes by hand
    h.store->add_instance("SELECT 1");
    h.attach();
    CHECK(h.store->rows[bad].status == "failed");
    CHECK(h.store->rows[bad].error->rfind("Invalid durable function graph", 0) == 0);
    CHECK(h.started("SELECT 1"));
    CHECK(h.orchestrator->instance_count() == 1);
}

TEST_CASE("a detach drops every answer of the old attachment", "[orchestrator]") {
    Harness h;
    h.store->add_instance("SELECT 1");
    AttachInfo info;
    info.epoch_id = "1";
    h.orchestrator->on_attached(info);
    h.orchestrator->on_detached();  // before the store answered anything
    h.settle();
    CHECK(h.steps->started.empty());
    CHECK(h.orchestrator->instance_count() == 0);
}

TEST_CASE("HTTP steps need EXECUTE on df.http; without it the step fails with the SPEC text", "[orchestrator]") {
    Harness h;
    ServerSettings settings;
    settings.http_enabled = true;
    AttachInfo info;
    info.epoch_id = "1";
    info.settings = settings;
    durable::dsl::HttpStep args;
    args.url = "http://example.com/";
    const std::string id = h.store->add_instance(dsl::http(args, true));
    h.store->http_privilege = false;
    h.orchestrator->on_attached(info);
    h.settle();
    CHECK(h.http->runs.empty());
    const auto &row = h.store->rows[id];
    CHECK(row.status == "failed");
    CHECK(row.activations.at({durable::protocol::root_stamp(row.loaded.id, 1), row.loaded.root_node}).error->find("alice") != std::string::npos);
}

TEST_CASE("decide_step_outcome", "[orchestrator]") {
    durable::engine::StepRun step;
    step.stamp = "0";
    step.node_id = "0000000a";
    const auto now = durable::engine::TimePoint{} + std::chrono::hours(1);
    using Action = StepDecision::Action;
    CHECK(decide_step_outcome(step, completed(kRows), 1, now).action == Action::feed);
    StepResult duplicate = with_kind(Kind::duplicate);
    duplicate.status = "failed";
    duplicate.error = "SQL execution failed: boom";
    const auto d = decide_step_outcome(step, duplicate, 1, now);
    CHECK(d.action == Action::feed);
    CHECK(d.outcome.kind == durable::engine::Outcome::Kind::Failed);
    CHECK(d.outcome.value == "SQL execution failed: boom");
    CHECK(decide_step_outcome(step, with_kind(Kind::cancelled), 1, now).action == Action::forget);
    CHECK(decide_step_outcome(step, with_kind(Kind::instance_not_running), 1, now).action == Action::forget);
    CHECK(decide_step_outcome(step, with_kind(Kind::interrupted, "x"), kMaxInterruptedAttempts - 1, now).action ==
          Action::check_then_rerun);
    const auto last = decide_step_outcome(step, with_kind(Kind::interrupted, "x"), kMaxInterruptedAttempts, now);
    CHECK(last.action == Action::record_then_feed);
    REQUIRE(last.record.activations.size() == 1);
    CHECK(last.record.activations[0].status == "failed");
    CHECK_FALSE(last.record.instance);

    // Compound nodes' mirrors that rode with a step the daemon records itself
    // are written with the record, whatever the step's outcome.
    step.mirrors.push_back({"0", "0000000b", "completed", std::string("1"), std::nullopt, std::nullopt});
    const auto failed_elsewhere = decide_step_outcome(step, with_kind(Kind::interrupted, "x"), kMaxInterruptedAttempts, now);
    REQUIRE(failed_elsewhere.record.mirrors.size() == 1);
    CHECK(failed_elsewhere.record.mirrors[0].node_id == "0000000b");
}

TEST_CASE("bookkeeping retries: transient errors forever, others five times per instance", "[orchestrator]") {
    for (const char *state : {"", "55P03", "57014", "40001", "40P01", "08006", "57P01", "53300"})
        CHECK(transient_sqlstate(state));
    for (const char *state : {"22001", "23505", "42P01", "XX000", "P0001"}) CHECK_FALSE(transient_sqlstate(state));
    CHECK(retry_bookkeeping("22001", true, kPermanentFailureAttempts - 1));
    CHECK_FALSE(retry_bookkeeping("22001", true, kPermanentFailureAttempts));
    CHECK(retry_bookkeeping("40001", true, 1000));
    CHECK(retry_bookkeeping("22001", false, 1000));
    CHECK(bookkeeping_retry_delay(1) == std::chrono::milliseconds(10));
    CHECK(bookkeeping_retry_delay(2) == std::chrono::milliseconds(20));
    CHECK(bookkeeping_retry_delay(100) == std::chrono::milliseconds(5000));
}

namespace {

// Runs the loop (timers included) until `done` or 10 s have passed.
template <class Done>
bool run_until(Harness &h, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        h.io.restart();
        h.io.run_for(std::chrono::milliseconds(20));
    }
    return true;
}

}  // namespace

TEST_CASE("a sleeping instance is parked: out of memory, its due time kept, loaded again when due",
          "[orchestrator][timers]") {
    Harness h;
    const std::string id = h.store->add_instance(dsl::sleep(3));
    h.attach();
    CHECK(h.orchestrator->instance_count() == 0);
    CHECK(h.orchestrator->parked_count() == 1);
    const auto &row = h.store->rows[id];
    REQUIRE(row.activations.size() == 1);
    const auto wake_at = row.activations.begin()->second.wake_at;
    REQUIRE(wake_at);
    CHECK(row.activations.begin()->second.status == "running");
    const auto applied = h.store->count("apply_effects " + id);

    SECTION("its time comes: loaded once more ahead of it, the timer fires from memory, not before its time") {
        REQUIRE(run_until(h, [&] { return h.store->count("load_instance " + id) == 2; }));
        h.settle();
        CHECK(std::chrono::system_clock::now() < *wake_at);  // loaded load_ahead early
        CHECK(h.orchestrator->instance_count() == 1);
        CHECK(h.orchestrator->parked_count() == 0);
        CHECK(row.activations.begin()->second.status == "running");
        REQUIRE(run_until(h, [&] { return h.store->rows[id].status == "completed"; }));
        CHECK(h.store->count("load_instance " + id) == 2);
        const auto &done = row.activations.begin()->second;
        CHECK(done.status == "completed");
        CHECK(done.result == std::optional<std::string>(R"({"slept":true,"seconds":3})"));
        REQUIRE(done.completed_at);
        CHECK(*done.completed_at >= *wake_at);
        CHECK(*done.completed_at - *wake_at < std::chrono::milliseconds(500));
        CHECK(h.orchestrator->instance_count() == 0);
        CHECK(h.orchestrator->parked_count() == 0);
    }
    SECTION("a hint meanwhile loads it; the replay keeps its due time and it parks again, writing nothing") {
        h.wake(id);
        CHECK(h.store->count("load_instance " + id) == 2);
        CHECK(h.orchestrator->parked_count() == 1);
        CHECK(h.orchestrator->instance_count() == 0);
        CHECK(h.store->count("apply_effects " + id) == applied);
        CHECK(row.activations.begin()->second.wake_at == wake_at);
    }
    SECTION("cancelled meanwhile: the hint's load finds it ended and its due time goes") {
        h.store->rows[id].status = "cancelled";
        h.wake(id);
        CHECK(h.orchestrator->parked_count() == 0);
        CHECK(h.orchestrator->instance_count() == 0);
        CHECK(h.store->count("apply_effects " + id) == applied);
    }
    SECTION("cancelled, named in a batch of hints: one lookup, no load, its due time goes") {
        h.store->rows[id].status = "cancelled";
        WakeupBatch batch;
        batch.ids = {id, "deadbeef"};
        batch.received = 2;
        h.orchestrator->on_wakeups(batch);
        h.settle();
        CHECK(h.store->count("instance_states") == 1);
        CHECK(h.store->count("load_instance " + id) == 1);
        CHECK(h.orchestrator->parked_count() == 0);
    }
    SECTION("live, named in an overflowing batch: looked up with the others, left parked") {
        WakeupBatch batch;
        batch.overflow = true;
        h.orchestrator->on_wakeups(batch);
        h.settle();
        CHECK(h.store->count("instance_states") == 1);
        CHECK(h.store->count("load_instance " + id) == 1);
        CHECK(h.orchestrator->parked_count() == 1);
    }
    SECTION("cancelled without a hint: when due, the load finds it ended and nothing is written") {
        h.store->rows[id].status = "cancelled";
        REQUIRE(run_until(h, [&] { return h.store->count("load_instance " + id) == 2; }));
        h.settle();
        CHECK(h.orchestrator->parked_count() == 0);
        CHECK(h.store->count("apply_effects " + id) == applied);
        CHECK(row.activations.begin()->second.status == "running");
    }
    SECTION("a detach drops it; the next attachment's rescan parks it again with the same due time") {
        h.orchestrator->on_detached();
        CHECK(h.orchestrator->parked_count() == 0);
        h.attach();
        CHECK(h.orchestrator->parked_count() == 1);
        CHECK(row.activations.begin()->second.wake_at == wake_at);
    }
}

TEST_CASE("a short wait stays in memory; timers of one instance fire in due order", "[orchestrator][timers]") {
    Harness h;
    // JOIN of sleep(1) and a THEN of sleep(1) then a step: the JOIN waits for
    // both sleeps at once, then the step.
    const std::string id = h.store->add_instance(dsl::join(dsl::sleep(1), dsl::seq(dsl::sleep(1), "SELECT 7")));
    h.attach();
    CHECK(h.orchestrator->instance_count() == 1);
    CHECK(h.orchestrator->parked_count() == 0);
    REQUIRE(run_until(h, [&] { return h.started("SELECT 7"); }));
    CHECK(h.store->count("load_instance " + id) == 1);
    std::size_t fired = 0;
    for (const auto &[key, write] : h.store->rows[id].activations)
        if (write.status == "completed" && write.result == std::optional<std::string>(R"({"slept":true,"seconds":1})"))
            ++fired;
    CHECK(fired == 2);
    h.finish("SELECT 7", completed(kRows));
    CHECK(h.store->rows[id].status == "completed");
}
