// Shared fixture of the engine integration tests (test_engine_*.cpp): a real
// cluster with the extension, two ordinary login roles with df usage, and a
// daemon. Every wait has a deadline.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "catch_compat.hpp"

#include "cluster.hpp"

namespace pgd::test {

// A SQL string literal: 'text' with quotes doubled.
inline std::string lit(const std::string &text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

// How many step backends sleep in pg_sleep right now.
constexpr const char *kSleepingStep =
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable step' AND wait_event = 'PgSleep'";

class EngineCluster {
public:
    // Roles "alice" and "bob" (LOGIN, df usage, CREATE on public);
    // pg_durable.loop_min_interval_ms = 0 unless overridden.
    explicit EngineCluster(ClusterOptions options = {}, bool start_daemon = true);

    TestCluster &cluster() { return cluster_; }
    DaemonProcess *daemon() { return daemon_.get(); }

    void start_daemon();
    void kill_daemon();  // SIGKILL

    // Runs SQL as `role` ("" = superuser) in `db`; first column of first row.
    std::optional<std::string> query(const std::string &role, const std::string &sql,
                                     const std::string &db = "postgres") const;
    // Same, but the error text when it fails (std::nullopt when it succeeds).
    std::optional<std::string> error_of(const std::string &role, const std::string &sql,
                                        const std::string &db = "postgres") const;
    // SELECT df.start(<args>) as role; the instance id.
    std::string start(const std::string &args, const std::string &role = "alice") const;
    // Status as seen by the superuser.
    std::string status(const std::string &id) const;
    // Waits (deadline) until the instance is terminal; its status. FAILs on timeout.
    std::string await(const std::string &id, std::chrono::milliseconds deadline = std::chrono::seconds(20));
    // df.result as the superuser ("<null>" for NULL).
    std::string result(const std::string &id) const;
    // Column of a node, picked by a WHERE clause over df.nodes of this instance.
    std::string node(const std::string &id, const std::string &column, const std::string &where) const;
    std::string diagnostics(const std::string &id = "") const;

private:
    TestCluster cluster_;
    std::unique_ptr<DaemonProcess> daemon_;
};

// The first column of the first row of `sql` (superuser, in `db`) as a
// number; -1 when there is no row.
inline long count_of(EngineCluster &ec, const std::string &sql, const std::string &db = "postgres") {
    return std::stol(ec.cluster().query_value(sql, db).value_or("-1"));
}

}  // namespace pgd::test
