#include "daemon/store_engine.hpp"

#include <chrono>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/protocol.hpp"
#include "daemon/store.hpp"

namespace pgd::daemon::store {

namespace {

using durable::engine::ActivationWrite;
using durable::engine::TimePoint;

// Timestamps cross as microseconds since the Unix epoch (exact both ways).
std::string micros(TimePoint t) {
    return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}
std::optional<std::string> micros(const std::optional<TimePoint> &t) {
    if (!t) return std::nullopt;
    return micros(*t);
}
TimePoint from_micros(std::int64_t us) { return TimePoint{} + std::chrono::microseconds(us); }

const char *opt(const std::optional<std::string> &value) { return value ? value->c_str() : nullptr; }

// A statement the bookkeeping session runs prepared: parsed and planned once
// per session (prepare_engine_statements), not on every call. Planning the
// instance load alone cost more than running it (bench/BENCHMARKS.md).
struct Statement {
    const char *name;
    std::string sql;
};

template <class... Args>
pqxx::result run(pqxx::transaction_base &tx, const Statement &statement, Args &&...args) {
    return tx.exec_prepared(statement.name, std::forward<Args>(args)...);
}

constexpr const char *kTs = "('epoch'::timestamptz + %s * interval '1 microsecond')";

std::string ts(const char *param) {
    char buf[96];
    std::snprintf(buf, sizeof buf, kTs, param);
    return buf;
}

const std::string kUpsertActivationSql =
    "INSERT INTO df._activations AS a (instance_id, stamp, node_id, execution, status, result, error, "
    "started_at, completed_at, wake_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, " + ts("$8::bigint") + ", " + ts("$9::bigint") + ", " +
    ts("$10::bigint") + ", now()) "
    "ON CONFLICT (instance_id, stamp, node_id) DO UPDATE SET "
    "status = EXCLUDED.status, result = COALESCE(EXCLUDED.result, a.result), error = EXCLUDED.error, "
    // A write with a start (re)starts the activation: a LOOP checkpoint is
    // one row per loop scope, rewritten with each iteration's start and
    // pace due time (none until the pace begins). Other writes keep both.
    "started_at = COALESCE(EXCLUDED.started_at, a.started_at), completed_at = EXCLUDED.completed_at, "
    "wake_at = CASE WHEN EXCLUDED.started_at IS NOT NULL THEN EXCLUDED.wake_at "
    "               ELSE COALESCE(EXCLUDED.wake_at, a.wake_at) END, updated_at = now() "
    // A completed activation never changes (a late timeout after a signal, say).
    "WHERE a.status <> 'completed'";

// Leaf activations show on their df.nodes row too (LOOP checkpoints and RACE
// decisions are bookkeeping, not node states); a leaf that begins running
// (again, in a later iteration) starts now. df._set_node_state is the one
// writer of node states. The mirror's SELECT, given the parameters (SQL
// text, e.g. "$1") that carry instance, node, stamp, status, result, error
// and start (microseconds since the epoch, NULL: now when running).
std::string mirror_leaf_sql(const char *instance, const char *node, const char *stamp, const char *status,
                            const char *result, const char *error, const char *started) {
    return std::string("SELECT df._set_node_state(n.instance_id, n.id, ") + stamp + ", " + status + ", " + result +
           "::text::json, " + error + "::text, COALESCE(" + ts((std::string(started) + "::bigint").c_str()) +
           ", CASE WHEN " + status + " = 'running' THEN now() END), NULL, NULL, NULL, 1) "
           "FROM df.nodes n WHERE n.instance_id = " + instance + " AND n.id = " + node +
           " AND n.node_type IN ('SQL', 'HTTP', 'SLEEP', 'WAIT_SCHEDULE', 'SIGNAL')";
}

const Statement kMirrorLeaf{"pgd_mirror_leaf", mirror_leaf_sql("$1", "$2", "$3", "$4", "$5", "$6", "$7")};

// An activation's write and its leaf mirror in one statement (one round
// trip). The mirror reads only df.nodes, so the data-modifying CTE's
// snapshot is all it needs; it is written whatever the upsert's WHERE kept.
const Statement kRecordActivation{"pgd_record_activation", "WITH a AS (" + kUpsertActivationSql + ") " +
                                                               mirror_leaf_sql("$1", "$3", "$2", "$5", "$6", "$7",
                                                                               "$8")};

// A compound node's status mirror.
// A RETRY's carries its attempt number (NULL keeps the row's attempts).
const Statement kMirrorNode{"pgd_mirror_node",
                             "SELECT df._set_node_state($1, $2, $3, $4, $5::json, $6, NULL, NULL, NULL, $7::int)"};

const Statement kLockLiveInstance{
    "pgd_lock_live_instance",
    "SELECT i.status FROM df.instances i, df._worker_epoch e "
    " WHERE i.id = $1 AND e.epoch_id = pg_catalog.current_setting('df_daemon.epoch')::uuid "
    "   FOR NO KEY UPDATE OF i NOWAIT FOR KEY SHARE OF e"};

const Statement kHoldsEpoch{"pgd_holds_epoch",
                            "SELECT 1 FROM df._worker_epoch "
                            "WHERE epoch_id = pg_catalog.current_setting('df_daemon.epoch')::uuid FOR KEY SHARE"};

// Every bookkeeping call marks a pending instance running; a root loop's
// next iteration also sets the execution number (NULL: unchanged). One
// statement, one round trip, for both.
const Statement kMarkRunning{
    "pgd_mark_running_at",
    "UPDATE df.instances SET status = 'running', execution_count = COALESCE($2::bigint, execution_count), "
    "updated_at = now() "
    "WHERE id = $1 AND (status = 'pending' OR execution_count IS DISTINCT FROM COALESCE($2::bigint, execution_count))"};
// An instance's end with its unconsumed signals dropped, one round trip.
const Statement kCompleteInstanceDropSignals{
    "pgd_complete_instance",
    "WITH s AS (DELETE FROM df._signals WHERE instance_id = $1) "
    "UPDATE df.instances SET status = 'completed', completed_at = now(), updated_at = now() WHERE id = $1"};
const Statement kFailInstanceDropSignals{
    "pgd_fail_instance",
    "WITH s AS (DELETE FROM df._signals WHERE instance_id = $1) "
    "UPDATE df.instances SET status = 'failed', error = $2, error_node = $3, updated_at = now() WHERE id = $1"};
const Statement kInstanceState{"pgd_instance_state", "SELECT status, error FROM df.instances WHERE id = $1"};
const Statement kMarkStartedRunning{"pgd_mark_running",
                             "UPDATE df.instances i SET status = 'running', updated_at = now() "
                             "FROM (SELECT id FROM df.instances WHERE id = ANY ($1::text[]) AND status = 'pending' "
                             "      FOR NO KEY UPDATE SKIP LOCKED) p WHERE i.id = p.id"};
const Statement kInstanceStates{"pgd_instance_states",
                                "SELECT id, status, error FROM df.instances WHERE id = ANY ($1::text[]) "
                                "OR ($2 AND status IN ('pending', 'running'))"};

void upsert_activation(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                       const ActivationWrite &w) {
    const auto started = micros(w.started_at);
    const auto completed = micros(w.completed_at);
    const auto wake = micros(w.wake_at);
    run(tx, kRecordActivation, instance_id, w.stamp, w.node_id, execution, w.status, opt(w.result),
        opt(w.error), opt(started), opt(completed), opt(wake));
}

// Locks the instance row (the one lock order: instance first) and tells
// whether it still runs. FOR NO KEY UPDATE, as df._run_step and df.cancel
// do: a running step's df._activations insert holds the row's FOR KEY SHARE
// lock (foreign key) until the step ends, and FOR UPDATE would wait for it.
// NOWAIT: a user may hold their instance's row in an open transaction (BEGIN;
// SELECT df.cancel(...); ...) for as long as they like; the state connection
// serves every instance, so it never waits: the job fails with 55P03 and the
// orchestrator retries that instance's job later (DESIGN §2.13).
// The join with the session's worker epoch fences every write of a daemon
// that lost its attachment (store::bind_session_epoch): no epoch row, no
// row here, nothing written.
// The locked row's status (it cannot change before this transaction ends),
// or nullopt when the instance is gone or no longer live.
std::optional<std::string> lock_live_status(pqxx::work &tx, const std::string &instance_id) {
    const auto rows = run(tx, kLockLiveInstance, instance_id);
    if (rows.empty()) return std::nullopt;
    auto status = rows[0][0].as<std::string>();
    if (status != "pending" && status != "running") return std::nullopt;
    return status;
}
bool lock_live_instance(pqxx::work &tx, const std::string &instance_id) {
    return lock_live_status(tx, instance_id).has_value();
}

// Whether this session's worker epoch (store::bind_session_epoch) is still
// the attached one, share-locking its row until the transaction ends: the
// fence of writes that lock no instance row (lock_live_instance joins it).
bool holds_epoch(pqxx::work &tx) {
    return !run(tx, kHoldsEpoch).empty();
}

// A text[] literal of instance ids. The ids were validated as 8 lower-case
// hex digits (parse_wakeup) or came from df.instances: nothing to quote.
std::string id_array(const std::vector<std::string> &ids) {
    std::string array = "{";
    for (const auto &id : ids) array += (array.size() > 1 ? "," : "") + id;
    return array + "}";
}

// The execution an activation belongs to: the generation of its stamp's
// root scope, so rows written in the batch that starts a root loop's next
// execution are numbered right even when nested.
std::int64_t stamp_execution(const std::string &stamp, const std::string &instance_id, std::int64_t fallback) {
    return durable::protocol::stamp_execution(stamp, instance_id).value_or(fallback);
}

// A root loop went on from `execution` (SPEC §15.4): the execution is kept as
// 'continued' with the body result it ended with and its recorded events.
// Runs in apply_effects' transaction, after the batch's activations.
const Statement kRecordContinued{"pgd_record_continued",
    "INSERT INTO df._executions (instance_id, execution, status, started_at, ended_at, output, event_count) "
    "SELECT i.id, $2::bigint, 'continued', "
    "       COALESCE((SELECT e.ended_at FROM df._executions e "
    "                  WHERE e.instance_id = i.id AND e.execution = $2::bigint - 1), "
    "                (SELECT a.started_at FROM df._activations a "
    "                  WHERE a.instance_id = i.id AND a.stamp = $4 "
    "                    AND a.node_id = i.root_node), "
    "                i.created_at), "
    "       now(), $3::text, "
    "       (SELECT count(*) FROM df._activations a WHERE a.instance_id = i.id AND a.execution = $2::bigint) "
    "  FROM df.instances i WHERE i.id = $1 "
    "ON CONFLICT (instance_id, execution) DO NOTHING"};

void record_continued_execution(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                                const std::optional<std::string> &output) {
    run(tx, kRecordContinued, instance_id, execution, opt(output),
        durable::protocol::root_stamp(instance_id, execution));
}

// One loop iteration that fell out of history_executions (the interpreter's
// HistoryTrim): a small, bounded delete in the commit that starts the next
// iteration, so loop history stays bounded at any loop speed.
const Statement kTrimExecution{"pgd_trim_execution",
    "WITH a AS (DELETE FROM df._activations WHERE instance_id = $1 AND execution = $2::bigint) "
    "DELETE FROM df._executions WHERE instance_id = $1 AND execution = $2::bigint"};
const Statement kTrimScope{"pgd_trim_scope",
    "DELETE FROM df._activations WHERE instance_id = $1 AND (stamp = $2 OR left(stamp, length($3)) = $3)"};

void trim_history(pqxx::work &tx, const std::string &instance_id, const durable::engine::HistoryTrim &trim) {
    if (trim.execution) run(tx, kTrimExecution, instance_id, *trim.execution);
    if (trim.scope)
        run(tx, kTrimScope, instance_id, *trim.scope, durable::protocol::descendant_prefix(*trim.scope));
}

}  // namespace

std::vector<std::string> active_instance_ids(pqxx::transaction_base &tx) {
    std::vector<std::string> ids;
    for (const auto &row :
         tx.exec("SELECT id FROM df.instances WHERE status IN ('pending', 'running') ORDER BY created_at, id"))
        ids.push_back(row[0].as<std::string>());
    return ids;
}

namespace {

// One statement, one snapshot, one round trip: the instance row with its
// nodes, variables and the activations of its current execution as JSON
// arrays (text columns as JSON strings, so they come back byte for byte).
// Dispatch waits on this load; four statements cost four round trips.
const Statement kLoadInstance{
    "pgd_load_instance",
    "SELECT i.status, i.label, i.root_node, i.database, i.execution_count, "
    "       COALESCE(r.rolname, ''), i.submitted_by::oid::bigint, r.oid IS NOT NULL, COALESCE(r.rolsuper, false), "
    "       (SELECT json_agg(json_build_array(n.id, n.node_type, n.query, n.result_name, n.left_node, n.right_node)) "
    "          FROM df.nodes n WHERE n.instance_id = i.id), "
    "       (SELECT json_agg(json_build_array(v.name, v.value)) "
    "          FROM df._instance_vars v WHERE v.instance_id = i.id), "
    "       (SELECT json_agg(json_build_array(a.stamp, a.node_id, a.status, a.result::text, a.error, "
    "                                         (extract(epoch FROM a.started_at) * 1000000)::bigint, "
    "                                         (extract(epoch FROM a.wake_at) * 1000000)::bigint)) "
    "          FROM df._activations a WHERE a.instance_id = i.id AND a.execution = i.execution_count) "
    "FROM df.instances i LEFT JOIN pg_catalog.pg_roles r ON r.oid = i.submitted_by "
    "WHERE i.id = $1 AND i.status IN ('pending', 'running')"};

// The rows of one json_agg column (NULL: no rows). Each row is an array of
// `width` strings, integers or nulls; anything else is a broken row.
const nlohmann::json &rows_of(const nlohmann::json &agg, std::size_t width, const char *what) {
    static const nlohmann::json none = nlohmann::json::array();
    if (agg.is_null()) return none;
    if (!agg.is_array()) throw std::runtime_error(std::string("load: ") + what + " is not an array");
    for (const auto &row : agg)
        if (!row.is_array() || row.size() != width)
            throw std::runtime_error(std::string("load: malformed ") + what + " row");
    return agg;
}

std::optional<std::string> text_at(const nlohmann::json &row, std::size_t i) {
    if (row[i].is_null()) return std::nullopt;
    return row[i].get<std::string>();
}

nlohmann::json parse_column(const pqxx::field &f) {
    if (f.is_null()) return nullptr;
    return nlohmann::json::parse(f.c_str(), f.c_str() + f.size());
}

}  // namespace

std::optional<LoadedInstance> load_instance(pqxx::transaction_base &tx, const std::string &id) {
    const auto head = run(tx, kLoadInstance, id);
    if (head.empty()) return std::nullopt;
    LoadedInstance inst;
    inst.id = id;
    const auto &h = head[0];
    inst.status = h[0].as<std::string>();
    if (!h[1].is_null()) inst.label = h[1].as<std::string>();
    inst.root_node = h[2].as<std::string>();
    inst.database = h[3].as<std::string>();
    inst.execution = h[4].as<std::int64_t>();
    inst.submitted_by = h[5].as<std::string>();
    inst.submitted_by_oid = h[6].as<std::int64_t>();
    inst.role_exists = h[7].as<bool>();
    inst.role_is_superuser = h[8].as<bool>();

    const auto nodes = parse_column(h[9]);
    for (const auto &row : rows_of(nodes, 6, "node")) {
        durable::StoredNode node;
        node.id = row[0].get<std::string>();
        node.node_type = row[1].get<std::string>();
        node.query = text_at(row, 2);
        node.result_name = text_at(row, 3);
        node.left_node = text_at(row, 4);
        node.right_node = text_at(row, 5);
        inst.nodes.push_back(std::move(node));
    }
    const auto vars = parse_column(h[10]);
    for (const auto &row : rows_of(vars, 2, "variable"))
        inst.vars[row[0].get<std::string>()] = text_at(row, 1).value_or("");
    const auto activations = parse_column(h[11]);
    for (const auto &row : rows_of(activations, 7, "activation")) {
        durable::engine::Record rec;
        rec.status = row[2].get<std::string>();
        rec.result = text_at(row, 3);
        rec.error = text_at(row, 4);
        if (!row[5].is_null()) rec.started_at = from_micros(row[5].get<std::int64_t>());
        if (!row[6].is_null()) rec.wake_at = from_micros(row[6].get<std::int64_t>());
        inst.history[{row[0].get<std::string>(), row[1].get<std::string>()}] = std::move(rec);
    }
    return inst;
}

void write_daemon_secret(pqxx::work &tx, const std::string &secret, const std::string &epoch_id) {
    // Fenced like every other write: a daemon paused between attaching and
    // this write must not, once resumed, overwrite the secret of the daemon
    // that replaced it (whose every step df._run_step would then refuse).
    if (!holds_epoch(tx)) return;
    tx.exec_params(
        "INSERT INTO df._daemon_secret (singleton, secret, epoch_id, updated_at) VALUES (true, $1, $2::uuid, now()) "
        "ON CONFLICT (singleton) DO UPDATE SET secret = EXCLUDED.secret, epoch_id = EXCLUDED.epoch_id, "
        "updated_at = now()",
        secret, epoch_id);
}

bool apply_effects(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                   const durable::engine::Effects &effects) {
    const auto status = lock_live_status(tx, instance_id);
    if (!status) return false;  // nothing written
    std::int64_t current_execution = execution;
    std::optional<std::string> new_execution;
    if (effects.instance && effects.instance->execution) {
        // A root loop went on: the new execution's rows carry its number.
        current_execution = *effects.instance->execution;
        new_execution = std::to_string(current_execution);
    }
    if (*status == "pending" || new_execution) run(tx, kMarkRunning, instance_id, opt(new_execution));
    for (const auto &w : effects.activations)
        upsert_activation(tx, instance_id, stamp_execution(w.stamp, instance_id, execution), w);
    if (effects.instance && effects.instance->execution)
        record_continued_execution(tx, instance_id, current_execution - 1, effects.instance->continued_output);
    for (const auto &trim : effects.trims) trim_history(tx, instance_id, trim);
    for (const auto &m : effects.mirrors) {
        std::optional<std::string> attempts;
        if (m.attempts) attempts = std::to_string(*m.attempts);
        run(tx, kMirrorNode, instance_id, m.node_id, m.stamp, m.status, opt(m.result), opt(m.error),
                       opt(attempts));
    }
    if (effects.instance) {
        const auto &iw = *effects.instance;
        if (iw.status == "completed")
            run(tx, kCompleteInstanceDropSignals, instance_id);
        else if (iw.status == "failed")
            run(tx, kFailInstanceDropSignals, instance_id, opt(iw.error), opt(iw.error_node));
    }
    return true;
}

void fail_instance(pqxx::work &tx, const std::string &instance_id, const std::string &error,
                   const std::optional<std::string> &error_node) {
    if (!lock_live_instance(tx, instance_id)) return;
    run(tx, kFailInstanceDropSignals, instance_id, error, opt(error_node));
}

void record_activation(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                       const ActivationWrite &write) {
    if (!lock_live_instance(tx, instance_id)) return;
    upsert_activation(tx, instance_id, execution, write);
}

std::optional<std::string> consume_signal(pqxx::work &tx, const std::string &instance_id,
                                          const std::string &stamp, const std::string &node_id,
                                          const std::string &signal_name) {
    if (!lock_live_instance(tx, instance_id)) return std::nullopt;
    // The instance row is locked, so nobody else takes this signal meanwhile
    // (df.signal only inserts). Nothing is written unless the wait is still
    // open: the transaction may carry other calls' writes (PgEngineStore
    // batches), so a call never relies on rolling back.
    const auto queued = tx.exec_params(
        "SELECT seq, payload FROM df._signals WHERE instance_id = $1 AND signal_name = $2 ORDER BY seq LIMIT 1",
        instance_id, signal_name);
    if (queued.empty()) return std::nullopt;
    // The payload is stored as JSON text.
    const std::string result = durable::protocol::signal_result(signal_name, false, queued[0][1].as<std::string>());
    const auto updated = tx.exec_params(
        "UPDATE df._activations SET status = 'completed', result = $4, completed_at = now(), updated_at = now() "
        "WHERE instance_id = $1 AND stamp = $2 AND node_id = $3 AND status = 'running'",
        instance_id, stamp, node_id, result);
    if (updated.affected_rows() != 1) return std::nullopt;  // the signal stays queued
    tx.exec_params("DELETE FROM df._signals WHERE seq = $1", queued[0][0].as<std::int64_t>());
    run(tx, kMirrorLeaf, instance_id, node_id, stamp, "completed", result, nullptr, nullptr);
    return result;
}

std::optional<InstanceState> instance_state(pqxx::transaction_base &tx, const std::string &instance_id) {
    const auto rows = run(tx, kInstanceState, instance_id);
    if (rows.empty()) return std::nullopt;
    InstanceState state;
    state.status = rows[0][0].as<std::string>();
    if (!rows[0][1].is_null()) state.error = rows[0][1].as<std::string>();
    return state;
}

void mark_running(pqxx::work &tx, const std::vector<std::string> &ids) {
    const std::string array = id_array(ids);
    if (!holds_epoch(tx)) return;
    run(tx, kMarkStartedRunning, array);
}

std::vector<NamedInstanceState> instance_states(pqxx::transaction_base &tx, const std::vector<std::string> &ids,
                                                bool all_active) {
    const std::string array = id_array(ids);
    std::vector<NamedInstanceState> out;
    for (const auto &row : run(tx, kInstanceStates, array, all_active)) {
        NamedInstanceState item;
        item.id = row[0].as<std::string>();
        item.state.status = row[1].as<std::string>();
        if (!row[2].is_null()) item.state.error = row[2].as<std::string>();
        out.push_back(std::move(item));
    }
    return out;
}

void record_cancelled(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                      const std::vector<durable::engine::RecordKey> &steps, const std::string &error) {
    // No instance lock (the step has ended; see docs/ARCHITECTURE.md "Lock
    // order"), but the same epoch fence as every other write.
    if (!holds_epoch(tx)) return;
    for (const auto &[stamp, node_id] : steps) {
        ActivationWrite w;
        w.stamp = stamp;
        w.node_id = node_id;
        w.status = "cancelled";
        w.error = error;
        w.completed_at = std::chrono::system_clock::now();
        upsert_activation(tx, instance_id, execution, w);
    }
}

bool has_http_privilege(pqxx::transaction_base &tx, std::int64_t role_oid) {
    const auto rows = tx.exec_params(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = $1::oid) "
        "THEN pg_catalog.has_function_privilege($1::oid, 'df.http(text,text,text,jsonb,integer)', 'EXECUTE') "
        "ELSE false END",
        role_oid);
    return !rows.empty() && !rows[0][0].is_null() && rows[0][0].as<bool>();
}

