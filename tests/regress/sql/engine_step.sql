-- df._run_step: the extension half of a SQL step (SPEC §10.2, §17; DESIGN
-- §2.2-§2.4). The daemon calls it as its own role (pg_durable.worker_role;
-- empty here: a superuser) and the step runs as the instance's submitter;
-- engine_run below, SECURITY DEFINER of the superuser, stands in for the
-- daemon's connection. Instances use fixed ids so the output is stable.
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_engine_alice LOGIN;
CREATE ROLE regress_engine_bob LOGIN;
SELECT df.grant_usage('regress_engine_alice');
SELECT df.grant_usage('regress_engine_bob');

-- The runtime tables are internal: no one but their owner may touch them.
SET ROLE regress_engine_alice;
SELECT * FROM df._daemon_secret;
SELECT * FROM df._activations;
SELECT * FROM df._signals;
-- Nor the one writer of node states (it would let a role rewrite what
-- monitoring shows of any instance).
SELECT df._set_node_state('e5000002', 'b5000000', NULL, 'completed', NULL, NULL);
RESET ROLE;

-- Stamps are parsed by common/protocol for SQL too; whatever a row holds,
-- a malformed stamp reads as NULL, never as an error or a wrong number.
SELECT s AS stamp, df._stamp_execution(s) AS execution,
       df._stamp_generation(s, 'e5000001::3', 'a5000001') AS generation
  FROM unnest(ARRAY['e5000001::3', 'e5000001::3::a5000001::7', 'e5000001::3::a5000001::7::a5000002::1',
                    'e5000001::3::a5000002::7', 'e5000001::31::a5000001::7', 'e5000001::3::a5000001::x',
                    'e5000001::3::a5000001::99999999999999999999', 'e5000001:3', 'e5000001::-3', '::3', '',
                    'e5000001::3::a5000001::']) AS s;

CREATE TABLE engine_effects (v text);
GRANT SELECT, INSERT, DELETE ON engine_effects TO regress_engine_alice;
CREATE TABLE engine_private (v text);
CREATE SCHEMA engine_ws AUTHORIZATION regress_engine_alice;
CREATE TYPE engine_pair AS (x int, y text);
CREATE TABLE engine_parent (id int PRIMARY KEY);
CREATE TABLE engine_child (pid int REFERENCES engine_parent DEFERRABLE INITIALLY DEFERRED);
GRANT SELECT, INSERT ON engine_parent, engine_child TO regress_engine_alice;

-- e5000001: a THEN of two SQL steps; e5000002: a scratch instance for single steps.
INSERT INTO df.instances (id, root_node, submitted_by, database) VALUES
    ('e5000001', 'a5000000', 'regress_engine_alice', current_database()),
    ('e5000002', 'b5000000', 'regress_engine_alice', current_database());
INSERT INTO df.nodes (id, instance_id, node_type, query, left_node, right_node, submitted_by, database) VALUES
    ('a5000000', 'e5000001', 'THEN', NULL, 'a5000001', 'a5000002', 'regress_engine_alice', current_database()),
    ('a5000001', 'e5000001', 'SQL', 'INSERT INTO engine_effects VALUES (''left'')', NULL, NULL,
     'regress_engine_alice', current_database()),
    ('a5000002', 'e5000001', 'SQL', 'SELECT v FROM engine_effects', NULL, NULL,
     'regress_engine_alice', current_database()),
    ('b5000000', 'e5000002', 'SQL', 'SELECT 1', NULL, NULL, 'regress_engine_alice', current_database());

-- Only the daemon may call it: no secret yet, then a wrong one, then NULL.
SELECT df._run_step('anything', 'e5000002', 'e5000002::1', 'b5000000', 1, 'SELECT 1', 1, NULL);
INSERT INTO df._daemon_secret (secret) VALUES ('regress-secret');
SELECT df._run_step('wrong-secret', 'e5000002', 'e5000002::1', 'b5000000', 1, 'SELECT 1', 1, NULL);
SELECT df._run_step(NULL, 'e5000002', 'e5000002::1', 'b5000000', 1, 'SELECT 1', 1, NULL);
-- Nor with the secret, as any role but the daemon's: not the submitter
-- (steps no longer log in as the submitter), not another role.
SET ROLE regress_engine_alice;
SELECT df._run_step('regress-secret', 'e5000002', 'e5000002::1', 'b5000000', 1, 'SELECT 1', 1, NULL);
SET ROLE regress_engine_bob;
SELECT df._run_step('regress-secret', 'e5000002', 'e5000002::1', 'b5000000', 1, 'SELECT 1', 1, NULL);
RESET ROLE;
SELECT count(*) AS nothing_recorded FROM df.instances i
 WHERE i.id = 'e5000002' AND i.status = 'pending';
