// The extension against a real server: the preload rule (SPEC §2) and
// df.start's visibility: the daemon is woken at commit, never before and
// never for a rolled-back start (SPEC §9).
#include "catch_compat.hpp"
#include <pqxx/pqxx>

#include "cluster.hpp"

using namespace pgd::test;

namespace {

std::string start_in(pqxx::transaction_base &tx, const std::string &fut) {
    return tx.exec_params1("SELECT df.start($1)", fut)[0].as<std::string>();
}

}  // namespace

TEST_CASE("CREATE EXTENSION without shared_preload_libraries fails with the SPEC message", "[extension]") {
    ClusterOptions options;
    options.settings["shared_preload_libraries"] = "";  // written as ''
    TestCluster cluster(options);
    pqxx::connection conn(cluster.conninfo());
    pqxx::nontransaction tx(conn);
    std::string error;
    try {
        tx.exec("CREATE EXTENSION pg_durable");
    } catch (const pqxx::sql_error &e) {
        error = e.what();
    }
    CHECK(error.find("pg_durable must be loaded via shared_preload_libraries.\n\n"
                     "HINT: Add 'pg_durable' to shared_preload_libraries in postgresql.conf and restart the "
                     "server.") != std::string::npos);
    CHECK_FALSE(cluster.query_value("SELECT extname FROM pg_extension WHERE extname = 'pg_durable'"));
}

TEST_CASE("df.start wakes the daemon at commit, and a rolled-back start leaves nothing", "[extension]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable");
    cluster.exec("CREATE ROLE alice " + kLogin);
    cluster.exec("SELECT df.grant_usage('alice')");
    DaemonProcess daemon(cluster, {"--log-level", "debug"});
    REQUIRE_EVENTUALLY(daemon.log_contains("pg_durable: processing durable functions..."), 30s, daemon.log());

    pqxx::connection held_conn(cluster.conninfo("alice"));
    pqxx::connection other_conn(cluster.conninfo("alice"));

    // A start inside an open transaction is invisible and wakes nobody...
    pqxx::work held(held_conn);
    const std::string held_id = start_in(held, "SELECT 1");
    std::string marker_id;
    {
        pqxx::work tx(other_conn);
        CHECK(tx.exec_params1("SELECT count(*) FROM df.instances WHERE id = $1", held_id)[0].as<int>() == 0);
        marker_id = start_in(tx, "SELECT 2");
        tx.commit();
    }
    // ... while a later committed one does: notifications arrive in commit
    // order, so once the marker's wake-up is logged the held one's is not.
    REQUIRE_EVENTUALLY(daemon.log_contains("wake-up received for " + marker_id), 10s, daemon.log());
    CHECK_FALSE(daemon.log_contains(held_id));
    // The daemon ran the committed one.
    REQUIRE_EVENTUALLY(cluster.query_value("SELECT status FROM df.instances WHERE id = '" + marker_id + "'") ==
                           std::optional<std::string>("completed"),
                       10s, daemon.log());

    held.commit();
    REQUIRE_EVENTUALLY(daemon.log_contains(held_id), 10s, daemon.log());
    CHECK(cluster.query_value("SELECT count(*) FROM df.nodes WHERE instance_id = '" + held_id + "'") ==
          std::optional<std::string>("1"));

    // Rolled back: no rows, no wake-up.
    std::string rolled_back_id;
    {
        pqxx::work tx(held_conn);
        rolled_back_id = start_in(tx, "SELECT 3");
        tx.abort();
    }
    {
        pqxx::work tx(other_conn);
        marker_id = start_in(tx, "SELECT 4");
        tx.commit();
    }
    REQUIRE_EVENTUALLY(daemon.log_contains("wake-up received for " + marker_id), 10s, daemon.log());
    CHECK_FALSE(daemon.log_contains("wake-up received: start " + rolled_back_id));
    CHECK(cluster.query_value("SELECT count(*) FROM df.instances WHERE id = '" + rolled_back_id + "'") ==
          std::optional<std::string>("0"));
    CHECK(cluster.query_value("SELECT count(*) FROM df.nodes WHERE instance_id = '" + rolled_back_id + "'") ==
          std::optional<std::string>("0"));
}
