// Extension versions (issue 13 item 6; docs/OPERATIONS.md "Upgrading"): a
// database created at 1.0 (sql/pg_durable--1.0.sql, frozen) runs with this
// build's library and daemon, its workflows go on across ALTER EXTENSION
// pg_durable UPDATE, and the updated schema is exactly a fresh install's.
#include <algorithm>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

// Every property of the extension's objects that a user or the daemon can
// tell apart, one text line each, without OIDs (compared as a multiset).
// Generic over the members of the extension (pg_depend 'e'), so objects
// later upgrade files add are compared without touching this test.
constexpr const char *kCatalogSnapshot = R"SQL(
WITH ext AS (SELECT oid, extversion, extconfig, extcondition FROM pg_extension WHERE extname = 'pg_durable'),
members AS (
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid),
procs AS (SELECT p.* FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid),
nsps AS (SELECT n.* FROM pg_namespace n JOIN members m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid)
SELECT line FROM (
    SELECT 'extension version ' || extversion || ' config ' || coalesce(extconfig::regclass[]::text, '-')
           || ' ' || coalesce(extcondition::text, '-') FROM ext
    UNION ALL
    SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM members
    UNION ALL
    SELECT 'comment ' || pg_describe_object(m.classid, m.objid, m.objsubid) || ': ' || d.description
      FROM members m JOIN pg_description d ON d.classoid = m.classid AND d.objoid = m.objid
    UNION ALL
    SELECT 'schema ' || nspname || ' owner ' || nspowner::regrole FROM nsps
    UNION ALL
    SELECT 'schema acl ' || n.nspname || ' ' || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
           || ' ' || a.privilege_type || ' ' || a.is_grantable || ' by ' || a.grantor::regrole
      FROM nsps n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' owner ' || p.proowner::regrole || ' kind ' || p.prokind::text
           || ' leakproof ' || p.proleakproof || E'\n' || pg_get_functiondef(p.oid)
      FROM procs p WHERE p.prokind IN ('f', 'p')
    UNION ALL
    SELECT 'function acl ' || p.oid::regprocedure || ' '
           || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
           || ' ' || a.privilege_type || ' ' || a.is_grantable || ' by ' || a.grantor::regrole
      FROM procs p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
    UNION ALL
    SELECT 'operator ' || o.oid::regoperator || ' = ' || o.oprcode::regprocedure || ' -> ' || o.oprresult::regtype
      FROM pg_operator o JOIN members m ON m.classid = 'pg_operator'::regclass AND m.objid = o.oid
    UNION ALL
    SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text
      FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
    UNION ALL
    SELECT 'relation ' || c.oid::regclass || ' kind ' || c.relkind::text || ' persistence ' || c.relpersistence::text
           || ' owner ' || c.relowner::regrole || ' rls ' || c.relrowsecurity || ' force ' || c.relforcerowsecurity
           || ' options ' || coalesce(c.reloptions::text, '-')
      FROM rels c
    UNION ALL
    SELECT 'relation acl ' || c.oid::regclass || ' '
           || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
           || ' ' || a.privilege_type || ' ' || a.is_grantable || ' by ' || a.grantor::regrole
      FROM rels c, aclexplode(coalesce(c.relacl,
                                       acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) a
    UNION ALL
    SELECT 'column ' || c.oid::regclass || ' #' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
           || ' ' || quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
           || ' default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
           || ' identity ' || a.attidentity::text || ' generated ' || a.attgenerated::text
           || ' collation ' || coalesce((SELECT collname FROM pg_collation WHERE oid = a.attcollation), '-')
           || ' acl ' || coalesce(a.attacl::text, '-')
      FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    UNION ALL
    SELECT 'constraint ' || c.oid::regclass || ' ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid)
           || ' deferrable ' || k.condeferrable || ' validated ' || k.convalidated
      FROM rels c JOIN pg_constraint k ON k.conrelid = c.oid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) || ' clustered ' || i.indisclustered
      FROM rels c JOIN pg_index i ON i.indrelid = c.oid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
      FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT 'policy ' || c.oid::regclass || ' ' || quote_ident(p.polname) || ' ' || p.polcmd::text
           || ' permissive ' || p.polpermissive
           || ' roles ' || (SELECT string_agg(CASE r WHEN 0 THEN 'PUBLIC' ELSE r::regrole::text END, ',' ORDER BY 1)
                              FROM unnest(p.polroles) r)
           || ' using ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '-')
           || ' check ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-')
      FROM rels c JOIN pg_policy p ON p.polrelid = c.oid
    UNION ALL
    SELECT 'sequence ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL) || ' start ' || s.seqstart
           || ' increment ' || s.seqincrement || ' max ' || s.seqmax || ' min ' || s.seqmin || ' cache '
           || s.seqcache || ' cycle ' || s.seqcycle
      FROM rels c JOIN pg_sequence s ON s.seqrelid = c.oid
    UNION ALL
    SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid) FROM rels c WHERE c.relkind IN ('v', 'm')
) lines(line)
)SQL";

