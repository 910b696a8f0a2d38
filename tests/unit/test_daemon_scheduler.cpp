// The scheduler's policy (daemon/scheduler.*) against an in-memory fake of
// the schedule store: one timer for the earliest tick, no polling, hints
// re-arm it, a tick is taken once, ticks due before attaching are missed,
// failures back off, and a detached scheduler does nothing.
#include "catch_compat.hpp"

#include <chrono>
#include <map>

#include <boost/asio/io_context.hpp>

#include "common/schedule.hpp"
#include "daemon/scheduler.hpp"
#include "daemon/wakeup.hpp"

using namespace pgd::daemon;
using durable::schedule::TickAction;
using std::chrono::milliseconds;
using Time = store::ScheduleTime;

namespace {

Time now() { return std::chrono::system_clock::now(); }

// The rows of df._schedules that matter to the scheduler, with the store's
// transaction reduced to its decision: decide_tick, then the recorded tick.
struct FakeRow {
    std::string cron = "*/1 * * * * *";
    std::string overlap = "skip";
    bool paused = false;
    std::optional<Time> next_run_at;
    bool previous_live = false;
    int runs = 0, skipped = 0, missed = 0, cancels = 0;
    std::vector<Time> ticks_run;
};

class FakeScheduleStore final : public ScheduleStore {
public:
    explicit FakeScheduleStore(boost::asio::io_context &io) : io_(io) {}

    std::map<std::int64_t, FakeRow> rows;
    int earliest_calls = 0, rounds = 0, attaches = 0;
    bool fail = false;   // every call fails (lost session)
    std::optional<Time> attached_at_seen;

    void attach(const std::string &) override {
        ++attaches;
        ++generation_;
    }
    void detach() override { ++generation_; }
    void earliest(std::function<void(bool, std::optional<Time>)> then) override {
        ++earliest_calls;
        const auto g = generation_;
        io_.post([this, g, then] {
            if (g == generation_) then(!fail, fail ? std::nullopt : min_next());
        });
    }
    void take_due(Time t, Time attached_at, std::function<void(ScheduleRound)> then) override {
        ++rounds;
        attached_at_seen = attached_at;
        ScheduleRound round;
        if (fail) {
            round.ok = false;
        } else {
            for (auto &[id, row] : rows) {
                if (row.paused || !row.next_run_at || *row.next_run_at > t) continue;
                durable::schedule::DueTick due{row.cron, "UTC", row.overlap, *row.next_run_at, row.previous_live};
                const auto d = durable::schedule::decide_tick(due, t, attached_at);
                store::ScheduleTick tick;
                tick.id = id;
                tick.action = d.action;
                if (d.action == TickAction::run) {
                    ++row.runs;
                    row.ticks_run.push_back(*row.next_run_at);
                    if (d.cancel_previous) ++row.cancels;
                    tick.instance_id = "0000000" + std::to_string(row.runs % 10);
                } else if (d.action == TickAction::skip_overlap) {
                    ++row.skipped;
                } else {
                    ++row.missed;
                }
                row.next_run_at = d.next_run_at;
                round.taken.push_back(tick);
            }
            round.earliest = min_next();
        }
        const auto g = generation_;
        io_.post([this, g, then, round] {
            if (g == generation_) then(round);
        });
    }

private:
    std::optional<Time> min_next() const {
        std::optional<Time> best;
        for (const auto &[id, row] : rows)
            if (!row.paused && row.next_run_at && (!best || *row.next_run_at < *best)) best = row.next_run_at;
        return best;
    }
    boost::asio::io_context &io_;
    std::uint64_t generation_ = 0;
};

struct Harness {
    boost::asio::io_context io;
    FakeScheduleStore *store = nullptr;
    std::unique_ptr<Scheduler> scheduler;

    Harness() {
        auto s = std::make_unique<FakeScheduleStore>(io);
        store = s.get();
        scheduler = std::make_unique<Scheduler>(io, std::move(s));
    }
    void settle() {
        io.restart();
        io.poll();
    }
    void run_for(milliseconds d) {
        io.restart();
        io.run_for(d);
    }
};

// The first whole second at least `margin` from now.
Time next_second(milliseconds margin = milliseconds(200)) {
    const auto t = std::chrono::time_point_cast<std::chrono::seconds>(now() + margin) + std::chrono::seconds(1);
    return Time(t);
}

}  // namespace

