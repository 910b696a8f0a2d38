// Retention, bounded loop history and live explain on real runs (SPEC §15,
// §16, §17; DESIGN §2.8). The daemon's maintenance sweep runs about once a
// minute; PGD_MAINTENANCE_INTERVAL_MS shortens it here so the tests wait
// seconds, not minutes (waits are still deadlines, never fixed sleeps).
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include <pqxx/pqxx>

#include "cluster.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

#define RETENTION_REQUIRE_EVENTUALLY(condition, deadline, diagnostics)                      \
    do {                                                                                    \
        if (!wait_until([&] { return static_cast<bool>(condition); }, deadline, 100ms))    \
            FAIL("timed out waiting for: " #condition "\n--- diagnostics ---\n" << (diagnostics)); \
    } while (0)

const std::vector<std::string> kTables = {"df.instances", "df.nodes", "df.vars", "df._instance_vars",
                                          "df._activations", "df._signals", "df._executions"};

using Settings = std::map<std::string, std::string>;

// A cluster with the extension, role alice (LOGIN, df usage) and a daemon
// sweeping every 300 ms.
struct RetentionCluster {
    explicit RetentionCluster(Settings settings) : cluster(options(std::move(settings))) {
        cluster.exec("CREATE EXTENSION pg_durable");
        cluster.exec("CREATE ROLE alice " + kLogin);
        cluster.exec("SELECT df.grant_usage('alice')");
        ::setenv("PGD_MAINTENANCE_INTERVAL_MS", "300", 1);
        daemon = std::make_unique<DaemonProcess>(cluster, std::vector<std::string>{"--log-level", "info"});
        ::unsetenv("PGD_MAINTENANCE_INTERVAL_MS");
    }
    static ClusterOptions options(Settings settings) {
        ClusterOptions o;
        o.settings = std::move(settings);
        o.settings.emplace("pg_durable.loop_min_interval_ms", "0");
        return o;
    }
    std::optional<std::string> as(const std::string &role, const std::string &sql) const {
        pqxx::connection conn(cluster.conninfo(role));
        pqxx::nontransaction tx(conn);
        const auto rows = tx.exec(sql);
        if (rows.empty() || rows[0][0].is_null()) return std::nullopt;
        return rows[0][0].as<std::string>();
    }
    std::string value(const std::string &sql) const { return cluster.query_value(sql).value_or("<null>"); }
    long count(const std::string &table) const { return std::stol(value("SELECT count(*) FROM " + table)); }
    std::string diagnostics() const {
        std::string out;
        for (const auto &t : kTables) out += t + ": " + std::to_string(count(t)) + "\n";
        out += value("SELECT string_agg(id || ' ' || status || ' ' || execution_count || ' ' || COALESCE(error, ''), E'\\n') "
                     "FROM df.instances");
        const std::string log = daemon->log();
        return out + "\n--- daemon log (tail) ---\n" + log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
    }

    TestCluster cluster;
    std::unique_ptr<DaemonProcess> daemon;
};

}  // namespace

