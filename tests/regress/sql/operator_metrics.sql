-- The operator metrics surface (docs/MONITORING.md "Operators"):
-- df_monitor.operator_metrics() for pg_monitor members only, numbers only,
-- each value equal to what the tables say; the durable step counters and
-- their trigger. States are built by inserting rows as superuser (no daemon).
CREATE EXTENSION IF NOT EXISTS pg_durable;
\set VERBOSITY terse

---------------------------------------------------------------------------
-- Privileges: SECURITY DEFINER with a pinned search_path, EXECUTE and schema
-- USAGE for pg_monitor only (and the owner), nothing for PUBLIC.
SELECT p.oid::regprocedure AS function, p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.oid IN ('df_monitor.operator_metrics()'::regprocedure, 'df._count_step_outcome()'::regprocedure)
 ORDER BY 1;
SELECT pg_get_function_result('df_monitor.operator_metrics()'::regprocedure) AS returns;
SELECT a.grantee::regrole AS grantee, a.privilege_type
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.oid = 'df_monitor.operator_metrics()'::regprocedure AND a.grantee <> p.proowner;
SELECT a.grantee::regrole AS grantee, a.privilege_type
  FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname = 'df_monitor' AND a.grantee <> n.nspowner;
-- Nothing else in df_monitor, and pg_monitor gets nothing on df.
SELECT count(*) AS other_objects FROM pg_proc WHERE pronamespace = 'df_monitor'::regnamespace
   AND oid <> 'df_monitor.operator_metrics()'::regprocedure;
SELECT count(*) AS other_relations FROM pg_class WHERE relnamespace = 'df_monitor'::regnamespace;
SELECT has_schema_privilege('pg_monitor', 'df', 'USAGE') AS pg_monitor_uses_df;

CREATE ROLE regress_om_plain LOGIN;
CREATE ROLE regress_om_user LOGIN;
CREATE ROLE regress_om_watch LOGIN IN ROLE pg_monitor;
SELECT df.grant_usage('regress_om_user');

-- A plain role and a df user are both refused.
SET ROLE regress_om_plain;
SELECT * FROM df_monitor.operator_metrics();
RESET ROLE;
SET ROLE regress_om_user;
SELECT * FROM df_monitor.operator_metrics();
SELECT df_monitor.operator_metrics();
RESET ROLE;
-- The grant is to pg_monitor, not PUBLIC.
SELECT has_function_privilege('regress_om_user', 'df_monitor.operator_metrics()', 'EXECUTE') AS user_may,
       has_function_privilege('regress_om_watch', 'df_monitor.operator_metrics()', 'EXECUTE') AS watcher_may;

-- The monitoring role reads no df table and calls no df function.
SET ROLE regress_om_watch;
SELECT count(*) FROM df.instances;
SELECT df.start('SELECT 1');
SELECT df.metrics();
RESET ROLE;

---------------------------------------------------------------------------
-- A known state. Earlier files left rows behind: values are compared with
-- the tables, and counters with a baseline.
DELETE FROM df._worker_epoch;
UPDATE df.instances SET created_at = created_at - interval '1 hour' WHERE created_at > now() - interval '2 minutes';
CREATE TEMP TABLE om_before AS SELECT * FROM df_monitor.operator_metrics();
GRANT SELECT ON om_before TO regress_om_watch;

INSERT INTO df.instances (id, label, root_node, status, submitted_by, database, created_at, updated_at) VALUES
    -- pending for an hour (oldest pending age)
    ('0a000001', 'secret-label', 'b0000001', 'pending', 'regress_om_user', current_database(),
     now() - interval '1 hour', now() - interval '1 hour'),
    -- running: a sleep (timer), a signal wait, two finished SQL steps
    ('0a000002', NULL, 'b0000002', 'running', 'regress_om_user', current_database(),
     now() - interval '20 seconds', now()),
    ('0a000003', NULL, 'b0000003', 'running', 'regress_om_user', current_database(),
     now() - interval '30 seconds', now()),
    -- completed 40 days ago: past retention_days (30), so retention backlog
    ('0a000004', NULL, 'b0000004', 'completed', 'regress_om_user', current_database(),
     now() - interval '41 days', now() - interval '40 days');
