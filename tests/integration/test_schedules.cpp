// Schedules end to end (SPEC §19.4): each cron tick starts one ordinary
// instance as the schedule's owner, exactly once per tick; overlap policies
// with a step slower than the period; pause, resume, unschedule, replace;
// kill -9 of the daemon (and a standby taking over); roles isolated; hostile input.
#include <string>
#include <thread>
#include <vector>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

// Instances of schedule `name` (label = name), as the superuser.
long runs_of(EngineCluster &ec, const std::string &name) {
    return count_of(ec, "SELECT count(*) FROM df.instances WHERE label = " + lit(name));
}

long runs_counter(EngineCluster &ec, const std::string &name, const std::string &owner = "alice") {
    return count_of(ec, "SELECT runs FROM df._schedules WHERE name = " + lit(name) + " AND owner = " + lit(owner) +
                            "::regrole");
}

std::string diagnostics(EngineCluster &ec) {
    return ec.cluster().query_value(
               "SELECT string_agg(format('%s/%s next=%s runs=%s skipped=%s missed=%s err=%s', owner, name, "
               "next_run_at, runs, skipped, missed, last_error), E'\\n') FROM df._schedules")
               .value_or("(no schedules)") +
           "\n" + (ec.daemon() ? ec.daemon()->log() : std::string());
}

// No tick taken twice: at most one run per second of the clock (every
// schedule in these tests ticks at most once a second).
void check_once_per_tick(EngineCluster &ec, const std::string &name) {
    const std::string of = " FROM df.instances WHERE label = " + lit(name);
    const long n = count_of(ec, "SELECT count(*)" + of);
    CHECK(count_of(ec, "SELECT count(DISTINCT date_trunc('second', created_at))" + of) == n);
}

}  // namespace

TEST_CASE("schedules: '*/1 * * * * *' runs once per tick for 10 s, each run an ordinary instance",
          "[schedule]") {
    EngineCluster ec;
    CHECK(ec.query("alice", "SELECT df.schedule('tick', '*/1 * * * * *', 'SELECT 1 AS one')") ==
          std::optional<std::string>("tick"));
    REQUIRE_EVENTUALLY(runs_of(ec, "tick") >= 1, 10s, diagnostics(ec));
    REQUIRE_EVENTUALLY(runs_of(ec, "tick") >= 11, 20s, diagnostics(ec));
    CHECK(ec.query("alice", "SELECT df.unschedule('tick')") == std::optional<std::string>("t"));
    const long n = runs_of(ec, "tick");
    INFO(diagnostics(ec));
    check_once_per_tick(ec, "tick");
    // Consecutive ticks: n runs span n - 1 seconds (none skipped, none doubled).
    CHECK(count_of(ec, "SELECT round(extract(epoch FROM max(date_trunc('second', created_at)) - "
                       "min(date_trunc('second', created_at))))::int FROM df.instances WHERE label = 'tick'") ==
          n - 1);
    // Started within a moment of their tick.
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'tick' "
                       "AND created_at - date_trunc('second', created_at) > interval '900 ms'") == 0);
    // Ordinary instances of alice's, completing with the step's result.
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'tick' AND submitted_by <> 'alice'::regrole") ==
          0);
    const auto id = ec.cluster().query_value("SELECT id FROM df.instances WHERE label = 'tick' ORDER BY created_at LIMIT 1");
    REQUIRE(id);
    CHECK(ec.await(*id) == "completed");
    CHECK(ec.result(*id) == R"({"rows":[{"one":1}],"row_count":1})");
    CHECK(ec.query("alice", "SELECT count(*) FROM df.list_instances(NULL, 1000) WHERE label = 'tick'") ==
          std::optional<std::string>(std::to_string(n)));
    CHECK(runs_counter(ec, "tick") == -1);  // unscheduled: the row is gone
}