TEST_CASE("a root loop and a non-root loop run 2000 iterations with bounded state", "[retention]") {
    RetentionCluster env(Settings{{"pg_durable.history_executions", "3"}});
    env.cluster.exec("CREATE SEQUENCE seq_root; CREATE SEQUENCE seq_inner; "
                     "GRANT USAGE, SELECT ON SEQUENCE seq_root, seq_inner TO alice");
    const std::string root = *env.as(
        "alice", "SELECT df.start(df.loop('SELECT nextval(''seq_root'') AS n', "
                 "'SELECT last_value < 2000 FROM seq_root', 0), 'root-loop')");
    const std::string inner = *env.as(
        "alice", "SELECT df.start('SELECT 0 AS start' ~> df.loop('SELECT nextval(''seq_inner'') AS n', "
                 "'SELECT last_value < 2000 FROM seq_inner', 0), 'inner-loop')");

    std::map<std::string, long> peak;
    auto sample = [&] {
        for (const auto &t : kTables) peak[t] = std::max(peak[t], env.count(t));
    };
    auto done = [&] {
        sample();
        return env.value("SELECT count(*) FROM df.instances WHERE status IN ('completed', 'failed', 'cancelled')") ==
               "2";
    };
    RETENTION_REQUIRE_EVENTUALLY(done(), 300s, env.diagnostics());
    CHECK(env.value("SELECT status FROM df.instances WHERE id = '" + root + "'") == "completed");
    CHECK(env.value("SELECT status FROM df.instances WHERE id = '" + inner + "'") == "completed");
    CHECK(env.value("SELECT execution_count FROM df.instances WHERE id = '" + root + "'") == "2000");
    CHECK(env.value("SELECT last_value FROM seq_root") == "2000");
    CHECK(env.value("SELECT last_value FROM seq_inner") == "2000");

    // Without bounding the loops would leave about 3 x 2000 + 2 x 2000 activations.
    RETENTION_REQUIRE_EVENTUALLY(env.count("df._activations") <= 40 && env.count("df._executions") <= 3, 30s,
                                 env.diagnostics());
    INFO(env.diagnostics());
    for (const auto &[table, rows] : peak) INFO(table << " peak " << rows);
    // Trimmed in the commit that starts each next iteration: the peak is a
    // small constant (history_executions + 1 iterations of each loop), not a
    // share of the 2000 iterations.
    CHECK(peak["df._activations"] < 200);
    CHECK(peak["df._executions"] < 20);
    CHECK(peak["df.instances"] == 2);
    CHECK(peak["df._signals"] == 0);
    CHECK(env.count("df.nodes") == 8);  // the graphs as submitted: 3 + 5 nodes

    // Monitoring over the bounded history: the current execution and the
    // newest 3 past ones, newest first.
    CHECK(env.value("SELECT string_agg(execution_id || ':' || status, ',' ORDER BY execution_id DESC) "
                    "FROM df.instance_executions('" + root + "', 10)") ==
          "2000:completed,1999:continued,1998:continued,1997:continued");
    CHECK(env.value("SELECT output FROM df.instance_executions('" + root + "', 2) WHERE execution_id = 1999") ==
          "{\"rows\":[{\"n\":1999}],\"row_count\":1}");
    CHECK(env.value("SELECT total_executions FROM df.metrics()") == "2001");
    // A non-root loop's checkpoint row is kept.
    CHECK(env.value("SELECT a.result::json ->> 'iteration' FROM df._activations a JOIN df.nodes n "
                    "ON n.instance_id = a.instance_id AND n.id = a.node_id "
                    "WHERE a.instance_id = '" + inner + "' AND n.node_type = 'LOOP'") == "2000");
}

TEST_CASE("retention deletes old and surplus terminal instances with their state, never running ones",
          "[retention]") {
    RetentionCluster env(Settings{{"pg_durable.retention_max_instances", "3"}, {"pg_durable.retention_days", "30"}});
    // A running instance, made to look 40 days old.
    const std::string waiting = *env.as("alice", "SELECT df.start(df.wait_for_signal('never'))");
    RETENTION_REQUIRE_EVENTUALLY(env.value("SELECT status FROM df.instances WHERE id = '" + waiting + "'") == "running",
                                 30s, env.diagnostics());
    env.cluster.exec("UPDATE df.instances SET created_at = now() - interval '40 days', "
                     "updated_at = now() - interval '40 days' WHERE id = '" + waiting + "'");

    // Terminal instances: five 40 days old (one with state in every table),
    // six recent ones of which the newest three stay.
    std::string sql =
        "INSERT INTO df.instances (id, root_node, status, submitted_by, database, created_at, updated_at) VALUES ";
    for (int i = 0; i < 11; ++i) {
        const bool old = i < 5;
        const std::string status = i % 3 == 0 ? "completed" : i % 3 == 1 ? "failed" : "cancelled";
        char id[24];  // room for any int: gcc -O1 (build-asan) cannot bound i
        std::snprintf(id, sizeof id, "e00000%02d", i);
        const std::string age = old ? "interval '40 days'" : "interval '" + std::to_string(20 - i) + " minutes'";
        sql += std::string(i ? ", " : "") + "('" + id + "', 'a0000000', '" + status +
               "', 'alice', 'postgres', now() - " + age + ", now() - " + age + ")";
    }
    env.cluster.exec(sql);
    env.cluster.exec(
        "INSERT INTO df.nodes (id, instance_id, node_type, query, status, submitted_by, database) "
        "VALUES ('a0000000', 'e0000000', 'SQL', 'SELECT 1', 'completed', 'alice', 'postgres');"
        "INSERT INTO df._activations (instance_id, stamp, node_id, execution, status) "
        "VALUES ('e0000000', 'e0000000::1', 'a0000000', 1, 'completed');"
        "INSERT INTO df._executions (instance_id, execution, status, started_at, ended_at) "
        "VALUES ('e0000000', 1, 'continued', now(), now());"
        "INSERT INTO df._instance_vars (instance_id, name, value) VALUES ('e0000000', 'x', '1');"
        "INSERT INTO df._signals (instance_id, signal_name, payload) VALUES ('e0000000', 's', '{}')");

    RETENTION_REQUIRE_EVENTUALLY(
        env.value("SELECT count(*) FROM df.instances WHERE status IN ('completed', 'failed', 'cancelled')") == "3", 30s,
        env.diagnostics());
    CHECK(env.value("SELECT string_agg(id, ',' ORDER BY id) FROM df.instances WHERE id LIKE 'e%' AND id <> '" +
                    waiting + "'") ==
          "e0000008,e0000009,e0000010");
    CHECK(env.value("SELECT status FROM df.instances WHERE id = '" + waiting + "'") == "running");
    for (const auto &table : {"df.nodes", "df._activations", "df._executions", "df._instance_vars", "df._signals"})
        CHECK(env.value(std::string("SELECT count(*) FROM ") + table + " WHERE instance_id = 'e0000000'") == "0");
    // The running instance still works.
    CHECK(env.as("alice", "SELECT df.cancel('" + waiting + "', 'done')") ==
          std::optional<std::string>("Instance " + waiting + " cancelled: done"));
}

