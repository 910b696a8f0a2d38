// The instance counters (df._instance_counters; sql/parts/52_instance_counters.sql,
// extension/instance_counters.cpp): df.metrics and the instance gauges of
// df_monitor.operator_metrics read them instead of counting rows, so they must
// equal a real count of the tables in every snapshot, whoever writes: df.start,
// the daemon, df._run_step, df.cancel, retention deletes, loop history trims,
// a superuser's own statements, TRUNCATE, rolled-back work, concurrent
// sessions, an upgrade from 1.0. And nobody else may write or recount them.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "catch_compat.hpp"
#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

// The counters and a real count, in one statement (one snapshot):
// "pending/running/completed/failed/cancelled/executions/events|<same, counted>".
constexpr const char *kBoth =
    "SELECT c.v || '|' || r.v FROM "
    "(SELECT concat_ws('/', COALESCE(sum(pending), 0), COALESCE(sum(running), 0), COALESCE(sum(completed), 0),"
    "                  COALESCE(sum(failed), 0), COALESCE(sum(cancelled), 0), COALESCE(sum(executions), 0),"
    "                  COALESCE(sum(events), 0)) AS v FROM df._instance_counters) c, "
    "(SELECT concat_ws('/', count(*) FILTER (WHERE i.status = 'pending'), count(*) FILTER (WHERE i.status = 'running'),"
    "                  count(*) FILTER (WHERE i.status = 'completed'), count(*) FILTER (WHERE i.status = 'failed'),"
    "                  count(*) FILTER (WHERE i.status = 'cancelled'), COALESCE(sum(i.execution_count), 0),"
    "                  (SELECT COALESCE(sum(e.event_count), 0) FROM df._executions e)"
    "                    + (SELECT count(*) FROM df._activations a JOIN df.instances x"
    "                         ON x.id = a.instance_id AND a.execution = x.execution_count)) AS v"
    "   FROM df.instances i) r";

struct Counts {
    std::string counted;
    std::string real;
};

Counts counts(const TestCluster &cluster) {
    const auto both = cluster.query_value(kBoth).value_or("?|?");
    const auto bar = both.find('|');
    return {both.substr(0, bar), both.substr(bar + 1)};
}

// Counters equal to the real count, with both in the failure message.
#define CHECK_COUNTED(cluster)                                      \
    do {                                                            \
        const Counts c_ = counts(cluster);                          \
        INFO("counted " << c_.counted << ", real " << c_.real);     \
        CHECK(c_.counted == c_.real);                               \
    } while (0)

bool terminal_all(const TestCluster &cluster) {
    return cluster.query_value("SELECT count(*) FROM df.instances WHERE status IN ('pending', 'running')") ==
           std::optional<std::string>("0");
}

}  // namespace

