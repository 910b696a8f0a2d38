// Steps run as the submitter on the daemon's own connections (DESIGN §2.4,
// docs/ARCHITECTURE.md "df._run_step"): current_user and row security are the
// submitter's, a step cannot change its role, its role settings apply, and
// nothing it does to its session reaches the next step, of the same role or
// another, on the same connection (max_user_connections = 1 makes every step
// share one).
#include <set>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

ClusterOptions one_connection() {
    ClusterOptions options;
    options.settings.emplace("pg_durable.max_user_connections", "1");
    return options;
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

}  // namespace

TEST_CASE("identity: a step runs as its submitter, under its row security, and cannot change role",
          "[identity]") {
    EngineCluster ec(one_connection());
    ec.cluster().exec(
        "CREATE TABLE notes (owner name, body text); "
        "INSERT INTO notes VALUES ('alice', 'a1'), ('alice', 'a2'), ('bob', 'b1'); "
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY; "
        "CREATE POLICY own ON notes USING (owner = current_user); "
        "GRANT SELECT ON notes TO alice, bob; GRANT bob TO alice");
    const std::string who = "'SELECT current_user AS who, (SELECT count(*) FROM notes) AS n'";
    const auto alice = ec.start(who, "alice");
    REQUIRE(ec.await(alice) == "completed");
    CHECK(first_value(ec, alice, "who") == "alice");
    CHECK(first_value(ec, alice, "n") == "2");

    // SET ROLE (even to a role alice may become), RESET ROLE, SET SESSION
    // AUTHORIZATION, set_config('role'): all refused with one clear text.
    const std::string refused =
        "SQL execution failed: SET ROLE, RESET ROLE and SET SESSION AUTHORIZATION are not allowed in a "
        "workflow step: it runs as the role that started the workflow";
    for (const char *change : {"'SET ROLE bob'", "'RESET ROLE'", "'SET SESSION AUTHORIZATION bob'",
                               "'SELECT set_config(''role'', ''bob'', false)'", "'SET LOCAL ROLE bob'"}) {
        INFO(change);
        const auto id = ec.start(change, "alice");
        CHECK(ec.await(id) == "failed");
        CHECK(error_of_instance(ec, id) == refused);
    }
    // Later steps of the same role and of another on the same connection.
    const auto again = ec.start(who, "alice");
    const auto bob = ec.start(who, "bob");
    REQUIRE(ec.await(again) == "completed");
    REQUIRE(ec.await(bob) == "completed");
    CHECK(first_value(ec, again, "who") == "alice");
    CHECK(first_value(ec, bob, "who") == "bob");
    CHECK(first_value(ec, bob, "n") == "1");
    // The daemon's connection itself logs in as the daemon's role.
    CHECK(ec.cluster().query_value("SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity "
                                   "WHERE application_name = 'pg_durable step'") ==
          std::optional<std::string>(ec.cluster().superuser()));
}

TEST_CASE("identity: nothing a step does to its session reaches later steps of any role", "[identity]") {
    EngineCluster ec(one_connection());
    // Each trick in a step of alice's, then a probe of alice's and one of bob's.
    const std::string probe =
        "'SELECT current_user AS who, current_setting(''search_path'') AS path, "
        "(SELECT string_agg(name, '','' ORDER BY name) FROM pg_prepared_statements) AS prepared, "
        "(SELECT count(*) FROM pg_listening_channels()) AS listening, "
        "(SELECT count(*) FROM pg_cursors) AS cursors, "
        "(SELECT count(*) FROM pg_locks WHERE locktype = ''advisory'' AND pid = pg_backend_pid()) AS advisory, "
        "(SELECT count(*) FROM pg_class WHERE relpersistence = ''t'') AS temps'";
    struct Trick {
        const char *sql;
        const char *error;  // nullptr: the step completes
    };
    const Trick tricks[] = {
        // The daemon's call of df._run_step is a prepared statement of the
        // connection (store_steps.cpp): a step can neither drop it nor put
        // its own in its place (which would see the secret, as the daemon).
        {"'DEALLOCATE ALL'", "SQL execution failed: cannot execute DEALLOCATE within security-restricted operation"},
        {"'DEALLOCATE pgd_run_step'",
         "SQL execution failed: cannot execute DEALLOCATE within security-restricted operation"},
        {"'PREPARE pgd_run_step(text, text, text, text, bigint, text, int, jsonb) AS SELECT $1'",
         "SQL execution failed: cannot execute PREPARE within security-restricted operation"},
        {"'LISTEN x'", "SQL execution failed: cannot execute LISTEN within security-restricted operation"},
        {"'SET search_path = nowhere; SELECT 1'", nullptr},
        {"'SELECT set_config(''search_path'', ''nowhere'', false)'", nullptr},
        {"'SELECT pg_advisory_lock(77)'", nullptr},
        {"'CREATE TEMP TABLE t (x int)'",
         "SQL execution failed: cannot create temporary table within security-restricted operation"},
        {"'DECLARE c CURSOR WITH HOLD FOR SELECT 1'",
         "SQL execution failed: cannot create a cursor WITH HOLD within security-restricted operation"},
    };
    // The daemon's own statement holds a portal and df._run_step a shared
    // transaction-level advisory lock (the uninstall marker): a clean
    // connection's counts, before any trick.
    const auto baseline = ec.start(probe, "alice");
    REQUIRE(ec.await(baseline) == "completed");
    const auto cursors = first_value(ec, baseline, "cursors");
    const auto advisory = first_value(ec, baseline, "advisory");
    for (const auto &trick : tricks) {
        INFO(trick.sql);
        const auto id = ec.start(trick.sql, "alice");
        const auto same = ec.start(probe, "alice");
        const auto other = ec.start(probe, "bob");
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
            CHECK(first_value(ec, probe_id, "prepared") == "pgd_run_step");
            CHECK(first_value(ec, probe_id, "listening") == "0");
            CHECK(first_value(ec, probe_id, "cursors") == cursors);
            CHECK(first_value(ec, probe_id, "advisory") == advisory);
            CHECK(first_value(ec, probe_id, "temps") == "0");
        }
    }
    CHECK(ec.daemon()->running());
}

