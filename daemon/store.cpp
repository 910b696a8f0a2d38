#include "daemon/store.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>
#include <vector>

namespace pgd::daemon::store {

namespace {

// The same TCP keepalive settings on the server's side of a session as libpq
// put on ours (config.cpp, with_keepalives): after a partition the server
// then ends the session, and releases the orchestrator lock it holds, about
// when we give up on it, so a standby can take over within a minute instead of
// after the server's default two hours. Nothing to do on a Unix socket.
std::string mirror_keepalives(const pqxx::connection &conn) {
    const int fd = conn.sock();
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (fd < 0 || ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0 ||
        (addr.ss_family != AF_INET && addr.ss_family != AF_INET6))
        return {};
    auto option = [fd](int level, int name) -> int {
        int value = 0;
        socklen_t size = sizeof value;
        return ::getsockopt(fd, level, name, &value, &size) == 0 ? value : -1;
    };
    if (option(SOL_SOCKET, SO_KEEPALIVE) <= 0) return {};  // keepalives=0: the operator's choice
    std::string sql;
    const std::pair<const char *, int> settings[] = {
        {"tcp_keepalives_idle", option(IPPROTO_TCP, TCP_KEEPIDLE)},
        {"tcp_keepalives_interval", option(IPPROTO_TCP, TCP_KEEPINTVL)},
        {"tcp_keepalives_count", option(IPPROTO_TCP, TCP_KEEPCNT)},
        {"tcp_user_timeout", option(IPPROTO_TCP, TCP_USER_TIMEOUT)},
    };
    for (const auto &[name, value] : settings)
        if (value >= 0) sql += std::string("SET ") + name + " = " + std::to_string(value) + ";";
    return sql;
}

// pg_try_advisory_lock(int4, int4): the class id spells "pgdu", object 1 is
// the orchestrator role. Advisory locks are per database, so this means one
// active daemon per database.
constexpr int kLockClassId = 0x70676475;
constexpr int kLockOrchestrator = 1;
// Held shared by every standby daemon's session (its orchestrator session,
// which stays open while it waits): what df_monitor.operator_metrics counts
// as daemon_standbys.
constexpr int kLockStandby = 3;
constexpr const char *kHoldsStandbyMarker =
    "EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() "
    "AND l.classid = $1::int::oid AND l.objid = $2::int::oid AND l.objsubid = 2 AND l.granted)";

// SQLSTATEs meaning "the df objects are not there (any more)".
bool is_missing_object(const pqxx::sql_error &e) {
    const std::string &state = e.sqlstate();
    return state == "42P01" /* undefined_table */ || state == "3F000" /* invalid_schema_name */ ||
           state == "42883" /* undefined_function */;
}

}  // namespace

void prepare_session(pqxx::connection &conn) {
    pqxx::nontransaction tx(conn);
    tx.exec("SET lock_timeout = '2s'");
    tx.exec("SET statement_timeout = '30s'");
    tx.exec("SET idle_in_transaction_session_timeout = '60s'");
    const std::string keepalives = mirror_keepalives(conn);
    if (!keepalives.empty()) tx.exec(keepalives);
}

std::map<std::string, std::optional<std::string>> show_settings(pqxx::connection &conn,
                                                                const std::vector<std::string> &names) {
    // current_setting(name, missing_ok) returns exactly what SHOW prints, and
    // NULL instead of an error for a setting the server does not know, so one
    // round trip reads them all.
    std::string array = "{";
    for (const auto &name : names) {
        if (array.size() > 1) array += ',';
        array += '"' + name + '"';  // our own constant GUC names: no quotes or backslashes
    }
    array += '}';
    pqxx::nontransaction tx(conn);
    const auto rows = tx.exec_params(
        "SELECT n, pg_catalog.current_setting(n, true) FROM pg_catalog.unnest($1::text[]) AS n", array);
    std::map<std::string, std::optional<std::string>> shown;
    for (const auto &row : rows) {
        if (row[1].is_null())
            shown[row[0].as<std::string>()] = std::nullopt;
        else
            shown[row[0].as<std::string>()] = row[1].as<std::string>();
    }
    return shown;
}

RoleAttributes session_role_attributes(pqxx::connection &conn) {
    pqxx::nontransaction tx(conn);
    const auto row =
        tx.exec1("SELECT rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = session_user");
    return RoleAttributes{row[0].as<bool>(), row[1].as<bool>()};
}

ServerState probe_server(pqxx::connection &conn) {
    pqxx::nontransaction tx(conn);
    const auto row = tx.exec1(
        "SELECT pg_catalog.pg_is_in_recovery(), "
        "e.oid::bigint, e.extversion "
        "FROM (SELECT) one LEFT JOIN pg_catalog.pg_extension e ON e.extname = 'pg_durable'");
    ServerState state;
    state.in_recovery = row[0].as<bool>();
    if (!row[1].is_null()) {
        state.extension_oid = row[1].as<std::int64_t>();
        state.extension_version = row[2].as<std::string>();
    }
    return state;
}

bool try_orchestrator_lock(pqxx::connection &conn, std::chrono::seconds stale) {
    pqxx::nontransaction tx(conn);
    if (tx.exec_params1("SELECT pg_catalog.pg_try_advisory_lock($1, $2)", kLockClassId, kLockOrchestrator)[0]
            .as<bool>()) {
        tx.exec_params(
            std::string("SELECT pg_catalog.pg_advisory_unlock_shared($1::int, $2::int) WHERE ") + kHoldsStandbyMarker,
            kLockClassId, kLockStandby);
        return true;
    }
    tx.exec_params(std::string("SELECT pg_catalog.pg_try_advisory_lock_shared($1::int, $2::int) WHERE NOT ") +
                       kHoldsStandbyMarker,
                   kLockClassId, kLockStandby);
    // The holder's heartbeat stopped: its process is paused or cut off while
    // the server keeps its session (and lock) alive. End that session; its
    // writes are fenced by the epoch (bind_session_epoch), its steps by the
    // secret the next daemon rotates.
    try {
        // The holder's session, and any of its bookkeeping transactions stuck
        // with the epoch row share-locked (else the next daemon's attach
        // would wait for them). Only the lock modes the daemon's writes and
        // its epoch fence (FOR KEY SHARE) take: a user's plain SELECT of the
        // table (ACCESS SHARE) neither blocks the attach nor is ended here.
        tx.exec_params(
            "SELECT pg_catalog.pg_terminate_backend(p.pid) FROM ("
            "  SELECT l.pid FROM pg_catalog.pg_locks l "
            "   WHERE l.locktype = 'advisory' AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 2 "
            "     AND l.granted AND l.database = (SELECT oid FROM pg_catalog.pg_database "
            "                                      WHERE datname = pg_catalog.current_database()) "
            "  UNION "
            "  SELECT l.pid FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
            "   WHERE l.locktype = 'relation' AND l.relation = 'df._worker_epoch'::regclass AND l.granted "
            "     AND l.database = (SELECT oid FROM pg_catalog.pg_database "
            "                        WHERE datname = pg_catalog.current_database()) "
            "     AND l.mode IN ('RowShareLock', 'RowExclusiveLock') "
            "     AND l.pid <> pg_catalog.pg_backend_pid() "
            "     AND a.xact_start < pg_catalog.now() - make_interval(secs => $3)) p "
            "WHERE EXISTS (SELECT 1 FROM df._worker_epoch "
            "               WHERE last_seen_at < pg_catalog.now() - make_interval(secs => $3))",
            kLockClassId, kLockOrchestrator, static_cast<double>(stale.count()));
    } catch (const pqxx::sql_error &e) {
        if (!is_missing_object(e)) throw;  // no extension yet: nothing to judge by
    }
    return false;
}

void bind_session_epoch(pqxx::connection &conn, const std::string &epoch_id) {
    pqxx::nontransaction tx(conn);
    tx.exec_params("SELECT pg_catalog.set_config('df_daemon.epoch', $1, false)", epoch_id);
}

std::unique_ptr<pqxx::connection> open_epoch_session(const std::string &conninfo, const std::string &epoch_id) {
    auto conn = std::make_unique<pqxx::connection>(conninfo);
    prepare_session(*conn);
    bind_session_epoch(*conn, epoch_id);
    return conn;
}

void release_orchestrator_lock(pqxx::connection &conn) {
    pqxx::nontransaction tx(conn);
    tx.exec_params("SELECT pg_catalog.pg_advisory_unlock($1, $2)", kLockClassId, kLockOrchestrator);
}

namespace {

// Ends the sessions of a replaced daemon that still hold df._worker_epoch
// locked: the bookkeeping transactions of a paused daemon that began after its
// last heartbeat (too young for try_orchestrator_lock's sweep) sit idle in
// transaction with the epoch row share-locked until the server's
// idle_in_transaction_session_timeout (60 s) ends them, and the DELETE of the
// attach waits for them. We hold the orchestrator lock, so a daemon's session
// idle in a transaction for longer than our lock_timeout, holding the locks
// the daemon's bookkeeping takes on the table, belongs to a replaced daemon;
// its writes are fenced by the epoch, so ending it loses nothing. A user's
// session (another application_name, or a plain SELECT) is never touched.
int end_replaced_bookkeeping(pqxx::connection &conn) {
    pqxx::nontransaction tx(conn);
    const auto rows = tx.exec(
        "SELECT pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a "
        " WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid() "
        "   AND a.application_name IN ('pg_durable orchestrator', pg_catalog.current_setting('application_name')) "
        "   AND a.state LIKE 'idle in transaction%' "
        "   AND a.state_change < pg_catalog.now() - pg_catalog.current_setting('lock_timeout')::interval "
        "   AND pg_catalog.pg_has_role(a.usesysid, 'MEMBER') "
        "   AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l "
        "                WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.granted "
        "                  AND l.database = (SELECT oid FROM pg_catalog.pg_database "
        "                                     WHERE datname = pg_catalog.current_database()) "
        "                  AND l.relation = 'df._worker_epoch'::regclass "
        "                  AND l.mode IN ('RowShareLock', 'RowExclusiveLock'))");
    int ended = 0;
    for (const auto &row : rows)
        if (row[0].as<bool>()) ++ended;
    return ended;
}

std::string insert_worker_epoch(pqxx::connection &conn) {
    pqxx::work tx(conn);
    tx.exec("DELETE FROM df._worker_epoch");
    const auto row = tx.exec1(
        "INSERT INTO df._worker_epoch (epoch_id, started_at, last_seen_at) "
        "VALUES (pg_catalog.gen_random_uuid(), pg_catalog.now(), pg_catalog.now()) "
        "RETURNING epoch_id::text");
    auto epoch = row[0].as<std::string>();
    tx.commit();
    return epoch;
}

}  // namespace

std::optional<std::string> replace_worker_epoch(pqxx::connection &conn) {
    try {
        try {
            return insert_worker_epoch(conn);
        } catch (const pqxx::sql_error &e) {
            // lock_not_available: something holds the epoch row. If it is a
            // replaced daemon's idle transaction, end it and try once more;
            // otherwise the error stands and the attach is retried later.
            if (e.sqlstate() != "55P03" || end_replaced_bookkeeping(conn) == 0) throw;
            return insert_worker_epoch(conn);
        }
    } catch (const pqxx::sql_error &e) {
        if (is_missing_object(e)) return std::nullopt;
        throw;
    }
}

HeartbeatResult heartbeat(pqxx::connection &conn, const std::string &epoch_id,
                          const ExtensionIdentity &extension, const HeartbeatGauges &gauges) {
    const auto state = probe_server(conn);
    if (!state.extension_oid || *state.extension_oid != extension.oid) return HeartbeatResult::extension_gone;
    if (state.extension_version != extension.version) return HeartbeatResult::extension_updated;
    try {
        pqxx::nontransaction tx(conn);
        // One statement, one commit: the beat, the in-flight gauge and the
        // started-steps delta (counter row 16: the heartbeat's own).
        const auto updated = tx.exec_params1(
            "WITH beat AS ("
            "  UPDATE df._worker_epoch SET last_seen_at = pg_catalog.now(), http_in_flight = $2::bigint "
            "   WHERE epoch_id = $1::uuid RETURNING 1), "
            "counted AS ("
            "  INSERT INTO df._step_counters AS c (shard, started) "
            "  SELECT 16, $3::bigint FROM beat WHERE $3::bigint > 0 "
            "  ON CONFLICT (shard) DO UPDATE SET started = c.started + EXCLUDED.started) "
            "SELECT count(*) FROM beat",
            epoch_id, gauges.http_in_flight, gauges.steps_started_delta);
        return updated[0].as<std::int64_t>() == 1 ? HeartbeatResult::ok : HeartbeatResult::epoch_lost;
    } catch (const pqxx::sql_error &e) {
        // DROP EXTENSION committed between the probe and the update.
        if (is_missing_object(e)) return HeartbeatResult::extension_gone;
        // Queued behind DDL (lock_timeout) or slow: not a reason to drop the
        // session and with it the orchestrator lock.
        if (e.sqlstate() == "55P03" /* lock_not_available */ || e.sqlstate() == "57014" /* query_canceled */)
            return HeartbeatResult::skipped;
        throw;
    }
}

}  // namespace pgd::daemon::store
