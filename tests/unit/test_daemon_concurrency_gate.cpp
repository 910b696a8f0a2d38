// The HTTP concurrency gate: slots, FIFO waiting, cancellation, limit changes.
#include <vector>

#include "catch_compat.hpp"

#include "daemon/concurrency_gate.hpp"

using namespace pgd::daemon;
using Tickets = std::vector<ConcurrencyGate::Ticket>;

TEST_CASE("the gate admits up to its limit and queues the rest in arrival order", "[daemon][http]") {
    ConcurrencyGate gate(2);
    CHECK(gate.acquire(1));
    CHECK(gate.acquire(2));
    CHECK_FALSE(gate.acquire(3));
    CHECK_FALSE(gate.acquire(4));
    CHECK_FALSE(gate.acquire(5));
    CHECK(gate.holding() == 2);
    CHECK(gate.waiting() == 3);

    CHECK(gate.leave(2) == Tickets{3});
    CHECK(gate.holds(3));
    CHECK(gate.leave(1) == Tickets{4});
    CHECK(gate.leave(3) == Tickets{5});
    CHECK(gate.leave(4).empty());
    CHECK(gate.leave(5).empty());
    CHECK(gate.holding() == 0);
    CHECK(gate.waiting() == 0);
    CHECK(gate.acquire(6));
}

TEST_CASE("a freed slot goes to the oldest waiter, never to a newcomer", "[daemon][http]") {
    ConcurrencyGate gate(1);
    CHECK(gate.acquire(1));
    CHECK_FALSE(gate.acquire(2));
    // A retry of 1 re-queues behind 2 once 1 has left.
    CHECK(gate.leave(1) == Tickets{2});
    CHECK_FALSE(gate.acquire(1));
    CHECK_FALSE(gate.acquire(7));
    CHECK(gate.leave(2) == Tickets{1});
    CHECK(gate.leave(1) == Tickets{7});
}

TEST_CASE("asking twice keeps a ticket's slot or place", "[daemon][http]") {
    ConcurrencyGate gate(1);
    CHECK(gate.acquire(1));
    CHECK(gate.acquire(1));
    CHECK(gate.holding() == 1);
    CHECK_FALSE(gate.acquire(2));
    CHECK_FALSE(gate.acquire(3));
    CHECK_FALSE(gate.acquire(2));
    CHECK(gate.waiting() == 2);
    CHECK(gate.leave(1) == Tickets{2});
}

TEST_CASE("a cancelled waiter leaves the queue without freeing or taking a slot", "[daemon][http]") {
    ConcurrencyGate gate(1);
    CHECK(gate.acquire(1));
    CHECK_FALSE(gate.acquire(2));
    CHECK_FALSE(gate.acquire(3));
    CHECK(gate.leave(2).empty());
    CHECK(gate.holding() == 1);
    CHECK(gate.waiting() == 1);
    CHECK(gate.leave(1) == Tickets{3});
    CHECK(gate.leave(42).empty());  // unknown: ignored
    CHECK(gate.holding() == 1);
}

TEST_CASE("a new limit applies to admissions from then on", "[daemon][http]") {
    ConcurrencyGate gate(3);
    for (ConcurrencyGate::Ticket t = 1; t <= 3; ++t) CHECK(gate.acquire(t));
    for (ConcurrencyGate::Ticket t = 4; t <= 7; ++t) CHECK_FALSE(gate.acquire(t));

    SECTION("lowered: holders keep their slots, nobody moves up until below the new limit") {
        CHECK(gate.set_limit(1).empty());
        CHECK(gate.holding() == 3);
        CHECK(gate.leave(1).empty());
        CHECK(gate.leave(2).empty());
        CHECK(gate.leave(3) == Tickets{4});
        CHECK(gate.leave(4) == Tickets{5});
    }
    SECTION("raised: waiters are admitted at once, oldest first") {
        CHECK(gate.set_limit(5) == Tickets{4, 5});
        CHECK(gate.holding() == 5);
        CHECK(gate.leave(1) == Tickets{6});
    }
    SECTION("below 1 counts as 1") {
        CHECK(gate.set_limit(0).empty());
        CHECK(gate.limit() == 1);
    }
    SECTION("clear forgets everyone") {
        gate.clear();
        CHECK(gate.holding() == 0);
        CHECK(gate.waiting() == 0);
        CHECK(gate.acquire(8));
    }
}
