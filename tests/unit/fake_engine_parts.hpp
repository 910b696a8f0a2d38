// In-memory stand-ins for what the orchestrator works through (EngineStore,
// StepRunner, http::StepClient), so its policies run in unit tests on an
// io_context with no database: each call is answered on the io thread, in
// order, like the real store's one bookkeeping session.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "common/graph.hpp"
#include "common/protocol.hpp"
#include "daemon/engine_store.hpp"
#include "daemon/executor.hpp"
#include "daemon/http.hpp"

namespace pgd::daemon::testing {

using durable::engine::RecordKey;

// One df.instances row and what hangs off it.
struct FakeRow {
    store::LoadedInstance loaded;
    std::string status = durable::protocol::kPending;
    std::optional<std::string> error;
    std::map<RecordKey, durable::engine::ActivationWrite> activations;
    std::map<std::string, std::deque<std::string>> signals;  // queued payloads by name, oldest first
};

class FakeEngineStore final : public EngineStore {
public:
    explicit FakeEngineStore(boost::asio::io_context &io) : io_(io) {}

    // Adds a pending instance running `fut` (graph JSON or SQL text).
    std::string add_instance(const std::string &fut, const std::string &id = "") {
        const std::string instance_id = id.empty() ? "inst" + std::to_string(rows.size() + 1) : id;
        int counter = 0;
        auto graph = durable::materialize(fut, [&] {
            char buf[9];
            std::snprintf(buf, sizeof buf, "%08x", ++counter);
            return std::string(buf);
        });
        FakeRow row;
        row.loaded.id = instance_id;
        row.loaded.status = durable::protocol::kPending;
        row.loaded.root_node = graph.root_id;
        row.loaded.nodes = graph.nodes;
        row.loaded.database = "app";
        row.loaded.submitted_by = "alice";
        row.loaded.submitted_by_oid = 16384;
        rows[instance_id] = std::move(row);
        return instance_id;
    }

    // What happened, one line per call, in order ("apply_effects inst1", ...).
    std::vector<std::string> calls;
    std::map<std::string, FakeRow> rows;
    // The next calls of this kind (e.g. "apply_effects") for this instance
    // keep failing for good: they end in on_permanent_failure.
    std::map<std::pair<std::string, std::string>, std::string> broken;
    bool http_privilege = true;
    std::vector<std::vector<std::string>> mark_running_batches;

    std::size_t count(const std::string &call) const {
        std::size_t n = 0;
        for (const auto &c : calls)
            if (c == call) ++n;
        return n;
    }
    std::size_t count_prefix(const std::string &prefix) const {
        std::size_t n = 0;
        for (const auto &c : calls)
            if (c.compare(0, prefix.size(), prefix) == 0) ++n;
        return n;
    }

    void attach(const std::string &epoch, PermanentFailure on_permanent_failure) override {
        ++generation_;
        attached_ = true;
        epoch_ = epoch;
        on_permanent_failure_ = std::move(on_permanent_failure);
    }
    void detach() override {
        ++generation_;
        attached_ = false;
    }
    void write_secret(const std::string &, Done then) override {
        answer("write_secret", "", [then] { then(); });
    }
    void active_instance_ids(Then<std::vector<std::string>> then) override {
        answer("active_instance_ids", "", [this, then] {
            std::vector<std::string> ids;
            for (const auto &[id, row] : rows)
                if (durable::protocol::is_live(row.status)) ids.push_back(id);
            then(ids);
        });
    }
    void load_instance(const std::string &id, Then<std::optional<store::LoadedInstance>> then) override {
        answer("load_instance", id, [this, id, then] {
            auto it = rows.find(id);
            if (it == rows.end() || !durable::protocol::is_live(it->second.status)) return then(std::nullopt);
            store::LoadedInstance loaded = it->second.loaded;
            loaded.status = it->second.status;
            // The recorded activations, as the real load reads them (a replay
            // keeps what they say: due times, outcomes).
            for (const auto &[key, write] : it->second.activations)
                loaded.history[key] = durable::engine::Record{write.status, write.result, write.error,
                                                              write.started_at, write.wake_at};
            then(loaded);
        });
    }
    void apply_effects(const std::string &id, std::int64_t, std::shared_ptr<const durable::engine::Effects> effects,
                       Then<bool> then) override {
        answer("apply_effects", id, [this, id, effects, then] {
            auto it = rows.find(id);
            if (it == rows.end() || !durable::protocol::is_live(it->second.status)) return then(false);
            for (const auto &write : effects->activations) it->second.activations[{write.stamp, write.node_id}] = write;
            if (effects->instance) {
                it->second.status = effects->instance->status;
                it->second.error = effects->instance->error;
            }
            then(true);
        });
    }
    void fail_instance(const std::string &id, const std::string &error) override {
        calls.push_back("fail_instance " + id);
        auto it = rows.find(id);
        if (it == rows.end()) return;
        it->second.status = durable::protocol::kFailed;
        it->second.error = error;
    }
    void record_activation(const std::string &id, std::int64_t, const durable::engine::ActivationWrite &write,
                           Done then) override {
        answer("record_activation", id, [this, id, write, then] {
            rows[id].activations[{write.stamp, write.node_id}] = write;
            then();
        });
    }
    void consume_signals(const std::string &id, std::vector<durable::engine::SignalWait> waits,
                         Then<std::vector<DeliveredSignal>> then) override {
        answer("consume_signals", id, [this, id, waits, then] {
            std::vector<DeliveredSignal> delivered;
            auto &row = rows[id];
            for (const auto &wait : waits) {
                auto &queue = row.signals[wait.signal_name];
                if (queue.empty()) continue;
                consumed_by[wait.node_id].push_back(queue.front());
                delivered.emplace_back(wait, "\"" + queue.front() + "\"");
                queue.pop_front();
            }
            then(delivered);
        });
    }
    void mark_running(std::vector<std::string> ids, Done then) override {
        mark_running_batches.push_back(ids);
        answer("mark_running", "", [this, ids, then] {
            for (const auto &id : ids)
                if (rows[id].status == durable::protocol::kPending) rows[id].status = durable::protocol::kRunning;
            then();
        });
    }
    void instance_state(const std::string &id, Then<std::optional<store::InstanceState>> then) override {
        answer("instance_state", id, [this, id, then] {
            auto it = rows.find(id);
            if (it == rows.end()) return then(std::nullopt);
            then(store::InstanceState{it->second.status, it->second.error});
        });
    }
    void instance_states(std::vector<std::string> ids, bool all_active,
                         Then<std::vector<store::NamedInstanceState>> then) override {
        answer("instance_states", "", [this, ids, all_active, then] {
            std::set<std::string> wanted(ids.begin(), ids.end());
            std::vector<store::NamedInstanceState> found;
            for (const auto &[id, row] : rows)
                if (wanted.count(id) || (all_active && durable::protocol::is_live(row.status)))
                    found.push_back({id, {row.status, row.error}});
            then(found);
        });
    }
    void record_cancelled(const std::string &id, std::int64_t, std::vector<RecordKey> steps,
                          const std::string &error) override {
        answer("record_cancelled", id, [this, id, steps, error] {
            for (const auto &key : steps) {
                auto &write = rows[id].activations[key];
                write.stamp = key.first;
                write.node_id = key.second;
                write.status = durable::protocol::kCancelled;
                write.error = error;
            }
        });
    }
    void has_http_privilege(const std::string &id, std::int64_t, Then<bool> then) override {
        answer("has_http_privilege", id, [this, then] { then(http_privilege); });
    }

