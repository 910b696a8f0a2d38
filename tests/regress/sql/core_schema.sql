-- Schema, settings, privileges baseline and install checks (SPEC §2-§5).
CREATE EXTENSION IF NOT EXISTS pg_durable;

SELECT df.version() ~ '^1\.0\.0 \(built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$' AS version_format;
SELECT df.target_database();

-- Tables and their row security.
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'df' AND c.relkind = 'r'
 ORDER BY c.relname;
SELECT polrelid::regclass AS tbl, polname FROM pg_policy ORDER BY polname;

-- Nothing on df is granted to PUBLIC.
SELECT has_schema_privilege('public', 'df', 'USAGE') AS public_usage;
SELECT count(*) AS public_table_grants
  FROM information_schema.role_table_grants WHERE table_schema = 'df' AND grantee = 'PUBLIC';
SELECT p.oid::regprocedure AS closed_function
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'df' AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY p.proname;

-- Every df function is VOLATILE.
SELECT count(*) AS non_volatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'df' AND p.provolatile <> 'v';

-- Settings exist with their SPEC defaults (the regress config sets database
-- and launch_daemon).
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'pg_durable.%' ORDER BY name;
-- Unknown names under the reserved prefix are refused.
SET pg_durable.no_such_setting = 1;

CREATE ROLE regress_schema_user LOGIN;
SET ROLE regress_schema_user;
-- Without USAGE on df every function is out of reach.
SELECT df.version();
-- A superuser-only setting cannot be changed by others.
SET pg_durable.list_instances_max_limit = 5;
RESET ROLE;

SELECT df.grant_usage('regress_schema_user');
SET ROLE regress_schema_user;
SELECT df.version() IS NOT NULL AS reachable;
-- Users read df tables but never write them.
INSERT INTO df.instances (id, root_node, submitted_by, database)
    VALUES ('00000000', '00000000', 'regress_schema_user', 'x');
UPDATE df.vars SET value = 'x';
DELETE FROM df.nodes;
RESET ROLE;
SELECT df.revoke_usage('regress_schema_user');
DROP ROLE regress_schema_user;

-- CREATE EXTENSION only in pg_durable.database.
CREATE DATABASE regress_pgd_other;
\c regress_pgd_other
CREATE EXTENSION pg_durable;
-- There, pg_durable_target provides the step entry point (workflows with
-- database => 'regress_pgd_other'); it refuses every caller but the daemon's role.
CREATE EXTENSION pg_durable_target;
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid) AS args
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'df';
CREATE ROLE regress_target_user;
SET ROLE regress_target_user;
SELECT df._run_step('00000000', 'regress_target_user'::regrole::oid, 'SELECT 1');
RESET ROLE;
DROP ROLE regress_target_user;
\c contrib_regression
DROP DATABASE regress_pgd_other;
-- ... and is not needed in pg_durable.database.
CREATE EXTENSION pg_durable_target;

-- Plain CREATE SCHEMA: an existing df schema makes CREATE EXTENSION fail;
-- DROP EXTENSION removes every object, and CREATE works again at once.
DROP EXTENSION pg_durable;
SELECT count(*) AS leftovers FROM pg_namespace WHERE nspname = 'df';
CREATE SCHEMA df;
CREATE EXTENSION pg_durable;
DROP SCHEMA df;
CREATE EXTENSION pg_durable;
DROP EXTENSION pg_durable CASCADE;
CREATE EXTENSION pg_durable;
