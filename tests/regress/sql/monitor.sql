-- Monitoring (SPEC §15, §16): df.list_instances (both overloads), df.instance_info,
-- df.instance_executions, df.instance_nodes (both overloads, inferred status),
-- df.metrics, and df.explain's live markers. States are built by inserting
-- rows as superuser with fixed ids and timestamps, so the output is stable.
CREATE EXTENSION IF NOT EXISTS pg_durable;
\set VERBOSITY terse
-- df.metrics counts everything in the database: compare with a baseline.
CREATE TEMP TABLE monitor_baseline AS SELECT * FROM df.metrics();

CREATE ROLE regress_mon_alice LOGIN;
CREATE ROLE regress_mon_bob LOGIN;
SELECT df.grant_usage('regress_mon_alice');
SELECT df.grant_usage('regress_mon_bob');

-- Three instances share one created_at: the tie is broken by id.
INSERT INTO df.instances (id, label, root_node, status, submitted_by, database, created_at, updated_at,
                          completed_at, execution_count, error, error_node) VALUES
    ('f1000001', 'batch', 'a1000001', 'completed', 'regress_mon_alice', current_database(),
     '2026-01-01 00:00:01+00', '2026-01-01 00:00:05+00', '2026-01-01 00:00:05+00', 1, NULL, NULL),
    ('f1000002', 'batch', 'a1000002', 'failed', 'regress_mon_alice', current_database(),
     '2026-01-01 00:00:01+00', '2026-01-01 00:00:06+00', NULL, 1, 'SQL execution failed: boom', 'a1000002'),
    ('f1000003', 'other', 'a1000003', 'cancelled', 'regress_mon_alice', current_database(),
     '2026-01-01 00:00:01+00', '2026-01-01 00:00:07+00', NULL, 1, 'Cancelled by user', NULL),
    ('f1000004', 'batch', 'a1000004', 'running', 'regress_mon_alice', current_database(),
     '2026-01-01 00:00:02+00', '2026-01-01 00:00:02+00', NULL, 1, NULL, NULL),
    ('f1000005', NULL, 'a1000005', 'pending', 'regress_mon_alice', current_database(),
     '2026-01-01 00:00:00.5+00', '2026-01-01 00:00:00.5+00', NULL, 1, NULL, NULL),
    ('f1000006', 'batch', 'a1000006', 'running', 'regress_mon_bob', current_database(),
     '2026-01-01 00:00:03+00', '2026-01-01 00:00:03+00', NULL, 1, NULL, NULL);
INSERT INTO df.nodes (id, instance_id, node_type, query, status, result, submitted_by, database)
SELECT v.id, v.instance_id, 'SQL', 'SELECT 1 AS n', v.status, v.result::json, i.submitted_by, i.database
  FROM (VALUES ('a1000001', 'f1000001', 'completed', '{"rows":[{"n":1}],"row_count":1}'),
               ('a1000002', 'f1000002', 'failed', NULL),
               ('a1000003', 'f1000003', 'pending', NULL),
               ('a1000004', 'f1000004', 'pending', NULL),
               ('a1000005', 'f1000005', 'pending', NULL),
               ('a1000006', 'f1000006', 'pending', NULL)) AS v(id, instance_id, status, result)
  JOIN df.instances i ON i.id = v.instance_id;

---------------------------------------------------------------------------
-- df.list_instances, basic overload
SET ROLE regress_mon_alice;
SELECT * FROM df.list_instances();
SELECT * FROM df.list_instances('running');
SELECT * FROM df.list_instances('batch');            -- a status, not a label: nothing
SELECT * FROM df.list_instances(NULL, 2);
SELECT * FROM df.list_instances(NULL, 0);
SELECT * FROM df.list_instances(NULL, -5);
SELECT * FROM df.list_instances(NULL, NULL);
SELECT * FROM df.list_instances(NULL, 1001);
-- The maximum is superuser-only (suset).
SET pg_durable.list_instances_max_limit = 5;
RESET ROLE;
SET pg_durable.list_instances_max_limit = 3;
SET ROLE regress_mon_alice;
SELECT count(*) FROM df.list_instances(NULL, 3);
SELECT * FROM df.list_instances(NULL, 4);
SELECT * FROM df.list_instances(NULL, 4, NULL);
RESET ROLE;
RESET pg_durable.list_instances_max_limit;

---------------------------------------------------------------------------
-- df.list_instances, paginated overload: pages of 2 across the tie.
SET ROLE regress_mon_alice;
SET TIME ZONE 'UTC';
SELECT instance_id, label, status, output, created_at, completed_at, next_cursor
  FROM df.list_instances(NULL, 2, NULL);
