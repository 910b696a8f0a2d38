#include "daemon/store_steps.hpp"

namespace pgd::daemon::store {

namespace {

std::string text_or_empty(const pqxx::field &field) {
    return field.is_null() ? std::string() : field.as<std::string>();
}

}  // namespace

std::string run_step(pqxx::connection &conn, const std::string &secret, const std::string &instance_id,
                     const std::string &stamp, const std::string &node_id, std::int64_t execution,
                     const std::string &query, int attempt, const std::optional<std::string> &finish) {
    // The unnamed statement, parsed afresh each time: no name a step could
    // DEALLOCATE or PREPARE in its place (the step cannot PREPARE anyway: it
    // runs in a restricted operation).
    pqxx::nontransaction tx(conn);
    const char *finish_text = finish ? finish->c_str() : nullptr;
    const auto row = tx.exec_params1("SELECT df._run_step($1, $2, $3, $4, $5::bigint, $6, $7::int, $8::jsonb)",
                                     secret, instance_id, stamp, node_id, execution, query, attempt, finish_text);
    return text_or_empty(row[0]);
}

bool extension_installed(pqxx::connection &conn, const std::string &extension) {
    pqxx::nontransaction tx(conn);
    return tx.exec_params1("SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = $1)", extension)[0]
        .as<bool>();
}

std::string run_target_step(pqxx::connection &conn, const std::string &instance_id, std::int64_t role_oid,
                            const std::string &query) {
    // A statement of its own, after extension_installed(): in one statement
    // the planner could already evaluate an IMMUTABLE impostor while folding
    // constants, before any check ran.
    pqxx::nontransaction tx(conn);
    const auto row =
        tx.exec_params1("SELECT df._run_step($1, $2::oid, $3)", instance_id, std::to_string(role_oid), query);
    return text_or_empty(row[0]);
}

void cancel_backend(pqxx::connection &conn, int backend_pid) {
    pqxx::nontransaction tx(conn);
    tx.exec_params("SELECT pg_catalog.pg_cancel_backend($1)", backend_pid);
}

}  // namespace pgd::daemon::store
