#include "daemon/store_steps.hpp"

namespace pgd::daemon::store {

// No transaction block around these: df._run_step's statement is its own
// transaction, so the step and its record commit together, once.
//
// df._run_step's call is a prepared statement of the step connection's
// session (parsed and planned once per session, not once per step: issue
// 12). A step cannot DEALLOCATE it or PREPARE another under its name: it
// runs in a restricted operation, where PostgreSQL refuses both (test
// "identity: nothing a step does to its session reaches later steps of any
// role" [identity]).
Statement run_step(const std::string &secret, const std::string &instance_id, const std::string &stamp,
                   const std::string &node_id, std::int64_t execution, const std::string &query, int attempt,
                   const std::optional<std::string> &finish) {
    return {"SELECT df._run_step($1, $2, $3, $4, $5::bigint, $6, $7::int, $8::jsonb)",
            {secret, instance_id, stamp, node_id, std::to_string(execution), query, std::to_string(attempt), finish},
            "pgd_run_step"};
}

// The two below are unnamed statements, parsed afresh each time.
Statement extension_installed(const std::string &extension) {
    return {"SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = $1)", {extension}};
}

Statement run_target_step(const std::string &instance_id, std::int64_t role_oid, const std::string &query) {
    // A statement of its own, after extension_installed(): in one statement
    // the planner could already evaluate an IMMUTABLE impostor while folding
    // constants, before any check ran.
    return {"SELECT df._run_step($1, $2::oid, $3)", {instance_id, std::to_string(role_oid), query}};
}

}  // namespace pgd::daemon::store