SELECT convert_from(decode(next_cursor, 'hex'), 'UTF8') AS decoded
  FROM df.list_instances(NULL, 2, NULL) LIMIT 1;
-- Walk every page with the cursor.
DO $$
DECLARE
    cur text := NULL;
    page int := 0;
    r record;
    ids text;
BEGIN
    LOOP
        page := page + 1;
        ids := '';
        FOR r IN SELECT * FROM df.list_instances(NULL, 2, NULL, cur) LOOP
            ids := ids || r.instance_id || ' ';
            cur := r.next_cursor;
        END LOOP;
        RAISE NOTICE 'page %: %(next: %)', page, ids, cur IS NOT NULL;
        EXIT WHEN cur IS NULL OR page > 10;
    END LOOP;
END
$$;
-- A cursor carries its time zone offset, so it works in any session zone.
SET TIME ZONE 'Asia/Kolkata';
SELECT convert_from(decode(next_cursor, 'hex'), 'UTF8') AS decoded
  FROM df.list_instances(NULL, 1, NULL) LIMIT 1;
SELECT instance_id FROM df.list_instances(NULL, 3, NULL,
    (SELECT next_cursor FROM df.list_instances(NULL, 1, NULL) LIMIT 1));
RESET TIME ZONE;
-- Filters: exact status and label.
SELECT instance_id, status, next_cursor FROM df.list_instances(NULL, 10, 'batch');
SELECT instance_id, status FROM df.list_instances('completed', 10, 'batch');
SELECT instance_id FROM df.list_instances('running', 10, 'nope');
-- Invalid cursors.
SELECT * FROM df.list_instances(NULL, 2, NULL, 'zz');
SELECT * FROM df.list_instances(NULL, 2, NULL, '');
SELECT * FROM df.list_instances(NULL, 2, NULL, encode(convert_to('v2|2026-01-01T00:00:01.000000+00|f1000001', 'UTF8'), 'hex'));
SELECT * FROM df.list_instances(NULL, 2, NULL, encode(convert_to('v1|2026-01-01 00:00:01|f1000001', 'UTF8'), 'hex'));
SELECT * FROM df.list_instances(NULL, 2, NULL, encode(convert_to('v1|2026-01-01T00:00:01.000000+00', 'UTF8'), 'hex'));
SELECT * FROM df.list_instances(NULL, 2, NULL, encode(convert_to('v1|2026-13-45T00:00:01.000000+00|x', 'UTF8'), 'hex'));
SELECT * FROM df.list_instances(NULL, 2, NULL, repeat('ab', 257));
SELECT * FROM df.list_instances(NULL, 0, NULL);
SELECT * FROM df.list_instances(NULL, 1001, NULL);
RESET ROLE;

---------------------------------------------------------------------------
-- Row security: bob sees only his own; superusers see all.
SET ROLE regress_mon_bob;
SELECT instance_id, status FROM df.list_instances();
SELECT instance_id, next_cursor FROM df.list_instances(NULL, 5, NULL);
SELECT * FROM df.instance_info('f1000001');
SELECT * FROM df.instance_executions('f1000001');
SELECT node_id FROM df.instance_nodes('f1000001');
SELECT node_id FROM df.instance_nodes('f1000001', 3);
SELECT df.explain('f1000001');
SELECT df._monitor('f1000001', 'inference', 0);
SELECT * FROM df.metrics();
RESET ROLE;
SELECT instance_id, status FROM df.list_instances(NULL, 100) WHERE instance_id LIKE 'f1%';

---------------------------------------------------------------------------
-- df.instance_info
SET ROLE regress_mon_alice;
SELECT * FROM df.instance_info('f1000001');
SELECT * FROM df.instance_info('f1000002');
SELECT * FROM df.instance_info('f1000003');
SELECT * FROM df.instance_info('f1000005');
SELECT * FROM df.instance_info('ffffffff');
SELECT * FROM df.instance_info(NULL);
RESET ROLE;

---------------------------------------------------------------------------
-- A root loop in its third execution: two past executions went on.
INSERT INTO df.instances (id, label, root_node, status, submitted_by, database, created_at, execution_count) VALUES
    ('f1000007', 'loop', 'a7000001', 'running', 'regress_mon_alice', current_database(),
     '2026-01-01 00:00:00+00', 3);
INSERT INTO df.nodes (id, instance_id, node_type, query, left_node, right_node, status, result, status_details,
                      submitted_by, database)
