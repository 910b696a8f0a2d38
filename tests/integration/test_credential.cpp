// The daemon's one credential (DESIGN §2.4, issue 9 items 1 and 7): a cluster
// whose pg_hba.conf has nothing but scram-sha-256 lines, a daemon logged in
// as its own non-superuser role durable_worker with exactly the grants
// docs/OPERATIONS.md §3 lists, and every node type running to completion.
// A wrong daemon password is one clear log line, not a crash loop, and the
// daemon logs in by itself once the password matches again (rotation).
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>

#include "catch_compat.hpp"
#include <pqxx/pqxx>

#include "cluster.hpp"
#include "http_test_server.hpp"
#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kWorker = "durable_worker";
constexpr const char *kProcessing = "pg_durable: processing durable functions...";

// The operator's one-time step (docs/OPERATIONS.md §3), before CREATE EXTENSION.
std::string create_worker_sql(const std::string &password) {
    return std::string("CREATE ROLE ") + kWorker + " LOGIN BYPASSRLS PASSWORD " + lit(password) +
           "; GRANT pg_read_all_settings TO " + kWorker;
}

// The METHOD column of every rule of pg_hba.conf.
std::vector<std::string> hba_methods(const TestCluster &cluster) {
    std::ifstream in(cluster.data_dir() + "/pg_hba.conf");
    std::vector<std::string> methods;
    std::string line;
    while (std::getline(in, line)) {
        line = line.substr(0, line.find('#'));
        std::istringstream fields(line);
        std::vector<std::string> f;
        for (std::string w; fields >> w;) f.push_back(w);
        if (f.empty()) continue;
        // local DATABASE USER METHOD | host* DATABASE USER ADDRESS METHOD
        const std::size_t at = f[0] == "local" ? 3 : 4;
        methods.push_back(at < f.size() ? f[at] : "<missing>");
    }
    return methods;
}

ClusterOptions worker_cluster_options(bool launch_daemon) {
    ClusterOptions o;
    o.launch_daemon = launch_daemon;
    o.settings = {{"pg_durable.worker_role", kWorker},
                  {"pg_durable.loop_min_interval_ms", "0"},
                  {"pg_durable.http_enabled", "on"},
                  {"pg_durable.http_allowed_hosts", "*"},
                  {"pg_durable.http_allow_private_networks", "on"}};
    return o;
}

std::string value(const TestCluster &cluster, const std::string &sql) {
    return cluster.query_value(sql).value_or("<null>");
}

std::string start_as_alice(const TestCluster &cluster, const std::string &fut) {
    pqxx::connection conn(cluster.conninfo("alice"));
    pqxx::nontransaction tx(conn);
    return tx.exec1("SELECT df.start(" + fut + ")")[0].as<std::string>();
}

bool terminal(const std::string &status) {
    return status == "completed" || status == "failed" || status == "cancelled";
}

}  // namespace

