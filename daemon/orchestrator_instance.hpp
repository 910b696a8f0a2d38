// The orchestrator's in-memory state of one instance it runs (shared by the
// orchestrator_*.cpp files; not part of its interface).
#pragma once

#include <list>
#include <map>
#include <memory>
#include <optional>

#include "daemon/interpreter.hpp"
#include "daemon/orchestrator.hpp"
#include "daemon/store_engine.hpp"

namespace pgd::daemon {

struct Orchestrator::Instance {
    store::LoadedInstance row;
    std::unique_ptr<durable::engine::InstanceRun> run;
    // Effects not yet carried out, in order. A list: empty, it allocates
    // nothing (a std::deque allocates a map and a 512-byte block at once).
    std::list<durable::engine::Effects> queue;
    bool busy = false;  // a write batch is in flight
    // Due times of the armed timers; the orchestrator's TimerQueue holds the
    // earliest of them (docs/ARCHITECTURE.md "Timers").
    std::map<Key, durable::engine::TimePoint> timers;
    std::map<Key, durable::engine::SignalWait> waits;
    bool delivering = false;  // a signal lookup is in flight
    bool redeliver = false;   // a wake-up came meanwhile: look again after it

    // Whether the instance still waits for this step (a RACE loser does not).
    bool waits_for(const Key &step) const {
        for (const auto &running : run->running_steps())
            if (running == step) return true;
        return false;
    }

    std::optional<durable::engine::TimePoint> earliest_timer() const {
        std::optional<durable::engine::TimePoint> earliest;
        for (const auto &[key, due] : timers)
            if (!earliest || due < *earliest) earliest = due;
        return earliest;
    }
};

durable::engine::TimePoint orchestrator_now();

}  // namespace pgd::daemon
