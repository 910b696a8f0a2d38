// The orchestrator's in-memory state of one instance it runs (shared by the
// orchestrator_*.cpp files; not part of its interface).
#pragma once

#include <deque>
#include <map>
#include <memory>

#include <boost/asio/system_timer.hpp>

#include "daemon/interpreter.hpp"
#include "daemon/orchestrator.hpp"
#include "daemon/store_engine.hpp"

namespace pgd::daemon {

struct Orchestrator::Instance {
    store::LoadedInstance row;
    std::unique_ptr<durable::engine::InstanceRun> run;
    std::deque<durable::engine::Effects> queue;  // effects not yet carried out, in order
    bool busy = false;                           // a write batch is in flight
    std::map<Key, std::unique_ptr<boost::asio::system_timer>> timers;
    std::map<Key, durable::engine::SignalWait> waits;
    bool delivering = false;  // a signal lookup is in flight
    bool redeliver = false;   // a wake-up came meanwhile: look again after it

    // Whether the instance still waits for this step (a RACE loser does not).
    bool waits_for(const Key &step) const {
        for (const auto &running : run->running_steps())
            if (running == step) return true;
        return false;
    }
};

durable::engine::TimePoint orchestrator_now();

}  // namespace pgd::daemon