SELECT count(*) AS no_activations FROM df._activations;

-- Shorthand for the daemon's call: SECURITY DEFINER, so it calls as the
-- superuser (the daemon's role here) whatever role the session has set.
CREATE FUNCTION engine_run(inst text, stamp text, node text, query text, finish jsonb DEFAULT NULL,
                           attempt int DEFAULT 1) RETURNS text
    LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT df._run_step('regress-secret', inst, stamp, node, 1, query, attempt, finish) $$;
GRANT EXECUTE ON FUNCTION engine_run TO PUBLIC;

-- Results are row_to_json's rows, in column order, duplicate names kept.
SET TimeZone = 'America/New_York';
SET ROLE regress_engine_alice;
SELECT engine_run('e5000002', 'e5000002::1', 'b5000000',
    $q$SELECT 1 AS a, 2 AS a, 9007199254740993::bigint AS big, 1.50::numeric AS num, 0.1::float8 AS flt,
              'it''s "quoted"' || chr(10) || 'ünï' AS txt, true AS yes, NULL::int AS nothing,
              '{"b": 1, "a": [1, 2]}'::json AS js, '{"b": 1, "a": [1, 2]}'::jsonb AS jsb,
              ARRAY[1, NULL, 3] AS ints, ARRAY['x', NULL]::text[] AS texts,
              '2024-01-02 03:04:05+00'::timestamptz AS ts, '2024-02-29'::date AS day,
              '1 day 02:03:04'::interval AS span, '\x0102'::bytea AS bytes,
              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
              ROW(1, 'a') AS anon, ROW(2, 'b')::engine_pair AS pair$q$) AS outcome \gset
SELECT :'outcome';
-- Exactly PostgreSQL's own conversion of the same row.
SELECT :'outcome' = '{"outcome":"completed","result":{"rows":['
       || (SELECT row_to_json(t)::text FROM (
             SELECT 1 AS a, 2 AS a, 9007199254740993::bigint AS big, 1.50::numeric AS num, 0.1::float8 AS flt,
                    'it''s "quoted"' || chr(10) || 'ünï' AS txt, true AS yes, NULL::int AS nothing,
                    '{"b": 1, "a": [1, 2]}'::json AS js, '{"b": 1, "a": [1, 2]}'::jsonb AS jsb,
                    ARRAY[1, NULL, 3] AS ints, ARRAY['x', NULL]::text[] AS texts,
                    '2024-01-02 03:04:05+00'::timestamptz AS ts, '2024-02-29'::date AS day,
                    '1 day 02:03:04'::interval AS span, '\x0102'::bytea AS bytes,
                    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
                    ROW(1, 'a') AS anon, ROW(2, 'b')::engine_pair AS pair) t)
       || '],"row_count":1}}' AS same_as_row_to_json;

-- Several statements: the last one's rows. Zero rows, DML, DDL.
SELECT engine_run('e5000002', 'e5000002::1', 'b5000001',
    'INSERT INTO engine_effects VALUES (''m1''); INSERT INTO engine_effects VALUES (''m2''); '
    'SELECT v FROM engine_effects ORDER BY v');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000002', 'SELECT v FROM engine_effects WHERE false');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000003', 'DELETE FROM engine_effects');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000004', 'CREATE TABLE engine_ws.made_by_step (x int)');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000005',
    'INSERT INTO engine_ws.made_by_step VALUES (1), (2) RETURNING x, x * 10 AS ten');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000006', '');

-- Transaction control is refused; the statements before it roll back.
SELECT engine_run('e5000002', 'e5000002::1', 'b5000007', 'INSERT INTO engine_effects VALUES (''tc''); COMMIT');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000008', 'ROLLBACK');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000009', 'SAVEPOINT s1');
SELECT engine_run('e5000002', 'e5000002::1', 'b500000a', 'DO $$BEGIN COMMIT; END$$');
SELECT count(*) AS tc_rolled_back FROM engine_effects WHERE v = 'tc';