TEST_CASE("scheduler: with no schedules it arms nothing and makes no further calls", "[scheduler]") {
    Harness h;
    h.scheduler->start("e1");
    h.settle();
    CHECK(h.store->earliest_calls == 1);
    CHECK_FALSE(h.scheduler->armed());
    h.run_for(milliseconds(300));
    CHECK(h.store->earliest_calls == 1);
    CHECK(h.store->rounds == 0);
}

TEST_CASE("scheduler: arms for the earliest tick and takes it at that time, once", "[scheduler]") {
    Harness h;
    const Time first = next_second();
    h.store->rows[1].next_run_at = first;
    h.store->rows[2].next_run_at = first + std::chrono::hours(1);
    h.store->rows[2].cron = "0 * * * *";
    h.scheduler->start("e1");
    h.settle();
    REQUIRE(h.scheduler->armed_at() == first);
    CHECK(h.store->rounds == 0);  // not before its time
    // Run until two every-second ticks have been taken.
    const auto deadline = now() + std::chrono::seconds(5);
    while (h.store->rows[1].runs < 2 && now() < deadline) h.run_for(milliseconds(50));
    h.settle();  // the round's answer
    REQUIRE(h.store->rows[1].runs == 2);
    CHECK(h.store->rows[1].ticks_run[0] == first);
    CHECK(h.store->rows[1].ticks_run[1] == first + std::chrono::seconds(1));
    CHECK(h.store->rows[2].runs == 0);
    // One round per tick: no polling between them.
    CHECK(h.store->rounds <= 3);
    CHECK(h.scheduler->armed_at() == first + std::chrono::seconds(2));
    CHECK(h.scheduler->ticks_started() == 2);
}

TEST_CASE("scheduler: a tick that came due before attaching is missed and the next one is armed", "[scheduler]") {
    Harness h;
    const Time past = Time(std::chrono::time_point_cast<std::chrono::seconds>(now() - std::chrono::seconds(30)));
    h.store->rows[1].next_run_at = past;
    h.scheduler->start("e1");
    h.settle();  // earliest -> past -> timer fires at once
    h.run_for(milliseconds(100));
    CHECK(h.store->rows[1].missed == 1);
    CHECK(h.store->rows[1].runs == 0);
    REQUIRE(h.store->rows[1].next_run_at.has_value());
    CHECK(*h.store->rows[1].next_run_at > now() - milliseconds(100));
    CHECK(h.scheduler->armed_at() == h.store->rows[1].next_run_at);
}

TEST_CASE("scheduler: a hint re-reads the rows and re-arms for a new earlier tick", "[scheduler]") {
    Harness h;
    h.store->rows[1].cron = "0 0 1 1 *";
    h.store->rows[1].next_run_at = now() + std::chrono::hours(24 * 30);
    h.scheduler->start("e1");
    h.settle();
    const auto far = h.scheduler->armed_at();
    // df.schedule committed a new schedule due sooner: NOTIFY 'schedule'.
    const Time soon = next_second();
    h.store->rows[2].next_run_at = soon;
    h.scheduler->on_hint();
    h.settle();
    CHECK(h.scheduler->armed_at() == soon);
    CHECK(h.scheduler->armed_at() != far);
    const auto deadline = now() + std::chrono::seconds(3);
    while (h.store->rows[2].runs < 1 && now() < deadline) h.run_for(milliseconds(50));
    CHECK(h.store->rows[2].runs == 1);
    // Unschedule (the row goes) then a hint: the timer follows.
    h.store->rows.erase(2);
    h.scheduler->on_hint();
    h.settle();
    CHECK(h.scheduler->armed_at() == h.store->rows[1].next_run_at);
}

TEST_CASE("scheduler: hints while a call is in flight are coalesced into one re-read", "[scheduler]") {
    Harness h;
    h.scheduler->start("e1");  // earliest() in flight
    for (int i = 0; i < 1000; ++i) h.scheduler->on_hint();
    h.settle();
    CHECK(h.store->earliest_calls == 2);
}

