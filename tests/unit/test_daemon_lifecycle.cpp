// The attach lifecycle against a scripted fake orchestrator connection: no
// database, real Asio loop with millisecond timings.
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include "catch_compat.hpp"

#include "daemon/lifecycle.hpp"
#include "daemon/logging.hpp"

using namespace pgd::daemon;
using namespace std::chrono_literals;

namespace {

// A pretend server: the test flips its state, the fake answers accordingly
// and asynchronously (posted to the io_context, like the real link).
class FakeServer final : public OrchestratorConnection {
public:
    explicit FakeServer(boost::asio::io_context &io) : io_(io) {
        REQUIRE(::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) == 0);
    }
    ~FakeServer() override {
        ::close(wake_pipe_[0]);
        ::close(wake_pipe_[1]);
    }

    // --- script ---
    bool reachable = true;
    bool extension = false;
    std::int64_t extension_oid = 100;
    std::string extension_version = "1.0";
    bool lock_held_elsewhere = false;
    std::string max_duroxide = "10";
    bool drop_on_heartbeat = false;
    std::vector<std::string> notifications;

    // Makes the LISTEN socket readable, as a NOTIFY would.
    void notify(const std::string &payload) {
        notifications.push_back(payload);
        REQUIRE(::write(wake_pipe_[1], "x", 1) == 1);
    }

    // --- observations ---
    int connects = 0, attaches = 0, heartbeats = 0, drains = 0, detaches = 0, shutdowns = 0;
    // What the heartbeats wrote: steps started (sum of the written deltas)
    // and the last in-flight gauge.
    std::int64_t started_written = 0, http_in_flight = -1;
    bool skip_heartbeats = false;  // reply `skipped` (nothing written)
    bool connected = false;
    bool holds_lock = false;

    void connect(Callback<Connected> done) override {
        ++connects;
        if (!reachable) return fail(std::move(done), "connection refused");
        connected = true;
        Connected info;
        info.backend_pid = 4242;
        info.dbname = "postgres";
        info.user = "postgres";
        info.superuser = true;
        reply(std::move(done), info);
    }
    void show_settings(std::vector<std::string> names,
                       Callback<std::map<std::string, std::optional<std::string>>> done) override {
        if (!connected) return fail(std::move(done), "no connection");
        std::map<std::string, std::optional<std::string>> shown;
        for (const auto &name : names) shown[name] = std::nullopt;  // defaults
        shown["pg_durable.database"] = "postgres";
        shown["pg_durable.max_duroxide_connections"] = max_duroxide;
        reply(std::move(done), shown);
    }
    void probe(Callback<store::ServerState> done) override {
        if (!connected) return fail(std::move(done), "no connection");
        store::ServerState state;
        if (extension) {
            state.extension_oid = extension_oid;
            state.extension_version = extension_version;
        }
        reply(std::move(done), state);
    }
    void try_lock(Callback<bool> done) override {
        if (!connected) return fail(std::move(done), "no connection");
        if (!lock_held_elsewhere) holds_lock = true;
        reply(std::move(done), holds_lock);
    }
    void attach(Callback<Attached> done) override {
        if (!connected) return fail(std::move(done), "no connection");
        ++attaches;
        Attached attached;
        attached.extension_gone = !extension;
        attached.epoch_id = "epoch-" + std::to_string(attaches);
        attached.socket_fd = wake_pipe_[0];
        reply(std::move(done), attached);
    }
    void heartbeat(std::string, store::ExtensionIdentity identity, store::HeartbeatGauges gauges,
                   Callback<store::HeartbeatResult> done) override {
        const std::int64_t oid = identity.oid;
        ++heartbeats;
        if (skip_heartbeats) return reply(std::move(done), store::HeartbeatResult::skipped);
        if (drop_on_heartbeat) {
            connected = false;
            holds_lock = false;
            return fail(std::move(done), "server closed the connection unexpectedly");
        }
        const bool ok = extension && oid == extension_oid;
        if (ok && identity.version != extension_version)
            return reply(std::move(done), store::HeartbeatResult::extension_updated);
        if (ok) {
            started_written += gauges.steps_started_delta;
            http_in_flight = gauges.http_in_flight;
        }
        reply(std::move(done), ok ? store::HeartbeatResult::ok : store::HeartbeatResult::extension_gone);
    }
    void drain_wakeups(Callback<WakeupBatch> done) override {
        ++drains;
        char buf[64];
        while (::read(wake_pipe_[0], buf, sizeof buf) > 0) {
        }
        WakeupInbox inbox;
        for (const auto &payload : notifications) inbox.add(payload);
        notifications.clear();
        reply(std::move(done), inbox.take());
    }
    void detach(Callback<Nothing> done) override {
        ++detaches;
        holds_lock = false;
        reply(std::move(done), Nothing{});
    }
    void shutdown(Callback<Nothing> done) override {
        ++shutdowns;
        holds_lock = false;
        connected = false;
        reply(std::move(done), Nothing{});
    }

private:
    template <class T>
    void reply(Callback<T> done, T value) {
        LinkResult<T> result;
        result.value = std::move(value);
        boost::asio::post(io_, [done = std::move(done), result]() { done(result); });
    }
    template <class T>
    void fail(Callback<T> done, const std::string &message) {
        LinkResult<T> result;
        result.failure = LinkFailure::connection_lost;
        result.message = message;
        boost::asio::post(io_, [done = std::move(done), result]() { done(result); });
    }

