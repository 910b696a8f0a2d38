-- df.signal, df.cancel, df.await_instance (SPEC §13, §15.1, §6). Instances
-- use fixed ids so the output is stable.
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_signal_alice LOGIN;
CREATE ROLE regress_signal_bob LOGIN;
SELECT df.grant_usage('regress_signal_alice');
SELECT df.grant_usage('regress_signal_bob');

INSERT INTO df.instances (id, root_node, status, submitted_by, database, error) VALUES
    ('e6000001', 'a6000001', 'pending',   'regress_signal_alice', current_database(), NULL),
    ('e6000002', 'a6000002', 'running',   'regress_signal_alice', current_database(), NULL),
    ('e6000003', 'a6000003', 'completed', 'regress_signal_alice', current_database(), NULL),
    ('e6000004', 'a6000004', 'failed',    'regress_signal_alice', current_database(), 'boom'),
    ('e6000005', 'a6000005', 'cancelled', 'regress_signal_alice', current_database(), 'earlier'),
    ('e6000006', 'a6000006', 'running',   'regress_signal_bob',   current_database(), NULL);
INSERT INTO df.nodes (id, instance_id, node_type, query, status, submitted_by, database) VALUES
    ('a6000002', 'e6000002', 'SIGNAL', '{"signal_name":"go","timeout_seconds":null}', 'running',
     'regress_signal_alice', current_database()),
    ('b6000002', 'e6000002', 'SLEEP', '60', 'running', 'regress_signal_alice', current_database()),
    ('c6000002', 'e6000002', 'SQL', 'SELECT 1', 'completed', 'regress_signal_alice', current_database());
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, wake_at) VALUES
    ('e6000002', 'e6000002::1', 'a6000002', 1, 'running', NULL),
    ('e6000002', 'e6000002::1', 'b6000002', 1, 'running', now() + interval '1 minute');
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, result) VALUES
    ('e6000002', 'e6000002::1', 'c6000002', 1, 'completed', '{"rows":[{"?column?":1}],"row_count":1}');

-- A second session LISTENs like the daemon (dblink stands in for it).
CREATE EXTENSION dblink;
SELECT dblink_connect('daemon', 'dbname=' || current_database());
SELECT dblink_exec('daemon', 'LISTEN df_wakeup');

---------------------------------------------------------------------------
-- df.signal
SET ROLE regress_signal_alice;
SELECT df.signal('', 'go');
SELECT df.signal('   ', 'go');
SELECT df.signal('e6000001', '');
SELECT df.signal('e6000001', ' ');
SELECT df.signal('ffffffff', 'go');
SELECT df.signal('e6000006', 'go');          -- bob's
SELECT df.signal('e6000003', 'go');
SELECT df.signal('e6000004', 'go');
SELECT df.signal('e6000005', 'go');
SELECT df.signal(NULL, 'go') IS NULL AS strict;
-- Pending and running instances take signals; valid JSON is kept as is,
-- other text becomes a JSON string, the default payload is {}.
SELECT df.signal('e6000001', 'go', 'approve');
SELECT df.signal('e6000001', 'go', '{"amount": 10, "ok": true}');
SELECT df.signal('e6000001', 'go', '42');
SELECT df.signal('e6000001', 'go', 'say "hi"');
SELECT df.signal('e6000001', 'go', '');
SELECT df.signal('e6000001', 'other');
SELECT df.signal('e6000002', 'go', 'null');
-- Delivered only if the sender commits.
BEGIN;
SELECT df.signal('e6000001', 'go', 'rolled back');
ROLLBACK;
RESET ROLE;
SELECT instance_id, signal_name, payload, payload::jsonb IS NOT NULL AS valid_json
  FROM df._signals ORDER BY seq;
-- One wake-up per committed transaction that signalled.
SELECT dblink_exec('daemon', 'SET application_name = ''daemon''');
SELECT notify_name, extra FROM dblink_get_notify('daemon') ORDER BY extra;

-- Superusers see every instance.
SELECT df.signal('e6000006', 'go');

-- Visibility is the caller's row security: an instance written in another
-- session's open transaction is invisible until it commits.
SELECT dblink_connect('other', 'dbname=' || current_database());
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', $$INSERT INTO df.instances (id, root_node, submitted_by, database)
                             VALUES ('e6000007', 'a6000007', 'regress_signal_alice', current_database())$$);