TEST_CASE("schedules: overlap skip, allow and cancel_previous with a step slower than the period",
          "[schedule]") {
    EngineCluster ec;
    const std::string slow = "'SELECT pg_sleep(2.5)'";
    const std::vector<std::string> overlaps = {"skip", "allow", "cancel_previous"};
    for (const auto &overlap : overlaps)
        REQUIRE(ec.query("alice", "SELECT df.schedule('ov-" + overlap + "', '*/1 * * * * *', " + slow +
                                      ", overlap => " + lit(overlap) + ")"));
    REQUIRE_EVENTUALLY(runs_of(ec, "ov-allow") >= 6 && runs_of(ec, "ov-cancel_previous") >= 6 &&
                           runs_of(ec, "ov-skip") >= 2,
                       30s, diagnostics(ec));
    for (const auto &overlap : overlaps)
        REQUIRE(ec.query("alice", "SELECT df.pause_schedule('ov-" + overlap + "')") == std::optional<std::string>("t"));
    INFO(diagnostics(ec));
    for (const auto &overlap : overlaps) {
        check_once_per_tick(ec, "ov-" + overlap);
        // The counter and the instances agree: each run recorded with its tick.
        CHECK(runs_counter(ec, "ov-" + overlap) == runs_of(ec, "ov-" + overlap));
    }
    // Let every run end.
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances WHERE label LIKE 'ov-%' "
                                    "AND status IN ('pending', 'running')") == 0,
                       20s, diagnostics(ec));

    // skip: never two runs of it live at once; the ticks in between were skipped.
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances a JOIN df.instances b ON a.label = b.label AND a.id <> b.id "
                       "WHERE a.label = 'ov-skip' AND b.created_at > a.created_at "
                       "AND b.created_at < a.completed_at") == 0);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'ov-skip' AND status <> 'completed'") == 0);
    CHECK(count_of(ec, "SELECT skipped FROM df._schedules WHERE name = 'ov-skip'") >= runs_of(ec, "ov-skip"));
    CHECK(count_of(ec, "SELECT skipped FROM df._schedules WHERE name = 'ov-allow'") == 0);

    // allow: runs overlap (new ones started while the previous slept), all complete.
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances a JOIN df.instances b ON a.label = b.label AND a.id <> b.id "
                       "WHERE a.label = 'ov-allow' AND b.created_at > a.created_at "
                       "AND b.created_at < a.completed_at") > 0);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'ov-allow' AND status <> 'completed'") == 0);

    // cancel_previous: every run but the last was cancelled by the next one's
    // start, its sleeping step interrupted (cancelled, not completed).
    const long cp = runs_of(ec, "ov-cancel_previous");
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'ov-cancel_previous' AND status = 'cancelled' "
                       "AND error = 'Cancelled by schedule ''ov-cancel_previous'': the next run started "
                       "(overlap ''cancel_previous'')'") == cp - 1);
    CHECK(count_of(ec, "SELECT count(*) FROM df.nodes n JOIN df.instances i ON i.id = n.instance_id "
                       "WHERE i.label = 'ov-cancel_previous' AND i.status = 'cancelled' AND n.status = 'cancelled' "
                       "AND n.error LIKE 'Cancelled: Cancelled by schedule%'") == cp - 1);
    CHECK(ec.status(*ec.cluster().query_value("SELECT id FROM df.instances WHERE label = 'ov-cancel_previous' "
                                              "ORDER BY created_at DESC LIMIT 1")) == "completed");
    for (const auto &overlap : overlaps) REQUIRE(ec.query("alice", "SELECT df.unschedule('ov-" + overlap + "')"));
}

