// The engine's half of the store module (store.hpp holds the attach SQL):
// every statement the orchestrator runs on df tables for loading instances,
// recording effects and consuming signals. Blocking libpqxx calls: run them
// only on a DbWorker thread.
//
// Each call runs its statements in the caller's transaction and never relies
// on rolling it back: PgEngineStore commits the calls of many instances
// together (one commit for a batch, pg_engine_store.hpp). A call that finds
// its instance no longer live writes nothing. The instance row is always
// locked first, NOWAIT (the one lock order, docs/ARCHITECTURE.md).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "common/graph.hpp"
#include "daemon/interpreter.hpp"

namespace pgd::daemon::store {

// An instance as the orchestrator needs it to (re)start its graph.
struct LoadedInstance {
    std::string id;
    std::string status;
    std::optional<std::string> label;
    std::string root_node;
    std::string database;
    std::string submitted_by;   // role name ('' when the role was dropped)
    std::int64_t submitted_by_oid = 0;
    bool role_exists = true;
    bool role_is_superuser = false;
    std::int64_t execution = 1;
    std::vector<durable::StoredNode> nodes;
    std::map<std::string, std::string> vars;
    durable::engine::History history;  // activations of the current execution
};

// Declares this module's prepared statements on a bookkeeping session; call
// once, right after opening it (store::prepare_session), before any call below.
void prepare_engine_statements(pqxx::connection &conn);

// A bookkeeping session for the calls below: connected, prepared
// (store::prepare_session), bound to `epoch`, its statements declared.
std::unique_ptr<pqxx::connection> open_engine_session(const std::string &conninfo, const std::string &epoch);

// The reads below are one statement each and take any transaction: a read
// sent alone runs without BEGIN and COMMIT (one statement has one snapshot
// anyway), two round trips less on the dispatch path.

// Ids of pending and running instances, oldest first.
std::vector<std::string> active_instance_ids(pqxx::transaction_base &tx);

// Everything about one pending or running instance; nullopt when it is gone
// or already terminal.
std::optional<LoadedInstance> load_instance(pqxx::transaction_base &tx, const std::string &id);

// The active daemon's secret (df._daemon_secret): df._run_step refuses other
// callers; a daemon taking over rotates it, fencing its predecessor. Writes
// nothing when the session's worker epoch was replaced meanwhile.
void write_daemon_secret(pqxx::work &tx, const std::string &secret, const std::string &epoch_id);

// Writes one batch of interpreter writes for an instance (instance row
// locked first). Returns false, writing nothing,
// when the instance is no longer pending or running (cancelled meanwhile).
bool apply_effects(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                   const durable::engine::Effects &effects);

// Fails an instance that cannot run at all (dropped role, superuser, broken graph).
void fail_instance(pqxx::work &tx, const std::string &instance_id, const std::string &error,
                   const std::optional<std::string> &error_node);

// Records one activation outside a step transaction (a connection failure,
// a step in another database, an HTTP step), then the instance's batch.
void record_activation(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                       const durable::engine::ActivationWrite &write);

// Hands the oldest queued signal `signal_name` of the instance to the wait
// (stamp, node_id): deletes it and completes the wait together.
// Returns the SIGNAL result, or nullopt when nothing is queued.
std::optional<std::string> consume_signal(pqxx::work &tx, const std::string &instance_id,
                                          const std::string &stamp, const std::string &node_id,
                                          const std::string &signal_name);

// Marks taken-up instances 'running' in one statement (SPEC §15: an instance
// is running as soon as the daemon has taken it up). Rows someone else holds
// locked are skipped: their first step's commit marks them.
void mark_running(pqxx::work &tx, const std::vector<std::string> &ids);

// The instance's status and error (cancel reason), nullopt when gone.
struct InstanceState {
    std::string status;
    std::optional<std::string> error;
};
std::optional<InstanceState> instance_state(pqxx::transaction_base &tx, const std::string &instance_id);

// The committed state of the named instances (ids that name no instance are
// absent), plus every pending or running one when `all_active` is set: what a
// batch of wake-up hints is reconciled against, in one statement.
struct NamedInstanceState {
    std::string id;
    InstanceState state;
};
std::vector<NamedInstanceState> instance_states(pqxx::transaction_base &tx, const std::vector<std::string> &ids,
                                                bool all_active);

// Marks the activations of a cancelled instance's interrupted steps.
void record_cancelled(pqxx::work &tx, const std::string &instance_id, std::int64_t execution,
                      const std::vector<durable::engine::RecordKey> &steps, const std::string &error);

// Whether the role (by oid) holds EXECUTE on df.http (SPEC §14 gate 1);
// false when the role is gone.
bool has_http_privilege(pqxx::transaction_base &tx, std::int64_t role_oid);

// Retention and loop-history bounding (SPEC §17, DESIGN §2.8): one small
// batch of each kind of cleanup, each in its own short transaction, skipping
// rows other transactions hold. Terminal instances older than retention_days
// (age from becoming terminal) or beyond the newest retention_max_instances
// terminal ones are deleted with all their state (ON DELETE CASCADE);
// pending and running instances never. Root loops keep the activations and
// df._executions rows of the newest history_executions past executions;
// non-root loops keep the activations of their newest history_executions
// past iterations (and their checkpoint row).
struct RetentionLimits {
    int retention_days = 30;
    int retention_max_instances = 10000;  // 0 = no count limit
    int history_executions = 10;
    int batch = 100;  // instances / executions per transaction; activations: batch * 20
};
struct RetentionBatch {
    std::int64_t instances = 0;   // terminal instances deleted
    std::int64_t executions = 0;  // past root-loop executions deleted
    std::int64_t iterations = 0;  // activation rows of old non-root loop iterations deleted
};
// The session must be bound to the daemon's worker epoch
// (store::bind_session_epoch): once that epoch is replaced nothing is deleted.
RetentionBatch retention_batch(pqxx::connection &conn, const RetentionLimits &limits);

}  // namespace pgd::daemon::store
