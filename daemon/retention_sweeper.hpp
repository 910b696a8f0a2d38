// Retention (SPEC §17, DESIGN §2.8): terminal instances past retention_days
// or beyond retention_max_instances, and loop history a lowered
// history_executions left behind, deleted in small batches on a connection
// of its own, soon after attaching and then about once a minute (sooner
// while a backlog remains). A timer, not polling for work. Loops trim their
// own history as they go (Effects::trims); this sweep only catches up.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <pqxx/pqxx>

#include "daemon/db_worker.hpp"
#include "daemon/store_engine.hpp"

namespace pgd::daemon {

class RetentionSweeper {
public:
    RetentionSweeper(boost::asio::io_context &io, std::string conninfo);
    ~RetentionSweeper();
    RetentionSweeper(const RetentionSweeper &) = delete;
    RetentionSweeper &operator=(const RetentionSweeper &) = delete;

    // Settings in force; the next sweep uses them.
    void configure(const store::RetentionLimits &limits) { limits_ = limits; }
    // Attached with worker epoch `epoch` (it fences every delete): the first
    // sweep after `delay`, then on its own schedule.
    void start(std::chrono::milliseconds delay, const std::string &epoch);
    // Detached: no more sweeps; a sweep in flight ends within its budget.
    void stop();

private:
    void schedule(std::chrono::milliseconds delay);
    void sweep();

    boost::asio::io_context &io_;
    std::string conninfo_;
    std::string epoch_;
    store::RetentionLimits limits_;
    bool running_ = false;
    std::uint64_t generation_ = 0;  // bumps on stop: a late sweep of an old attachment schedules nothing
    std::unique_ptr<boost::asio::steady_timer> timer_;
    std::unique_ptr<DbWorker> worker_;
    std::shared_ptr<std::unique_ptr<pqxx::connection>> conn_;  // touched by worker_ jobs only
};

}  // namespace pgd::daemon