INSERT INTO df.nodes (id, instance_id, node_type, query, status, submitted_by, database)
SELECT v.id, v.instance_id, v.node_type, v.query, 'pending', 'regress_om_user', current_database()
  FROM (VALUES ('b0000001', '0a000001', 'SQL', 'SELECT ''secret query'''),
               ('b0000002', '0a000002', 'THEN', NULL),
               ('b0000021', '0a000002', 'SQL', 'SELECT 1'),
               ('b0000022', '0a000002', 'SLEEP', NULL),
               ('b0000003', '0a000003', 'THEN', NULL),
               ('b0000031', '0a000003', 'SQL', 'SELECT 1/0'),
               ('b0000032', '0a000003', 'SIGNAL', NULL),
               ('b0000004', '0a000004', 'HTTP', NULL)) AS v(id, instance_id, node_type, query);
-- Activations: each SQL/HTTP outcome counts once, timers and signal waits never.
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, result, error, started_at, completed_at,
                             wake_at) VALUES
    ('0a000002', '0a000002::1', 'b0000021', 1, 'completed', '{"rows":[{"secret":1}]}', NULL,
     now() - interval '18 seconds', now() - interval '17 seconds', NULL),
    ('0a000002', '0a000002::1', 'b0000022', 1, 'running', NULL, NULL,
     now() - interval '17 seconds', NULL, now() + interval '1 hour'),
    ('0a000003', '0a000003::1', 'b0000031', 1, 'running', NULL, NULL,
     now() - interval '26 seconds', NULL, NULL),
    ('0a000003', '0a000003::1', 'b0000032', 1, 'running', NULL, NULL,
     now() - interval '25 seconds', NULL, NULL),
    ('0a000004', '0a000004::1', 'b0000004', 1, 'completed', '{"status":200}', NULL,
     now() - interval '41 days', now() - interval '41 days', NULL);
-- running -> failed counts once; writing the same status again does not.
UPDATE df._activations SET status = 'failed', error = 'secret error', completed_at = now()
 WHERE node_id = 'b0000031';
UPDATE df._activations SET error = 'rewritten', status = 'failed' WHERE node_id = 'b0000031';
-- A heartbeat 5 s old, 3 HTTP requests in flight.
INSERT INTO df._worker_epoch (epoch_id, started_at, last_seen_at, http_in_flight)
VALUES (gen_random_uuid(), now() - interval '1 minute', now() - interval '5 seconds', 3);
-- This session as a step connection (busy: it is running the query).
SET application_name = 'pg_durable step';
-- An active daemon and one standby: the advisory locks the daemon takes.
SELECT pg_advisory_lock(1885824117, 1) IS NOT NULL AS orchestrator_lock,
       pg_advisory_lock_shared(1885824117, 3) IS NOT NULL AS standby_marker;

---------------------------------------------------------------------------
-- What the monitoring role sees: names and numbers, nothing else.
SET ROLE regress_om_watch;
CREATE TEMP TABLE om_seen AS SELECT * FROM df_monitor.operator_metrics();
SELECT metric FROM om_seen ORDER BY metric;
-- No id, label, query, result or error anywhere in what it returns.
SELECT count(*) AS leaks FROM om_seen
 WHERE metric ~ '0a00000|b00000|secret|rewritten' OR value::text ~ '[a-z]{2}';
-- Counters: the deltas of this file's writes.
SELECT s.metric, s.value - b.value AS delta
  FROM om_seen s JOIN om_before b USING (metric)
 WHERE s.metric LIKE 'steps_%' ORDER BY 1;
