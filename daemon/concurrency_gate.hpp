// A counting gate with a FIFO queue: at most `limit` holders at once, the
// rest wait in arrival order (pg_durable.max_http_concurrency, SPEC §3).
//
// Pure bookkeeping on tickets, no I/O and no callbacks: the caller owns what a
// ticket stands for and starts whatever acquire / leave / set_limit report as
// admitted. That keeps the queue rules unit-testable on their own.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <vector>

namespace pgd::daemon {

class ConcurrencyGate {
public:
    using Ticket = std::uint64_t;

    explicit ConcurrencyGate(int limit);

    // Asks for a slot. True: `ticket` holds one now. False: it waits behind
    // every ticket that asked before (also when a slot is free but others
    // wait, so nobody overtakes the queue). A ticket already holding or
    // waiting keeps its place and gets the same answer as before.
    bool acquire(Ticket ticket);

    // `ticket` gives up its slot or its place in the queue (done, cancelled);
    // returns the tickets admitted as a result, oldest first. Unknown tickets
    // are ignored.
    std::vector<Ticket> leave(Ticket ticket);

    // A new limit (at least 1) applies to admissions from now on: holders
    // above a lowered limit keep their slots until they leave; a raised limit
    // admits waiting tickets at once (returned, oldest first).
    std::vector<Ticket> set_limit(int limit);

    // Forgets every holder and waiter (the client stopped).
    void clear();

    int limit() const noexcept { return limit_; }
    std::size_t holding() const noexcept { return holders_.size(); }
    std::size_t waiting() const noexcept { return queue_.size(); }
    bool holds(Ticket ticket) const { return holders_.count(ticket) != 0; }

private:
    std::vector<Ticket> admit();

    int limit_;
    std::set<Ticket> holders_;
    std::deque<Ticket> queue_;
};

}  // namespace pgd::daemon
