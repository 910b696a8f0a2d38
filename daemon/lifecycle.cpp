#include "daemon/lifecycle.hpp"

#include "common/extension_version.hpp"
#include "daemon/logging.hpp"
#include "daemon/wakeup.hpp"

namespace pgd::daemon {

namespace {

std::vector<std::string> setting_names() {
    std::vector<std::string> names;
    for (const auto &spec : setting_specs()) names.emplace_back(spec.name);
    return names;
}

// The server refused the daemon's credential: say where it comes from, since
// retrying cannot fix it (a rotated password is picked up on the next
// attempt once the passfile has it).
std::string credential_hint(const std::string &message) {
    for (const char *refused : {"authentication failed", "no password supplied", "password is empty",
                                "no pg_hba.conf entry"})
        if (message.find(refused) != std::string::npos)
            return " (the server refused the daemon's login: check the password in its passfile, PGPASSFILE "
                   "or ~/.pgpass of its OS user, and pg_hba.conf; see docs/OPERATIONS.md §3)";
    return "";
}

}  // namespace

const char *to_string(Phase phase) {
    switch (phase) {
        case Phase::idle: return "idle";
        case Phase::connecting: return "connecting";
        case Phase::waiting_for_extension: return "waiting for extension";
        case Phase::standby: return "standby";
        case Phase::active: return "active";
        case Phase::stopping: return "stopping";
        case Phase::stopped: return "stopped";
    }
    return "unknown";
}

Lifecycle::Lifecycle(boost::asio::io_context &io, OrchestratorConnection &link, WorkHandler &work,
                     LifecycleTiming timing, std::function<void(int)> on_finished,
                     std::function<void(int)> on_deadline)
    : io_(io), link_(link), work_(work), timing_(timing), on_finished_(std::move(on_finished)),
      on_deadline_(std::move(on_deadline)), log_(logger("lifecycle")), wakeup_log_(logger("wakeup")),
      retry_timer_(io), heartbeat_timer_(io), drain_timer_(io),
      watcher_(io, [this] { drain_wakeups(); }), backoff_(timing.reconnect) {}

void Lifecycle::start() {
    log_->info("pg_durable: daemon starting...");
    connect();
}

// --- connecting ------------------------------------------------------------

void Lifecycle::connect() {
    phase_ = Phase::connecting;
    const Generation gen = ++generation_;
    link_.connect([this, gen](LinkResult<Connected> r) {
        if (stale(gen)) return;
        if (!r.ok()) {
            // Log state changes, not every attempt (STYLE A4 item 10).
            if (connect_failures_ == 0 || r.message != last_connect_error_)
                log_->warn("cannot connect to the server: {}; retrying with backoff{}", r.message,
                           credential_hint(r.message));
            else
                log_->debug("connection attempt {} failed: {}", connect_failures_ + 1, r.message);
            ++connect_failures_;
            last_connect_error_ = r.message;
            retry_after(backoff_.next(), [this] { connect(); });
            return;
        }
        if (connect_failures_ > 0)
            log_->info("connected to database \"{}\" as \"{}\" after {} failed attempts (backend pid {})",
                       r.value.dbname, r.value.user, connect_failures_, r.value.backend_pid);
        else
            log_->info("connected to database \"{}\" as \"{}\" (backend pid {})", r.value.dbname,
                       r.value.user, r.value.backend_pid);
        connect_failures_ = 0;
        last_connect_error_.clear();
        connected_at_ = std::chrono::steady_clock::now();
        connection_ = r.value;
        read_settings(gen);
    });
}

void Lifecycle::read_settings(Generation gen) {
    link_.show_settings(setting_names(), [this, gen](auto r) {
        if (stale(gen)) return;
        if (!r.ok()) return on_failure(gen, r);
        std::vector<std::string> problems;
        const auto shown = settings_from_shown(r.value, problems);
        for (const auto &problem : problems) log_->warn("{}", problem);
        if (!settings_) {
            on_first_settings(shown);
            if (stopping_) return;
        } else {
            apply_reload(shown);
        }
        check_target(*settings_);
        probe(gen);
    });
}

void Lifecycle::on_first_settings(const ServerSettings &settings) {
    if (settings.max_duroxide_connections < kMinDuroxideConnections) {
        log_->critical(
            "pg_durable: pg_durable.max_duroxide_connections is {}, but the daemon needs at least {} "
            "orchestrator connections (one for LISTEN and the orchestrator lock, one for state); "
            "refusing to start",
            settings.max_duroxide_connections, kMinDuroxideConnections);
        fail(1);
        return;
    }
    settings_ = settings;
    log_->info("settings: database '{}', max_duroxide_connections {}, max_management_connections {}, "
               "max_user_connections {}",
               settings.database, settings.max_duroxide_connections, settings.max_management_connections,
               settings.max_user_connections);
    work_.on_settings(*settings_);
}

void Lifecycle::check_target(const ServerSettings &settings) {
    // Warnings only: the operator may know better (e.g. a role with BYPASSRLS).
    if (connection_.dbname != settings.database)
        log_->warn("connected to database \"{}\", but pg_durable.database is '{}'; the extension can only "
                   "be created in '{}', so this daemon will wait for it forever",
                   connection_.dbname, settings.database, settings.database);
    // df._run_step admits only pg_durable.worker_role (a superuser when it
    // is empty): a daemon logged in as anyone else fails every SQL step.
    if (!settings.worker_role.empty() && connection_.user != settings.worker_role)
        log_->warn("connected as role \"{}\", but pg_durable.worker_role is '{}'; df._run_step admits only "
                   "that role, so every SQL step will fail: connect as '{}'",
                   connection_.user, settings.worker_role, settings.worker_role);
    else if (settings.worker_role.empty() && !connection_.superuser)
        log_->warn("role \"{}\" is not a superuser, but pg_durable.worker_role is empty, so df._run_step "
                   "admits only superusers: set pg_durable.worker_role = '{}' (docs/OPERATIONS.md)",
                   connection_.user, connection_.user);
    if (!connection_.superuser && !connection_.bypassrls)
        log_->warn("role \"{}\" has neither SUPERUSER nor BYPASSRLS; row security hides other roles' "
                   "instances from it: ALTER ROLE {} BYPASSRLS (docs/OPERATIONS.md)",
                   connection_.user, connection_.user);
}

void Lifecycle::apply_reload(const ServerSettings &shown) {
    const auto outcome = reload_settings(*settings_, shown);
    for (const auto &change : outcome.applied)
        log_->info("setting {} changed from {} to {}", change.spec->name, change.old_value, change.new_value);
    for (const auto &change : outcome.ignored)
        log_->warn("setting {} changed from {} to {}, which takes effect only when the daemon restarts; "
                   "keeping {}",
                   change.spec->name, change.old_value, change.new_value, change.old_value);
    settings_ = outcome.effective;
    if (!outcome.applied.empty()) work_.on_settings(*settings_);
}

void Lifecycle::reload() {
    if (stopping_) return;
    log_->info("SIGHUP received, re-reading the pg_durable.* settings");
    if (phase_ == Phase::connecting || !settings_) return;  // read anyway once connected
    const Generation gen = generation_;
    link_.show_settings(setting_names(), [this, gen](auto r) {
        if (stale(gen)) return;
        if (!r.ok()) return on_failure(gen, r);
        std::vector<std::string> problems;
        const auto shown = settings_from_shown(r.value, problems);
        for (const auto &problem : problems) log_->warn("{}", problem);
        apply_reload(shown);
    });
}

// --- waiting for the extension, standby --------------------------------------

void Lifecycle::probe(Generation gen) {
    link_.probe([this, gen](LinkResult<store::ServerState> r) {
        if (stale(gen)) return;
        if (!r.ok()) return on_failure(gen, r);
        if (r.value.in_recovery) {
            // Never act on a standby server (DESIGN.md §2.10); wait for promotion.
            phase_ = Phase::waiting_for_extension;
            if (!logged_recovery_) log_->info("pg_durable: the server is in recovery; waiting for promotion");
            logged_recovery_ = true;
            retry_after(timing_.extension_poll, [this, gen] { probe(gen); });
            return;
        }
        logged_recovery_ = false;
        if (!r.value.extension_oid) {
            phase_ = Phase::waiting_for_extension;
            extension_oid_.reset();
            if (!logged_waiting_) log_->info("pg_durable: waiting for CREATE EXTENSION pg_durable...");
            logged_waiting_ = true;
            retry_after(timing_.extension_poll, [this, gen] { probe(gen); });
            return;
        }
        if (extension_oid_ != r.value.extension_oid) {
            log_->info("pg_durable: extension detected, proceeding with initialization");
            extension_oid_ = r.value.extension_oid;
        }
        extension_version_ = r.value.extension_version;
        logged_waiting_ = false;
        take_lock(gen);
    });
}

void Lifecycle::take_lock(Generation gen) {
    link_.try_lock([this, gen](LinkResult<bool> r) {
        if (stale(gen)) return;
        if (!r.ok()) return on_failure(gen, r);
        if (!r.value) {
            phase_ = Phase::standby;
            if (!logged_standby_) log_->info("pg_durable: standby, another daemon holds the orchestrator lock");
            logged_standby_ = true;
            // Re-probe too, so a standby notices DROP EXTENSION like the active daemon.
            retry_after(timing_.standby_retry, [this, gen] { probe(gen); });
            return;
        }
        if (logged_standby_) log_->info("orchestrator lock acquired, taking over from the previous daemon");
        logged_standby_ = false;
        attach(gen);
    });
}

// --- active ------------------------------------------------------------------

void Lifecycle::attach(Generation gen) {
    link_.attach([this, gen](LinkResult<Attached> r) {
        if (stale(gen)) return;
        if (!r.ok()) return on_failure(gen, r);
        if (r.value.extension_gone) {
            log_->info("pg_durable: extension dropped, stopping work");
            extension_oid_.reset();
            detach_then_probe(gen);
            return;
        }
        epoch_id_ = r.value.epoch_id;
        phase_ = Phase::active;
        watcher_.watch(r.value.socket_fd);
        log_->info("orchestrator lock held; worker epoch {}", epoch_id_);
        log_version_support();
        log_->info("pg_durable: processing durable functions...");
        work_.on_attached(AttachInfo{epoch_id_, *settings_, extension_version_});
        schedule_heartbeat(gen);
    });
}

void Lifecycle::schedule_heartbeat(Generation gen) {
    heartbeat_timer_.expires_after(timing_.heartbeat);
    heartbeat_timer_.async_wait([this, gen](const boost::system::error_code &ec) {
        if (ec || gen != generation_ || phase_ != Phase::active) return;
        heartbeat(gen);
    });
}

void Lifecycle::heartbeat(Generation gen) {
    const WorkGauges gauges = work_.gauges();
    store::HeartbeatGauges report;
    report.steps_started_delta = gauges.steps_started - steps_started_reported_;
    report.http_in_flight = gauges.http_in_flight;
    link_.heartbeat(epoch_id_, store::ExtensionIdentity{*extension_oid_, extension_version_}, report,
                    [this, gen, sent = gauges.steps_started,
                     began = std::chrono::steady_clock::now()](LinkResult<store::HeartbeatResult> r) {
        // Wake-ups wait for it on the link's session: its length is their delay.
        log_->debug("heartbeat took {} us", std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::steady_clock::now() - began)
                                               .count());
        // Written: the next beat reports only what started after this one.
        if (r.ok() && r.value == store::HeartbeatResult::ok) steps_started_reported_ = sent;
        if (stale(gen) || phase_ != Phase::active) {
            // While draining for a stop, keep beating; anything else is moot.
            if (stopping_ && gen == generation_ && phase_ == Phase::active && r.ok()) schedule_heartbeat(gen);
            return;
        }
        if (!r.ok()) return on_failure(gen, r);
        switch (r.value) {
            case store::HeartbeatResult::ok:
                last_failure_.clear();
                schedule_heartbeat(gen);
                return;
            case store::HeartbeatResult::skipped:
                log_->debug("heartbeat skipped: waited too long for a lock");
                schedule_heartbeat(gen);
                return;
            case store::HeartbeatResult::extension_updated:
                reread_version(gen);
                return;
            case store::HeartbeatResult::extension_gone:
                log_->info("pg_durable: extension dropped, stopping work");
                extension_oid_.reset();
                break;
            case store::HeartbeatResult::epoch_lost:
                log_->warn("worker epoch {} is no longer in df._worker_epoch; stopping work and re-attaching",
                           epoch_id_);
                break;
        }
        detach_then_probe(gen);
    });
}