using Snapshot = std::multiset<std::string>;

Snapshot snapshot(pqxx::transaction_base &tx) {
    Snapshot lines;
    for (const auto &row : tx.exec(kCatalogSnapshot)) lines.insert(row[0].as<std::string>());
    return lines;
}

Snapshot snapshot(const TestCluster &cluster) {
    pqxx::connection conn(cluster.conninfo());
    pqxx::nontransaction tx(conn);
    return snapshot(tx);
}

// The lines only in `a`, then those only in `b`, for a failure message.
std::string difference(const Snapshot &a, const std::string &a_name, const Snapshot &b, const std::string &b_name) {
    std::string out;
    std::vector<std::string> only;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only));
    for (const auto &line : only) out += "only in " + a_name + ": " + line + "\n";
    only.clear();
    std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only));
    for (const auto &line : only) out += "only in " + b_name + ": " + line + "\n";
    return out;
}

std::size_t count_prefix(const Snapshot &s, const std::string &prefix) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [&](const std::string &l) { return l.rfind(prefix, 0) == 0; }));
}

const std::string kCreateWorker = "CREATE ROLE pgd_worker " + kLogin + " BYPASSRLS; GRANT pg_read_all_settings TO pgd_worker";

// A cluster whose daemon runs as a dedicated non-superuser worker role, so the
// worker grants of the install and upgrade scripts are part of the catalog.
ClusterOptions with_worker_role() {
    ClusterOptions options;
    options.settings["pg_durable.worker_role"] = "pgd_worker";
    options.settings["pg_durable.loop_min_interval_ms"] = "0";
    return options;
}

}  // namespace

TEST_CASE("1.0 updated to 1.1 has exactly the catalog of a fresh CREATE EXTENSION", "[upgrade]") {
    TestCluster cluster(with_worker_role());
    cluster.exec(kCreateWorker);

    cluster.exec("CREATE EXTENSION pg_durable");
    const Snapshot fresh = snapshot(cluster);
    REQUIRE(cluster.query_value("SELECT extversion FROM pg_extension WHERE extname = 'pg_durable'") ==
            std::optional<std::string>("1.1"));
    cluster.exec("DROP EXTENSION pg_durable");

    cluster.exec("CREATE EXTENSION pg_durable VERSION '1.0'");
    REQUIRE(cluster.query_value("SELECT extversion FROM pg_extension WHERE extname = 'pg_durable'") ==
            std::optional<std::string>("1.0"));
    const Snapshot v10 = snapshot(cluster);
    cluster.exec("ALTER EXTENSION pg_durable UPDATE");
    const Snapshot updated = snapshot(cluster);

    INFO(difference(fresh, "fresh 1.1", updated, "1.0 + UPDATE"));
    CHECK(fresh == updated);

    // The snapshot sees what it claims to: every kind of object is there.
    for (const char *kind : {"member ", "function ", "function acl ", "relation ", "relation acl ", "column ",
                             "constraint ", "index ", "trigger ", "policy ", "schema acl ", "operator ",
                             "sequence "})
        CHECK(count_prefix(fresh, kind) > 0);
    CHECK(fresh.count("relation acl df.instances pgd_worker UPDATE false by " + cluster.superuser()) == 1);
    // 1.0 itself is the frozen script's schema: it differs from 1.1 only by
    // what sql/upgrade/1.0--1.1/ adds (here: at least the version line).
    CHECK(v10 != fresh);
}