-- A failing step: its effects roll back, its failure record commits, and
-- the function itself does not raise.
SELECT engine_run('e5000002', 'e5000002::1', 'b500000b',
    'INSERT INTO engine_effects VALUES (''before error''); SELECT 1/0');
SELECT count(*) AS effects_rolled_back FROM engine_effects WHERE v = 'before error';
-- PostgreSQL's own privileges apply to the step.
SELECT engine_run('e5000002', 'e5000002::1', 'b500000c', 'SELECT * FROM engine_private');
-- A constraint the step deferred is checked before the step counts as done.
SELECT engine_run('e5000002', 'e5000002::1', 'b500000d', 'INSERT INTO engine_child VALUES (7)');
SELECT count(*) AS orphan_rolled_back FROM engine_child;
-- COPY to the client cannot work over SPI.
SELECT engine_run('e5000002', 'e5000002::1', 'b500000e', 'COPY engine_effects TO STDOUT');
-- Interrupted by a query cancel (the daemon's PQcancel) on a live instance: the
-- whole call rolls back and records nothing, so the daemon runs the step again.
RESET ROLE;
UPDATE df.instances SET submitted_by = current_user::regrole WHERE id = 'e5000002';
SELECT engine_run('e5000002', 'e5000002::1', 'b500000f',
    'SELECT pg_cancel_backend(pg_backend_pid()); SELECT pg_sleep(10)');
UPDATE df.instances SET submitted_by = 'regress_engine_alice' WHERE id = 'e5000002';
SET ROLE regress_engine_alice;
-- statement_timeout likewise.
SET statement_timeout = '100ms';
SELECT engine_run('e5000002', 'e5000002::1', 'b5000010', 'SELECT pg_sleep(10)');
RESET statement_timeout;

-- Session state does not leak into the next step: settings (SET, SET LOCAL,
-- set_config, the step's own df.in_workflow), session advisory locks. The
-- step cannot change its role, even to one it is a member of, nor create
-- temporary objects (a security-restricted operation).
RESET ROLE;
GRANT regress_engine_bob TO regress_engine_alice;
SET ROLE regress_engine_alice;
SELECT engine_run('e5000002', 'e5000002::1', 'b5000011',
    'SET work_mem = ''77MB''; SET LOCAL statement_timeout = ''5min''; '
    'SELECT set_config(''application_name'', ''leaked'', false); SET TimeZone = ''Asia/Tokyo''; '
    'SET search_path = engine_ws; '
    'SELECT current_user AS who, session_user = current_user AS is_session_user, '
    'current_setting(''df.in_workflow'') AS in_workflow, '
    'current_setting(''work_mem'') AS work_mem, ''2024-01-02 03:04:05+00''::timestamptz AS ts');
SELECT current_user, current_setting('work_mem') AS work_mem, current_setting('statement_timeout') AS timeout,
       current_setting('application_name') = 'leaked' AS app_leaked, current_setting('TimeZone') AS tz,
       current_setting('search_path') AS search_path,
       current_setting('df.in_workflow', true) IS DISTINCT FROM 'true' AS not_in_workflow;
SELECT engine_run('e5000002', 'e5000002::1', 'b5000012', 'SET ROLE regress_engine_bob; SELECT 1');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000014', 'RESET ROLE; SELECT 1');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000015', 'SET SESSION AUTHORIZATION regress_engine_bob');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000016', 'CREATE TEMP TABLE step_temp (x int)');
SELECT engine_run('e5000002', 'e5000002::1', 'b5000017', 'SELECT pg_advisory_lock(4242) AS locked');
SELECT count(*) AS temp_left FROM pg_class WHERE relname = 'step_temp';
SELECT count(*) AS advisory_left FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
RESET ROLE;
REVOKE regress_engine_bob FROM regress_engine_alice;
RESET TimeZone;

-- The submitter's role settings apply to its steps, and only there.
ALTER ROLE regress_engine_alice SET work_mem = '3MB';
ALTER ROLE regress_engine_alice IN DATABASE contrib_regression SET TimeZone = 'Asia/Tokyo';
SELECT engine_run('e5000002', 'e5000002::1', 'b5000018',
    'SELECT current_setting(''work_mem'') AS work_mem, current_setting(''TimeZone'') AS tz');
SELECT current_setting('work_mem') AS work_mem_after, current_setting('TimeZone') = 'Asia/Tokyo' AS tz_leaked;
ALTER ROLE regress_engine_alice RESET ALL;
ALTER ROLE regress_engine_alice IN DATABASE contrib_regression RESET ALL;

-- What a login would refuse, the step refuses: no LOGIN, no CONNECT.
ALTER ROLE regress_engine_alice NOLOGIN;
SELECT engine_run('e5000002', 'e5000002::1', 'b5000019', 'SELECT 1');
ALTER ROLE regress_engine_alice LOGIN;

-- What was recorded: activations, and their mirror on df.nodes (only b5000000
-- exists as a node of e5000002).
SELECT stamp, node_id, execution, status, left(result, 50) AS result, error, executed_query IS NOT NULL AS has_query, attempts,
       started_at IS NOT NULL AS started, completed_at >= started_at AS completed_after_start
  FROM df._activations WHERE instance_id = 'e5000002' ORDER BY node_id;
SELECT id, status, error, attempts, status_details, completed_at IS NOT NULL AS completed,
       executed_query LIKE 'SELECT 1 AS a, 2 AS a,%' AS executed_query_recorded
  FROM df.nodes WHERE instance_id = 'e5000002';
-- The first step moved the instance from pending to running.
SELECT status, completed_at FROM df.instances WHERE id = 'e5000002';

-- Exactly once: a second call for a finished activation returns the recorded
-- outcome and runs nothing (the side-effect table proves it).
SET ROLE regress_engine_alice;
SELECT engine_run('e5000002', 'e5000002::1', 'b5000001', 'INSERT INTO engine_effects VALUES (''again'')', NULL, 2);
SELECT engine_run('e5000002', 'e5000002::1', 'b500000b', 'INSERT INTO engine_effects VALUES (''again'')', NULL, 2);
SELECT count(*) AS ran_again FROM engine_effects WHERE v = 'again';
-- The same node in another scope generation is another activation.
SELECT engine_run('e5000002', 'e5000002::2', 'b5000001', 'SELECT 2 AS gen');
RESET ROLE;

-- finish: the last step completes the instance and the listed ancestors.
INSERT INTO df._signals (instance_id, signal_name, payload) VALUES ('e5000001', 'unused', '{}');
SET ROLE regress_engine_alice;
SELECT engine_run('e5000001', 'e5000001::1', 'a5000001', 'INSERT INTO engine_effects VALUES (''left'')');
SELECT df.status('e5000001') AS after_first_step;
SELECT engine_run('e5000001', 'e5000001::1', 'a5000002', 'SELECT v FROM engine_effects WHERE v = ''left''',
                  '{"instance":"completed","root_node_ids":["a5000000"]}');
SELECT df.status('e5000001'), df.result('e5000001');
SELECT id, node_type, status, result, status_details FROM df.nodes WHERE instance_id = 'e5000001' ORDER BY id;
SELECT completed_at IS NOT NULL AS has_completed_at, error FROM df.instances WHERE id = 'e5000001';
RESET ROLE;
SELECT count(*) AS signals_dropped FROM df._signals WHERE instance_id = 'e5000001';

-- A finished instance runs no further step, and records nothing.
SET ROLE regress_engine_alice;
SELECT engine_run('e5000001', 'e5000001::1', 'a5000003', 'INSERT INTO engine_effects VALUES (''late'')');
SELECT count(*) AS late_ran FROM engine_effects WHERE v = 'late';
-- An activation it recorded is still reported as such (not "not running").
SELECT engine_run('e5000001', 'e5000001::1', 'a5000002', 'INSERT INTO engine_effects VALUES (''late'')');
SELECT count(*) AS late_ran FROM engine_effects WHERE v = 'late';
-- An instance that does not exist: nothing runs, nothing is recorded.
SELECT engine_run('e50000ff', 'e50000ff::1', 'a5000001', 'INSERT INTO engine_effects VALUES (''late'')');
SELECT count(*) AS late_ran FROM engine_effects WHERE v = 'late';
RESET ROLE;
SELECT count(*) AS late_recorded FROM df._activations WHERE node_id = 'a5000003' OR instance_id = 'e50000ff';
-- An activation row already there and not ended (written by the daemon, say)
-- is claimed, not duplicated: the step runs once and records over it.
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, attempts)
    VALUES ('e5000002', 'e5000002::4', 'b5000014', 1, 'running', 1);