// ALTER EXTENSION pg_durable UPDATE committed: the same extension (OID) at
// another version. The work goes on; the WorkHandler enables what the new
// schema offers.
void Lifecycle::reread_version(Generation gen) {
    link_.probe([this, gen](LinkResult<store::ServerState> r) {
        if (stale(gen) || phase_ != Phase::active) return;
        if (!r.ok()) return on_failure(gen, r);
        if (r.value.in_recovery || r.value.extension_oid != extension_oid_) {
            // Gone (or replaced) since the heartbeat: the next beat says so.
            heartbeat(gen);
            return;
        }
        const std::string old_version = extension_version_;
        extension_version_ = r.value.extension_version;
        log_->info("pg_durable: extension updated from version {} to {}", old_version, extension_version_);
        log_version_support();
        work_.on_extension_updated(extension_version_);
        heartbeat(gen);
    });
}

void Lifecycle::log_version_support() const {
    const auto version = durable::parse_extension_version(extension_version_);
    if (!version || *version < durable::kOldestExtensionVersion)
        log_->warn("pg_durable: extension version '{}' is not one this daemon knows ({} to {}); working with "
                   "the {} surface",
                   extension_version_, durable::to_string(durable::kOldestExtensionVersion),
                   durable::to_string(durable::kExtensionVersion),
                   durable::to_string(durable::kOldestExtensionVersion));
    else if (durable::kExtensionVersion < *version)
        log_->warn("pg_durable: extension version {} is newer than this daemon ({}); install the daemon of the "
                   "same release",
                   extension_version_, durable::to_string(durable::kExtensionVersion));
    else if (*version < durable::kExtensionVersion)
        log_->info("pg_durable: extension version {}; features of version {} wait for ALTER EXTENSION pg_durable "
                   "UPDATE (docs/OPERATIONS.md \"Upgrading\")",
                   extension_version_, durable::to_string(durable::kExtensionVersion));
    else
        log_->info("pg_durable: extension version {}", extension_version_);
}