SELECT v.id, 'f1000007', v.node_type, v.query, v.left_node, v.right_node, v.status, v.result::json,
       v.details::jsonb, 'regress_mon_alice', current_database()
  FROM (VALUES
    ('a7000001', 'LOOP', '{"min_interval_ms":0}', 'a7000002', NULL, 'pending', NULL, NULL),
    ('a7000002', 'THEN', NULL, 'a7000003', 'a7000004', 'completed', '{"rows":[],"row_count":0}',
     '{"execution_id":"f1000007::2"}'),
    ('a7000003', 'SQL', 'SELECT 1', NULL, NULL, 'completed', '{"rows":[{"?column?":1}],"row_count":1}',
     '{"execution_id":"f1000007::3"}'),
    ('a7000004', 'SQL', 'SELECT 2', NULL, NULL, 'completed', '{"rows":[{"?column?":2}],"row_count":1}',
     '{"execution_id":"f1000007::2"}')) AS v(id, node_type, query, left_node, right_node, status, result, details);
INSERT INTO df._executions (instance_id, execution, status, started_at, ended_at, output, event_count) VALUES
    ('f1000007', 1, 'continued', '2026-01-01 00:00:00+00', '2026-01-01 00:00:01.5+00', '{"n":1}', 3),
    ('f1000007', 2, 'continued', '2026-01-01 00:00:01.5+00', '2026-01-01 00:00:04+00', '{"n":2}', 3);
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, result, started_at, completed_at,
                             updated_at) VALUES
    ('f1000007', 'f1000007::2', 'a7000001', 2, 'running', '{"iteration":2}', '2026-01-01 00:00:01.5+00', NULL,
     '2026-01-01 00:00:01.5+00'),
    ('f1000007', 'f1000007::2', 'a7000003', 2, 'completed', '{"rows":[{"?column?":1}],"row_count":1}',
     '2026-01-01 00:00:02+00', '2026-01-01 00:00:02+00', '2026-01-01 00:00:02+00'),
    ('f1000007', 'f1000007::2', 'a7000004', 2, 'completed', '{"rows":[{"?column?":2}],"row_count":1}',
     '2026-01-01 00:00:03+00', '2026-01-01 00:00:03+00', '2026-01-01 00:00:03+00'),
    ('f1000007', 'f1000007::3', 'a7000001', 3, 'running', '{"iteration":3}', '2026-01-01 00:00:04+00', NULL,
     '2026-01-01 00:00:04+00'),
    ('f1000007', 'f1000007::3', 'a7000003', 3, 'completed', '{"rows":[{"?column?":1}],"row_count":1}',
     '2026-01-01 00:00:05+00', '2026-01-01 00:00:05+00', '2026-01-01 00:00:05+00');

-- df.instance_executions: newest first; the current one is derived.
SET ROLE regress_mon_alice;
SELECT execution_id, status, event_count, duration_ms > 0 AS running_for, output
  FROM df.instance_executions('f1000007');
SELECT execution_id, status, event_count, duration_ms, output
  FROM df.instance_executions('f1000007', 3) OFFSET 1;
SELECT execution_id FROM df.instance_executions('f1000007', 1);
SELECT execution_id FROM df.instance_executions('f1000007', 2);
SELECT count(*) FROM df.instance_executions('f1000007', 20000);
SELECT * FROM df.instance_executions('f1000007', 0);
SELECT * FROM df.instance_executions('f1000007', NULL);
-- Non-loop instances have one execution.
SELECT execution_id, status, event_count, duration_ms, output FROM df.instance_executions('f1000001');
SELECT execution_id, status, event_count, duration_ms, output FROM df.instance_executions('f1000002');
SELECT execution_id, status, output FROM df.instance_executions('f1000005');
SELECT * FROM df.instance_executions('ffffffff');

