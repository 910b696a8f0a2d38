// The epoch fence, write by write (issue 10 item 4): every bookkeeping write
// the daemon's store makes (store_engine.hpp, plus the heartbeat) run on a
// session bound to a worker epoch that has been replaced — what a daemon
// resumed after SIGSTOP and a takeover still has queued — writes nothing;
// the same call on a session of the current epoch does write (so each check
// looks at a write that would show).
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <pqxx/pqxx>

#include "daemon/store.hpp"
#include "daemon/store_engine.hpp"
#include "test_engine_common.hpp"

using namespace pgd::test;
namespace store = pgd::daemon::store;

namespace {

// Every row of every table the daemon writes, as text.
std::string df_state(TestCluster &cluster) {
    std::string state;
    for (const char *table : {"df.instances", "df.nodes", "df._activations", "df._executions", "df._signals",
                              "df._daemon_secret", "df._worker_epoch"})
        state += std::string(table) + ":" +
                 cluster
                     .query_value(std::string("SELECT coalesce(string_agg(x::text, '|' ORDER BY x::text), '') FROM ") +
                                  table + " x")
                     .value_or("") +
                 "\n";
    return state;
}

std::unique_ptr<pqxx::connection> bookkeeping_session(TestCluster &cluster, const std::string &epoch) {
    auto conn = std::make_unique<pqxx::connection>(cluster.conninfo());
    store::prepare_session(*conn);
    store::bind_session_epoch(*conn, epoch);
    store::prepare_engine_statements(*conn);
    return conn;
}

}  // namespace

TEST_CASE("epoch fence: a replaced epoch's bookkeeping session writes nothing, write by write", "[takeover]") {
    EngineCluster ec(ClusterOptions{}, false);  // no daemon: the test is the daemon
    TestCluster &cluster = ec.cluster();
    const std::string current =
        cluster.query_value("INSERT INTO df._worker_epoch (epoch_id) VALUES (gen_random_uuid()) RETURNING epoch_id")
            .value();
    const std::string replaced = cluster.query_value("SELECT gen_random_uuid()").value();
    const auto stale = bookkeeping_session(cluster, replaced);
    const auto live = bookkeeping_session(cluster, current);

    const std::string id = ec.start("'SELECT 1' ~> 'SELECT 2'");
    const std::string node = cluster.query_value("SELECT root_node FROM df.instances WHERE id = '" + id + "'").value();
    cluster.exec("SELECT df.signal('" + id + "', 'go', '{\"n\": 1}')");
    const std::string stamp = id + "::1";
    auto write = [&](const std::string &stamp_suffix, const std::string &status) {
        durable::engine::ActivationWrite w;
        w.stamp = stamp + stamp_suffix;
        w.node_id = node;
        w.status = status;
        w.started_at = std::chrono::system_clock::now();
        return w;
    };
    durable::engine::Effects effects;
    effects.activations.push_back(write("::e", "completed"));
    store::RetentionLimits retention;
    retention.retention_days = 0;

    // Each bookkeeping call in a transaction of its own (PgEngineStore may
    // also commit several together: the fence holds per call either way).
    auto alone = [](auto call) {
        return [call](pqxx::connection &c) {
            pqxx::work tx(c);
            call(c, tx);
            tx.commit();
        };
    };
    const std::pair<const char *, std::function<void(pqxx::connection &)>> writes[] = {
        {"write_daemon_secret", alone([&](pqxx::connection &c, pqxx::work &tx) {
             store::write_daemon_secret(tx, "secret", &c == live.get() ? current : replaced);
         })},
        {"mark_running", alone([&](pqxx::connection &, pqxx::work &tx) { store::mark_running(tx, {id}); })},
        {"record_activation",
         alone([&](pqxx::connection &, pqxx::work &tx) { store::record_activation(tx, id, 1, write("", "running")); })},
        {"consume_signal",
         alone([&](pqxx::connection &, pqxx::work &tx) { store::consume_signal(tx, id, stamp, node, "go"); })},
        {"record_cancelled", alone([&](pqxx::connection &, pqxx::work &tx) {
             store::record_cancelled(tx, id, 1, {{stamp + "::c", node}}, "Cancelled: x");
         })},
        {"apply_effects",
         alone([&](pqxx::connection &, pqxx::work &tx) { store::apply_effects(tx, id, 1, effects); })},
        {"fail_instance",
         alone([&](pqxx::connection &, pqxx::work &tx) { store::fail_instance(tx, id, "boom", std::nullopt); })},
        {"retention_batch (the failed instance is past retention_days = 0)",
         [&](pqxx::connection &c) { store::retention_batch(c, retention); }},
    };
    for (const auto &[name, call] : writes) {
        INFO(name);
        const std::string before = df_state(cluster);
        call(*stale);
        CHECK(df_state(cluster) == before);
        call(*live);
        CHECK(df_state(cluster) != before);
    }
    CHECK(cluster.query_value("SELECT count(*) FROM df.instances") == std::optional<std::string>("0"));

    // The heartbeat of a replaced epoch finds no row to refresh.
    const store::ExtensionIdentity extension{
        std::stoll(cluster.query_value("SELECT oid FROM pg_extension WHERE extname = 'pg_durable'").value()),
        cluster.query_value("SELECT extversion FROM pg_extension WHERE extname = 'pg_durable'").value()};
    const std::string before = df_state(cluster);
    CHECK(store::heartbeat(*stale, replaced, extension) == store::HeartbeatResult::epoch_lost);
    CHECK(df_state(cluster) == before);
    CHECK(store::heartbeat(*live, current, extension) == store::HeartbeatResult::ok);
    // Another version of the same extension (ALTER EXTENSION UPDATE): nothing written.
    CHECK(store::heartbeat(*live, current, store::ExtensionIdentity{extension.oid, "0.9"}) ==
          store::HeartbeatResult::extension_updated);
}
