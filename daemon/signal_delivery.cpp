#include "daemon/signal_delivery.hpp"

#include <string>

namespace pgd::daemon {

std::vector<durable::engine::SignalWait> next_in_line(
    const std::map<durable::engine::RecordKey, durable::engine::SignalWait> &waits) {
    std::map<std::string, const durable::engine::SignalWait *> front;  // by name
    for (const auto &[key, wait] : waits) {
        auto &first = front[wait.signal_name];
        if (first == nullptr || wait.started_at < first->started_at) first = &wait;
    }
    std::vector<durable::engine::SignalWait> line;
    line.reserve(front.size());
    for (const auto &[name, wait] : front) line.push_back(*wait);
    return line;
}

}  // namespace pgd::daemon