-- Nodes written in an older execution run again in the current one: SELECT 1
-- completed in execution 3, so the THEN and SELECT 2 read running (a SQL
-- step's own row commits only when it ends).
SELECT node_id, node_type, status, inferred_status, inferred_status_from_ancestor_id, status_details
  FROM df.instance_nodes('f1000007') ORDER BY node_id;
-- The newest executions: the current from df.nodes (inferred statuses), past
-- ones from history.
SELECT execution_id, node_id, node_type, status, result
  FROM df.instance_nodes('f1000007', 2) ORDER BY execution_id DESC, node_id;
SELECT count(*) FROM df.instance_nodes('f1000007', 1);
SELECT execution_id, node_id, status FROM df.instance_nodes('f1000001', 5);
SELECT * FROM df.instance_nodes('f1000007', 0);
SELECT * FROM df.instance_nodes('ffffffff', 1);
SELECT * FROM df.instance_nodes(NULL);
SELECT df.explain('f1000007');
RESET ROLE;

---------------------------------------------------------------------------
-- Inferred status in a running instance: a JOIN of an IF (else arm not
-- taken), a RACE (right branch lost), a THEN whose left failed, and a THEN
-- still sleeping.
INSERT INTO df.instances (id, label, root_node, status, submitted_by, database, created_at) VALUES
    ('f1000008', 'live', 'a8000001', 'running', 'regress_mon_alice', current_database(), '2025-12-31 00:00:00+00');
INSERT INTO df.nodes (id, instance_id, node_type, query, left_node, right_node, status, result, error,
                      status_details, submitted_by, database, executed_query, attempts, started_at, completed_at)
SELECT v.id, 'f1000008', v.node_type, v.query, v.left_node, v.right_node, v.status, v.result::json, v.error,
       CASE WHEN v.stamp IS NOT NULL THEN jsonb_build_object('execution_id', v.stamp) END,
       'regress_mon_alice', current_database(),
       CASE WHEN v.node_type = 'SQL' AND v.status <> 'pending' THEN v.query END,
       CASE WHEN v.node_type = 'SQL' AND v.status <> 'pending' THEN 1 ELSE 0 END,
       CASE WHEN v.status <> 'pending' THEN timestamptz '2025-12-31 00:00:01+00' END,
       CASE WHEN v.status IN ('completed', 'failed', 'cancelled') THEN timestamptz '2025-12-31 00:00:02+00' END
  FROM (VALUES
    ('a8000001', 'JOIN', '{"extra_nodes":["a8000009","a800000c"]}', 'a8000002', 'a8000006', 'pending', NULL, NULL,
     NULL),
    ('a8000002', 'IF', '{"condition_node":"a8000003"}', 'a8000004', 'a8000005', 'completed', '{"rows":[],"row_count":0}',
     NULL, 'f1000008::1::a8000002::1'),
    ('a8000003', 'SQL', 'SELECT true', NULL, NULL, 'completed', '{"rows":[{"bool":true}],"row_count":1}', NULL,
     'f1000008::1::a8000002::1'),
    ('a8000004', 'SQL', 'SELECT ''then''', NULL, NULL, 'completed', '{"rows":[],"row_count":0}', NULL,
     'f1000008::1::a8000002::1'),
    ('a8000005', 'SQL', 'SELECT ''else''', NULL, NULL, 'pending', NULL, NULL, NULL),
    ('a8000006', 'RACE', NULL, 'a8000007', 'a8000008', 'completed', '{"rows":[],"row_count":0}', NULL,
     'f1000008::1::a8000006::1'),
    ('a8000007', 'SQL', 'SELECT ''fast''', NULL, NULL, 'completed', '{"rows":[],"row_count":0}', NULL,
     'f1000008::1::a8000006::1::a8000007::1'),
    ('a8000008', 'THEN', NULL, 'a800000d', 'a800000e', 'cancelled', NULL, 'Branch cancelled after losing RACE',
     'f1000008::1::a8000006::1::a8000008::1'),
    ('a800000d', 'SQL', 'SELECT pg_sleep(10)', NULL, NULL, 'cancelled', NULL, 'Branch cancelled after losing RACE',
     'f1000008::1::a8000006::1::a8000008::1'),
    ('a800000e', 'SQL', 'SELECT ''slow''', NULL, NULL, 'pending', NULL, NULL, NULL),
    ('a8000009', 'THEN', NULL, 'a800000a', 'a800000b', 'failed', NULL, 'SQL execution failed: division by zero',
     'f1000008::1::a8000009::1'),
    ('a800000a', 'SQL', 'SELECT 1/0', NULL, NULL, 'failed', NULL, 'SQL execution failed: division by zero',
     'f1000008::1::a8000009::1'),
    ('a800000b', 'SQL', 'SELECT ''after''', NULL, NULL, 'pending', NULL, NULL, NULL),
    ('a800000c', 'THEN', NULL, 'a800000f', 'a8000010', 'pending', NULL, NULL, NULL),
    ('a800000f', 'SLEEP', '60', NULL, NULL, 'running', NULL, NULL, 'f1000008::1::a800000c::1'),
    ('a8000010', 'SQL', 'SELECT ''later''', NULL, NULL, 'pending', NULL, NULL, NULL))
    AS v(id, node_type, query, left_node, right_node, status, result, error, stamp);
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, result) VALUES
    ('f1000008', 'f1000008::1::a8000006::1', 'a8000006', 1, 'completed', '{"race_winner":"left"}');

