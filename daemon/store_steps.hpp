// The step half of the store module (store.hpp: attach, store_engine.hpp:
// the orchestrator's bookkeeping): the statements a user connection runs to
// execute one step. They are built here and sent by the Executor without
// blocking (async_connection.hpp), so the SQL still lives in one module.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "daemon/async_connection.hpp"

namespace pgd::daemon::store {

// The extension's df._run_step for one step (SPEC §10.1, the step protocol
// in common/protocol.hpp): runs the query as the submitter and records its
// outcome in the same transaction; its one value is the outcome JSON text.
// `finish` is the instance-completion instruction, if any.
Statement run_step(const std::string &secret, const std::string &instance_id, const std::string &stamp,
                   const std::string &node_id, std::int64_t execution, const std::string &query, int attempt,
                   const std::optional<std::string> &finish);

// Whether the companion extension `extension` is installed in the
// connection's database ('t' or 'f'). Sent as a statement of its own before
// every target step: where it is not, a df._run_step there could be any
// user's function.
Statement extension_installed(const std::string &extension);

// pg_durable_target's df._run_step in another database: runs the query as
// the role with `role_oid`; its one value is the outcome JSON text, and
// nothing is recorded there.
Statement run_target_step(const std::string &instance_id, std::int64_t role_oid, const std::string &query);

}  // namespace pgd::daemon::store
