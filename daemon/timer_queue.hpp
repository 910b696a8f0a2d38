// The orchestrator's one timer queue: at most one due time per instance,
// earliest first (docs/ARCHITECTURE.md "Timers"). One system_timer of the
// orchestrator waits for the earliest entry, instead of one Asio timer (and
// its pending wait operation) per sleeping instance.
//
// An entry is a hint, like a wake-up (DESIGN §2.12): when it comes due the
// orchestrator looks at the instance it names (its timers in memory, or the
// rows of a parked instance) and decides from those. So the queue needs no
// exact bookkeeping of every timer: the instance's earliest one is enough.
//
// Pure: no Asio, no clock of its own (unit-tested with made-up times).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace pgd::daemon {

class TimerQueue {
public:
    using TimePoint = std::chrono::system_clock::time_point;

    // Sets the due time of `id`, replacing the one it had.
    void schedule(const std::string &id, TimePoint due);
    // Removes the entry of `id`; false when it had none.
    bool cancel(const std::string &id);
    // The due time of `id`, if it has an entry.
    std::optional<TimePoint> due_of(const std::string &id) const;
    // The earliest due time, if any.
    std::optional<TimePoint> next() const;
    // Removes and returns the ids due at `now` (due time <= now), earliest
    // first; equal due times in the order they were scheduled.
    std::vector<std::string> take_due(TimePoint now);

    // Every id with an entry, in no particular order.
    std::vector<std::string> ids() const;

    std::size_t size() const noexcept { return by_id_.size(); }
    bool empty() const noexcept { return by_id_.empty(); }
    void clear();

private:
    struct Entry {
        TimePoint due;
        std::uint64_t seq;  // ties: first scheduled, first due
        std::string id;
        bool operator<(const Entry &other) const {
            if (due != other.due) return due < other.due;
            return seq < other.seq;
        }
    };
    struct Slot {
        TimePoint due;
        std::uint64_t seq;
    };
    std::set<Entry> by_due_;
    std::unordered_map<std::string, Slot> by_id_;
    std::uint64_t next_seq_ = 0;
};

}  // namespace pgd::daemon
