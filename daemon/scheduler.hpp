// The scheduler (SPEC §19.4): while the daemon is attached it takes each
// schedule's ticks as they come due. One timer, armed for the earliest
// next_run_at of all schedules (no polling: an idle daemon with no due tick
// does nothing); re-armed after every round and whenever a df.schedule,
// df.unschedule, df.pause_schedule or df.resume_schedule commits (NOTIFY
// df_wakeup, 'schedule' — a hint: the rows are read again, DESIGN §2.12).
// What a tick does (run, skip, missed; cancel the previous run) is decided
// per schedule by durable::schedule::decide_tick inside the store's
// transaction that records it. Lives on the io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/system_timer.hpp>

#include "daemon/schedule_store.hpp"

namespace pgd::daemon {

class Scheduler {
public:
    using Clock = std::function<store::ScheduleTime()>;

    Scheduler(boost::asio::io_context &io, std::unique_ptr<ScheduleStore> store, Clock clock = {});
    ~Scheduler();
    Scheduler(const Scheduler &) = delete;
    Scheduler &operator=(const Scheduler &) = delete;

    // Attached with worker epoch `epoch`: ticks that came due before now are
    // missed (not caught up), the rest are taken as they come due.
    void start(const std::string &epoch);
    // Detached: no more ticks; calls in flight are dropped.
    void stop();
    // A schedule changed (a hint): read the earliest tick again.
    void on_hint();

    // For tests and logs.
    bool armed() const { return armed_at_.has_value(); }
    std::optional<store::ScheduleTime> armed_at() const { return armed_at_; }
    std::uint64_t ticks_started() const { return ticks_started_; }

    // Delay before trying again after a failed round or a locked schedule,
    // doubling while failures go on, up to kMaxRetryDelay.
    static constexpr std::chrono::milliseconds kRetryDelay{1000};
    static constexpr std::chrono::milliseconds kMaxRetryDelay{30000};

private:
    void refresh();
    void round();
    void arm(std::optional<store::ScheduleTime> at);
    void settle();

    boost::asio::io_context &io_;
    std::unique_ptr<ScheduleStore> store_;
    Clock clock_;
    bool running_ = false;
    std::uint64_t generation_ = 0;
    store::ScheduleTime attached_at_{};
    bool busy_ = false;          // one store call in flight at a time
    bool hint_pending_ = false;  // a hint arrived while busy
    bool due_pending_ = false;   // the timer fired while busy
    std::optional<store::ScheduleTime> armed_at_;
    std::unique_ptr<boost::asio::system_timer> timer_;
    std::uint64_t ticks_started_ = 0;
    int failures_ = 0;  // rounds in a row that failed or left a schedule behind

    std::chrono::milliseconds retry_delay();
};

}  // namespace pgd::daemon
