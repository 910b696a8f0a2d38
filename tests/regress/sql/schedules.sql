-- Schedules: the SQL surface (SPEC §19.4). No daemon runs here: ticks are
-- taken by the daemon (tests/integration/test_schedules.cpp).
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_sched_alice LOGIN;
CREATE ROLE regress_sched_bob LOGIN;
CREATE ROLE regress_sched_nologin NOLOGIN;
SELECT df.grant_usage('regress_sched_alice');
SELECT df.grant_usage('regress_sched_bob');
SELECT df.grant_usage('regress_sched_nologin');

-- Signatures, volatility, strictness, result types.
SELECT p.proname, pg_get_function_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result,
       p.provolatile, p.proisstrict
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'df' AND p.proname IN ('schedule', 'unschedule', 'pause_schedule', 'resume_schedule',
                                          'list_schedules')
 ORDER BY p.proname;

-- Superusers are refused unless pg_durable.enable_superuser_instances is on (as df.start).
SELECT df.schedule('su', '* * * * *', 'SELECT 1');
-- The effective role needs LOGIN.
SET ROLE regress_sched_nologin;
SELECT df.schedule('nl', '* * * * *', 'SELECT 1');
RESET ROLE;

SET ROLE regress_sched_alice;
-- Hostile input: each refused with its SPEC text.
SELECT df.schedule('', '* * * * *', 'SELECT 1');
SELECT df.schedule(NULL, '* * * * *', 'SELECT 1');
SELECT df.schedule(repeat('n', 201), '* * * * *', 'SELECT 1');
SELECT df.schedule('x', NULL, 'SELECT 1');
SELECT df.schedule('x', '* * * * *', NULL);
SELECT df.schedule('x', '60 * * * *', 'SELECT 1');
SELECT df.schedule('x', '* * * * * * *', 'SELECT 1');
SELECT df.schedule('x', '0 0 31 2 *', 'SELECT 1');
SELECT df.schedule('x', '* * * * *', 'SELECT 1', 'Nowhere/City');
SELECT df.schedule('x', '* * * * *', 'SELECT 1', '');
SELECT df.schedule('x', '* * * * *', 'SELECT 1', overlap => 'sometimes');
SELECT df.schedule('x', '* * * * *', '{"node_type":"SQL","query":"SELECT 1","condition_node":{"node_type":"SQL","query":"x"}}');
SELECT df.schedule('x', '* * * * *', 'SELECT 1', database => 'regress_no_such_db');
SELECT count(*) AS nothing_stored FROM df.list_schedules();

-- A pg_cron job moved over in one line, and more.
SELECT df.schedule('nightly-vacuum', '0 3 * * *', 'VACUUM ANALYZE big_table', 'Europe/Berlin');
SELECT df.schedule('every-second', '*/1 * * * * *', 'SELECT 1' ~> df.sleep(1), overlap => 'ALLOW');
SELECT df.schedule('weekdays', '0 9 * * MON-FRI', 'SELECT 1', 'America/New_York', 'cancel_previous');
SELECT name, cron_expr, timezone, overlap, database, paused, next_run_at > now() AS future,
       last_instance_id, last_status, runs, created_at <= now() AS created
  FROM df.list_schedules() ORDER BY name;
-- next_run_at follows the expression in its zone (03:00 Berlin, 09:00 New York).
SELECT name, to_char(next_run_at AT TIME ZONE timezone, 'HH24:MI:SS') AS local_time
  FROM df.list_schedules() WHERE name IN ('nightly-vacuum', 'weekdays') ORDER BY name;
SELECT extract(isodow FROM next_run_at AT TIME ZONE 'America/New_York') BETWEEN 1 AND 5 AS weekday
  FROM df.list_schedules() WHERE name = 'weekdays';

-- Pause: no next tick; resume: the next tick from now.
SELECT df.pause_schedule('weekdays');
SELECT paused, next_run_at FROM df.list_schedules() WHERE name = 'weekdays';
SELECT df.resume_schedule('weekdays');
SELECT paused, next_run_at > now() AS future FROM df.list_schedules() WHERE name = 'weekdays';
SELECT df.resume_schedule('weekdays') AS resume_running;
-- Absent names: false.
SELECT df.pause_schedule('nope'), df.resume_schedule('nope'), df.unschedule('nope');
-- STRICT: NULL gives NULL.
SELECT df.unschedule(NULL) IS NULL AS strict_null;

-- Replace: new definition, same row (counters and created_at kept).
SELECT created_at AS first_created FROM df.list_schedules() WHERE name = 'nightly-vacuum' \gset
SELECT df.schedule('nightly-vacuum', '30 2 * * SUN', 'VACUUM big_table', 'UTC', 'skip');
SELECT name, cron_expr, timezone, overlap, created_at = :'first_created' AS same_created
  FROM df.list_schedules() WHERE name = 'nightly-vacuum';
-- Paused stays paused across a replace.
SELECT df.pause_schedule('every-second');
SELECT df.schedule('every-second', '*/2 * * * * *', 'SELECT 2');
SELECT paused, next_run_at FROM df.list_schedules() WHERE name = 'every-second';

-- Rolled back: nothing.
BEGIN;
SELECT df.schedule('rolled-back', '* * * * *', 'SELECT 1');
ROLLBACK;
SELECT count(*) AS rolled_back FROM df.list_schedules() WHERE name = 'rolled-back';

-- Users never write the table, nor start runs themselves.
INSERT INTO df._schedules (owner, name, cron_expr, timezone, overlap, definition, database)
    VALUES ('regress_sched_alice', 'x', '* * * * *', 'UTC', 'skip', 'SELECT 1', 'x');
SELECT * FROM df._schedules;
SELECT df._start_scheduled(1);
RESET ROLE;

-- bob: the same name is his own; he sees only his.
SET ROLE regress_sched_bob;
SELECT df.schedule('weekdays', '0 8 * * 1-5', 'SELECT 2');
SELECT name, cron_expr FROM df.list_schedules();
SELECT df.unschedule('every-second') AS bob_cannot_unschedule_alices;
RESET ROLE;
-- The superuser sees everyone's.
SELECT name, cron_expr FROM df.list_schedules() ORDER BY name, cron_expr;
-- Stored owner, definition and counters.
SELECT owner, name, definition, runs, skipped, missed, failed_starts, last_error
  FROM df._schedules ORDER BY owner::text, name;

SET ROLE regress_sched_alice;
SELECT df.unschedule('every-second'), df.unschedule('weekdays'), df.unschedule('nightly-vacuum');
RESET ROLE;
SET ROLE regress_sched_bob;
SELECT df.unschedule('weekdays');
RESET ROLE;
SELECT count(*) AS left_over FROM df._schedules;