RESET ROLE;
SELECT pg_advisory_unlock(1885824117, 1), pg_advisory_unlock_shared(1885824117, 3);
RESET application_name;

-- Values equal what the tables say (independent queries over the same rows).
WITH m AS (SELECT metric, value FROM om_seen)
SELECT
    (SELECT value FROM m WHERE metric = 'instances_pending') =
        (SELECT count(*) FROM df.instances WHERE status = 'pending') AS pending_ok,
    (SELECT value FROM m WHERE metric = 'instances_running') =
        (SELECT count(*) FROM df.instances WHERE status = 'running') AS running_ok,
    (SELECT value FROM m WHERE metric = 'instances_completed') =
        (SELECT count(*) FROM df.instances WHERE status = 'completed') AS completed_ok,
    (SELECT value FROM m WHERE metric = 'instances_failed') =
        (SELECT count(*) FROM df.instances WHERE status = 'failed') AS failed_ok,
    (SELECT value FROM m WHERE metric = 'instances_cancelled') =
        (SELECT count(*) FROM df.instances WHERE status = 'cancelled') AS cancelled_ok,
    (SELECT value FROM m WHERE metric = 'instances_waiting_timer') =
        (SELECT count(DISTINCT a.instance_id) FROM df._activations a
           JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id
           JOIN df.instances i ON i.id = a.instance_id
          WHERE a.status = 'running' AND a.wake_at IS NOT NULL AND n.node_type <> 'SIGNAL'
            AND i.status IN ('pending', 'running')) AS timer_ok,
    (SELECT value FROM m WHERE metric = 'instances_waiting_signal') =
        (SELECT count(DISTINCT a.instance_id) FROM df._activations a
           JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id
           JOIN df.instances i ON i.id = a.instance_id
          WHERE a.status = 'running' AND n.node_type = 'SIGNAL' AND i.status IN ('pending', 'running'))
        AS signal_ok,
    (SELECT value FROM m WHERE metric = 'retention_backlog_instances') =
        (SELECT count(*) FROM df.instances WHERE status IN ('completed', 'failed', 'cancelled')
            AND updated_at < now() - interval '30 days') AS backlog_ok,
    (SELECT value FROM m WHERE metric = 'user_connections_max') =
        current_setting('pg_durable.max_user_connections')::float8 AS max_ok;
-- The oldest pending instance's age (within the seconds this file takes).
SELECT abs((SELECT value FROM om_seen WHERE metric = 'oldest_pending_age_seconds')
           - extract(epoch FROM now() - (SELECT min(created_at) FROM df.instances WHERE status = 'pending'))) < 10
       AS oldest_pending_ok,
       (SELECT value FROM om_seen WHERE metric = 'oldest_pending_age_seconds') >= 3600 AS at_least_an_hour;
-- Dispatch lag: df.start (created_at) to the first step's start, over the last minute.
SELECT (SELECT value FROM om_seen WHERE metric = 'dispatch_lag_samples') =
           (SELECT count(*) FROM df.instances i
             WHERE i.created_at > now() - interval '1 minute'
               AND EXISTS (SELECT FROM df._activations a WHERE a.instance_id = i.id AND a.started_at IS NOT NULL))
           AS samples_ok,
       (SELECT value FROM om_seen WHERE metric = 'dispatch_lag_p50_seconds') =
           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f - i.created_at)::float8)
              FROM df.instances i, LATERAL (SELECT min(started_at) AS f FROM df._activations a
                                              WHERE a.instance_id = i.id) x
             WHERE i.created_at > now() - interval '1 minute' AND f IS NOT NULL) AS p50_ok;