SET ROLE regress_mon_alice;
SELECT node_id, node_type, status, inferred_status, inferred_status_from_ancestor_id
  FROM df.instance_nodes('f1000008') ORDER BY node_id;
SELECT node_id, error, executed_query, attempts, started_at IS NOT NULL AS started,
       completed_at IS NOT NULL AS completed, result
  FROM df.instance_nodes('f1000008') WHERE node_type = 'SQL' ORDER BY node_id;
SELECT node_id, execution_id, status FROM df.instance_nodes('f1000008', 3) ORDER BY node_id LIMIT 3;
-- Live explain: ✓ completed, ✗ failed, ⏳ running, ○ pending, ⊘ skipped/cancelled.
SELECT df.explain('f1000008');
RESET ROLE;

-- The same instance once cancelled: whatever did not run is skipped (from the
-- root); the THEN and the JOIN that the cancel cut off read cancelled.
UPDATE df.instances SET status = 'cancelled', error = 'Cancelled by user' WHERE id = 'f1000008';
UPDATE df.nodes SET status = 'cancelled', error = 'Cancelled: Cancelled by user'
 WHERE instance_id = 'f1000008' AND id = 'a800000f';
SET ROLE regress_mon_alice;
SELECT node_id, status, inferred_status, inferred_status_from_ancestor_id
  FROM df.instance_nodes('f1000008') WHERE inferred_status = 'skipped' ORDER BY node_id;
SELECT df.explain('f1000008');
RESET ROLE;

-- A non-root loop whose checkpoint says iteration 3: SELECT 1 completed in it,
-- so the body THEN and the SLEEP, last written in iteration 2, run again.
INSERT INTO df.instances (id, root_node, status, submitted_by, database, created_at) VALUES
    ('f1000009', 'a9000001', 'running', 'regress_mon_alice', current_database(), '2025-12-30 00:00:00+00');
INSERT INTO df.nodes (id, instance_id, node_type, query, left_node, right_node, status, status_details,
                      submitted_by, database)
SELECT v.id, 'f1000009', v.node_type, v.query, v.left_node, v.right_node, v.status,
       CASE WHEN v.stamp IS NOT NULL THEN jsonb_build_object('execution_id', v.stamp) END,
       'regress_mon_alice', current_database()
  FROM (VALUES
    ('a9000001', 'THEN', NULL, 'a9000002', 'a9000003', 'pending', NULL),
    ('a9000002', 'SQL', 'SELECT 0', NULL, NULL, 'completed', 'f1000009::1'),
    ('a9000003', 'LOOP', NULL, 'a9000004', NULL, 'pending', NULL),
    ('a9000004', 'THEN', NULL, 'a9000005', 'a9000006', 'completed', 'f1000009::1::a9000004::2'),
    ('a9000005', 'SQL', 'SELECT 1', NULL, NULL, 'completed', 'f1000009::1::a9000004::3'),
    ('a9000006', 'SLEEP', '5', NULL, NULL, 'completed', 'f1000009::1::a9000004::2'))
    AS v(id, node_type, query, left_node, right_node, status, stamp);
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, result) VALUES
    ('f1000009', 'f1000009::1', 'a9000003', 1, 'running', '{"iteration":3,"results":{}}');
SET ROLE regress_mon_alice;
SELECT node_id, status, inferred_status, inferred_status_from_ancestor_id
  FROM df.instance_nodes('f1000009') ORDER BY node_id;
SELECT df.explain('f1000009');
RESET ROLE;

---------------------------------------------------------------------------
-- df.metrics: admins only, counts over all users.
SELECT m.total_instances - b.total_instances AS instances, m.running_instances - b.running_instances AS running,
       m.completed_instances - b.completed_instances AS completed, m.failed_instances - b.failed_instances AS failed,
       m.total_executions - b.total_executions AS executions, m.total_events - b.total_events AS events
  FROM df.metrics() m, monitor_baseline b;
SET ROLE regress_mon_alice;
SELECT * FROM df.metrics();
RESET ROLE;
SELECT has_function_privilege('public', 'df.metrics()', 'EXECUTE') AS public_can_execute;
-- Every monitoring function is VOLATILE; STRICT except both list_instances.
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'df' AND p.proname IN ('list_instances', 'instance_info', 'instance_executions',
                                          'instance_nodes', 'metrics')
 ORDER BY p.oid::regprocedure::text;

-- Clean up.
DELETE FROM df.instances WHERE id LIKE 'f100000%';
SELECT df.revoke_usage('regress_mon_alice');
SELECT df.revoke_usage('regress_mon_bob');
DROP ROLE regress_mon_alice;
DROP ROLE regress_mon_bob;
DROP TABLE monitor_baseline;
