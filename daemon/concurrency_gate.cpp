#include "daemon/concurrency_gate.hpp"

#include <algorithm>

namespace pgd::daemon {

ConcurrencyGate::ConcurrencyGate(int limit) : limit_(std::max(limit, 1)) {}

bool ConcurrencyGate::acquire(Ticket ticket) {
    if (holders_.count(ticket) != 0) return true;
    if (std::find(queue_.begin(), queue_.end(), ticket) != queue_.end()) return false;
    if (queue_.empty() && holders_.size() < static_cast<std::size_t>(limit_)) {
        holders_.insert(ticket);
        return true;
    }
    queue_.push_back(ticket);
    return false;
}

std::vector<ConcurrencyGate::Ticket> ConcurrencyGate::leave(Ticket ticket) {
    if (holders_.erase(ticket) == 0) {
        // A waiter leaving frees no slot, so nobody else moves up.
        queue_.erase(std::remove(queue_.begin(), queue_.end(), ticket), queue_.end());
        return {};
    }
    return admit();
}

std::vector<ConcurrencyGate::Ticket> ConcurrencyGate::set_limit(int limit) {
    limit_ = std::max(limit, 1);
    return admit();
}

void ConcurrencyGate::clear() {
    holders_.clear();
    queue_.clear();
}

std::vector<ConcurrencyGate::Ticket> ConcurrencyGate::admit() {
    std::vector<Ticket> admitted;
    while (!queue_.empty() && holders_.size() < static_cast<std::size_t>(limit_)) {
        admitted.push_back(queue_.front());
        holders_.insert(queue_.front());
        queue_.pop_front();
    }
    return admitted;
}

}  // namespace pgd::daemon
