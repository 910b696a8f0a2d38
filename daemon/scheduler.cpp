#include "daemon/scheduler.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "daemon/logging.hpp"

namespace pgd::daemon {

namespace {
std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }
}  // namespace

Scheduler::Scheduler(boost::asio::io_context &io, std::unique_ptr<ScheduleStore> store, Clock clock)
    : io_(io), store_(std::move(store)), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start(const std::string &epoch) {
    stop();
    running_ = true;
    attached_at_ = clock_();
    store_->attach(epoch);
    refresh();
}

void Scheduler::stop() {
    if (!running_) return;
    running_ = false;
    ++generation_;
    busy_ = hint_pending_ = due_pending_ = false;
    failures_ = 0;
    armed_at_.reset();
    if (timer_) timer_->cancel();
    store_->detach();
}

void Scheduler::on_hint() {
    if (!running_) return;
    if (busy_) {
        hint_pending_ = true;
        return;
    }
    refresh();
}

// Reads the earliest tick and arms for it.
void Scheduler::refresh() {
    busy_ = true;
    const auto generation = generation_;
    store_->earliest([this, generation](bool ok, std::optional<store::ScheduleTime> at) {
        if (generation != generation_ || !running_) return;
        busy_ = false;
        if (!ok) at = clock_() + retry_delay();
        else failures_ = 0;
        arm(at);
        settle();
    });
}

// Takes every due tick, then arms for the next.
void Scheduler::round() {
    busy_ = true;
    const auto generation = generation_;
    store_->take_due(clock_(), attached_at_, [this, generation](ScheduleRound r) {
        if (generation != generation_ || !running_) return;
        busy_ = false;
        for (const auto &tick : r.taken) {
            using durable::schedule::TickAction;
            if (tick.instance_id) {
                ++ticks_started_;
                log()->debug("schedule '{}' of {}: started instance {}{}", tick.name, tick.owner, *tick.instance_id,
                             tick.cancelled ? " (cancelled " + *tick.cancelled + ")" : std::string());
            } else if (tick.error) {
                log()->warn("schedule '{}' of {}: could not start its run: {}", tick.name, tick.owner, *tick.error);
            } else if (tick.action == TickAction::skip_overlap) {
                log()->debug("schedule '{}' of {}: tick skipped, the previous run is still live", tick.name,
                             tick.owner);
            } else if (tick.action == TickAction::missed) {
                log()->info("schedule '{}' of {}: tick missed while no daemon ran, not caught up", tick.name,
                            tick.owner);
            }
        }
        auto at = r.earliest;
        if (!r.ok || r.retry_soon) {
            const auto t = clock_();
            const auto retry = t + retry_delay();
            // A tick left behind is still due (in the past): wait the backoff, do not spin.
            if (!r.ok || !at || *at > retry || *at <= t) at = retry;
        } else {
            failures_ = 0;
        }
        arm(at);
        settle();
    });
}

std::chrono::milliseconds Scheduler::retry_delay() {
    auto delay = kRetryDelay;
    for (int i = 0; i < failures_ && delay < kMaxRetryDelay; ++i) delay *= 2;
    ++failures_;
    return std::min(delay, kMaxRetryDelay);
}

void Scheduler::settle() {
    if (busy_ || !running_) return;
    if (hint_pending_) {
        hint_pending_ = false;
        refresh();
    } else if (due_pending_) {
        due_pending_ = false;
        round();
    }
}

void Scheduler::arm(std::optional<store::ScheduleTime> at) {
    armed_at_ = at;
    if (!at) {
        if (timer_) timer_->cancel();
        return;
    }
    if (!timer_) timer_ = std::make_unique<boost::asio::system_timer>(io_);
    timer_->expires_at(*at);
    const auto generation = generation_;
    timer_->async_wait([this, generation](const boost::system::error_code &ec) {
        if (ec || generation != generation_ || !running_) return;
        armed_at_.reset();
        if (busy_) {
            due_pending_ = true;
            return;
        }
        round();
    });
}

}  // namespace pgd::daemon