    boost::asio::io_context &io_;
    int wake_pipe_[2];
};

struct RecordingWork final : WorkHandler {
    int attached = 0, detached = 0, settings = 0, drains = 0;
    // Set to hold a drain open; the test calls it to let the drain finish.
    bool hold_drain = false;
    std::function<void()> pending_drain;
    void drain(std::function<void()> done) override {
        ++drains;
        if (hold_drain)
            pending_drain = std::move(done);
        else
            done();
    }
    std::vector<std::string> wakeups;  // instance ids, in batch order
    std::vector<std::string> versions;  // extension versions seen: at attach, then each update
    void on_attached(const AttachInfo &info) override {
        ++attached;
        versions.push_back(info.extension_version);
    }
    void on_extension_updated(const std::string &version) override { versions.push_back("updated " + version); }
    void on_wakeups(const WakeupBatch &b) override { wakeups.insert(wakeups.end(), b.ids.begin(), b.ids.end()); }
    void on_settings(const ServerSettings &) override { ++settings; }
    void on_detached() override { ++detached; }
    WorkGauges gauges_now;
    WorkGauges gauges() const override { return gauges_now; }
};

LifecycleTiming fast_timing() {
    LifecycleTiming t;
    t.extension_poll = 2ms;
    t.standby_retry = 2ms;
    t.heartbeat = 2ms;
    t.drain_deadline = 2s;
    t.reconnect.initial = 1ms;
    t.reconnect.max = 4ms;
    return t;
}

struct Harness {
    Harness() { init_logging("off"); }
    boost::asio::io_context io;
    FakeServer server{io};
    RecordingWork work;
    std::optional<int> finished;
    Lifecycle lifecycle{io, server, work, fast_timing(), [this](int code) { finished = code; },
                        [](int) { FAIL("drain deadline passed"); }};

    // Runs the loop until predicate holds (or fails the test after 5 s).
    void run_until(const std::function<bool()> &predicate) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!predicate()) {
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            io.restart();
            io.run_for(2ms);
        }
    }
    void run_for(std::chrono::milliseconds d) {
        io.restart();
        io.run_for(d);
    }
};

}  // namespace

TEST_CASE("lifecycle waits for the extension, then takes the lock and attaches", "[daemon]") {
    Harness h;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::waiting_for_extension; });
    h.run_for(20ms);
    CHECK(h.server.attaches == 0);
    CHECK(h.work.attached == 0);

    h.server.extension = true;
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });
    CHECK(h.server.holds_lock);
    CHECK(h.server.attaches == 1);
    CHECK(h.work.attached == 1);
    CHECK(h.work.settings == 1);
    h.run_until([&] { return h.server.heartbeats >= 3; });
    CHECK(h.lifecycle.phase() == Phase::active);
}

TEST_CASE("lifecycle stays standby while another daemon holds the lock", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.server.lock_held_elsewhere = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::standby; });
    h.run_for(20ms);
    CHECK(h.lifecycle.phase() == Phase::standby);
    CHECK(h.server.attaches == 0);

    h.server.lock_held_elsewhere = false;
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });
    CHECK(h.work.attached == 1);
}