TEST_CASE("schedules: pause and resume; unschedule; replace keeps the counters", "[schedule]") {
    EngineCluster ec;
    // A control schedule to measure time by ticks, not by sleeping.
    REQUIRE(ec.query("bob", "SELECT df.schedule('ctl', '*/1 * * * * *', 'SELECT 1')"));
    REQUIRE(ec.query("alice", "SELECT df.schedule('p', '*/1 * * * * *', 'SELECT 1')"));
    REQUIRE_EVENTUALLY(runs_of(ec, "p") >= 2, 15s, diagnostics(ec));
    CHECK(ec.query("alice", "SELECT df.pause_schedule('p')") == std::optional<std::string>("t"));
    CHECK(ec.query("alice", "SELECT paused::text || coalesce(next_run_at::text, '-') FROM df.list_schedules() "
                            "WHERE name = 'p'") == std::optional<std::string>("true-"));
    const long paused_at = runs_of(ec, "p");
    long ctl = runs_of(ec, "ctl");
    REQUIRE_EVENTUALLY(runs_of(ec, "ctl") >= ctl + 3, 15s, diagnostics(ec));
    CHECK(runs_of(ec, "p") == paused_at);
    CHECK(ec.query("alice", "SELECT df.resume_schedule('p')") == std::optional<std::string>("t"));
    REQUIRE_EVENTUALLY(runs_of(ec, "p") >= paused_at + 2, 15s, diagnostics(ec));
    // Ticks that passed while paused were not caught up: no burst at resume.
    check_once_per_tick(ec, "p");

    // Replace: new definition and expression, same counters and creation time.
    const auto created = ec.query("alice", "SELECT created_at FROM df.list_schedules() WHERE name = 'p'");
    const long runs_before = runs_counter(ec, "p");
    CHECK(runs_before >= 4);
    CHECK(ec.query("alice", "SELECT df.schedule('p', '*/2 * * * * *', 'SELECT 2 AS v', 'Europe/Berlin', 'allow')") ==
          std::optional<std::string>("p"));
    CHECK(ec.query("alice", "SELECT count(*) FROM df.list_schedules()") == std::optional<std::string>("1"));
    CHECK(ec.query("alice", "SELECT concat_ws(' ', cron_expr, timezone, overlap, database) FROM df.list_schedules()") ==
          std::optional<std::string>("*/2 * * * * * Europe/Berlin allow postgres"));
    CHECK(ec.query("alice", "SELECT created_at FROM df.list_schedules() WHERE name = 'p'") == created);
    CHECK(runs_counter(ec, "p") >= runs_before);
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances i JOIN df.nodes n ON n.instance_id = i.id "
                                    "AND n.id = i.root_node WHERE i.label = 'p' AND n.query = 'SELECT 2 AS v'") >= 2,
                       15s, diagnostics(ec));
    CHECK(runs_counter(ec, "p") >= runs_before + 2);
    CHECK(ec.query("alice", "SELECT last_status IS NOT NULL AND last_instance_id IS NOT NULL FROM df.list_schedules()") ==
          std::optional<std::string>("t"));
    // Even seconds only now.
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances i JOIN df.nodes n ON n.instance_id = i.id "
                       "AND n.id = i.root_node WHERE i.label = 'p' AND n.query = 'SELECT 2 AS v' "
                       "AND extract(second FROM date_trunc('second', i.created_at))::int % 2 = 1") == 0);

    // Unschedule: no more runs; a second unschedule finds nothing.
    CHECK(ec.query("alice", "SELECT df.unschedule('p')") == std::optional<std::string>("t"));
    CHECK(ec.query("alice", "SELECT df.unschedule('p')") == std::optional<std::string>("f"));
    CHECK(ec.query("alice", "SELECT df.pause_schedule('p')") == std::optional<std::string>("f"));
    CHECK(ec.query("alice", "SELECT df.resume_schedule('p')") == std::optional<std::string>("f"));
    const long after = runs_of(ec, "p");
    ctl = runs_of(ec, "ctl");
    REQUIRE_EVENTUALLY(runs_of(ec, "ctl") >= ctl + 3, 15s, diagnostics(ec));
    CHECK(runs_of(ec, "p") == after);
}

