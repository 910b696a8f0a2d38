// Every SQL statement the daemon runs (DESIGN.md §4: store.* holds all SQL on
// df tables; the catalog probes and session setup live here too, so the SQL
// surface of the daemon can be reviewed in one file). Functions are blocking
// libpqxx calls: run them only on a DbWorker thread, never on the io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace pgd::daemon::store {

// Session settings of the daemon's own connections: never wait long behind
// DDL (DROP EXTENSION must not be blocked by the daemon, DESIGN.md §2.10).
void prepare_session(pqxx::connection &conn);

// Ties a bookkeeping session to the daemon's worker epoch (df._worker_epoch):
// every bookkeeping write then checks, and share-locks, that epoch row in its
// own transaction, so a daemon that lost its attachment (paused, partitioned,
// replaced by a standby) writes nothing, and a new daemon's epoch replaces
// the row only after the old daemon's last write has committed.
void bind_session_epoch(pqxx::connection &conn, const std::string &epoch_id);

// A new session of the daemon for epoch-fenced writes: connected, prepared
// (prepare_session) and bound to `epoch_id` (bind_session_epoch).
std::unique_ptr<pqxx::connection> open_epoch_session(const std::string &conninfo, const std::string &epoch_id);

// Current values of the given settings, as SHOW prints them (nullopt for a
// setting the server does not know).
std::map<std::string, std::optional<std::string>> show_settings(pqxx::connection &conn,
                                                                const std::vector<std::string> &names);

// The login role's attributes that decide whether the daemon can manage
// every user's instances past row security (SPEC §3 worker_role: a superuser,
// or a role with BYPASSRLS and the grants docs/OPERATIONS.md lists).
struct RoleAttributes {
    bool superuser = false;
    bool bypassrls = false;
};
RoleAttributes session_role_attributes(pqxx::connection &conn);

struct ServerState {
    bool in_recovery = false;
    // OID of the pg_durable extension, nullopt when it is not installed.
    std::optional<std::int64_t> extension_oid;
    // Its pg_extension.extversion (the schema version), "" when not installed.
    std::string extension_version;
};
ServerState probe_server(pqxx::connection &conn);

// The orchestrator lock: a session-level advisory lock, so it is released
// when the connection ends, however the daemon dies (DESIGN.md §2.7).
// Tries the orchestrator lock. A daemon that does not get it holds the shared
// standby marker (advisory lock (class, 3)) until it does, so operators can
// count standbys (df_monitor.operator_metrics). When another session holds it and the
// attached daemon's heartbeat is older than `stale` (a paused or partitioned
// daemon whose session the server still keeps), terminates that session so
// the next try succeeds: a standby takes over in seconds (DESIGN §2.7).
bool try_orchestrator_lock(pqxx::connection &conn, std::chrono::seconds stale = std::chrono::seconds(10));
void release_orchestrator_lock(pqxx::connection &conn);

// Replaces the df._worker_epoch row with a new epoch; returns its epoch_id,
// or nullopt when the df objects vanished (a concurrent DROP EXTENSION).
std::optional<std::string> replace_worker_epoch(pqxx::connection &conn);

enum class HeartbeatResult {
    ok,
    skipped,         // waited too long behind a lock (e.g. DDL in progress); try next beat
    extension_gone,
    epoch_lost,
    extension_updated,  // same extension, another extversion (ALTER EXTENSION UPDATE); nothing written
};
// The extension the daemon attached to: its OID and schema version.
struct ExtensionIdentity {
    std::int64_t oid = 0;
    std::string version;
};
// Reported with each heartbeat (df_monitor.operator_metrics): steps started
// since the last successful heartbeat (added to df._step_counters) and HTTP
// requests in flight now (df._worker_epoch.http_in_flight).
struct HeartbeatGauges {
    std::int64_t steps_started_delta = 0;
    std::int64_t http_in_flight = 0;
};
// Refreshes last_seen_at of our epoch and writes `gauges` in the same
// statement (no extra commit), checking first that the extension is
// still the one we attached to (DROP EXTENSION, or a DROP and CREATE between
// two heartbeats, both read as extension_gone) at the same version (else
// extension_updated: the caller re-reads it and beats again).
HeartbeatResult heartbeat(pqxx::connection &conn, const std::string &epoch_id,
                          const ExtensionIdentity &extension, const HeartbeatGauges &gauges = {});

}  // namespace pgd::daemon::store
