// Steps in another database (`database => ...`, issue 9 items 5, 6, 8): the
// daemon connects to the target database with its own credential and calls
// the df._run_step of extension pg_durable_target there, which runs the step
// as the submitter exactly as in the extension's database (docs/ARCHITECTURE.md
// "Steps in another database"). Also: every daemon connection talks UTF8,
// so LATIN1 databases work, as target and as pg_durable.database.
#include <set>
#include <vector>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kTarget = "other";
// The role the daemon logs in as.
constexpr const char *kDaemonLogin =
    "SELECT min(usename) FROM pg_stat_activity WHERE application_name = 'pg_durable orchestrator'";

// A target database with pg_durable_target installed; alice and bob may create there.
void create_target(TestCluster &cluster, const std::string &db = kTarget, const std::string &options = "") {
    cluster.exec("CREATE DATABASE " + db + options);
    cluster.exec("CREATE EXTENSION pg_durable_target; GRANT CREATE ON SCHEMA public TO alice, bob", db);
}

std::string error_of_instance(EngineCluster &ec, const std::string &id) {
    return ec.cluster().query_value("SELECT error FROM df.instances WHERE id = " + lit(id)).value_or("<null>");
}

// The first row's column `key` of a completed instance's result.
std::string first_value(EngineCluster &ec, const std::string &id, const std::string &key) {
    return ec.cluster()
        .query_value("SELECT (df.result(" + lit(id) + ")::json -> 'rows' -> 0 ->> " + lit(key) + ")")
        .value_or("<null>");
}

// First column of the first row on a UTF8 session (the tests' own sessions
// otherwise take the database's encoding).
std::string utf8_value(const TestCluster &cluster, const std::string &sql, const std::string &db,
                       const std::string &role = "") {
    pqxx::connection conn(cluster.conninfo(role, db) + " client_encoding=UTF8");
    pqxx::nontransaction tx(conn);
    const auto r = tx.exec(sql);
    return r.empty() || r[0][0].is_null() ? "<null>" : r[0][0].as<std::string>();
}

std::string start_in(EngineCluster &ec, const std::string &fut, const std::string &role = "alice",
                     const std::string &db = kTarget) {
    return ec.start(fut + ", database => " + lit(db), role);
}

}  // namespace

TEST_CASE("otherdb: a step in another database runs as its submitter on the daemon's own login",
          "[otherdb]") {
    ClusterOptions options;
    options.settings.emplace("pg_durable.max_user_connections", "1");  // every step on one connection
    EngineCluster ec(options);
    create_target(ec.cluster());
    ec.cluster().exec(
        "CREATE TABLE notes (owner name, body text); "
        "INSERT INTO notes VALUES ('alice', 'a1'), ('alice', 'a2'), ('bob', 'b1'); "
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY; "
        "CREATE POLICY own ON notes USING (owner = current_user); GRANT SELECT ON notes TO alice, bob",
        kTarget);
    // Held open by the step while the test looks at its backend.
    const auto id = start_in(ec, "'SELECT current_user AS who, current_database() AS db, "
                                 "(SELECT count(*) FROM notes) AS n, pg_sleep(1)'");
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT count(*) FROM pg_stat_activity WHERE datname = 'other' "
                                                "AND application_name = 'pg_durable step'") ==
                           std::optional<std::string>("1"),
                       20s, ec.diagnostics(id));
    // Logged in as the daemon's role (that of its orchestrator connections), not as alice.
    CHECK(ec.cluster().query_value(std::string("SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity "
                                               "WHERE datname = 'other' AND application_name = 'pg_durable step'")) ==
          ec.cluster().query_value(kDaemonLogin));
    REQUIRE(ec.await(id) == "completed");
    CHECK(first_value(ec, id, "who") == "alice");
    CHECK(first_value(ec, id, "db") == "other");
    CHECK(first_value(ec, id, "n") == "2");
    const auto bob = start_in(ec, "'SELECT current_user AS who, (SELECT count(*) FROM notes) AS n'", "bob");
    REQUIRE(ec.await(bob) == "completed");
    CHECK(first_value(ec, bob, "who") == "bob");
    CHECK(first_value(ec, bob, "n") == "1");
    // It cannot leave that identity.
    const auto escape = start_in(ec, "'SET ROLE bob'");
    CHECK(ec.await(escape) == "failed");
    CHECK(error_of_instance(ec, escape) ==
          "SQL execution failed: SET ROLE, RESET ROLE and SET SESSION AUTHORIZATION are not allowed in a "
          "workflow step: it runs as the role that started the workflow");
    // A role that lost CONNECT on the target database after df.start: its
    // step fails, as a login would.
    const auto later = start_in(ec, "df.wait_for_signal('go') ~> 'SELECT 2 AS x'");
    ec.cluster().exec("REVOKE CONNECT ON DATABASE other FROM PUBLIC; GRANT CONNECT ON DATABASE other TO bob");
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(later) + ", 'go')") == std::optional<std::string>("OK"));
    CHECK(ec.await(later) == "failed");
    CHECK(error_of_instance(ec, later) == "SQL execution failed: permission denied for database \"other\"");
    const auto still = start_in(ec, "'SELECT current_user AS who'", "bob");
    REQUIRE(ec.await(still) == "completed");
    CHECK(first_value(ec, still, "who") == "bob");
}