TEST_CASE("instance counters equal a real count through the engine's life cycle", "[instance_counters]") {
    ClusterOptions options;
    options.settings["pg_durable.history_executions"] = "2";
    EngineCluster ec(options);
    TestCluster &cluster = ec.cluster();
    CHECK_COUNTED(cluster);
    CHECK(counts(cluster).counted == "0/0/0/0/0/0/0");
    ec.query("alice", "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp()); CREATE TABLE ticks2 (at timestamptz)");

    // Every kind of writer: df.start, the daemon's mark-running and ends,
    // df._run_step's finish, timers, a failure, df.cancel of a running step,
    // a root loop that goes on (new executions, past executions recorded and
    // trimmed), a nested loop (its iterations' activations trimmed).
    std::vector<std::string> ids;
    ids.push_back(ec.start("'SELECT 1'"));
    ids.push_back(ec.start("'SELECT 1' ~> 'SELECT 2' ~> 'SELECT 3'"));
    ids.push_back(ec.start("'SELECT 1/0'"));
    ids.push_back(ec.start("df.sleep(1) ~> 'SELECT 4'"));
    ids.push_back(ec.start("df.loop('INSERT INTO ticks DEFAULT VALUES', "
                           "'SELECT (SELECT count(*) FROM ticks) < 12', 0)"));
    ids.push_back(ec.start("df.loop('INSERT INTO ticks2 DEFAULT VALUES', 'SELECT (SELECT count(*) FROM ticks2) < 10', 0) ~> 'SELECT 5'"));
    const auto sleeper = ec.start("'SELECT pg_sleep(60)'");
    // Counted right in every snapshot while the daemon works, not only at the end.
    for (int i = 0; i < 40; ++i) CHECK_COUNTED(cluster);
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(sleeper));
    ec.query("alice", "SELECT df.cancel(" + lit(sleeper) + ")");
    for (const auto &id : ids) ec.await(id, 30s);
    REQUIRE(ec.await(sleeper) == "cancelled");
    CHECK_COUNTED(cluster);
    // The root loop went on (several executions, the oldest past ones trimmed).
    CHECK(count_of(ec, "SELECT execution_count FROM df.instances WHERE id = " + lit(ids[4])) > 3);
    CHECK(count_of(ec, "SELECT count(*) FROM df._executions WHERE instance_id = " + lit(ids[4])) <= 3);
    CHECK(*ec.query("", "SELECT total_instances || '/' || completed_instances || '/' || failed_instances "
                        "FROM df.metrics()") == "7/5/1");

    // Rolled back: a whole transaction, a savepoint.
    {
        pqxx::connection conn(cluster.conninfo("alice"));
        pqxx::work tx(conn);
        tx.exec("SELECT df.start('SELECT 6')");
        tx.exec("SELECT df.start('SELECT 7')");
        tx.abort();
    }
    {
        pqxx::connection conn(cluster.conninfo());
        pqxx::work tx(conn);
        tx.exec("SAVEPOINT s");
        tx.exec("DELETE FROM df.instances WHERE id = " + tx.quote(ids[4]));
        tx.exec("UPDATE df.instances SET status = 'failed' WHERE id = " + tx.quote(ids[0]));
        tx.exec("ROLLBACK TO SAVEPOINT s");
        tx.exec("UPDATE df.instances SET status = 'cancelled' WHERE id = " + tx.quote(ids[1]));
        tx.commit();
    }
    CHECK_COUNTED(cluster);

    // A superuser's own statements: an execution number moved by hand, an
    // activation moved to another execution, a past execution's event count.
    cluster.exec("UPDATE df.instances SET execution_count = execution_count + 1 WHERE id = " + lit(ids[2]));
    CHECK_COUNTED(cluster);
    cluster.exec("UPDATE df._activations SET execution = execution + 1 WHERE instance_id = " + lit(ids[1]) +
                 " AND node_id = (SELECT min(node_id) FROM df._activations WHERE instance_id = " + lit(ids[1]) + ")");
    CHECK_COUNTED(cluster);
    cluster.exec("UPDATE df._executions SET event_count = event_count + 5 WHERE instance_id = " + lit(ids[4]));
    CHECK_COUNTED(cluster);

    // Retention: the daemon's own statement deletes the root loop (execution
    // number above 1) and two others, with their activations and executions.
    cluster.exec("WITH doomed AS (SELECT id FROM df.instances WHERE id IN (" + lit(ids[4]) + ", " + lit(ids[0]) +
                 ", " + lit(ids[2]) + ") FOR UPDATE SKIP LOCKED) DELETE FROM df.instances i USING doomed d "
                 "WHERE i.id = d.id");
    CHECK_COUNTED(cluster);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances") == 4);

    // Loop history trimmed by hand while the instance stays.
    cluster.exec("DELETE FROM df._activations WHERE instance_id = " + lit(ids[5]) +
                 " AND ctid IN (SELECT ctid FROM df._activations WHERE instance_id = " + lit(ids[5]) + " LIMIT 3)");
    CHECK_COUNTED(cluster);

    // TRUNCATE recounts; the engine counts on afterwards.
    cluster.exec("TRUNCATE df.instances CASCADE");
    CHECK(counts(cluster).counted == "0/0/0/0/0/0/0");
    CHECK_COUNTED(cluster);
    const auto after = ec.start("'SELECT 8' ~> 'SELECT 9'");
    REQUIRE(ec.await(after) == "completed");
    CHECK_COUNTED(cluster);
    CHECK(*ec.query("", "SELECT total_instances || '/' || completed_instances || '/' || total_events "
                        "FROM df.metrics()") == "1/1/2");
    // The operator gauges read the same counters.
    CHECK(*ec.query("", "SELECT string_agg(value::text, '/' ORDER BY metric) FROM df_monitor.operator_metrics() "
                        "WHERE metric LIKE 'instances\\_%' AND metric NOT LIKE 'instances_waiting%'") ==
          "0/1/0/0/0");
}