TEST_CASE("the catalog snapshot tells apart every kind of schema difference", "[upgrade]") {
    // A comparison that misses a difference would pass a broken upgrade
    // script: each change below must show up in the snapshot.
    TestCluster cluster(with_worker_role());
    cluster.exec(kCreateWorker);
    cluster.exec("CREATE ROLE someone");
    cluster.exec("CREATE EXTENSION pg_durable");
    const Snapshot base = snapshot(cluster);
    const std::vector<std::string> changes = {
        "ALTER FUNCTION df.status(text) STABLE",
        "ALTER FUNCTION df.status(text) SECURITY DEFINER",
        "ALTER FUNCTION df.status(text) RESET search_path",
        "CREATE OR REPLACE FUNCTION df.if_then_op(condition text, then_branch text) RETURNS text "
        "LANGUAGE sql VOLATILE STRICT AS $$ SELECT 'x' $$",
        "REVOKE EXECUTE ON FUNCTION df.start(text, text, text, text) FROM PUBLIC",
        "GRANT SELECT ON df.instances TO someone",
        "REVOKE UPDATE ON df.instances FROM pgd_worker",
        "ALTER TABLE df.instances ALTER COLUMN label SET DEFAULT 'x'",
        "ALTER TABLE df.instances ALTER COLUMN label SET NOT NULL",
        "ALTER TABLE df.vars ADD COLUMN extra int",
        "ALTER TABLE df.instances DROP CONSTRAINT instances_status_valid",
        "ALTER TABLE df.instances DROP CONSTRAINT instances_status_valid; "
        "ALTER TABLE df.instances ADD CONSTRAINT instances_status_valid CHECK (status <> '')",
        "DROP INDEX df.instances_submitted_by_idx",
        "DROP INDEX df.instances_submitted_by_idx; "
        "CREATE INDEX instances_submitted_by_idx ON df.instances (submitted_by, id)",
        "ALTER TABLE df._activations DISABLE TRIGGER _activations_count_outcome",
        "DROP POLICY vars_user_isolation ON df.vars",
        "ALTER POLICY vars_user_isolation ON df.vars TO someone",
        "ALTER TABLE df.vars DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE df.vars FORCE ROW LEVEL SECURITY",
        "GRANT USAGE ON SCHEMA df TO someone",
        "ALTER EXTENSION pg_durable DROP FUNCTION df.version()",
        "COMMENT ON FUNCTION df.version() IS 'x'",
        "ALTER SEQUENCE df._signals_seq_seq INCREMENT 2",
    };
    pqxx::connection conn(cluster.conninfo());
    for (const auto &change : changes) {
        pqxx::work tx(conn);
        tx.exec(change);
        const Snapshot changed = snapshot(tx);
        INFO(change);
        CHECK(changed != base);
        tx.abort();
    }
    CHECK(snapshot(cluster) == base);  // every change rolled back
}