TEST_CASE("otherdb: nothing a step does to its session reaches later steps there", "[otherdb]") {
    ClusterOptions options;
    options.settings.emplace("pg_durable.max_user_connections", "1");
    EngineCluster ec(options);
    create_target(ec.cluster());
    const std::string probe =
        "'SELECT current_user AS who, current_setting(''search_path'') AS path, "
        "current_setting(''work_mem'') AS mem, "
        "(SELECT count(*) FROM pg_prepared_statements) AS prepared, "
        "(SELECT count(*) FROM pg_listening_channels()) AS listening, "
        "(SELECT count(*) FROM pg_cursors) AS cursors, "
        "(SELECT count(*) FROM pg_locks WHERE locktype = ''advisory'' AND pid = pg_backend_pid()) AS advisory, "
        "(SELECT count(*) FROM pg_class WHERE relpersistence = ''t'') AS temps'";
    struct Trick {
        const char *sql;
        const char *error;  // nullptr: the step completes
    };
    const Trick tricks[] = {
        {"'SET search_path = nowhere; SET work_mem = ''7MB''; SELECT 1'", nullptr},
        {"'SELECT set_config(''search_path'', ''nowhere'', false)'", nullptr},
        {"'SELECT pg_advisory_lock(77)'", nullptr},
        {"'CREATE TEMP TABLE t (x int)'",
         "SQL execution failed: cannot create temporary table within security-restricted operation"},
        {"'PREPARE p AS SELECT 1'", "SQL execution failed: cannot execute PREPARE within security-restricted operation"},
        {"'DEALLOCATE ALL'", "SQL execution failed: cannot execute DEALLOCATE within security-restricted operation"},
        {"'LISTEN x'", "SQL execution failed: cannot execute LISTEN within security-restricted operation"},
        {"'DECLARE c CURSOR WITH HOLD FOR SELECT 1'",
         "SQL execution failed: cannot create a cursor WITH HOLD within security-restricted operation"},
    };
    const auto baseline = start_in(ec, probe);
    REQUIRE(ec.await(baseline) == "completed");
    const auto cursors = first_value(ec, baseline, "cursors");
    const auto advisory = first_value(ec, baseline, "advisory");
    const auto mem = first_value(ec, baseline, "mem");
    CHECK(mem != "7MB");
    for (const auto &trick : tricks) {
        INFO(trick.sql);
        const auto id = start_in(ec, trick.sql);
        const auto same = start_in(ec, probe);
        const auto other = start_in(ec, probe, "bob");
        if (trick.error) {
            CHECK(ec.await(id) == "failed");
            CHECK(error_of_instance(ec, id) == trick.error);
        } else {
            CHECK(ec.await(id) == "completed");
        }
        for (const auto &[probe_id, role] : {std::pair{same, "alice"}, std::pair{other, "bob"}}) {
            REQUIRE(ec.await(probe_id) == "completed");
            CHECK(first_value(ec, probe_id, "who") == role);
            CHECK(first_value(ec, probe_id, "path") == "\"$user\", public");
            CHECK(first_value(ec, probe_id, "mem") == mem);
            CHECK(first_value(ec, probe_id, "prepared") == "0");
            CHECK(first_value(ec, probe_id, "listening") == "0");
            CHECK(first_value(ec, probe_id, "cursors") == cursors);
            CHECK(first_value(ec, probe_id, "advisory") == advisory);
            CHECK(first_value(ec, probe_id, "temps") == "0");
        }
    }
    CHECK(ec.daemon()->running());
}

