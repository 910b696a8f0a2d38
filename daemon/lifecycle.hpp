// The daemon's attach lifecycle, driven on the io thread:
//
//   connecting ──► waiting_for_extension ──► standby ──► active
//       ▲                ▲    ▲                 │           │
//       │                │    └─────────────────┘ (lock     │ DROP EXTENSION
//       │                └──────────────────────── retried)─┘ (release lock, wait)
//       └── connection lost, from any state (backoff with jitter and a cap)
//   any state ──SIGTERM──► stopping ──► stopped
//
// connecting: open the orchestrator session, read the pg_durable.* settings
//   (refuse to start when max_duroxide_connections < 2).
// waiting_for_extension: probe pg_extension every second (at most 5 s, SPEC §2).
// standby: another daemon holds the orchestrator lock; retry every second.
// active: lock held, LISTEN df_wakeup, heartbeat every 2 s; the WorkHandler works.
//   A heartbeat that finds another extversion of the same extension (ALTER
//   EXTENSION pg_durable UPDATE) re-reads it and tells the WorkHandler
//   (on_extension_updated) without detaching: work in flight goes on.
// stopping: from active, the WorkHandler drains first (heartbeat continues, no
//   new wake-ups), then the lock is released and the session closed, all
//   within the drain deadline.
//
// Every database step is an OrchestratorConnection call; its completion carries the
// generation it started in, so completions from a connection that has since
// been dropped (or after a stop request) are ignored.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include "daemon/backoff.hpp"
#include "daemon/orchestrator_link.hpp"
#include "daemon/settings.hpp"
#include "daemon/socket_watcher.hpp"
#include "daemon/work.hpp"

namespace pgd::daemon {

enum class Phase { idle, connecting, waiting_for_extension, standby, active, stopping, stopped };
const char *to_string(Phase phase);

struct LifecycleTiming {
    std::chrono::milliseconds extension_poll{1000};
    std::chrono::milliseconds standby_retry{1000};
    std::chrono::milliseconds heartbeat{2000};
    // How long a clean stop may take before the daemon exits anyway.
    std::chrono::milliseconds drain_deadline{10000};
    // A connection that lived this long resets the reconnect backoff.
    std::chrono::seconds healthy_connection{30};
    BackoffPolicy reconnect{};
};

class Lifecycle {
public:
    // on_finished(exit_code) runs once the stop completed; on_deadline(exit_code)
    // when a stop did not complete in time (the caller exits at once).
    Lifecycle(boost::asio::io_context &io, OrchestratorConnection &link, WorkHandler &work,
              LifecycleTiming timing, std::function<void(int)> on_finished,
              std::function<void(int)> on_deadline);

    void start();
    // Drain and stop: release the lock, close the session, then on_finished(0).
    void request_stop(const std::string &reason);
    // SIGHUP: re-read the settings from the server.
    void reload();
    Phase phase() const { return phase_; }

private:
    using Generation = std::uint64_t;

    void connect();
    void read_settings(Generation gen);
    void on_first_settings(const ServerSettings &settings);
    void check_target(const ServerSettings &settings);
    void apply_reload(const ServerSettings &shown);
    void probe(Generation gen);
    void take_lock(Generation gen);
    void attach(Generation gen);
    void schedule_heartbeat(Generation gen);
    void heartbeat(Generation gen);
    void reread_version(Generation gen);
    void log_version_support() const;
    void drain_wakeups();
    void detach_then_probe(Generation gen);
    void stop_work();
    template <class T>
    void on_failure(Generation gen, const LinkResult<T> &result);
    void retry_after(std::chrono::milliseconds delay, std::function<void()> step);
    void fail(int exit_code);
    void finish();
    bool stale(Generation gen) const { return stopping_ || gen != generation_; }

    boost::asio::io_context &io_;
    OrchestratorConnection &link_;
    WorkHandler &work_;
    const LifecycleTiming timing_;
    std::function<void(int)> on_finished_;
    std::function<void(int)> on_deadline_;
    std::shared_ptr<spdlog::logger> log_;
    std::shared_ptr<spdlog::logger> wakeup_log_;

    boost::asio::steady_timer retry_timer_;
    boost::asio::steady_timer heartbeat_timer_;
    boost::asio::steady_timer drain_timer_;
    SocketWatcher watcher_;
    Backoff backoff_;

    Phase phase_ = Phase::idle;
    Generation generation_ = 0;
    bool stopping_ = false;
    int exit_code_ = 0;

    std::optional<ServerSettings> settings_;
    std::optional<std::int64_t> extension_oid_;  // the extension we attached to / detected
    std::string extension_version_;              // its extversion (docs/ARCHITECTURE.md "Extension versions")
    std::string epoch_id_;
    std::int64_t steps_started_reported_ = 0;  // WorkGauges::steps_started already in df._step_counters
    std::optional<std::chrono::steady_clock::time_point> connected_at_;
    int connect_failures_ = 0;
    std::string last_connect_error_;
    std::string last_failure_;  // repeated identical failures are logged once
    Connected connection_;
    bool logged_waiting_ = false;
    bool logged_standby_ = false;
    bool logged_recovery_ = false;
};

}  // namespace pgd::daemon