TEST_CASE("workflows started under 1.0 continue across ALTER EXTENSION UPDATE and complete", "[upgrade]") {
    TestCluster cluster(with_worker_role());
    cluster.exec(kCreateWorker);
    cluster.exec("CREATE EXTENSION pg_durable VERSION '1.0'");
    cluster.exec("CREATE ROLE alice " + kLogin);
    cluster.exec("SELECT df.grant_usage('alice')");
    cluster.exec("GRANT CREATE ON SCHEMA public TO alice");
    DaemonProcess daemon(cluster, {"--user", "pgd_worker", "--log-level", "debug"});
    REQUIRE_EVENTUALLY(daemon.log_contains("pg_durable: processing durable functions..."), 30s, daemon.log());
    CHECK(daemon.log_contains("pg_durable: extension version 1.0; features of version 1.1 wait for ALTER "
                              "EXTENSION pg_durable UPDATE"));

    auto as_alice = [&](const std::string &sql) -> std::optional<std::string> {
        pqxx::connection conn(cluster.conninfo("alice"));
        pqxx::nontransaction tx(conn);
        const auto rows = tx.exec(sql);
        if (rows.empty() || rows[0][0].is_null()) return std::nullopt;
        return rows[0][0].as<std::string>();
    };
    auto start = [&](const std::string &fut) {
        const auto id = as_alice("SELECT df.start(" + fut + ")");
        REQUIRE(id);
        return *id;
    };
    auto status = [&](const std::string &id) {
        return cluster.query_value("SELECT status FROM df.instances WHERE id = " + lit(id)).value_or("<none>");
    };
    auto node_running = [&](const std::string &id, const std::string &type) {
        return cluster.query_value("SELECT count(*) FROM df.nodes WHERE instance_id = " + lit(id) +
                                   " AND node_type = " + lit(type) + " AND status = 'running'") ==
               std::optional<std::string>("1");
    };
    auto diagnostics = [&] {
        return cluster.query_value("SELECT string_agg(i.id || ' ' || i.status || ' ' || coalesce(i.error, ''), "
                                   "E'\\n') FROM df.instances i")
                   .value_or("") +
               "\n--- daemon log ---\n" + daemon.log();
    };

    as_alice("CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp()); CREATE TABLE stop_flag ()");
    // A timer due after the update, a signal wait, a loop that runs until
    // told to stop, and a SQL step still running when the update starts.
    // Long enough to be still asleep after the update on a slow, loaded machine.
    const std::string sleeper = start("df.sleep(15) ~> $$SELECT 'slept' AS s$$");
    const std::string waiter = start("df.wait_for_signal('go') |=> 'sig' ~> $$SELECT $sig::jsonb->'data'->>'n' AS n$$");
    const std::string looper = start(
        "df.loop('INSERT INTO ticks DEFAULT VALUES', 'SELECT NOT EXISTS (SELECT FROM stop_flag)', 100) ~> "
        "'SELECT count(*) AS ticks FROM ticks'");
    const std::string stepper = start("$$SELECT pg_sleep(6), 'stepped' AS s$$");

    REQUIRE_EVENTUALLY(node_running(sleeper, "SLEEP"), 20s, diagnostics());
    REQUIRE_EVENTUALLY(node_running(waiter, "SIGNAL"), 20s, diagnostics());
    REQUIRE_EVENTUALLY(cluster.query_value("SELECT count(*) >= 3 FROM ticks") == std::optional<std::string>("t"), 20s,
                       diagnostics());
    REQUIRE_EVENTUALLY(cluster.query_value(std::string(kSleepingStep)) == std::optional<std::string>("1"), 20s,
                       diagnostics());

    cluster.exec("ALTER EXTENSION pg_durable UPDATE");
    REQUIRE(cluster.query_value("SELECT extversion FROM pg_extension WHERE extname = 'pg_durable'") ==
            std::optional<std::string>("1.1"));
    const std::string updated_at = *cluster.query_value("SELECT clock_timestamp()::text");
    REQUIRE_EVENTUALLY(daemon.log_contains("pg_durable: extension updated from version 1.0 to 1.1"), 20s,
                       diagnostics());

    // Everything started under 1.0 is still in flight and finishes now.
    CHECK(status(sleeper) == "running");
    CHECK(status(waiter) == "running");
    CHECK(status(looper) == "running");
    REQUIRE_EVENTUALLY(cluster.query_value("SELECT count(*) >= 2 FROM ticks WHERE at > " + lit(updated_at)) ==
                           std::optional<std::string>("t"),
                       20s, diagnostics());  // the loop iterates under 1.1
    CHECK(as_alice("SELECT df.signal(" + lit(waiter) + ", 'go', '{\"n\": 7}')") == std::optional<std::string>("OK"));
    as_alice("INSERT INTO stop_flag DEFAULT VALUES");

    auto terminal = [&](const std::string &id) {
        const auto s = status(id);
        return s == "completed" || s == "failed" || s == "cancelled";
    };
    for (const auto &id : {sleeper, waiter, looper, stepper})
        REQUIRE_EVENTUALLY(terminal(id), 30s, diagnostics());
    CHECK(status(sleeper) == "completed");
    CHECK(status(waiter) == "completed");
    CHECK(status(looper) == "completed");
    CHECK(status(stepper) == "completed");
    CHECK(cluster.query_value("SELECT df.result(" + lit(sleeper) + ")") ==
          std::optional<std::string>(R"({"rows":[{"s":"slept"}],"row_count":1})"));
    CHECK(cluster.query_value("SELECT df.result(" + lit(waiter) + ")") ==
          std::optional<std::string>(R"({"rows":[{"n":"7"}],"row_count":1})"));
    CHECK(cluster.query_value("SELECT (df.result(" + lit(stepper) + ")::jsonb)->'rows'->0->>'s'") ==
          std::optional<std::string>("stepped"));
    // The SQL step ran once: the update did not interrupt it.
    CHECK(cluster.query_value("SELECT attempts FROM df.nodes WHERE instance_id = " + lit(stepper)) ==
          std::optional<std::string>("1"));

    // And new work under 1.1.
    const std::string after = start("'SELECT 42 AS answer'");
    REQUIRE_EVENTUALLY(terminal(after), 20s, diagnostics());
    CHECK(cluster.query_value("SELECT df.result(" + lit(after) + ")") ==
          std::optional<std::string>(R"({"rows":[{"answer":42}],"row_count":1})"));
    CHECK_FALSE(daemon.log_contains("[error]"));
}