TEST_CASE("schedules: kill -9 of the daemon between ticks; none twice, none invented for the downtime",
          "[schedule]") {
    EngineCluster ec;
    REQUIRE(ec.query("alice", "SELECT df.schedule('k', '*/1 * * * * *', 'SELECT 1')"));
    REQUIRE_EVENTUALLY(runs_of(ec, "k") >= 3, 15s, diagnostics(ec));
    ec.kill_daemon();
    const auto killed_at = ec.cluster().query_value("SELECT clock_timestamp()");
    const long before = runs_of(ec, "k");
    // The daemon stays down for about 3 ticks.
    REQUIRE(wait_until([&] { return ec.cluster().query_value("SELECT clock_timestamp() > " + lit(*killed_at) +
                                                              "::timestamptz + interval '3 s'") ==
                                    std::optional<std::string>("t"); },
                       10s));
    CHECK(runs_of(ec, "k") == before);
    const auto restarted_at = ec.cluster().query_value("SELECT clock_timestamp()");
    ec.start_daemon();
    REQUIRE_EVENTUALLY(runs_of(ec, "k") >= before + 3, 15s, diagnostics(ec));
    INFO(diagnostics(ec));
    check_once_per_tick(ec, "k");
    // No run for a tick that came due while no daemon ran.
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'k' AND created_at > " + lit(*killed_at) +
                       "::timestamptz AND created_at < " + lit(*restarted_at) + "::timestamptz") == 0);
    // The recorded counters agree with the instances.
    CHECK(runs_counter(ec, "k") == runs_of(ec, "k"));
    CHECK(count_of(ec, "SELECT missed FROM df._schedules WHERE name = 'k'") >= 1);

    // With a standby: the active daemon dies, the standby takes over; still once per tick.
    DaemonProcess standby(ec.cluster(), {"--log-level", "debug"}, "standby");
    REQUIRE_EVENTUALLY(standby.log_contains("standby"), 20s, standby.log());
    const long at_kill = runs_of(ec, "k");
    ec.kill_daemon();
    REQUIRE_EVENTUALLY(runs_of(ec, "k") >= at_kill + 3, 40s, diagnostics(ec) + standby.log());
    check_once_per_tick(ec, "k");
    CHECK(runs_counter(ec, "k") == runs_of(ec, "k"));
    REQUIRE(ec.query("alice", "SELECT df.unschedule('k')"));
}

