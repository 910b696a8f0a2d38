#include "chaos_log.hpp"

#include <cstdio>
#include <iostream>

namespace pgd::chaos {

Options &options() {
    static Options instance;
    return instance;
}

RunLog::RunLog(const std::string &path) : path_(path), file_(path, std::ios::trunc) {}

double RunLog::now_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void RunLog::line(const std::string &text) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "[%8.2fs] ", now_s());
    std::lock_guard<std::mutex> lock(mutex_);
    std::cout << stamp << text << std::endl;
    file_ << stamp << text << std::endl;
}

std::string driver_conninfo(const test::TestCluster &cluster, const std::string &role, const std::string &db) {
    return cluster.conninfo(role, db) + " application_name=" + kDriverApplication;
}

pqxx::result query_rows(const test::TestCluster &cluster, const std::string &sql, const std::string &db) {
    pqxx::connection conn(driver_conninfo(cluster, "", db));
    pqxx::nontransaction tx(conn);
    return tx.exec(sql);
}

std::optional<std::string> query_value(const test::TestCluster &cluster, const std::string &sql,
                                       const std::string &db) {
    const auto rows = query_rows(cluster, sql, db);
    if (rows.empty() || rows.columns() == 0 || rows[0][0].is_null()) return std::nullopt;
    return rows[0][0].as<std::string>();
}

}  // namespace pgd::chaos
