// What the daemon does while it holds the orchestrator lock. The lifecycle
// (lifecycle.hpp) attaches and detaches; a WorkHandler (the orchestrator)
// does the work: a full rescan in on_attached, a look at the named instances
// on on_wakeups, stop everything in on_detached.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "daemon/settings.hpp"
#include "daemon/wakeup.hpp"

namespace pgd::daemon {

// What the work reports with each heartbeat (df_monitor.operator_metrics,
// docs/MONITORING.md "Operators"): steps started since the process began
// (SQL runs and HTTP requests, every attempt) and HTTP requests in flight.
struct WorkGauges {
    std::int64_t steps_started = 0;
    std::int64_t http_in_flight = 0;
};

struct AttachInfo {
    std::string epoch_id;           // df._worker_epoch row of this attachment
    ServerSettings settings;        // settings in force
    std::string extension_version;  // pg_extension.extversion: the schema in the database
};

class WorkHandler {
public:
    virtual ~WorkHandler() = default;
    // The lock is held, LISTEN is active, a fresh epoch is written. Wake-ups
    // may have been missed before this point: do a full rescan here.
    virtual void on_attached(const AttachInfo &info) = 0;
    // df_wakeup notifications, coalesced: hints to look at these instances'
    // committed rows (or at everything, on overflow). Never empty.
    virtual void on_wakeups(const WakeupBatch &batch) = 0;
    // Reloadable settings changed (SIGHUP) or were read the first time.
    virtual void on_settings(const ServerSettings &settings) = 0;
    // Shutting down (SIGTERM): stop claiming work, let what is in flight
    // finish, then call done (on the io thread). The lifecycle's drain
    // deadline bounds how long this may take. on_detached() follows.
    virtual void drain(std::function<void()> done) = 0;
    // Lock, LISTEN or extension gone (or shutting down): stop all work now.
    virtual void on_detached() = 0;
    // ALTER EXTENSION pg_durable UPDATE committed while attached: the schema
    // is now `extension_version` (docs/ARCHITECTURE.md "Extension versions").
    // Work in flight goes on; parts gated on the version may start now.
    virtual void on_extension_updated(const std::string &extension_version) { (void)extension_version; }
    // Read on the io thread before each heartbeat.
    virtual WorkGauges gauges() const { return {}; }
};

}  // namespace pgd::daemon
