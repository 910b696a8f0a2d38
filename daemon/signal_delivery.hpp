// Which waits take the next queued signals (SPEC §13): per signal name, the
// wait that started first takes the oldest signal of that name. Pure,
// unit-tested; the orchestrator consumes the signals through its store.
#pragma once

#include <map>
#include <vector>

#include "daemon/interpreter.hpp"

namespace pgd::daemon {

// The front of each name's line among an instance's waits (one per name,
// ties by node key, so the choice never depends on timing).
std::vector<durable::engine::SignalWait> next_in_line(
    const std::map<durable::engine::RecordKey, durable::engine::SignalWait> &waits);

}  // namespace pgd::daemon