TEST_CASE("lifecycle hands wake-ups to the work handler and drops malformed ones", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });

    h.server.notify("start:0123abcd");
    h.server.notify("garbage");
    h.server.notify("cancel:89abcdef");
    h.run_until([&] { return h.work.wakeups.size() == 2; });
    CHECK(h.work.wakeups == std::vector<std::string>{"0123abcd", "89abcdef"});

    // The watcher re-arms: a later notification is seen too.
    h.server.notify("signal:00000001");
    h.run_until([&] { return h.work.wakeups.size() == 3; });
    CHECK(h.work.wakeups[2] == "00000001");
}

TEST_CASE("the wake-up inbox coalesces payloads into a bounded set of instance ids", "[daemon]") {
    WakeupInbox inbox;
    inbox.add("start:0123abcd");
    inbox.add("cancel:0123abcd");  // the kind is only a hint: one id to look at
    inbox.add("signal:89abcdef");
    inbox.add("cancel:0123ABCD");  // ids are lower-case hex
    inbox.add("cancel:");
    inbox.add(std::string(100000, 'x'));
    auto batch = inbox.take();
    CHECK(batch.ids == std::set<std::string>{"0123abcd", "89abcdef"});
    CHECK(batch.malformed == 3);
    CHECK(batch.received == 6);
    CHECK_FALSE(batch.overflow);
    CHECK(inbox.empty());

    // A flood of distinct forged ids: memory stays bounded, the receiver is
    // told to reconcile everything instead.
    char id[9];
    for (unsigned i = 0; i < 3 * WakeupInbox::kMaxIds; ++i) {
        std::snprintf(id, sizeof id, "%08x", i);
        inbox.add(std::string("cancel:") + id);
    }
    batch = inbox.take();
    CHECK(batch.overflow);
    CHECK(batch.ids.empty());
    CHECK(batch.received == 3 * WakeupInbox::kMaxIds);
}

TEST_CASE("the wake-up inbox takes the relay's batches and its rescan", "[daemon][wakeup]") {
    WakeupInbox inbox;
    inbox.add("starts:0123abcd,89abcdef");
    inbox.add("starts:0123abcd,zzzzzzzz");  // malformed anywhere: ignored whole
    inbox.add("start:00000001");
    auto batch = inbox.take();
    CHECK(batch.ids == std::set<std::string>{"0123abcd", "89abcdef", "00000001"});
    CHECK(batch.malformed == 1);
    CHECK(batch.received == 3);
    CHECK_FALSE(batch.overflow);
    CHECK(batch.rescans == 0);

    // 'rescan': look at every live instance, as after the inbox's own overflow.
    inbox.add("starts:0123abcd");
    inbox.add("rescan");
    inbox.add("start:00000002");
    batch = inbox.take();
    CHECK(batch.overflow);
    CHECK(batch.ids.empty());
    CHECK(batch.rescans == 1);
    CHECK(batch.malformed == 0);
    WakeupInbox merged;
    merged.add("start:00000003");
    merged.merge(std::move(batch));
    batch = merged.take();
    CHECK(batch.overflow);
    CHECK(batch.rescans == 1);
    CHECK(batch.ids.empty());
}

TEST_CASE("lifecycle detaches when the extension is dropped and re-attaches to a new one", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });

    h.server.extension = false;
    h.run_until([&] { return h.lifecycle.phase() == Phase::waiting_for_extension; });
    CHECK(h.work.detached == 1);
    CHECK(h.server.detaches == 1);
    CHECK_FALSE(h.server.holds_lock);

    // DROP and CREATE between two heartbeats: same name, new OID.
    h.server.extension = true;
    h.server.extension_oid = 101;
    h.run_until([&] { return h.work.attached == 2; });
    CHECK(h.lifecycle.phase() == Phase::active);

    h.server.extension_oid = 102;
    h.run_until([&] { return h.work.attached == 3; });
    CHECK(h.work.detached == 2);
}

TEST_CASE("ALTER EXTENSION UPDATE while attached tells the work the new version without detaching", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });
    CHECK(h.work.versions == std::vector<std::string>{"1.0"});

    h.server.extension_version = "1.1";  // same OID: an update, not a DROP and CREATE
    h.run_until([&] { return h.work.versions.size() == 2; });
    CHECK(h.work.versions == std::vector<std::string>{"1.0", "updated 1.1"});
    const int beats = h.server.heartbeats;
    h.run_until([&] { return h.server.heartbeats >= beats + 3; });
    CHECK(h.lifecycle.phase() == Phase::active);
    CHECK(h.work.attached == 1);
    CHECK(h.work.detached == 0);
    CHECK(h.server.detaches == 0);
    CHECK(h.work.versions.size() == 2);  // told once
}