TEST_CASE("live explain marks completed, failed, running, pending and skipped nodes", "[retention]") {
    RetentionCluster env(Settings{});
    const std::string id = *env.as(
        "alice",
        "SELECT df.start(df.join3(df.if('SELECT false', 'SELECT ''then''', 'SELECT ''else'''), "
        "'SELECT 1/0' ~> 'SELECT ''after''', df.wait_for_signal('go') ~> 'SELECT ''later'''), 'live')");
    auto node = [&](const std::string &query, const std::string &column) {
        return env.value("SELECT " + column + " FROM df.instance_nodes('" + id + "') WHERE query = $q$" + query +
                         "$q$");
    };
    RETENTION_REQUIRE_EVENTUALLY(node("SELECT 1/0", "status") == "failed" &&
                                     node("SELECT 'else'", "status") == "completed" &&
                                     env.value("SELECT status FROM df.instance_nodes('" + id +
                                               "') WHERE node_type = 'SIGNAL'") == "running",
                                 30s, env.diagnostics());
    CHECK(node("SELECT 'then'", "inferred_status") == "skipped");
    CHECK(node("SELECT 'after'", "inferred_status") == "skipped");
    CHECK(node("SELECT 'later'", "inferred_status") == "pending");

    const std::string live = *env.as("alice", "SELECT df.explain('" + id + "')");
    INFO(live);
    CHECK(live.find("Status:   ⏳ Running") != std::string::npos);
    CHECK(live.find("SQL: SELECT false ✓") != std::string::npos);
    CHECK(live.find("SQL: SELECT 'then' ⊘") != std::string::npos);
    CHECK(live.find("SQL: SELECT 'else' ✓") != std::string::npos);
    CHECK(live.find("SQL: SELECT 1/0 ✗") != std::string::npos);
    CHECK(live.find("SQL: SELECT 'after' ⊘") != std::string::npos);
    CHECK(live.find("SIGNAL 'go' ⏳") != std::string::npos);
    CHECK(live.find("SQL: SELECT 'later' ○") != std::string::npos);

    env.as("alice", "SELECT df.signal('" + id + "', 'go')");
    RETENTION_REQUIRE_EVENTUALLY(env.value("SELECT status FROM df.instances WHERE id = '" + id + "'") == "failed", 30s,
                                 env.diagnostics());
    const std::string ended = *env.as("alice", "SELECT df.explain('" + id + "')");
    INFO(ended);
    CHECK(ended.find("Status:   ✗ Failed") != std::string::npos);
    CHECK(ended.find("SIGNAL 'go' ✓") != std::string::npos);
    CHECK(ended.find("SQL: SELECT 'later' ✓") != std::string::npos);
    CHECK(ended.find("SQL: SELECT 'then' ⊘") != std::string::npos);
}