SET ROLE regress_engine_alice;
SELECT engine_run('e5000002', 'e5000002::4', 'b5000014', 'INSERT INTO engine_effects VALUES (''claimed'') RETURNING v');
SELECT engine_run('e5000002', 'e5000002::4', 'b5000014', 'INSERT INTO engine_effects VALUES (''claimed'') RETURNING v');
SELECT count(*) AS claimed_ran_once FROM engine_effects WHERE v = 'claimed';
RESET ROLE;
SELECT status, attempts, result FROM df._activations WHERE instance_id = 'e5000002' AND stamp = 'e5000002::4';

-- Cancellation while a step runs: df.cancel commits elsewhere (dblink stands
-- in for another session), then the step either finishes — its effects roll
-- back — or is interrupted (57014); both are recorded cancelled.
CREATE EXTENSION dblink;
INSERT INTO df.instances (id, root_node, submitted_by, database) VALUES
    ('e5000003', 'c5000001', current_user::regrole, current_database());
SELECT engine_run('e5000003', 'e5000003::1', 'c5000001',
    'INSERT INTO engine_effects VALUES (''raced''); '
    'SELECT dblink_exec(''dbname='' || current_database(), '
    '$$SELECT df.cancel(''e5000003'', ''stopped elsewhere'')$$)');
