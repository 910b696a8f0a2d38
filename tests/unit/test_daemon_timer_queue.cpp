// The orchestrator's timer queue (daemon/timer_queue.hpp): one due time per
// instance, earliest first, with made-up times.
#include "catch_compat.hpp"

#include "daemon/timer_queue.hpp"

using pgd::daemon::TimerQueue;
using std::chrono::seconds;

namespace {
const TimerQueue::TimePoint t0 = TimerQueue::TimePoint{} + std::chrono::hours(24 * 365 * 50);
using Ids = std::vector<std::string>;
}  // namespace

TEST_CASE("timer queue: due entries come out earliest first, the rest stay", "[timer_queue]") {
    TimerQueue q;
    CHECK_FALSE(q.next());
    CHECK(q.take_due(t0).empty());
    q.schedule("c", t0 + seconds(30));
    q.schedule("a", t0 + seconds(10));
    q.schedule("b", t0 + seconds(20));
    CHECK(q.size() == 3);
    CHECK(q.next() == t0 + seconds(10));
    CHECK(q.take_due(t0 + seconds(9)).empty());
    CHECK(q.take_due(t0 + seconds(20)) == Ids{"a", "b"});  // due at exactly now counts
    CHECK(q.size() == 1);
    CHECK(q.next() == t0 + seconds(30));
    CHECK_FALSE(q.due_of("a"));
    CHECK(q.due_of("c") == t0 + seconds(30));
    CHECK(q.take_due(t0 + seconds(3600)) == Ids{"c"});
    CHECK(q.empty());
    CHECK_FALSE(q.next());
}

TEST_CASE("timer queue: equal due times come out in the order they were scheduled", "[timer_queue]") {
    TimerQueue q;
    for (const char *id : {"x", "m", "a", "z"}) q.schedule(id, t0);
    q.schedule("early", t0 - seconds(1));
    CHECK(q.take_due(t0) == Ids{"early", "x", "m", "a", "z"});
    SECTION("scheduling an entry again at the same time keeps its place") {
        q.schedule("x", t0);
        q.schedule("m", t0);
        q.schedule("x", t0);
        CHECK(q.take_due(t0) == Ids{"x", "m"});
    }
}

TEST_CASE("timer queue: a due time in the past is due at once", "[timer_queue]") {
    TimerQueue q;
    q.schedule("later", t0 + seconds(5));
    q.schedule("overdue", t0 - seconds(3600));
    CHECK(q.next() == t0 - seconds(3600));
    CHECK(q.take_due(t0) == Ids{"overdue"});
    CHECK(q.next() == t0 + seconds(5));
}

TEST_CASE("timer queue: scheduling again replaces the due time (one entry per id)", "[timer_queue]") {
    TimerQueue q;
    q.schedule("a", t0 + seconds(10));
    q.schedule("b", t0 + seconds(20));
    SECTION("earlier") {
        q.schedule("b", t0 + seconds(5));
        CHECK(q.size() == 2);
        CHECK(q.next() == t0 + seconds(5));
        CHECK(q.take_due(t0 + seconds(10)) == Ids{"b", "a"});
    }
    SECTION("later: the old due time no longer fires") {
        q.schedule("a", t0 + seconds(60));
        CHECK(q.size() == 2);
        CHECK(q.take_due(t0 + seconds(30)) == Ids{"b"});
        CHECK(q.due_of("a") == t0 + seconds(60));
        CHECK(q.take_due(t0 + seconds(60)) == Ids{"a"});
    }
    SECTION("after it was taken: armed again") {
        CHECK(q.take_due(t0 + seconds(10)) == Ids{"a"});
        q.schedule("a", t0 + seconds(10));
        CHECK(q.take_due(t0 + seconds(10)) == Ids{"a"});
    }
}

TEST_CASE("timer queue: cancel removes the entry and only it", "[timer_queue]") {
    TimerQueue q;
    q.schedule("a", t0);
    q.schedule("b", t0);
    q.schedule("c", t0 + seconds(1));
    CHECK(q.cancel("a"));
    CHECK_FALSE(q.cancel("a"));
    CHECK_FALSE(q.cancel("never"));
    CHECK(q.size() == 2);
    CHECK_FALSE(q.due_of("a"));
    CHECK(q.take_due(t0 + seconds(1)) == Ids{"b", "c"});
    SECTION("cancelling the earliest moves next() on") {
        q.schedule("x", t0);
        q.schedule("y", t0 + seconds(7));
        CHECK(q.cancel("x"));
        CHECK(q.next() == t0 + seconds(7));
        q.clear();
        CHECK(q.empty());
        CHECK_FALSE(q.next());
        CHECK(q.take_due(t0 + seconds(3600)).empty());
    }
}