void Lifecycle::drain_wakeups() {
    if (stopping_ || phase_ != Phase::active) return;
    const Generation gen = generation_;
    const auto readable_at = std::chrono::steady_clock::now();
    link_.drain_wakeups([this, gen, readable_at](LinkResult<WakeupBatch> r) {
        if (stale(gen)) return;
        if (!r.ok()) return on_failure(gen, r);
        if (phase_ != Phase::active) return;  // detached meanwhile: the rescan on attach covers it
        const WakeupBatch &batch = r.value;
        // One line per batch, not per payload: a flood must not flood the log.
        if (batch.malformed > 0)
            wakeup_log_->warn("ignored {} malformed df_wakeup payload(s) of {}, first '{}'", batch.malformed,
                              batch.received, batch.malformed_sample);
        if (batch.rescans > 0)
            wakeup_log_->info("df_wakeup asked for a rescan ({} of {} payload(s); the wake-up relay's ring "
                              "overflowed, or a forged hint): looking at every instance",
                              batch.rescans, batch.received);
        else if (batch.overflow)
            wakeup_log_->info("{} df_wakeup payload(s) at once: looking at every instance instead", batch.received);
        if (!batch.ids.empty() && wakeup_log_->should_log(spdlog::level::debug)) {
            std::string ids;
            std::size_t listed = 0;
            for (auto it = batch.ids.begin(); it != batch.ids.end() && listed < 8; ++it, ++listed)
                ids += (listed ? " " : "") + *it;
            if (batch.ids.size() > listed) ids += " and " + std::to_string(batch.ids.size() - listed) + " more";
            // The hop through the link's worker thread, apart from the
            // server's part (commit -> the socket readable) of a wake-up.
            const auto drained_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now() - readable_at)
                                        .count();
            wakeup_log_->debug("wake-up received for {} ({} payload(s)); drained {} us after the socket became "
                               "readable",
                               ids, batch.received, drained_us);
        }
        if (batch.overflow || !batch.ids.empty() || batch.schedules) work_.on_wakeups(batch);
    });
}

