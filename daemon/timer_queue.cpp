#include "daemon/timer_queue.hpp"

namespace pgd::daemon {

void TimerQueue::schedule(const std::string &id, TimePoint due) {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) {
        if (it->second.due == due) return;  // unchanged: keeps its place among equals
        by_due_.erase(Entry{it->second.due, it->second.seq, {}});
        it->second = Slot{due, next_seq_};
    } else {
        by_id_.emplace(id, Slot{due, next_seq_});
    }
    by_due_.insert(Entry{due, next_seq_, id});
    ++next_seq_;
}

bool TimerQueue::cancel(const std::string &id) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return false;
    by_due_.erase(Entry{it->second.due, it->second.seq, {}});
    by_id_.erase(it);
    return true;
}

std::optional<TimerQueue::TimePoint> TimerQueue::due_of(const std::string &id) const {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return std::nullopt;
    return it->second.due;
}

std::optional<TimerQueue::TimePoint> TimerQueue::next() const {
    if (by_due_.empty()) return std::nullopt;
    return by_due_.begin()->due;
}

std::vector<std::string> TimerQueue::take_due(TimePoint now) {
    std::vector<std::string> due;
    while (!by_due_.empty() && by_due_.begin()->due <= now) {
        auto node = by_due_.extract(by_due_.begin());
        by_id_.erase(node.value().id);
        due.push_back(std::move(node.value().id));
    }
    return due;
}

std::vector<std::string> TimerQueue::ids() const {
    std::vector<std::string> out;
    out.reserve(by_id_.size());
    for (const auto &[id, slot] : by_id_) out.push_back(id);
    return out;
}

void TimerQueue::clear() {
    by_due_.clear();
    by_id_.clear();
}

}  // namespace pgd::daemon