SELECT count(*) AS raced_rolled_back FROM engine_effects WHERE v = 'raced';
UPDATE df.instances SET status = 'running', error = NULL WHERE id = 'e5000003';
SELECT engine_run('e5000003', 'e5000003::1', 'c5000002',
    'SELECT dblink_exec(''dbname='' || current_database(), '
    '$$SELECT df.cancel(''e5000003'', ''interrupted'')$$); '
    'SELECT pg_cancel_backend(pg_backend_pid()); SELECT pg_sleep(10)');
SELECT node_id, status, error FROM df._activations WHERE instance_id = 'e5000003' ORDER BY node_id;
-- A step that cancels its own instance keeps its effects, cancellation included.
UPDATE df.instances SET status = 'running', error = NULL WHERE id = 'e5000003';
SELECT engine_run('e5000003', 'e5000003::1', 'c5000003',
    'INSERT INTO engine_effects VALUES (''self''); SELECT df.cancel(''e5000003'', ''by itself'') AS c',
    '{"instance":"completed"}');
SELECT status, error FROM df.instances WHERE id = 'e5000003';
SELECT count(*) AS self_kept FROM engine_effects WHERE v = 'self';
DROP EXTENSION dblink;

-- The bookkeeping ignores the caller's search_path (it runs as the table
-- owner): an operator planted before pg_catalog is never called by it.
GRANT CREATE ON DATABASE contrib_regression TO regress_engine_alice;
SET ROLE regress_engine_alice;
CREATE SCHEMA engine_trap;
CREATE FUNCTION engine_trap.texteq(text, text) RETURNS boolean LANGUAGE plpgsql
    AS $$BEGIN RAISE EXCEPTION 'trap operator called as %', current_user; END$$;
CREATE OPERATOR engine_trap.= (LEFTARG = text, RIGHTARG = text, PROCEDURE = engine_trap.texteq);
SET search_path = engine_trap, pg_catalog, public;
SELECT engine_run('e5000002', 'e5000002::3', 'b5000013', 'SELECT 1 AS one');
RESET search_path;
DROP SCHEMA engine_trap CASCADE;
RESET ROLE;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_engine_alice;

-- Clean up.
DELETE FROM df.instances WHERE id IN ('e5000001', 'e5000002', 'e5000003');
DELETE FROM df._daemon_secret;
DROP FUNCTION engine_run(text, text, text, text, jsonb, int);
DROP TABLE engine_effects, engine_private, engine_child, engine_parent;
DROP TYPE engine_pair;
DROP SCHEMA engine_ws CASCADE;
SELECT df.revoke_usage('regress_engine_alice');
SELECT df.revoke_usage('regress_engine_bob');
DROP ROLE regress_engine_alice;
DROP ROLE regress_engine_bob;