TEST_CASE("schedules: two roles' schedules are isolated; runs are their owner's", "[schedule]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE alice_only (v int); GRANT ALL ON alice_only TO alice");
    // The same name for both: names are per role.
    REQUIRE(ec.query("alice", "SELECT df.schedule('job', '*/1 * * * * *', 'INSERT INTO alice_only VALUES (1)')"));
    REQUIRE(ec.query("bob", "SELECT df.schedule('job', '*/1 * * * * *', 'SELECT current_user AS who')"));
    // bob cannot touch alice's table: his own schedule runs as bob.
    REQUIRE(ec.query("bob", "SELECT df.schedule('bob-steals', '*/1 * * * * *', 'SELECT count(*) FROM alice_only')"));
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'job' AND status = 'completed' "
                                    "AND submitted_by = 'bob'::regrole") >= 2 &&
                           count_of(ec, "SELECT count(*) FROM df.instances WHERE label = 'bob-steals' "
                                        "AND status = 'failed'") >= 1 &&
                           count_of(ec, "SELECT count(*) FROM alice_only") >= 2,
                       20s, diagnostics(ec));
    CHECK(ec.query("alice", "SELECT string_agg(name, ',') FROM df.list_schedules()") ==
          std::optional<std::string>("job"));
    CHECK(ec.query("bob", "SELECT string_agg(name, ',' ORDER BY name) FROM df.list_schedules()") ==
          std::optional<std::string>("bob-steals,job"));
    CHECK(ec.query("", "SELECT count(*) FROM df.list_schedules()") == std::optional<std::string>("3"));
    // bob's run of 'job' ran as bob and saw nothing of alice's.
    const auto bob_run = ec.cluster().query_value(
        "SELECT id FROM df.instances WHERE label = 'job' AND submitted_by = 'bob'::regrole AND status = 'completed' "
        "LIMIT 1");
    REQUIRE(bob_run);
    CHECK(ec.result(*bob_run) == R"({"rows":[{"who":"bob"}],"row_count":1})");
    CHECK(ec.node(*ec.cluster().query_value("SELECT id FROM df.instances WHERE label = 'bob-steals' LIMIT 1"), "error",
                  "node_type = 'SQL'")
              .find("permission denied for table alice_only") != std::string::npos);
    CHECK(ec.query("alice", "SELECT count(*) FROM df.instances WHERE submitted_by = 'bob'::regrole") ==
          std::optional<std::string>("0"));
    // Other roles' schedules cannot be changed by name.
    CHECK(ec.query("alice", "SELECT df.unschedule('bob-steals')") == std::optional<std::string>("f"));
    CHECK(ec.query("alice", "SELECT df.pause_schedule('bob-steals')") == std::optional<std::string>("f"));
    CHECK(ec.query("bob", "SELECT count(*) FROM df.list_schedules() WHERE NOT paused") ==
          std::optional<std::string>("2"));
    // alice's unschedule of 'job' removes hers only.
    CHECK(ec.query("alice", "SELECT df.unschedule('job')") == std::optional<std::string>("t"));
    CHECK(ec.query("bob", "SELECT count(*) FROM df.list_schedules() WHERE name = 'job'") ==
          std::optional<std::string>("1"));
    // The table is the daemon's and the extension's: no direct access.
    CHECK(ec.error_of("alice", "SELECT * FROM df._schedules") ==
          std::optional<std::string>("permission denied for table _schedules"));
    CHECK(ec.error_of("alice", "DELETE FROM df._schedules") ==
          std::optional<std::string>("permission denied for table _schedules"));
    CHECK(ec.error_of("alice", "SELECT df._start_scheduled(1)") ==
          std::optional<std::string>("df._start_scheduled may only be called by the pg_durable daemon"));
    // Even a superuser outside the daemon's attached session is refused.
    CHECK(ec.error_of("", "SELECT df._start_scheduled(1)") ==
          std::optional<std::string>("df._start_scheduled may only be called by the pg_durable daemon"));
    REQUIRE(ec.query("bob", "SELECT df.unschedule('job') AND df.unschedule('bob-steals')"));
}