void Lifecycle::detach_then_probe(Generation gen) {
    stop_work();
    phase_ = Phase::waiting_for_extension;
    link_.detach([this, gen](LinkResult<Nothing> r) {
        if (stale(gen)) return;
        if (!r.ok()) return on_failure(gen, r);
        probe(gen);
    });
}

void Lifecycle::stop_work() {
    // Release libpq's fd before anything can close the connection.
    watcher_.stop();
    heartbeat_timer_.cancel();
    if (phase_ == Phase::active) {
        phase_ = Phase::waiting_for_extension;
        work_.on_detached();
    }
}

// --- failures, stop ------------------------------------------------------------

template <class T>
void Lifecycle::on_failure(Generation gen, const LinkResult<T> &result) {
    if (stale(gen)) return;
    stop_work();
    ++generation_;  // everything still in flight belongs to the old session
    extension_oid_.reset();
    logged_waiting_ = false;
    logged_standby_ = false;
    // The same failure again (e.g. a permission error on every attempt) is
    // not news; log it once until something succeeds.
    const auto level = result.message == last_failure_ ? spdlog::level::debug
                       : result.failure == LinkFailure::connection_lost ? spdlog::level::warn
                                                                        : spdlog::level::err;
    if (result.failure == LinkFailure::connection_lost)
        log_->log(level, "lost the connection to the server: {}; reconnecting", result.message);
    else
        log_->log(level, "database error: {}; reconnecting", result.message);
    last_failure_ = result.message;
    if (connected_at_ && std::chrono::steady_clock::now() - *connected_at_ >= timing_.healthy_connection)
        backoff_.reset();
    connected_at_.reset();
    phase_ = Phase::connecting;
    retry_after(backoff_.next(), [this] { connect(); });
}