// ---------------------------------------------------------------------------
// Retention (SPEC §17)

namespace {

// Terminal instances past retention_days, oldest first.
const char *const kExpiredInstances =
    "WITH doomed AS ("
    "  SELECT id FROM df.instances"
    "   WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < now() - make_interval(days => $1)"
    "   ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
    "DELETE FROM df.instances i USING doomed d WHERE i.id = d.id";

// Terminal instances beyond the newest retention_max_instances.
const char *const kSurplusInstances =
    "WITH doomed AS ("
    "  SELECT id FROM df.instances"
    "   WHERE status IN ('completed', 'failed', 'cancelled')"
    "   ORDER BY updated_at DESC, id DESC OFFSET $1 LIMIT $2 FOR UPDATE SKIP LOCKED) "
    "DELETE FROM df.instances i USING doomed d WHERE i.id = d.id";

// Root-loop executions older than the newest history_executions past ones.
const char *const kOldExecutions =
    "WITH doomed AS ("
    "  SELECT e.instance_id, e.execution FROM df._executions e JOIN df.instances i ON i.id = e.instance_id"
    "   WHERE e.execution < i.execution_count - $1 LIMIT $2), "
    "acts AS ("
    "  DELETE FROM df._activations a USING doomed d"
    "   WHERE a.instance_id = d.instance_id AND a.execution = d.execution RETURNING 1) "
    "DELETE FROM df._executions e USING doomed d"
    " WHERE e.instance_id = d.instance_id AND e.execution = d.execution";

// Activations of non-root loop iterations older than the newest
// history_executions past ones: body scopes '<loop stamp>::<body>::<k>[::...]'
// with k below the loop's checkpoint iteration minus history_executions.
// The loop's checkpoint (stamp = the loop's own) is not under that prefix.
const char *const kOldIterations =
    "WITH loops AS ("
    "  SELECT a.instance_id, a.stamp AS loop_stamp, n.left_node AS body,"
    "         CASE WHEN a.result LIKE '{\"iteration\":%' THEN (a.result::json ->> 'iteration')::bigint END - $1"
    "           AS keep_from"
    "    FROM df.nodes n"
    "    JOIN df.instances i ON i.id = n.instance_id AND i.root_node <> n.id"
    "    JOIN df._activations a ON a.instance_id = n.instance_id AND a.node_id = n.id"
    "   WHERE n.node_type = 'LOOP' AND n.left_node IS NOT NULL), "
    "old AS ("
    "  SELECT x.ctid AS row_id FROM loops l JOIN df._activations x ON x.instance_id = l.instance_id"
    "   WHERE l.keep_from > 1"
    "     AND df._stamp_generation(x.stamp, l.loop_stamp, l.body) < l.keep_from"
    "   LIMIT $2 FOR UPDATE OF x SKIP LOCKED) "
    "DELETE FROM df._activations d WHERE d.ctid = ANY (ARRAY(SELECT row_id FROM old))";

// Fenced by the sweeper's worker epoch (bind_session_epoch) like every
// bookkeeping write: a replaced daemon's late sweep, with the settings it read
// long ago, deletes nothing.
std::int64_t run_batch(pqxx::connection &conn, const char *sql, std::int64_t a, std::int64_t b) {
    pqxx::work tx(conn);
    if (!holds_epoch(tx)) return 0;
    const auto result = tx.exec_params(sql, a, b);
    tx.commit();
    return static_cast<std::int64_t>(result.affected_rows());
}

}  // namespace

