#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "daemon/executor.hpp"
#include "daemon/logging.hpp"
#include "daemon/schedule_store.hpp"
#include "daemon/store.hpp"

namespace pgd::daemon {

namespace {
std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }
constexpr int kDueBatch = 100;  // ticks per round; the scheduler comes back at once for more
}  // namespace

PgScheduleStore::PgScheduleStore(boost::asio::io_context &io, std::string conninfo)
    : io_(io), conninfo_(std::move(conninfo)) {}

PgScheduleStore::~PgScheduleStore() { detach(); }

void PgScheduleStore::attach(const std::string &epoch) {
    detach();
    epoch_ = epoch;
    session_ = std::make_shared<Session>();
    worker_ = std::make_unique<DbWorker>("scheduler");
}

void PgScheduleStore::detach() {
    ++generation_;
    if (worker_) {
        auto s = session_;
        worker_->post([s]() { s->conn.reset(); });
        worker_.reset();  // joins after the posted jobs
    }
    session_.reset();
}

pqxx::connection &PgScheduleStore::session(const std::shared_ptr<Session> &s) const {
    if (!s->conn || !s->conn->is_open()) s->conn = store::open_epoch_session(conninfo_, epoch_);
    return *s->conn;
}

void PgScheduleStore::earliest(std::function<void(bool, std::optional<store::ScheduleTime>)> then) {
    if (!worker_) return;
    auto s = session_;
    const auto generation = generation_;
    worker_->post([this, s, generation, then = std::move(then)]() {
        bool ok = true;
        std::optional<store::ScheduleTime> at;
        try {
            at = store::earliest_schedule_tick(session(s));
        } catch (const std::exception &e) {
            ok = false;
            s->conn.reset();
            log()->warn("schedules: could not read the next tick: {}", primary_message(e.what()));
        }
        boost::asio::post(io_, [this, generation, then, ok, at]() {
            if (generation == generation_) then(ok, at);
        });
    });
}

void PgScheduleStore::take_due(store::ScheduleTime now, store::ScheduleTime attached_at,
                               std::function<void(ScheduleRound)> then) {
    if (!worker_) return;
    auto s = session_;
    const auto generation = generation_;
    worker_->post([this, s, generation, now, attached_at, then = std::move(then)]() {
        ScheduleRound round;
        try {
            auto &conn = session(s);
            for (const auto id : store::due_schedules(conn, now, kDueBatch)) {
                store::ScheduleTick tick;
                store::TickOutcome outcome;
                try {
                    outcome = store::take_schedule_tick(conn, id, now, attached_at, tick);
                } catch (const pqxx::broken_connection &) {
                    throw;
                } catch (const std::exception &e) {
                    // One schedule's trouble stays with it (DESIGN §2.13): the
                    // others are taken; it is tried again after a backoff.
                    if (!conn.is_open()) throw;
                    log()->warn("schedules: could not take the tick of schedule {}: {}", id,
                                primary_message(e.what()));
                    round.retry_soon = true;
                    continue;
                }
                if (outcome == store::TickOutcome::taken) round.taken.push_back(std::move(tick));
                else if (outcome == store::TickOutcome::busy) round.retry_soon = true;
                else if (outcome == store::TickOutcome::epoch_lost) {
                    round.ok = false;  // detaching soon; do not spin on the ticks we may not take
                    break;
                }
            }
            round.earliest = store::earliest_schedule_tick(conn);
        } catch (const std::exception &e) {
            round.ok = false;
            if (s->conn && !s->conn->is_open()) s->conn.reset();
            log()->warn("schedules: could not take a tick: {}", primary_message(e.what()));
        }
        boost::asio::post(io_, [this, generation, then, round = std::move(round)]() mutable {
            if (generation == generation_) then(std::move(round));
        });
    });
}

}  // namespace pgd::daemon
