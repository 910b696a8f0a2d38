// The step half of the store module (store.hpp: attach, store_engine.hpp:
// the orchestrator's bookkeeping): the statements a user connection runs to
// execute one step. Blocking libpqxx calls: run them only on a DbWorker
// thread (a user connection's worker or the canceller).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace pgd::daemon::store {

// The extension's df._run_step for one step (SPEC §10.1, the step protocol
// in common/protocol.hpp): runs the query as the submitter and records its
// outcome in the same transaction. Returns the outcome JSON text ("" for a
// NULL result). `finish` is the instance-completion instruction, if any.
std::string run_step(pqxx::connection &conn, const std::string &secret, const std::string &instance_id,
                     const std::string &stamp, const std::string &node_id, std::int64_t execution,
                     const std::string &query, int attempt, const std::optional<std::string> &finish);

// Whether the companion extension `extension` is installed in the database
// of `conn`. Asked in a statement of its own before every target step: where
// it is not, a df._run_step there could be any user's function.
bool extension_installed(pqxx::connection &conn, const std::string &extension);

// pg_durable_target's df._run_step in another database: runs the query as
// the role with `role_oid` and returns the outcome JSON text, recording
// nothing there.
std::string run_target_step(pqxx::connection &conn, const std::string &instance_id, std::int64_t role_oid,
                            const std::string &query);

// Interrupts the statement a step's backend runs (its own session: the
// daemon's role may signal backends of its own role only).
void cancel_backend(pqxx::connection &conn, int backend_pid);

}  // namespace pgd::daemon::store