TEST_CASE("instance counters: concurrent sessions start, commit and roll back", "[instance_counters]") {
    EngineCluster ec;
    TestCluster &cluster = ec.cluster();
    std::atomic<int> failures{0};
    std::vector<std::thread> sessions;
    for (int s = 0; s < 4; ++s) {
        sessions.emplace_back([&, s] {
            try {
                pqxx::connection conn(cluster.conninfo(s % 2 == 0 ? "alice" : "bob"));
                for (int i = 0; i < 40; ++i) {
                    pqxx::work tx(conn);
                    tx.exec("SELECT df.start('SELECT " + std::to_string(i) + "')");
                    if (i % 3 == 1) {
                        tx.exec("SAVEPOINT p");
                        tx.exec("SELECT df.start('SELECT 1' ~> 'SELECT 2')");
                        tx.exec("ROLLBACK TO SAVEPOINT p");
                    }
                    if (i % 4 == 3)
                        tx.abort();
                    else
                        tx.commit();
                }
            } catch (const std::exception &e) {
                ++failures;
                WARN(e.what());
            }
        });
    }
    // Sampled while the sessions and the daemon write.
    for (int i = 0; i < 30; ++i) CHECK_COUNTED(cluster);
    for (auto &t : sessions) t.join();
    CHECK(failures == 0);
    REQUIRE_EVENTUALLY(terminal_all(cluster), 60s, ec.diagnostics());
    CHECK_COUNTED(cluster);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances") == 4 * 30);
    CHECK(count_of(ec, "SELECT sum(completed) FROM df._instance_counters") == 4 * 30);
}

TEST_CASE("instance counters: an error between a cascade and its statement's count leaves nothing behind",
          "[instance_counters]") {
    EngineCluster ec(ClusterOptions{}, false);  // no daemon: the rows stay as written
    TestCluster &cluster = ec.cluster();
    const auto doomed = ec.start("'SELECT 1'");
    const auto other = ec.start("'SELECT 2'");
    cluster.exec("INSERT INTO df._activations (instance_id, stamp, node_id, execution, status) "
                 "SELECT id, id || '::1', root_node, 1, 'completed' FROM df.instances");
    cluster.exec("INSERT INTO df._executions (instance_id, execution, status, started_at) VALUES (" + lit(doomed) +
                 ", 0, 'continued', now())");
    CHECK_COUNTED(cluster);
    // The instance's activations are deleted (and their count gathered) before
    // its df._executions cascade fails.
    cluster.exec("CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$BEGIN RAISE EXCEPTION 'refused'; END$$");
    cluster.exec("CREATE TRIGGER refuse BEFORE DELETE ON df._executions FOR EACH ROW EXECUTE FUNCTION public.refuse()");
    {
        pqxx::connection conn(cluster.conninfo());
        pqxx::nontransaction tx(conn);  // BEGIN and savepoints by hand: the failed statement stays in it
        tx.exec("BEGIN");
        tx.exec("SAVEPOINT s");
        CHECK_THROWS_WITH(tx.exec("DELETE FROM df.instances WHERE id = " + tx.quote(doomed)),
                          Catch::Contains("refused"));
        tx.exec("ROLLBACK TO SAVEPOINT s");
        tx.exec("UPDATE df.instances SET status = 'running' WHERE id = " + tx.quote(other));
        tx.exec("COMMIT");
    }
    CHECK_COUNTED(cluster);
    cluster.exec("DROP TRIGGER refuse ON df._executions");
    cluster.exec("DELETE FROM df.instances WHERE id = " + lit(doomed));
    CHECK_COUNTED(cluster);
    CHECK(counts(cluster).counted == "0/1/0/0/0/1/1");
}

