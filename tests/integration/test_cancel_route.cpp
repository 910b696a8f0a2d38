// A step is cancelled on the server its own connection reached (issue 10):
// the cancel request travels with libpq's cancel key of the step's
// connection, not through a new session the daemon's conninfo would route
// elsewhere. Here the daemon's conninfo lists two hosts with
// target_session_attrs=read-write; once the running step has started, the
// first host turns read-only for new sessions of the daemon's role (as a
// failed-over old primary would) and the second one does not answer at all.
// A cancel through a new session finds no writable server and the step
// would sleep on; the cancel key reaches the step's backend directly.
#include <string>

#include "catch_compat.hpp"
#include <pqxx/pqxx>

#include "cluster.hpp"
#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kWorker = "durable_worker";

std::string value(const TestCluster &cluster, const std::string &sql) {
    return cluster.query_value(sql).value_or("<null>");
}

std::string as_alice(const TestCluster &cluster, const std::string &sql) {
    pqxx::connection conn(cluster.conninfo("alice"));
    pqxx::nontransaction tx(conn);
    const auto row = tx.exec1(sql);
    return row[0].is_null() ? "<null>" : row[0].as<std::string>();
}

// The second host is the same socket directory on a port nothing listens on.
std::string two_hosts(const TestCluster &cluster, int dead_port) {
    return "host='" + cluster.dir() + "," + cluster.dir() + "' port='" + std::to_string(cluster.port()) + "," +
           std::to_string(dead_port) + "' dbname=postgres user=" + kWorker + " passfile='" + cluster.passfile() +
           "' target_session_attrs=read-write";
}

}  // namespace

TEST_CASE("cancel route: a running step is cancelled on its own connection's server, whatever new sessions reach",
          "[cancel]") {
    ClusterOptions options;
    options.settings = {{"pg_durable.worker_role", kWorker}};
    TestCluster cluster(options);
    cluster.exec(std::string("CREATE ROLE ") + kWorker + " LOGIN BYPASSRLS PASSWORD " + lit(kRolePassword) +
                 "; GRANT pg_read_all_settings TO " + kWorker);
    cluster.exec("CREATE EXTENSION pg_durable");
    cluster.exec("CREATE ROLE alice " + kLogin + "; SELECT df.grant_usage('alice')");
    struct ResetRole {
        const TestCluster &cluster;
        ~ResetRole() {
            try {
                cluster.exec(std::string("ALTER ROLE ") + kWorker + " RESET default_transaction_read_only");
            } catch (...) {
            }
        }
    } reset{cluster};

    DaemonProcess daemon(cluster, WithConninfo{two_hosts(cluster, cluster.port() + 1)}, {"--log-level", "debug"},
                         "cancel-route");
    REQUIRE_EVENTUALLY(daemon.log_contains("pg_durable: processing durable functions..."), 30s, daemon.log());

    const std::string held = as_alice(cluster, "SELECT df.start('SELECT pg_sleep(60)')");
    REQUIRE_EVENTUALLY(value(cluster, kSleepingStep) == "1", 20s, daemon.log());

    // From now on a new session of the daemon's role finds no writable server.
    cluster.exec(std::string("ALTER ROLE ") + kWorker + " SET default_transaction_read_only = on");
    as_alice(cluster, "SELECT df.cancel(" + lit(held) + ")");

    REQUIRE_EVENTUALLY(value(cluster, kSleepingStep) == "0", 10s, daemon.log());
    CHECK(value(cluster, "SELECT status FROM df.instances WHERE id = " + lit(held)) == "cancelled");
    REQUIRE_EVENTUALLY(value(cluster, "SELECT status FROM df.nodes WHERE instance_id = " + lit(held) +
                                          " AND node_type = 'SQL'") == "cancelled",
                       10s, daemon.log());
    CHECK_FALSE(daemon.log_contains("could not cancel a running step"));
}