TEST_CASE("lifecycle reconnects with backoff after losing the connection", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });

    h.server.reachable = false;
    h.server.drop_on_heartbeat = true;
    h.run_until([&] { return h.server.connects >= 4; });
    CHECK(h.lifecycle.phase() == Phase::connecting);
    CHECK(h.work.detached == 1);

    h.server.reachable = true;
    h.server.drop_on_heartbeat = false;
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });
    CHECK(h.work.attached == 2);
    CHECK(h.server.attaches == 2);
}

TEST_CASE("lifecycle refuses to start when max_duroxide_connections is below 2", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.server.max_duroxide = "1";
    h.lifecycle.start();
    h.run_until([&] { return h.finished.has_value(); });
    CHECK(*h.finished == 1);
    CHECK(h.server.attaches == 0);
    CHECK(h.work.attached == 0);
    CHECK(h.server.shutdowns == 1);
    CHECK(h.lifecycle.phase() == Phase::stopped);
}

TEST_CASE("a stop request while active detaches, closes the session and finishes with 0", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });

    h.lifecycle.request_stop("SIGTERM received");
    h.lifecycle.request_stop("SIGTERM received");  // idempotent
    h.run_until([&] { return h.finished.has_value(); });
    CHECK(*h.finished == 0);
    CHECK(h.work.drains == 1);
    CHECK(h.work.detached == 1);
    CHECK(h.server.shutdowns == 1);
    CHECK_FALSE(h.server.holds_lock);
    const int heartbeats = h.server.heartbeats;
    h.run_for(20ms);
    CHECK(h.server.heartbeats == heartbeats);  // nothing runs after the stop
}

TEST_CASE("a stop request while the server is unreachable finishes at once", "[daemon]") {
    Harness h;
    h.server.reachable = false;
    h.lifecycle.start();
    h.run_until([&] { return h.server.connects >= 2; });
    h.lifecycle.request_stop("SIGTERM received");
    h.run_until([&] { return h.finished.has_value(); });
    CHECK(*h.finished == 0);
    const int connects = h.server.connects;
    h.run_for(20ms);
    CHECK(h.server.connects == connects);
}

TEST_CASE("a stop waits for the work to drain, heartbeating meanwhile, before releasing the lock", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });

    h.work.hold_drain = true;
    h.lifecycle.request_stop("SIGTERM received");
    h.run_until([&] { return h.work.drains == 1; });
    const int beats = h.server.heartbeats;
    h.run_until([&] { return h.server.heartbeats >= beats + 3; });
    CHECK_FALSE(h.finished.has_value());
    CHECK(h.server.holds_lock);
    CHECK(h.work.detached == 0);

    h.server.notify("start:0123abcd");  // no new work while draining
    h.run_for(20ms);
    CHECK(h.work.wakeups.empty());

    h.work.pending_drain();
    h.run_until([&] { return h.finished.has_value(); });
    CHECK(*h.finished == 0);
    CHECK(h.work.detached == 1);
    CHECK_FALSE(h.server.holds_lock);
}

TEST_CASE("heartbeats write the steps started since the last written beat, and the HTTP gauge", "[daemon]") {
    Harness h;
    h.server.extension = true;
    h.lifecycle.start();
    h.run_until([&] { return h.lifecycle.phase() == Phase::active; });
    h.work.gauges_now = {5, 2};
    h.run_until([&] { return h.server.started_written == 5 && h.server.http_in_flight == 2; });
    // Beats without new steps add nothing.
    const int beats = h.server.heartbeats;
    h.run_until([&] { return h.server.heartbeats >= beats + 3; });
    CHECK(h.server.started_written == 5);
    // Beats that wrote nothing (lock timeout) do not lose their steps: the
    // next written beat carries them.
    h.server.skip_heartbeats = true;
    h.work.gauges_now = {12, 0};
    const int skipped = h.server.heartbeats;
    h.run_until([&] { return h.server.heartbeats >= skipped + 3; });
    CHECK(h.server.started_written == 5);
    h.server.skip_heartbeats = false;
    h.run_until([&] { return h.server.started_written == 12 && h.server.http_in_flight == 0; });
    const int after = h.server.heartbeats;
    h.run_until([&] { return h.server.heartbeats >= after + 3; });
    CHECK(h.server.started_written == 12);
}