TEST_CASE("credential: a scram-only cluster runs every node type with the daemon as non-superuser durable_worker",
          "[credential]") {
    HttpTestServer http;
    TestCluster cluster(worker_cluster_options(false));

    // Nothing but scram-sha-256 in pg_hba.conf: no trust, no peer.
    const auto methods = hba_methods(cluster);
    REQUIRE(!methods.empty());
    for (const auto &m : methods) CHECK(m == "scram-sha-256");

    cluster.exec(create_worker_sql(kRolePassword));
    cluster.exec("CREATE EXTENSION pg_durable");
    cluster.exec("CREATE ROLE alice " + kLogin + "; SELECT df.grant_usage('alice', include_http => true); "
                 "GRANT CREATE ON SCHEMA public TO alice");
    {
        pqxx::connection conn(cluster.conninfo("alice"));
        pqxx::nontransaction tx(conn);
        tx.exec("CREATE TABLE chain_t (step int, who text); CREATE TABLE loop_t (i int)");
    }
    CHECK(value(cluster, "SELECT rolsuper FROM pg_roles WHERE rolname = 'durable_worker'") == "f");

    ::setenv("PGD_MAINTENANCE_INTERVAL_MS", "300", 1);
    DaemonProcess daemon(cluster, {"--user", kWorker, "--log-level", "debug"});
    ::unsetenv("PGD_MAINTENANCE_INTERVAL_MS");
    REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    CHECK(daemon.log_contains("connected to database \"postgres\" as \"durable_worker\""));

    const std::string chain = start_as_alice(
        cluster, "$$INSERT INTO chain_t VALUES (1, current_user) RETURNING step$$ |=> 'a' ~> "
                 "$$INSERT INTO chain_t VALUES ($a + 1, current_user) RETURNING step$$ |=> 'b' ~> "
                 "'SELECT $b + 1 AS c, current_user AS who'");
    const std::string join = start_as_alice(cluster, "'SELECT 1 AS a' & 'SELECT 2 AS b'");
    const std::string race = start_as_alice(cluster, "'SELECT pg_sleep(30)' | 'SELECT 7 AS w'");
    const std::string branch = start_as_alice(cluster, "'SELECT true' ?> $$SELECT 'yes' AS r$$ !> $$SELECT 'no' AS r$$");
    const std::string loop = start_as_alice(
        cluster, "df.loop('INSERT INTO loop_t VALUES (1)' ~> "
                 "df.if('SELECT count(*) >= 3 FROM loop_t', df.break('{\"done\": true}'), 'SELECT 1'))");
    const std::string sleep = start_as_alice(cluster, "df.sleep(1) ~> 'SELECT 1 AS slept'");
    const std::string signal = start_as_alice(cluster, "df.wait_for_signal('go', 60)");
    const std::string get = start_as_alice(
        cluster, "df.http(" + lit(http.url("/echo")) + ", 'GET', NULL, '{}'::jsonb, 30)");
    // A long step, to see its session and to cancel it.
    const std::string held = start_as_alice(cluster, "'SELECT pg_sleep(60)'");

    {
        pqxx::connection conn(cluster.conninfo("alice"));
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT df.signal(" + lit(signal) + ", 'go', '{\"ok\": 1}')");
    }

    // Every session of the daemon, orchestrator (LISTEN + lock), state,
    // management and steps alike, is logged in as durable_worker, which is
    // no superuser: one credential.
    REQUIRE_EVENTUALLY(value(cluster, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable step' "
                                      "AND query LIKE '%df._run_step%' AND state = 'active'") != "0",
                       20s, daemon.log());
    const std::string daemon_sessions =
        " FROM pg_stat_activity a WHERE a.backend_type = 'client backend' AND a.application_name LIKE 'pg_durable%'";
    CHECK(value(cluster, "SELECT string_agg(DISTINCT a.usename::text, ',')" + daemon_sessions) == kWorker);
    CHECK(value(cluster, "SELECT bool_or(r.rolsuper) FROM pg_roles r WHERE r.oid IN (SELECT a.usesysid" +
                             daemon_sessions + ")") == "f");
    // The orchestrator session ("pgdu" lock, LISTEN) and the state session.
    CHECK(value(cluster, "SELECT a.usename FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                         "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1885824117 AND l.objid = 1") ==
          kWorker);
    CHECK(std::stoi(value(cluster, "SELECT count(*)" + daemon_sessions + " AND a.application_name <> 'pg_durable step'")) >= 2);

    // df.cancel interrupts the running step: the daemon cancels its own
    // backend, so it needs no pg_signal_backend.
    {
        pqxx::connection conn(cluster.conninfo("alice"));
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT df.cancel(" + lit(held) + ")");
    }

    auto await = [&](const std::string &id) {
        std::string st;
        if (!wait_until([&] { return terminal(st = value(cluster, "SELECT status FROM df.instances WHERE id = " + lit(id))); },
                        60s))
            FAIL("instance " << id << " still " << st << "\n" << daemon.log());
        INFO("instance " << id << " error: " << value(cluster, "SELECT error FROM df.instances WHERE id = " + lit(id)));
        return st;
    };
    auto result = [&](const std::string &id) { return value(cluster, "SELECT df.result(" + lit(id) + ")::text"); };
    auto result_is = [&](const std::string &id, const std::string &expected) {
        return value(cluster, "SELECT df.result(" + lit(id) + ")::jsonb = " + lit(expected) + "::jsonb") == "t";
    };

    CHECK(await(chain) == "completed");
    CHECK(result(chain) == R"({"rows":[{"c":3,"who":"alice"}],"row_count":1})");
    CHECK(value(cluster, "SELECT string_agg(step || who, ',' ORDER BY step) FROM chain_t") == "1alice,2alice");
    CHECK(await(join) == "completed");
    CHECK(result_is(join, R"([{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1}])"));
    CHECK(await(race) == "completed");
    CHECK(result(race) == R"({"rows":[{"w":7}],"row_count":1})");
    CHECK(await(branch) == "completed");
    CHECK(result(branch) == R"({"rows":[{"r":"yes"}],"row_count":1})");
    CHECK(await(loop) == "completed");
    CHECK(result_is(loop, R"({"done": true})"));
    CHECK(value(cluster, "SELECT count(*) FROM loop_t") == "3");
    CHECK(await(sleep) == "completed");
    CHECK(result(sleep) == R"({"rows":[{"slept":1}],"row_count":1})");
    CHECK(await(signal) == "completed");
    INFO("signal result: " << result(signal));
    CHECK(result_is(signal, R"({"signal_name":"go","timed_out":false,"data":{"ok":1}})"));
    CHECK(await(get) == "completed");
    CHECK(value(cluster, "SELECT (df.result(" + lit(get) + ")::jsonb->>'status')") == "200");
    CHECK(http.hits("/echo").size() == 1);
    CHECK(await(held) == "cancelled");
    // The race's loser and the cancelled step were interrupted, not waited for.
    REQUIRE_EVENTUALLY(value(cluster, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' "
                                      "AND state = 'active' AND pid <> pg_backend_pid()") == "0",
                       10s, daemon.log());

    // Retention deletes as durable_worker too.
    cluster.exec("ALTER SYSTEM SET pg_durable.retention_days = 0");
    cluster.exec("SELECT pg_reload_conf()");
    // pg_reload_conf() only signals: until the daemon's session has re-read
    // the file, SHOW there still says the old value. So SIGHUP until it sees it.
    REQUIRE_EVENTUALLY((daemon.signal(SIGHUP), daemon.log_contains("setting pg_durable.retention_days changed")),
                       20s, daemon.log());
    REQUIRE_EVENTUALLY(value(cluster, "SELECT count(*) FROM df.instances") == "0", 30s, daemon.log());

    CHECK(daemon.running());
    CHECK(!daemon.log_contains("permission denied"));
    CHECK(!daemon.log_contains("must be superuser"));
}

TEST_CASE("credential: a wrong daemon password is one clear log line, and the daemon logs in once it is right",
          "[credential]") {
    // The shim launches the daemon as durable_worker; the server's
    // PGPASSFILE (the cluster's passfile) has kRolePassword, the role another.
    TestCluster cluster(worker_cluster_options(true));
    cluster.exec(create_worker_sql("not-the-passfile-password"));
    cluster.exec("CREATE EXTENSION pg_durable");
    cluster.exec("CREATE ROLE alice " + kLogin + "; SELECT df.grant_usage('alice')");

    const std::string refused = "password authentication failed for user \"durable_worker\"";
    REQUIRE_EVENTUALLY(count_occurrences(cluster.server_log(), refused) >= 3, 60s, cluster.server_log());
    const std::string log = cluster.server_log();
    // The daemon says why, once, with where its password comes from ...
    CHECK(count_occurrences(log, "cannot connect to the server: ") == 1);
    CHECK(log.find("check the password in its passfile") != std::string::npos);
    // ... and keeps retrying in the same process: the shim never restarts it,
    // so the cause is not buried under exit and restart lines.
    CHECK(count_occurrences(log, "pg_durable shim: started daemon") == 1);
    CHECK(log.find("exited with exit code") == std::string::npos);

    // Rotation: the password now matches the passfile again; the daemon's
    // next attempt logs in, no restart needed.
    cluster.exec(std::string("ALTER ROLE ") + kWorker + " PASSWORD " + lit(kRolePassword));
    REQUIRE_EVENTUALLY(cluster.server_log().find(kProcessing) != std::string::npos, 30s, cluster.server_log());
    CHECK(cluster.server_log().find("as \"durable_worker\" after ") != std::string::npos);
    const std::string id = start_as_alice(cluster, "'SELECT 41 + 1 AS answer'");
    REQUIRE_EVENTUALLY(value(cluster, "SELECT status FROM df.instances WHERE id = " + lit(id)) == "completed", 30s,
                       cluster.server_log());
    CHECK(value(cluster, "SELECT df.result(" + lit(id) + ")::text") == R"({"rows":[{"answer":42}],"row_count":1})");
    CHECK(count_occurrences(cluster.server_log(), "pg_durable shim: started daemon") == 1);
}
