#include "daemon/retention_sweeper.hpp"

#include <cstdlib>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "daemon/executor.hpp"
#include "daemon/logging.hpp"
#include "daemon/store.hpp"

namespace pgd::daemon {

namespace {

std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }

// About once a minute; PGD_MAINTENANCE_INTERVAL_MS overrides it (tests).
std::chrono::milliseconds sweep_interval() {
    if (const char *env = std::getenv("PGD_MAINTENANCE_INTERVAL_MS")) {
        const long ms = std::strtol(env, nullptr, 10);
        if (ms > 0) return std::chrono::milliseconds(ms);
    }
    return std::chrono::seconds(60);
}

constexpr auto kSweepBudget = std::chrono::seconds(2);   // per sweep, in small batches
constexpr auto kBacklogDelay = std::chrono::seconds(1);  // next sweep when work remains

}  // namespace

RetentionSweeper::RetentionSweeper(boost::asio::io_context &io, std::string conninfo)
    : io_(io), conninfo_(std::move(conninfo)) {}

RetentionSweeper::~RetentionSweeper() { stop(); }

void RetentionSweeper::start(std::chrono::milliseconds delay, const std::string &epoch) {
    running_ = true;
    epoch_ = epoch;
    schedule(delay);
}

void RetentionSweeper::stop() {
    running_ = false;
    ++generation_;
    if (timer_) timer_->cancel();
    if (worker_) {
        auto slot = conn_;
        worker_->post([slot]() { slot->reset(); });
        worker_.reset();  // joins after the posted jobs (a sweep ends within its budget)
    }
}

void RetentionSweeper::schedule(std::chrono::milliseconds delay) {
    if (!timer_) timer_ = std::make_unique<boost::asio::steady_timer>(io_);
    timer_->expires_after(delay);
    const auto generation = generation_;
    timer_->async_wait([this, generation](const boost::system::error_code &ec) {
        if (ec || generation != generation_ || !running_) return;
        sweep();
    });
}

void RetentionSweeper::sweep() {
    if (!worker_) {
        worker_ = std::make_unique<DbWorker>("maintenance");
        conn_ = std::make_shared<std::unique_ptr<pqxx::connection>>();
    }
    const auto limits = limits_;
    const auto generation = generation_;
    auto conn_slot = conn_;
    const std::string conninfo = conninfo_;
    const std::string epoch = epoch_;
    worker_->post([this, limits, generation, conn_slot, conninfo, epoch]() {
        bool backlog = false;
        store::RetentionBatch total;
        try {
            if (!*conn_slot) {
                *conn_slot = store::open_engine_session(conninfo, epoch);
            }
            const auto deadline = std::chrono::steady_clock::now() + kSweepBudget;
            for (;;) {
                const auto batch = store::retention_batch(**conn_slot, limits);
                total.instances += batch.instances;
                total.executions += batch.executions;
                total.iterations += batch.iterations;
                backlog = batch.instances + batch.executions + batch.iterations > 0;
                if (!backlog || std::chrono::steady_clock::now() >= deadline) break;
            }
        } catch (const pqxx::broken_connection &e) {
            conn_slot->reset();
            log()->warn("retention sweep failed: {}", primary_message(e.what()));
        } catch (const std::exception &e) {
            log()->warn("retention sweep failed: {}", primary_message(e.what()));
        }
        if (total.instances + total.executions + total.iterations > 0)
            log()->debug("retention: deleted {} instance(s), {} past execution(s), {} old iteration row(s)",
                         total.instances, total.executions, total.iterations);
        boost::asio::post(io_, [this, generation, backlog]() {
            if (generation != generation_ || !running_) return;
            schedule(backlog ? std::chrono::milliseconds(kBacklogDelay) : sweep_interval());
        });
    });
}

}  // namespace pgd::daemon