TEST_CASE("scheduler: overlap policies through the store's decision", "[scheduler]") {
    Harness h;
    const Time first = next_second();
    for (auto [id, overlap] : {std::pair{1, "skip"}, std::pair{2, "allow"}, std::pair{3, "cancel_previous"}}) {
        h.store->rows[id].overlap = overlap;
        h.store->rows[id].previous_live = true;  // a slow previous run
        h.store->rows[id].next_run_at = first;
    }
    h.scheduler->start("e1");
    const auto deadline = now() + std::chrono::seconds(5);
    while (h.store->rows[2].runs < 2 && now() < deadline) h.run_for(milliseconds(50));
    CHECK(h.store->rows[1].runs == 0);
    CHECK(h.store->rows[1].skipped >= 2);
    CHECK(h.store->rows[2].runs == 2);
    CHECK(h.store->rows[3].runs >= 2);
    CHECK(h.store->rows[3].cancels == h.store->rows[3].runs);
}

TEST_CASE("scheduler: a failing store backs off instead of spinning", "[scheduler]") {
    Harness h;
    h.store->fail = true;
    h.scheduler->start("e1");
    h.run_for(milliseconds(1500));
    // The first read and at most one retry per second.
    CHECK(h.store->earliest_calls <= 3);
    h.store->fail = false;
    h.store->rows[1].next_run_at = next_second();
    const auto deadline = now() + std::chrono::seconds(4);
    while (h.store->rows[1].runs < 1 && now() < deadline) h.run_for(milliseconds(50));
    CHECK(h.store->rows[1].runs == 1);
}

TEST_CASE("scheduler: stopped, it takes no tick and late answers are dropped", "[scheduler]") {
    Harness h;
    h.store->rows[1].next_run_at = next_second(milliseconds(50));
    h.scheduler->start("e1");
    h.settle();
    REQUIRE(h.scheduler->armed());
    h.scheduler->stop();
    CHECK_FALSE(h.scheduler->armed());
    h.run_for(milliseconds(1500));
    CHECK(h.store->rows[1].runs == 0);
    CHECK(h.store->rounds == 0);
    // A new attachment starts over with a fresh attach time.
    h.scheduler->start("e2");
    CHECK(h.store->attaches == 2);
}

TEST_CASE("wake-ups: 'schedule' sets the schedules flag and names no instance", "[scheduler]") {
    WakeupInbox inbox;
    inbox.add("schedule");
    inbox.add("schedule");
    inbox.add("schedules");  // not the exact word: malformed
    auto batch = inbox.take();
    CHECK(batch.schedules);
    CHECK(batch.ids.empty());
    CHECK(batch.malformed == 1);
    CHECK_FALSE(batch.empty());
    WakeupInbox other;
    other.merge(batch);
    CHECK(other.take().schedules);
    CHECK(inbox.take().empty());
}

TEST_CASE("scheduler: a schedule left behind (locked by a user) is retried after a backoff, not in a loop",
          "[scheduler]") {
    // A store whose due schedule stays due: every round reports it locked.
    struct LockedStore final : ScheduleStore {
        boost::asio::io_context &io;
        int rounds = 0;
        explicit LockedStore(boost::asio::io_context &i) : io(i) {}
        void attach(const std::string &) override {}
        void detach() override {}
        void earliest(std::function<void(bool, std::optional<Time>)> then) override {
            io.post([then] { then(true, now() - std::chrono::seconds(1)); });
        }
        void take_due(Time, Time, std::function<void(ScheduleRound)> then) override {
            ++rounds;
            ScheduleRound r;
            r.retry_soon = true;
            r.earliest = now() - std::chrono::seconds(1);
            io.post([then, r] { then(r); });
        }
    };
    boost::asio::io_context io;
    auto store = std::make_unique<LockedStore>(io);
    auto *raw = store.get();
    Scheduler scheduler(io, std::move(store));
    scheduler.start("e1");
    io.run_for(milliseconds(1500));
    // The first round at once, the next after 1 s, then 2 s: not thousands.
    CHECK(raw->rounds >= 1);
    CHECK(raw->rounds <= 2);
    scheduler.stop();
}