void Lifecycle::retry_after(std::chrono::milliseconds delay, std::function<void()> step) {
    const Generation gen = generation_;
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait([this, gen, step = std::move(step)](const boost::system::error_code &ec) {
        if (ec || stale(gen)) return;
        step();
    });
}

void Lifecycle::fail(int exit_code) {
    exit_code_ = exit_code;
    request_stop("cannot continue");
}

void Lifecycle::request_stop(const std::string &reason) {
    if (stopping_ || phase_ == Phase::stopped) return;
    log_->info("pg_durable: {}; stopping", reason);
    const bool was_active = phase_ == Phase::active;
    stopping_ = true;
    retry_timer_.cancel();
    drain_timer_.expires_after(timing_.drain_deadline);
    drain_timer_.async_wait([this](const boost::system::error_code &ec) {
        if (ec || phase_ == Phase::stopped) return;
        log_->warn("pg_durable: clean stop did not finish within {} ms; exiting now",
                   timing_.drain_deadline.count());
        on_deadline_(exit_code_ == 0 ? 1 : exit_code_);
    });
    // Queued behind whatever the worker is doing; ends the session and the lock.
    auto close_session = [this] { link_.shutdown([this](LinkResult<Nothing>) { finish(); }); };
    if (!was_active) {
        stop_work();
        phase_ = Phase::stopping;
        close_session();
        return;
    }
    // No new wake-ups; the heartbeat goes on while the work drains so the
    // epoch does not look dead meanwhile.
    watcher_.stop();
    work_.drain([this, close_session] {
        heartbeat_timer_.cancel();
        work_.on_detached();
        phase_ = Phase::stopping;
        close_session();
    });
}

void Lifecycle::finish() {
    drain_timer_.cancel();
    phase_ = Phase::stopped;
    log_->info("pg_durable: daemon stopped");
    on_finished_(exit_code_);
}

}  // namespace pgd::daemon