TEST_CASE("otherdb: results are exactly PostgreSQL's to_json of each column", "[otherdb]") {
    EngineCluster ec;
    create_target(ec.cluster());
    // The role's settings in that database apply (TimeZone shapes timestamptz).
    ec.cluster().exec("ALTER ROLE alice IN DATABASE other SET timezone = 'Asia/Kolkata'");
    const std::string select =
        "SELECT timestamptz '2024-02-29 23:59:58.5+00' AS ts, timestamp '2024-01-02 03:04:05' AS t, "
        "date '2024-03-01' AS d, interval '1 day 2 hours' AS iv, ARRAY[1, NULL, 3] AS ints, "
        "ARRAY[['a', 'b'], ['c', 'd\"']] AS texts, ARRAY[timestamptz '2024-01-01 00:00+00'] AS tss, "
        "1.50::numeric AS n, 'NaN'::numeric AS nan, 1e300::float8 AS f, 'Infinity'::float8 AS inf, "
        "'{\"k\": [1, 2.0], \"s\": \"x\"}'::json AS j, '{\"b\": 2, \"a\": 1}'::jsonb AS jb, true AS b, "
        "NULL::int AS z, '\\x0102'::bytea AS by, ROW(1, 'x')::record AS rec, 'é\"\\\\' AS s, 42::int8 AS big";
    const auto id = start_in(ec, lit(select));
    REQUIRE(ec.await(id) == "completed");
    const auto direct = utf8_value(ec.cluster(),
                                   "SELECT '{\"rows\":[' || row_to_json(q) || '],\"row_count\":1}' FROM (" +
                                       select + ") q",
                                   kTarget, "alice");
    CHECK(utf8_value(ec.cluster(), "SELECT df.result(" + lit(id) + ")", "postgres") == direct);
    // Several statements: the last one's rows; none: an empty result.
    const auto rows = start_in(ec, "'SELECT 1; SELECT g AS i, ARRAY[g] AS a FROM generate_series(1, 3) g'");
    const auto none = start_in(ec, "'CREATE TABLE made_by_step (x int)'");
    REQUIRE(ec.await(rows) == "completed");
    REQUIRE(ec.await(none) == "completed");
    CHECK(ec.result(rows) == R"({"rows":[{"i":1,"a":[1]},{"i":2,"a":[2]},{"i":3,"a":[3]}],"row_count":3})");
    CHECK(ec.result(none) == R"({"rows":[],"row_count":0})");
}

TEST_CASE("otherdb: a database without pg_durable_target fails the step, never the daemon, and its "
          "df._run_step is never called",
          "[otherdb]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE DATABASE bare");
    // An impostor: a df._run_step of alice's own that would run with the
    // daemon's identity if the daemon called it.
    ec.cluster().exec("GRANT CREATE ON DATABASE bare TO alice");
    ec.cluster().exec("CREATE TABLE calls (who name, login name); GRANT ALL ON calls TO PUBLIC", "bare");
    ec.query("alice",
             "CREATE SCHEMA df; CREATE FUNCTION df._run_step(text, oid, text) RETURNS text LANGUAGE sql AS "
             "$$INSERT INTO public.calls VALUES (current_user, session_user) "
             "RETURNING '{\"outcome\":\"completed\",\"result\":{\"rows\":[],\"row_count\":0}}'$$",
             "bare");
    const std::string expected =
        "SQL execution failed: extension \"pg_durable_target\" is not installed in database \"bare\". "
        "HINT: Connect to database \"bare\" as a superuser and run: CREATE EXTENSION pg_durable_target;";
    const auto id = start_in(ec, "'SELECT 1 AS x'", "alice", "bare");
    CHECK(ec.await(id) == "failed");
    CHECK(error_of_instance(ec, id) == expected);
    CHECK(ec.cluster().query_value("SELECT count(*) FROM calls", "bare") == std::optional<std::string>("0"));
    // No df at all: the same.
    ec.cluster().exec("DROP SCHEMA df CASCADE", "bare");
    const auto again = start_in(ec, "'SELECT 1 AS x'", "bob", "bare");
    CHECK(ec.await(again) == "failed");
    CHECK(error_of_instance(ec, again) == expected);
    // Installed, it works at once; the daemon went on all along.
    ec.cluster().exec("CREATE EXTENSION pg_durable_target", "bare");
    const auto now = start_in(ec, "'SELECT 1 AS x'", "alice", "bare");
    CHECK(ec.await(now) == "completed");
    CHECK(ec.result(now) == R"({"rows":[{"x":1}],"row_count":1})");
    CHECK(ec.daemon()->running());
    // pg_durable_target is for other databases only.
    const auto in_main = ec.error_of("", "CREATE EXTENSION pg_durable_target").value_or("<none>");
    CHECK(in_main.rfind("pg_durable_target is not needed in database \"postgres\": it is pg_durable.database, "
                        "where pg_durable itself runs steps", 0) == 0);
    // Its df._run_step refuses every caller but the daemon's role.
    CHECK(ec.error_of("alice", "SELECT df._run_step('x', 'alice'::regrole::oid, 'SELECT 1')", "bare")
              .value_or("<none>")
              .rfind("df._run_step: role \"alice\" is not ", 0) == 0);
}