SET ROLE regress_signal_alice;
SELECT df.signal('e6000007', 'go');
SELECT df.cancel('e6000007');
SELECT df.await_instance('e6000007', 1);
RESET ROLE;
SELECT dblink_exec('other', 'ROLLBACK');
SELECT dblink_disconnect('other');

---------------------------------------------------------------------------
-- df.cancel
SET ROLE regress_signal_bob;
SELECT df.cancel('e6000002');                -- alice's
SELECT df.cancel('ffffffff');
SET ROLE regress_signal_alice;
SELECT df.cancel(NULL) IS NULL AS strict;
-- Terminal instances are left unchanged; the same text comes back.
SELECT df.cancel('e6000003', 'too late');
SELECT df.cancel('e6000004');
SELECT df.cancel('e6000005', 'again');
-- A running instance: cancelled at once with the reason; its waiting
-- activations and their nodes become cancelled; finished ones stay; its
-- queued signals go.
SELECT df.cancel('e6000002', 'no longer needed');
-- A pending one, with the default reason.
SELECT df.cancel('e6000001');
RESET ROLE;
SELECT id, status, error, completed_at IS NULL AS no_completed_at FROM df.instances
 WHERE id LIKE 'e6%' ORDER BY id;
SELECT node_id, status, error, completed_at IS NOT NULL AS ended FROM df._activations
 WHERE instance_id = 'e6000002' ORDER BY node_id;
SELECT id, status, error FROM df.nodes WHERE instance_id = 'e6000002' ORDER BY id;
SELECT instance_id, count(*) AS signals_left FROM df._signals GROUP BY instance_id ORDER BY instance_id;
SELECT dblink_exec('daemon', 'SET application_name = ''daemon''');
SELECT notify_name, extra FROM dblink_get_notify('daemon') ORDER BY extra;
SELECT dblink_disconnect('daemon');
DROP EXTENSION dblink;

-- Signals to a cancelled instance are refused now.
SET ROLE regress_signal_alice;
SELECT df.signal('e6000002', 'go');

---------------------------------------------------------------------------
-- df.await_instance
SELECT df.await_instance('e6000003');
SELECT df.await_instance('e6000004', 5);
SELECT df.await_instance('e6000002', 1);
SELECT df.await_instance('e6000006');        -- bob's
SELECT df.await_instance('ffffffff');
SELECT df.await_instance('e6000003', 0);
SELECT df.await_instance('e6000003', -1);
SELECT df.await_instance(NULL) IS NULL AS strict;
SET ROLE regress_signal_bob;
SELECT df.await_instance('e6000006', 1);
-- Its status is not a workflow step.
SET ROLE regress_signal_alice;
SELECT df.start(df.await_instance('e6000003'));

---------------------------------------------------------------------------
-- Inside a workflow step (df.in_workflow = 'true') signal and cancel work,
-- await_instance is refused.
RESET ROLE;
UPDATE df.instances SET status = 'running', error = NULL WHERE id = 'e6000001';
SET ROLE regress_signal_alice;
SET df.in_workflow = 'true';
SELECT df.signal('e6000001', 'from a step', '{"n": 1}');
SELECT df.await_instance('e6000003');
SELECT df.cancel('e6000001', 'from a step');
RESET df.in_workflow;
SELECT df.status('e6000001');

-- The functions ignore the caller's search_path for their own statements:
-- an operator planted before pg_catalog is never called.
RESET ROLE;
GRANT CREATE ON DATABASE contrib_regression TO regress_signal_alice;
UPDATE df.instances SET status = 'running', error = NULL WHERE id = 'e6000001';
SET ROLE regress_signal_alice;
CREATE SCHEMA signal_trap;
CREATE FUNCTION signal_trap.texteq(text, text) RETURNS boolean LANGUAGE plpgsql
    AS $$BEGIN RAISE EXCEPTION 'trap operator called as %', current_user; END$$;
CREATE OPERATOR signal_trap.= (LEFTARG = text, RIGHTARG = text, PROCEDURE = signal_trap.texteq);
SET search_path = signal_trap, pg_catalog, public;
SELECT df.signal('e6000001', 'trap');
SELECT df.await_instance('e6000003');
SELECT df.cancel('e6000001', 'trap');
RESET search_path;
DROP SCHEMA signal_trap CASCADE;
RESET ROLE;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_signal_alice;

-- Clean up.
DELETE FROM df.instances WHERE id LIKE 'e6%';
SELECT df.revoke_usage('regress_signal_alice');
SELECT df.revoke_usage('regress_signal_bob');
DROP ROLE regress_signal_alice;
DROP ROLE regress_signal_bob;
