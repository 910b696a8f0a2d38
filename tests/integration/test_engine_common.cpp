#include "test_engine_common.hpp"

#include <pqxx/pqxx>

namespace pgd::test {

namespace {

ClusterOptions with_defaults(ClusterOptions options) {
    options.settings.emplace("pg_durable.loop_min_interval_ms", "0");
    return options;
}

std::string sql_literal(const std::string &text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

}  // namespace

EngineCluster::EngineCluster(ClusterOptions options, bool start)
    : cluster_(with_defaults(std::move(options))) {
    cluster_.exec("CREATE EXTENSION pg_durable");
    for (const char *role : {"alice", "bob"}) {
        cluster_.exec(std::string("CREATE ROLE ") + role + " " + kLogin);
        cluster_.exec(std::string("SELECT df.grant_usage('") + role + "')");
        cluster_.exec(std::string("GRANT CREATE ON SCHEMA public TO ") + role);
    }
    if (start) start_daemon();
}

void EngineCluster::start_daemon() {
    daemon_ = std::make_unique<DaemonProcess>(cluster_);
    REQUIRE_EVENTUALLY(daemon_->log_contains("pg_durable: processing durable functions..."), 30s,
                              daemon_->log());
}

void EngineCluster::kill_daemon() {
    if (daemon_) daemon_->kill_hard();
}

std::optional<std::string> EngineCluster::query(const std::string &role, const std::string &sql,
                                                const std::string &db) const {
    pqxx::connection conn(cluster_.conninfo(role, db));
    pqxx::nontransaction tx(conn);
    const auto r = tx.exec(sql);
    if (r.empty() || r.columns() == 0 || r[0][0].is_null()) return std::nullopt;
    return r[0][0].as<std::string>();
}

std::optional<std::string> EngineCluster::error_of(const std::string &role, const std::string &sql,
                                                   const std::string &db) const {
    try {
        query(role, sql, db);
    } catch (const pqxx::sql_error &e) {
        std::string what = e.what();
        while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
        if (what.rfind("ERROR:  ", 0) == 0) what = what.substr(8);
        return what;
    }
    return std::nullopt;
}

std::string EngineCluster::start(const std::string &args, const std::string &role) const {
    const auto id = query(role, "SELECT df.start(" + args + ")");
    REQUIRE(id);
    return *id;
}

std::string EngineCluster::status(const std::string &id) const {
    return cluster_.query_value("SELECT status FROM df.instances WHERE id = " + sql_literal(id)).value_or("<none>");
}

std::string EngineCluster::await(const std::string &id, std::chrono::milliseconds deadline) {
    std::string st;
    const bool ok = wait_until(
        [&] {
            st = status(id);
            return st == "completed" || st == "failed" || st == "cancelled";
        },
        deadline, 30ms);
    if (!ok) FAIL("instance " << id << " still " << st << "\n" << diagnostics(id));
    return st;
}

std::string EngineCluster::result(const std::string &id) const {
    return cluster_.query_value("SELECT df.result(" + sql_literal(id) + ")").value_or("<null>");
}

std::string EngineCluster::node(const std::string &id, const std::string &column, const std::string &where) const {
    return cluster_
        .query_value("SELECT " + column + "::text FROM df.nodes WHERE instance_id = " + sql_literal(id) +
                     " AND (" + where + ") LIMIT 1")
        .value_or("<null>");
}

std::string EngineCluster::diagnostics(const std::string &id) const {
    std::string out;
    try {
        if (!id.empty()) {
            out += cluster_
                       .query_value("SELECT string_agg(format('%s %s %s %s err=%s res=%s', id, node_type, status, "
                                    "left(query, 60), error, left(result::text, 200)), E'\\n') FROM df.nodes "
                                    "WHERE instance_id = " + sql_literal(id))
                       .value_or("") +
                   "\n";
            out += cluster_
                       .query_value("SELECT format('instance %s error=%s', status, error) FROM df.instances WHERE id = " +
                                    sql_literal(id))
                       .value_or("") +
                   "\n";
        }
    } catch (const std::exception &e) {
        out += std::string("(diagnostics query failed: ") + e.what() + ")\n";
    }
    if (daemon_) {
        const auto exit_code = daemon_->wait_exit(std::chrono::milliseconds(0));
        out += exit_code ? "daemon exited with code " + std::to_string(*exit_code) + "\n" : "daemon running\n";
        const auto log = daemon_->log();
        out += "--- daemon log (tail) ---\n" + (log.size() > 6000 ? log.substr(log.size() - 6000) : log);
    }
    return out;
}

}  // namespace pgd::test