TEST_CASE("otherdb: a pool of 4 connections serves 50 roles there", "[otherdb]") {
    ClusterOptions options;
    options.settings.emplace("pg_durable.max_user_connections", "4");
    EngineCluster ec(options);
    create_target(ec.cluster());
    constexpr int kRoles = 50;
    std::string ddl;
    for (int i = 0; i < kRoles; ++i) {
        const std::string role = "r" + std::to_string(i);
        ddl += "CREATE ROLE " + role + " " + kLogin + "; SELECT df.grant_usage(" + lit(role) + "); ";
    }
    ec.cluster().exec(ddl);
    std::vector<std::pair<std::string, std::string>> started;
    for (int i = 0; i < kRoles; ++i) {
        const std::string role = "r" + std::to_string(i);
        started.emplace_back(start_in(ec,
                                      "'SELECT current_user AS who, pg_sleep(0.02)' |=> 'first' ~> "
                                      "'SELECT current_user AS who, $first.who AS before, pg_backend_pid() AS pid'",
                                      role),
                             role);
    }
    std::set<std::string> pids;
    for (const auto &[id, role] : started) {
        INFO(role);
        REQUIRE(ec.await(id, std::chrono::seconds(90)) == "completed");
        CHECK(first_value(ec, id, "who") == role);
        CHECK(first_value(ec, id, "before") == role);
        pids.insert(first_value(ec, id, "pid"));
    }
    // At most 4 backends served all 100 steps (the pool is never idle 3 s
    // while steps queue), each logged in as the daemon.
    CHECK(pids.size() <= 4);
    CHECK(count_of(ec, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable step' "
                       "AND usename IS DISTINCT FROM (" + std::string(kDaemonLogin) + ")") == 0);
}

TEST_CASE("otherdb: cancelling one running step there leaves the same role's other steps alone", "[otherdb]") {
    EngineCluster ec;
    create_target(ec.cluster());
    ec.cluster().exec("CREATE TABLE done (what text); GRANT ALL ON done TO alice", kTarget);
    const auto sleeping = [&](int n) {
        return count_of(ec, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'other' "
                            "AND application_name = 'pg_durable step' AND wait_event = 'PgSleep'") == n;
    };
    // df.cancel of one instance while two others of alice's run.
    const auto victim = start_in(ec, "'INSERT INTO done VALUES (''victim''); SELECT pg_sleep(60)'");
    const auto keep1 = start_in(ec, "'SELECT pg_sleep(5); INSERT INTO done VALUES (''keep1''); SELECT 1 AS k'");
    const auto keep2 = start_in(ec, "'SELECT pg_sleep(5); INSERT INTO done VALUES (''keep2''); SELECT 2 AS k'");
    REQUIRE_EVENTUALLY(sleeping(3), 20s, ec.diagnostics(victim));
    CHECK(ec.query("alice", "SELECT df.cancel(" + lit(victim) + ", 'stop')") ==
          std::optional<std::string>("Instance " + victim + " cancelled: stop"));
    REQUIRE_EVENTUALLY(sleeping(2), 2s, ec.diagnostics(victim));
    CHECK(ec.await(keep1) == "completed");
    CHECK(ec.await(keep2) == "completed");
    CHECK(ec.result(keep1) == R"({"rows":[{"k":1}],"row_count":1})");
    CHECK(ec.result(keep2) == R"({"rows":[{"k":2}],"row_count":1})");
    CHECK(ec.status(victim) == "cancelled");

    // A RACE loser interrupted while another step of alice's runs.
    const auto race = start_in(ec, "'SELECT pg_sleep(0.5); SELECT ''fast'' AS w' | "
                                   "'INSERT INTO done VALUES (''loser''); SELECT pg_sleep(60)'");
    const auto keep3 = start_in(ec, "'SELECT pg_sleep(5); INSERT INTO done VALUES (''keep3''); SELECT 3 AS k'");
    CHECK(ec.await(race) == "completed");
    CHECK(ec.result(race) == R"({"rows":[{"w":"fast"}],"row_count":1})");
    REQUIRE_EVENTUALLY(sleeping(1), 2s, ec.diagnostics(race));  // the loser's statement ended, keep3's did not
    CHECK(ec.await(keep3) == "completed");
    CHECK(ec.result(keep3) == R"({"rows":[{"k":3}],"row_count":1})");
    CHECK(ec.cluster().query_value("SELECT string_agg(what, ',' ORDER BY what) FROM done", kTarget) ==
          std::optional<std::string>("keep1,keep2,keep3"));
}