TEST_CASE("identity: role settings apply to the role's steps only", "[identity]") {
    EngineCluster ec;
    ec.cluster().exec("ALTER ROLE alice SET statement_timeout = '1s'; "
                      "ALTER ROLE bob IN DATABASE postgres SET work_mem = '3MB'; "
                      "ALTER ROLE bob SET work_mem = '5MB'");
    const auto slow_alice = ec.start("'SELECT pg_sleep(3)'", "alice");
    const auto slow_bob = ec.start("'SELECT pg_sleep(3)'", "bob");
    const auto mem_alice = ec.start("'SELECT current_setting(''work_mem'') AS w'", "alice");
    const auto mem_bob = ec.start("'SELECT current_setting(''work_mem'') AS w'", "bob");
    CHECK(ec.await(slow_alice) == "failed");
    CHECK(error_of_instance(ec, slow_alice) == "SQL execution failed: canceling statement due to statement timeout");
    CHECK(ec.await(slow_bob) == "completed");
    REQUIRE(ec.await(mem_alice) == "completed");
    REQUIRE(ec.await(mem_bob) == "completed");
    CHECK(first_value(ec, mem_alice, "w") == "4MB");
    CHECK(first_value(ec, mem_bob, "w") == "3MB");  // IN DATABASE wins over the role-wide one
}

TEST_CASE("identity: a role setting changed between two steps applies to the next one", "[identity]") {
    // One connection: every step runs on the same backend, which reads the
    // role's settings for each step, never from an earlier step's copy.
    EngineCluster ec(one_connection());
    const std::string mem = "'SELECT current_setting(''work_mem'') AS w'";
    const auto work_mem_of_step = [&](const std::string &role) {
        const auto id = ec.start(mem, role);
        REQUIRE(ec.await(id) == "completed");
        return first_value(ec, id, "w");
    };
    CHECK(work_mem_of_step("alice") == "4MB");
    ec.cluster().exec("ALTER ROLE alice SET work_mem = '5MB'");
    CHECK(work_mem_of_step("alice") == "5MB");
    CHECK(work_mem_of_step("bob") == "4MB");
    ec.cluster().exec("ALTER ROLE alice IN DATABASE postgres SET work_mem = '6MB'");
    CHECK(work_mem_of_step("alice") == "6MB");  // IN DATABASE wins over the role-wide one
    ec.cluster().exec("ALTER ROLE alice RESET work_mem");
    CHECK(work_mem_of_step("alice") == "6MB");
    ec.cluster().exec("ALTER ROLE alice IN DATABASE postgres RESET ALL");
    CHECK(work_mem_of_step("alice") == "4MB");
}

TEST_CASE("identity: a deferred constraint trigger fires as the submitter", "[identity]") {
    EngineCluster ec;
    ec.cluster().exec(
        "CREATE TABLE audited (x int); CREATE TABLE audit_log (who name); "
        "GRANT INSERT ON audited, audit_log TO alice; "
        "CREATE FUNCTION log_who() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN INSERT INTO audit_log VALUES (current_user); RETURN NULL; END$$; "
        "CREATE CONSTRAINT TRIGGER audit AFTER INSERT ON audited DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION log_who()");
    const auto id = ec.start("'INSERT INTO audited VALUES (1)'", "alice");
    REQUIRE(ec.await(id) == "completed");
    CHECK(ec.cluster().query_value("SELECT string_agg(who::text, ',') FROM audit_log") ==
          std::optional<std::string>("alice"));
}

TEST_CASE("identity: a pool of 4 connections serves 30 roles", "[identity]") {
    ClusterOptions options;
    options.settings.emplace("pg_durable.max_user_connections", "4");
    EngineCluster ec(options);
    std::string roles;
    for (int i = 0; i < 30; ++i) {
        const std::string role = "r" + std::to_string(i);
        ec.cluster().exec("CREATE ROLE " + role + " " + kLogin + "; SELECT df.grant_usage(" + lit(role) + ")");
    }
    std::vector<std::pair<std::string, std::string>> started;
    for (int i = 0; i < 30; ++i) {
        const std::string role = "r" + std::to_string(i);
        started.emplace_back(ec.start("'SELECT current_user AS who, pg_sleep(0.05)' ~> 'SELECT current_user AS who'",
                                      role),
                             role);
    }
    for (const auto &[id, role] : started) {
        INFO(role);
        REQUIRE(ec.await(id, std::chrono::seconds(60)) == "completed");
        CHECK(first_value(ec, id, "who") == role);
    }
    const auto steps = ec.cluster().query_value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable step'");
    REQUIRE(steps);
    CHECK(std::stoi(*steps) <= 4);
}