-- Instances 0a000002 and 0a000003 started their first step 2 s and 4 s after
-- df.start (the only ones of the last minute: earlier files' were moved back).
SELECT round((SELECT value FROM om_seen WHERE metric = 'dispatch_lag_p50_seconds')::numeric, 1) AS p50,
       round((SELECT value FROM om_seen WHERE metric = 'dispatch_lag_p99_seconds')::numeric, 1) AS p99,
       (SELECT value FROM om_seen WHERE metric = 'dispatch_lag_samples') AS samples;
-- The daemon side: heartbeat age, HTTP in flight, locks, this session as a busy step connection.
SELECT metric, CASE WHEN metric = 'daemon_heartbeat_age_seconds' THEN (value BETWEEN 5 AND 60)::int::float8
                    ELSE value END AS value
  FROM om_seen
 WHERE metric IN ('daemon_heartbeat_age_seconds', 'http_requests_in_flight', 'daemon_active', 'daemon_standbys',
                  'user_connections_in_use', 'user_connections_open')
 ORDER BY 1;
-- Without the locks and the step connection.
SELECT metric, value FROM df_monitor.operator_metrics()
 WHERE metric IN ('daemon_active', 'daemon_standbys', 'user_connections_in_use', 'user_connections_open')
 ORDER BY 1;
-- No heartbeat row: age unknown (NULL), nothing in flight.
DELETE FROM df._worker_epoch;
SELECT metric, value FROM df_monitor.operator_metrics()
 WHERE metric IN ('daemon_heartbeat_age_seconds', 'http_requests_in_flight') ORDER BY 1;

-- Counters survive retention: deleting the instances leaves them as they were.
CREATE TEMP TABLE om_counted AS SELECT * FROM df_monitor.operator_metrics() WHERE metric LIKE 'steps_%';
DELETE FROM df.instances WHERE id IN ('0a000001', '0a000002', '0a000003', '0a000004');
SELECT c.metric, m.value - c.value AS change
  FROM om_counted c JOIN df_monitor.operator_metrics() m USING (metric) ORDER BY 1;

-- The trigger cannot be fooled by a hostile node id or missing node: an
-- activation of an unknown node counts nothing.
INSERT INTO df.instances (id, root_node, status, submitted_by, database)
VALUES ('0a000005', 'b0000005', 'running', 'regress_om_user', current_database());
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status)
VALUES ('0a000005', '0a000005::1', 'ffffffff', 1, 'completed'),
       ('0a000005', '0a000005::1', 'a'');--', 1, 'failed');
SELECT c.metric, m.value - c.value AS change
  FROM om_counted c JOIN df_monitor.operator_metrics() m USING (metric) ORDER BY 1;
-- A step never waits for another transaction's counter row: with this
-- backend's own row (and row 16, the heartbeat's) locked by a transaction
-- that stays open, the outcome goes to a free row at once.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('holder', 'dbname=' || current_database());
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', format('UPDATE df._step_counters SET started = started WHERE shard IN (%s, 16)',
                                    pg_backend_pid() % 16));
SELECT count(*) AS own_row_free FROM (SELECT 1 FROM df._step_counters WHERE shard = pg_backend_pid() % 16
                                      FOR UPDATE SKIP LOCKED) f;
INSERT INTO df.nodes (id, instance_id, node_type, query, status, submitted_by, database)
VALUES ('b0000051', '0a000005', 'SQL', 'SELECT 1', 'pending', 'regress_om_user', current_database());
SET lock_timeout = '2s';
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status)
VALUES ('0a000005', '0a000005::1', 'b0000051', 1, 'completed');
RESET lock_timeout;
SELECT dblink_exec('holder', 'ROLLBACK');
SELECT dblink_disconnect('holder');
DROP EXTENSION dblink;
SELECT c.metric, m.value - c.value AS change
  FROM om_counted c JOIN df_monitor.operator_metrics() m USING (metric) ORDER BY 1;
SELECT count(*) AS counter_rows FROM df._step_counters;
DELETE FROM df.instances WHERE id = '0a000005';

DROP TABLE om_before, om_seen, om_counted;
SELECT df.revoke_usage('regress_om_user');
DROP ROLE regress_om_plain;
DROP ROLE regress_om_user;
DROP ROLE regress_om_watch;