    std::map<std::string, std::vector<std::string>> consumed_by;  // node id -> signal payloads it took

private:
    // Answers a call later on the io thread, unless the attachment changed
    // meanwhile or the call is broken for good.
    template <class F>
    void answer(const std::string &call, const std::string &id, F work) {
        calls.push_back(id.empty() ? call : call + " " + id);
        boost::asio::post(io_, [this, call, id, work, generation = generation_] {
            if (generation != generation_ || !attached_) return;
            auto broken_call = broken.find({call, id});
            if (broken_call != broken.end()) {
                if (on_permanent_failure_) on_permanent_failure_(id, broken_call->second);
                return;
            }
            work();
        });
    }

    boost::asio::io_context &io_;
    bool attached_ = false;
    std::string epoch_;
    std::uint64_t generation_ = 0;
    PermanentFailure on_permanent_failure_;
};

// Steps wait until the test ends them.
class FakeStepRunner final : public StepRunner {
public:
    struct Running {
        StepRequest request;
        Done done;
        bool cancel_requested = false;
    };
    std::vector<Running> running;     // in the order they were started
    std::vector<StepRequest> started;  // every request ever made
    std::string secret;

    void configure(int, int, std::string) override {}
    void set_secret(std::string s) override { secret = std::move(s); }
    void run(StepRequest request, Done done) override {
        started.push_back(request);
        running.push_back({std::move(request), std::move(done), false});
    }
    bool cancel(const std::string &instance_id, const std::string &stamp, const std::string &node_id) override {
        for (auto &r : running)
            if (r.request.instance_id == instance_id && r.request.stamp == stamp && r.request.node_id == node_id) {
                r.cancel_requested = true;
                return true;
            }
        return false;
    }
    void stop() override { running.clear(); }

    // The running step whose query is `query`.
    Running *find(const std::string &query) {
        for (auto &r : running)
            if (r.request.query == query) return &r;
        return nullptr;
    }
    // Ends the running step whose query is `query` with `result`.
    bool finish(const std::string &query, StepResult result) {
        for (auto it = running.begin(); it != running.end(); ++it)
            if (it->request.query == query) {
                Done done = std::move(it->done);
                running.erase(it);
                done(std::move(result));
                return true;
            }
        return false;
    }
};

class FakeHttpClient final : public http::StepClient {
public:
    std::vector<http::StepKey> runs;
    std::vector<http::StepKey> cancelled;
    void set_max_concurrency(int) override {}
    void run(const http::StepKey &key, const std::string &, const std::string &, const http::Limits &,
             std::function<void(http::Result)>) override {
        runs.push_back(key);
    }
    bool cancel(const http::StepKey &key) override {
        cancelled.push_back(key);
        return false;
    }
    std::size_t cancel_instance(const std::string &) override { return 0; }
    void stop() override {}
};

inline StepResult completed(const std::string &result, bool recorded = true) {
    StepResult r;
    r.kind = StepResult::Kind::completed;
    r.result = result;
    r.recorded = recorded;
    return r;
}

inline StepResult failed(const std::string &error, bool recorded = true) {
    StepResult r;
    r.kind = StepResult::Kind::failed;
    r.error = error;
    r.recorded = recorded;
    return r;
}

inline StepResult with_kind(StepResult::Kind kind, const std::string &error = "") {
    StepResult r;
    r.kind = kind;
    r.error = error;
    return r;
}

}  // namespace pgd::daemon::testing
