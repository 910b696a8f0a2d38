// What the scheduler asks of the database (SPEC §19.4). Every call is
// asynchronous: its statements run after those of every earlier call (one
// session, in order) and the callback runs on the io thread. PgScheduleStore
// is the real one (store_schedules.hpp holds its SQL); the unit tests keep
// the same rows in memory (tests/unit/test_daemon_scheduler.cpp).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <pqxx/pqxx>

#include "daemon/db_worker.hpp"
#include "daemon/store_schedules.hpp"

namespace pgd::daemon {

struct ScheduleRound {
    bool ok = true;          // false: the session failed (logged); try again after a backoff
    bool retry_soon = false; // some due schedule was locked by someone else
    std::vector<store::ScheduleTick> taken;
    std::optional<store::ScheduleTime> earliest;  // after this round
};

class ScheduleStore {
public:
    virtual ~ScheduleStore() = default;
    // A new attachment: `epoch` fences every write.
    virtual void attach(const std::string &epoch) = 0;
    // Drops the session; callbacks of calls in flight never run.
    virtual void detach() = 0;
    // The earliest next_run_at (nullopt: none, or ok = false on failure).
    virtual void earliest(std::function<void(bool ok, std::optional<store::ScheduleTime>)> then) = 0;
    // Takes every tick due at `now` (each in its own transaction), then reads the earliest.
    virtual void take_due(store::ScheduleTime now, store::ScheduleTime attached_at,
                          std::function<void(ScheduleRound)> then) = 0;
};

class PgScheduleStore final : public ScheduleStore {
public:
    PgScheduleStore(boost::asio::io_context &io, std::string conninfo);
    ~PgScheduleStore() override;
    PgScheduleStore(const PgScheduleStore &) = delete;
    PgScheduleStore &operator=(const PgScheduleStore &) = delete;

    void attach(const std::string &epoch) override;
    void detach() override;
    void earliest(std::function<void(bool, std::optional<store::ScheduleTime>)> then) override;
    void take_due(store::ScheduleTime now, store::ScheduleTime attached_at,
                  std::function<void(ScheduleRound)> then) override;

private:
    struct Session {
        std::unique_ptr<pqxx::connection> conn;
    };
    pqxx::connection &session(const std::shared_ptr<Session> &s) const;

    boost::asio::io_context &io_;
    std::string conninfo_;
    std::string epoch_;
    std::uint64_t generation_ = 0;  // bumps on detach
    std::shared_ptr<Session> session_;
    std::unique_ptr<DbWorker> worker_;
};

}  // namespace pgd::daemon