TEST_CASE("instance counters after ALTER EXTENSION UPDATE from 1.0", "[instance_counters]") {
    TestCluster cluster;
    cluster.exec("CREATE EXTENSION pg_durable VERSION '1.0'");
    cluster.exec("CREATE ROLE alice " + kLogin);
    cluster.exec("SELECT df.grant_usage('alice')");
    // Rows of 1.0 in every status, with activations and a past execution.
    {
        pqxx::connection conn(cluster.conninfo("alice"));
        pqxx::nontransaction tx(conn);
        for (int i = 0; i < 5; ++i) tx.exec("SELECT df.start('SELECT " + std::to_string(i) + "')");
    }
    cluster.exec("UPDATE df.instances SET status = s.status FROM (SELECT id, (ARRAY['running', 'completed', "
                 "'failed', 'cancelled'])[row_number() OVER (ORDER BY id)] AS status FROM df.instances) s "
                 "WHERE s.id = df.instances.id AND s.status IS NOT NULL");
    cluster.exec("INSERT INTO df._activations (instance_id, stamp, node_id, execution, status) "
                 "SELECT id, id || '::1', root_node, 1, 'completed' FROM df.instances");
    cluster.exec("UPDATE df.instances SET execution_count = 3 WHERE id = (SELECT min(id) FROM df.instances)");
    cluster.exec("INSERT INTO df._executions (instance_id, execution, status, started_at, event_count) "
                 "SELECT min(id), 2, 'continued', now(), 4 FROM df.instances");
    cluster.exec("ALTER EXTENSION pg_durable UPDATE");
    CHECK_COUNTED(cluster);
    CHECK(counts(cluster).counted == "1/1/1/1/1/7/8");
    CHECK(cluster.query_value("SELECT total_instances || '/' || total_executions || '/' || total_events "
                              "FROM df.metrics()") == std::optional<std::string>("5/7/8"));
    pqxx::connection conn(cluster.conninfo("alice"));
    pqxx::nontransaction tx(conn);
    tx.exec("SELECT df.start('SELECT 9')");
    CHECK_COUNTED(cluster);
}

TEST_CASE("instance counters: no user writes, recounts or counts into them", "[instance_counters][hostile]") {
    EngineCluster ec(ClusterOptions{}, false);
    TestCluster &cluster = ec.cluster();
    ec.start("'SELECT 1'");
    const auto before = counts(cluster).counted;
    for (const char *sql : {
             "UPDATE df._instance_counters SET pending = pending + 1000",
             "INSERT INTO df._instance_counters (shard) VALUES (3)",
             "DELETE FROM df._instance_counters",
             "SELECT * FROM df._instance_counters",
             "SELECT df._count_instance_rows()",
             "TRUNCATE df._instance_counters",
         }) {
        INFO(sql);
        const auto error = ec.error_of("alice", sql);
        REQUIRE(error);
        CHECK_THAT(*error, Catch::Contains("permission denied"));
    }
    // A trigger of alice's own table on either counting function: refused.
    ec.query("alice", "CREATE TABLE mine (status text, execution_count bigint)");
    for (const char *fn : {"df._count_instances()", "df._count_step_outcome()"}) {
        INFO(fn);
        CHECK(ec.query("", std::string("SELECT has_function_privilege('alice', '") + fn + "', 'EXECUTE')") == "f");
        const auto error = ec.error_of("alice", std::string("CREATE TRIGGER t AFTER INSERT ON mine FOR EACH ROW "
                                                            "EXECUTE FUNCTION ") + fn);
        REQUIRE(error);
        CHECK_THAT(*error, Catch::Contains("permission denied for function"));
    }
    // Even a superuser's trigger on another table counts nothing.
    cluster.exec("CREATE TRIGGER t AFTER INSERT ON public.mine REFERENCING NEW TABLE AS new_instances "
                 "FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances()");
    const auto error = ec.error_of("alice", "INSERT INTO mine VALUES ('pending', 1)");
    REQUIRE(error);
    CHECK_THAT(*error, Catch::Contains("counts df.instances, df._activations and df._executions only"));
    CHECK(ec.error_of("", "SELECT df._count_instances()").has_value());
    CHECK(counts(cluster).counted == before);
    // The owner's recount only recounts.
    cluster.exec("SELECT df._count_instance_rows()");
    CHECK(counts(cluster).counted == before);
    CHECK_COUNTED(cluster);
    // Writers take a counter row by an in-memory lock no SQL function
    // reaches: a user holding every advisory lock of the counters' key
    // ('pgdc', 0-15, in both forms) in an open transaction holds up no count.
    {
        pqxx::connection conn(cluster.conninfo("alice"));
        pqxx::work tx(conn);
        tx.exec("SELECT pg_advisory_xact_lock(1885824099, g), pg_advisory_xact_lock((1885824099::bigint << 32) + g) "
                "FROM generate_series(0, 15) g");
        for (int i = 0; i < 20; ++i)  // from more backends than rows, each with a deadline
            CHECK(ec.query("bob", "SET statement_timeout = '10s'; SELECT df.start('SELECT 1')").has_value());
        tx.commit();
    }
    CHECK_COUNTED(cluster);
}