TEST_CASE("schedules: hostile input is refused with the SPEC errors, each run re-checks the owner",
          "[schedule]") {
    EngineCluster ec;
    auto err = [&](const std::string &sql, const std::string &role = "alice") { return ec.error_of(role, sql); };
    using E = std::optional<std::string>;
    CHECK(err("SELECT df.schedule('x', '61 * * * *', 'SELECT 1')") ==
          E("Invalid cron expression '61 * * * *': minute field: value 61 out of range 0-59"));
    CHECK(err("SELECT df.schedule('x', '* * *', 'SELECT 1')") ==
          E("Invalid cron expression '* * *': expected 5 or 6 fields, got 3"));
    CHECK(err("SELECT df.schedule('x', '0 0 30 2 *', 'SELECT 1')") ==
          E("Invalid cron expression '0 0 30 2 *': no matching time in the next 8 years"));
    CHECK(err("SELECT df.schedule('x', '* * * * *', 'SELECT 1', 'Mars/Olympus')") == E("Invalid time zone 'Mars/Olympus'"));
    CHECK(err("SELECT df.schedule('x', '* * * * *', 'SELECT 1', '/etc/passwd')") == E("Invalid time zone '/etc/passwd'"));
    CHECK(err("SELECT df.schedule('x', '* * * * *', 'SELECT 1', overlap => 'queue')") ==
          E("invalid overlap \"queue\" for df.schedule(): expected 'skip', 'allow' or 'cancel_previous'"));
    CHECK(err("SELECT df.schedule('', '* * * * *', 'SELECT 1')") == E("Schedule name cannot be empty"));
    CHECK(err("SELECT df.schedule(NULL, '* * * * *', 'SELECT 1')") == E("Schedule name cannot be empty"));
    CHECK(err("SELECT df.schedule(repeat('n', 100000), '* * * * *', 'SELECT 1')") ==
          E("Schedule name exceeds 200 characters"));
    CHECK(err("SELECT df.schedule('x', NULL, 'SELECT 1')") == E("df.schedule: cron_expr cannot be NULL"));
    CHECK(err("SELECT df.schedule('x', '* * * * *', NULL)") == E("df.schedule: fut cannot be NULL"));
    // (The "Valid types" list grows with new node types; its start is the contract here.)
    CHECK_THAT(err("SELECT df.schedule('x', '* * * * *', '{\"node_type\":\"NOPE\"}')").value_or(""),
               Catch::StartsWith("Invalid durable function: Unknown node_type 'NOPE'. Valid types: SQL, THEN"));
    CHECK(err("SELECT df.schedule('x', '* * * * *', '{\"node_type\":\"THEN\",\"left_node\":7}')") ==
          E("Invalid durable function graph: root: Durofut children must be JSON objects"));
    CHECK(err("SELECT df.schedule('x', '* * * * *', 'SELECT 1', database => 'nowhere')") ==
          E("database \"nowhere\" does not exist"));
    // The superuser check of df.start.
    CHECK(err("SELECT df.schedule('x', '* * * * *', 'SELECT 1')", "") ==
          E("pg_durable: superuser instances are disabled. current_user \"" + ec.cluster().superuser() +
            "\" is a superuser, but pg_durable.enable_superuser_instances is off. Set "
            "pg_durable.enable_superuser_instances = on to allow this."));
    // LOGIN: a role without it (through SET ROLE).
    ec.cluster().exec("CREATE ROLE nologin_r NOLOGIN; SELECT df.grant_usage('nologin_r'); GRANT nologin_r TO alice");
    CHECK(err("SET ROLE nologin_r; SELECT df.schedule('x', '* * * * *', 'SELECT 1')") ==
          E("current_user \"nologin_r\" does not have LOGIN privilege. The background worker must connect as this "
            "role to execute SQL. Grant LOGIN to this role or call df.start() as a role with LOGIN."));
    // Nothing was stored by any of these.
    CHECK(count_of(ec, "SELECT count(*) FROM df._schedules") == 0);
    // A forged hint is only a hint: a flood of 'schedule' payloads changes nothing.
    ec.cluster().exec("SELECT pg_notify('df_wakeup', 'schedule') FROM generate_series(1, 2000)");

    // Each run re-checks like df.start: alice loses LOGIN; the tick is taken,
    // no instance starts, the error is recorded; she gets it back, runs resume.
    REQUIRE(ec.query("alice", "SELECT df.schedule('recheck', '*/1 * * * * *', 'SELECT 1')"));
    REQUIRE_EVENTUALLY(runs_of(ec, "recheck") >= 1, 15s, diagnostics(ec));
    ec.cluster().exec("ALTER ROLE alice NOLOGIN");
    const long before = runs_of(ec, "recheck");
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT failed_starts FROM df._schedules WHERE name = 'recheck'") >= 2, 15s,
                       diagnostics(ec));
    CHECK(runs_of(ec, "recheck") <= before + 1);  // one may have been started just before the ALTER
    CHECK(ec.cluster().query_value("SELECT last_error FROM df._schedules WHERE name = 'recheck'") ==
          E("current_user \"alice\" does not have LOGIN privilege. The background worker must connect as this role "
            "to execute SQL. Grant LOGIN to this role or call df.start() as a role with LOGIN."));
    ec.cluster().exec("ALTER ROLE alice LOGIN");
    const long resumed = runs_of(ec, "recheck");
    REQUIRE_EVENTUALLY(runs_of(ec, "recheck") >= resumed + 2, 15s, diagnostics(ec));
    CHECK(ec.daemon()->running());
    REQUIRE(ec.query("alice", "SELECT df.unschedule('recheck')"));
}
