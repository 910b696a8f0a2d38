-- df.start: checks, visibility at commit, the stored graph (SPEC §9, §4, §5).
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_alice LOGIN;
CREATE ROLE regress_bob LOGIN;
CREATE ROLE regress_nologin NOLOGIN;
SELECT df.grant_usage('regress_alice');
SELECT df.grant_usage('regress_bob');
SELECT df.grant_usage('regress_nologin');

-- Superusers are refused unless pg_durable.enable_superuser_instances is on.
SELECT df.start('SELECT 1');

-- The effective role needs LOGIN.
SET ROLE regress_nologin;
SELECT df.start('SELECT 1');
RESET ROLE;

SET ROLE regress_alice;
-- NULL graph, unknown node type, missing database.
SELECT df.start(NULL);
SELECT df.start('{"node_type":"BOGUS"}');
SELECT df.start('SELECT 1', NULL, 'regress_no_such_db');

-- A rolled-back start leaves nothing.
BEGIN;
SELECT df.start('SELECT 1', 'rolled-back') AS rb_id \gset
SELECT count(*) AS visible_inside FROM df.instances WHERE id = :'rb_id';
ROLLBACK;
SELECT count(*) AS after_rollback FROM df.instances WHERE id = :'rb_id';
SELECT count(*) AS nodes_after_rollback FROM df.nodes WHERE instance_id = :'rb_id';

-- A committed one leaves the instance and its frozen nodes.
SELECT df.setvar('table_name', 'playground.users');
SELECT df.start('SELECT 1' ~> 'SELECT 2', 'two-steps') AS id \gset
SELECT id ~ '^[0-9a-f]{8}$' AS id_format, label, status, submitted_by, database,
       execution_count, completed_at IS NULL AS not_completed, error, error_node
  FROM df.instances WHERE id = :'id';
SELECT df.status(:'id');
SELECT df.result(:'id') IS NULL AS no_result_yet;
SELECT n.node_type, n.query, n.status, n.submitted_by, n.database, n.attempts,
       n.id = i.root_node AS is_root,
       (n.left_node IS NOT NULL) AS has_left, (n.right_node IS NOT NULL) AS has_right
  FROM df.nodes n JOIN df.instances i ON i.id = n.instance_id
 WHERE n.instance_id = :'id'
 ORDER BY n.node_type, n.query;
-- Children reference nodes of the same instance.
SELECT count(*) AS dangling FROM df.nodes n
 WHERE n.instance_id = :'id'
   AND ((n.left_node IS NOT NULL AND NOT EXISTS
            (SELECT 1 FROM df.nodes c WHERE c.instance_id = n.instance_id AND c.id = n.left_node))
     OR (n.right_node IS NOT NULL AND NOT EXISTS
            (SELECT 1 FROM df.nodes c WHERE c.instance_id = n.instance_id AND c.id = n.right_node)));
RESET ROLE;

-- The caller's vars are frozen into the instance.
SELECT name, value FROM df._instance_vars WHERE instance_id = :'id';

-- df.start looks for the caller's vars (an index probe) before it copies
-- them: it sees what a new statement would, so vars set earlier in the same
-- statement or the same REPEATABLE READ transaction are frozen too, another
-- role's vars never are, and a role without vars gets none.
CREATE ROLE regress_novars LOGIN;
SELECT df.grant_usage('regress_novars');
BEGIN;
SET LOCAL ROLE regress_novars;
SELECT df.start('SELECT 1', 'no-vars') AS novars_id \gset
SELECT df.setvar('late', 'same-statement') AS set, df.start('SELECT 1', 'same-statement') AS same_stmt_id \gset
RESET ROLE;
SELECT count(*) AS novars_frozen FROM df._instance_vars WHERE instance_id = :'novars_id';
SELECT name, value FROM df._instance_vars WHERE instance_id = :'same_stmt_id';
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL ROLE regress_novars;
SELECT count(*) AS vars_before FROM df.vars;
SELECT df.setvar('rr', 'same-transaction');
SELECT df.start('SELECT 1', 'repeatable-read') AS rr_id \gset
RESET ROLE;
SELECT name, value FROM df._instance_vars WHERE instance_id = :'rr_id';
ROLLBACK;
SELECT df.revoke_usage('regress_novars');
DROP ROLE regress_novars;

-- A 200-step chain is 399 nodes.
SET ROLE regress_alice;
CREATE TEMP TABLE chain_graph AS
WITH RECURSIVE chain(i, g) AS (
    SELECT 1, 'INSERT INTO t VALUES (1)'::text
    UNION ALL
    SELECT i + 1, g ~> format('INSERT INTO t VALUES (%s)', i + 1) FROM chain WHERE i < 200)
SELECT g FROM chain WHERE i = 200;
SELECT df.start(g, 'chain') AS chain_id FROM chain_graph \gset
SELECT count(*) AS chain_nodes, count(*) FILTER (WHERE node_type = 'SQL') AS sql_nodes
  FROM df.nodes WHERE instance_id = :'chain_id';
DROP TABLE chain_graph;

-- Row security: bob sees none of alice's instances, nodes or status.
SET ROLE regress_bob;
SELECT count(*) AS bob_sees_instances FROM df.instances;
SELECT count(*) AS bob_sees_nodes FROM df.nodes;
SELECT df.status(:'id') IS NULL AS bob_status_null;
RESET ROLE;

-- The superuser sees everyone's.
SELECT count(*) >= 2 AS superuser_sees_all FROM df.instances;

-- CONNECT on the target database is required.
CREATE DATABASE regress_pgd_noconnect;
REVOKE CONNECT ON DATABASE regress_pgd_noconnect FROM PUBLIC;
SET ROLE regress_alice;
SELECT df.start('SELECT 1', NULL, 'regress_pgd_noconnect');
RESET ROLE;
GRANT CONNECT ON DATABASE regress_pgd_noconnect TO regress_alice;
SET ROLE regress_alice;
SELECT df.start('SELECT 1', NULL, 'regress_pgd_noconnect') AS other_id \gset
SELECT database FROM df.instances WHERE id = :'other_id';
RESET ROLE;
DROP DATABASE regress_pgd_noconnect;

-- SET ROLE and SECURITY DEFINER decide the submitter.
CREATE FUNCTION regress_start_as_owner() RETURNS text LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT df.start('SELECT 42') $$;
ALTER FUNCTION regress_start_as_owner() OWNER TO regress_alice;
SET ROLE regress_bob;
SELECT regress_start_as_owner() AS definer_id \gset
RESET ROLE;
SELECT submitted_by FROM df.instances WHERE id = :'definer_id';
DROP FUNCTION regress_start_as_owner();

-- The helper guard: a setvar result is not a workflow step.
SET ROLE regress_alice;
SELECT df.start(df.setvar('x', '1'));
RESET ROLE;

DELETE FROM df.instances;
DELETE FROM df.vars;
SELECT df.revoke_usage('regress_alice');
SELECT df.revoke_usage('regress_bob');
SELECT df.revoke_usage('regress_nologin');
DROP ROLE regress_alice;
DROP ROLE regress_bob;
DROP ROLE regress_nologin;