RetentionBatch retention_batch(pqxx::connection &conn, const RetentionLimits &limits) {
    RetentionBatch done;
    done.instances = run_batch(conn, kExpiredInstances, limits.retention_days, limits.batch);
    if (limits.retention_max_instances > 0)
        done.instances += run_batch(conn, kSurplusInstances, limits.retention_max_instances, limits.batch);
    done.executions = run_batch(conn, kOldExecutions, limits.history_executions, limits.batch);
    done.iterations = run_batch(conn, kOldIterations, limits.history_executions,
                                static_cast<std::int64_t>(limits.batch) * 20);
    return done;
}

void prepare_engine_statements(pqxx::connection &conn) {
    for (const Statement *statement :
         {&kRecordActivation, &kMirrorLeaf, &kMirrorNode, &kLockLiveInstance, &kHoldsEpoch, &kLoadInstance,
          &kMarkRunning, &kRecordContinued, &kTrimExecution, &kTrimScope, &kCompleteInstanceDropSignals,
          &kFailInstanceDropSignals, &kInstanceState, &kMarkStartedRunning, &kInstanceStates})
        conn.prepare(statement->name, statement->sql);
}

std::unique_ptr<pqxx::connection> open_engine_session(const std::string &conninfo, const std::string &epoch) {
    auto conn = open_epoch_session(conninfo, epoch);
    prepare_engine_statements(*conn);
    return conn;
}

}  // namespace pgd::daemon::store