TEST_CASE("otherdb: LATIN1 databases, as a target and as pg_durable.database, keep non-ASCII text",
          "[otherdb]") {
    SECTION("a LATIN1 target database") {
        EngineCluster ec;
        create_target(ec.cluster(), "latin", " ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
        ec.cluster().exec("CREATE TABLE words (w text); GRANT ALL ON words TO alice", "latin");
        const auto id = start_in(ec,
                                 "'SELECT ''é'' AS e, ''naïve café'' AS t, ARRAY[''ÿ''] AS a' |=> 'x' ~> "
                                 "'INSERT INTO words VALUES ($x.t); SELECT w, length(w) AS n FROM words'",
                                 "alice", "latin");
        REQUIRE(ec.await(id) == "completed");
        CHECK(utf8_value(ec.cluster(), "SELECT df.result(" + lit(id) + ")", "postgres") ==
              R"({"rows":[{"w":"naïve café","n":10}],"row_count":1})");
        CHECK(utf8_value(ec.cluster(),
                         "SELECT result FROM df.nodes WHERE instance_id = " + lit(id) + " AND query LIKE '%AS e%'",
                         "postgres") == R"({"rows":[{"e":"é","t":"naïve café","a":["ÿ"]}],"row_count":1})");
        CHECK(utf8_value(ec.cluster(), "SELECT w FROM words", "latin") == "naïve café");
    }
    SECTION("a LATIN1 pg_durable.database") {
        ClusterOptions options;
        options.settings.emplace("pg_durable.database", "latin");
        options.settings.emplace("pg_durable.loop_min_interval_ms", "0");
        TestCluster cluster(options);
        cluster.exec("CREATE DATABASE latin ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
        cluster.exec("CREATE EXTENSION pg_durable; CREATE ROLE alice " + kLogin + "; SELECT df.grant_usage('alice')",
                     "latin");
        // df.start itself takes UTF-8 workflow text only, so the non-ASCII
        // text comes from the step (chr() in LATIN1). After a daemon restart
        // the orchestrator's own connection reads the stored result back and
        // substitutes it into the next step.
        auto daemon = std::make_unique<DaemonProcess>(cluster, std::vector<std::string>{"--dbname", "latin"});
        REQUIRE_EVENTUALLY(daemon->log_contains("pg_durable: processing durable functions..."), 30s, daemon->log());
        const auto id = utf8_value(cluster,
                                   "SELECT df.start('SELECT chr(233) AS e, chr(255) AS y' |=> 'x' ~> "
                                   "df.wait_for_signal('go') ~> 'SELECT $x.e AS e, $x.y AS y, length($x.e || $x.y) AS n')",
                                   "latin", "alice");
        const auto waiting = [&] {
            return utf8_value(cluster, "SELECT count(*) FROM df.nodes WHERE instance_id = " + lit(id) +
                                           " AND node_type = 'SIGNAL' AND status = 'running'",
                              "latin") == "1";
        };
        REQUIRE_EVENTUALLY(waiting(), 20s, daemon->log());
        daemon->kill_hard();
        daemon = std::make_unique<DaemonProcess>(cluster, std::vector<std::string>{"--dbname", "latin"});
        REQUIRE_EVENTUALLY(daemon->log_contains("pg_durable: processing durable functions..."), 30s, daemon->log());
        CHECK(utf8_value(cluster, "SELECT df.signal(" + lit(id) + ", 'go')", "latin", "alice") == "OK");
        const auto status = [&] {
            return utf8_value(cluster, "SELECT status FROM df.instances WHERE id = " + lit(id), "latin");
        };
        REQUIRE_EVENTUALLY(status() == "completed" || status() == "failed", 20s, daemon->log());
        CHECK(utf8_value(cluster, "SELECT coalesce(error, '') FROM df.instances WHERE id = " + lit(id), "latin") ==
              "");
        CHECK(utf8_value(cluster, "SELECT df.result(" + lit(id) + ")", "latin") ==
              R"({"rows":[{"e":"é","y":"ÿ","n":2}],"row_count":1})");
        CHECK(daemon->running());
    }
}
