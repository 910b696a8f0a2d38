-- df.start's transaction_mode (SPEC §19.1).
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_tm_alice LOGIN;
SELECT df.grant_usage('regress_tm_alice');

-- The signature (the 3-argument df.start is gone) and the two settings.
SELECT p.oid::regprocedure AS signature, p.provolatile, p.proisstrict, pg_get_function_arguments(p.oid) AS args
  FROM pg_proc p WHERE p.proname = 'start' AND p.pronamespace = 'df'::regnamespace;
SELECT name, setting, unit, min_val, max_val, context, boot_val FROM pg_settings
  WHERE name IN ('pg_durable.max_new_transaction_starts', 'pg_durable.new_transaction_start_timeout')
  ORDER BY name;

SET ROLE regress_tm_alice;
-- Invalid modes (checked before anything else), including the empty string.
SELECT df.start('SELECT 1', NULL, NULL, 'autonomous');
SELECT df.start('SELECT 1', transaction_mode => '');
SELECT df.start('SELECT 1', transaction_mode => 'new ');
SELECT df.start(NULL, transaction_mode => 'bogus');
-- df.start's own checks stay, with 'new' too.
SELECT df.start(NULL, transaction_mode => 'new');
SELECT df.start('{"node_type":"BOGUS"}', transaction_mode => 'new');
SELECT df.start('SELECT 1', NULL, 'regress_no_such_db', 'new');
SELECT count(*) AS started_by_failures FROM df.instances WHERE submitted_by = 'regress_tm_alice'::regrole;

-- 'caller', NULL and case variants of 'caller' roll back with the caller.
BEGIN;
SELECT df.start('SELECT 1', 'tm-caller') IS NOT NULL AS started;
SELECT df.start('SELECT 1', 'tm-null', NULL, NULL) IS NOT NULL AS started;
SELECT df.start('SELECT 1', 'tm-CALLER', transaction_mode => 'CALLER') IS NOT NULL AS started;
ROLLBACK;
SELECT count(*) AS caller_starts_after_rollback FROM df.instances WHERE label LIKE 'tm-%';

-- 'new' (any case, named or positional) survives the caller's ROLLBACK.
BEGIN;
SELECT df.start('SELECT 1' ~> 'SELECT 2', 'tm-new', transaction_mode => 'new') AS new_id \gset
SELECT df.start('SELECT 1', 'tm-NEW', NULL, 'NEW') IS NOT NULL AS started;
SELECT df.start('SELECT 1', 'tm-New', transaction_mode => 'New') IS NOT NULL AS started;
ROLLBACK;
SELECT label, status, submitted_by FROM df.instances WHERE label LIKE 'tm-%' ORDER BY label COLLATE "C";
SELECT count(*) AS nodes FROM df.nodes WHERE instance_id = :'new_id';

-- Hostile sizes go through the worker's handover whole: a 1 MB step and label.
SELECT df.start('SELECT ''' || repeat('x', 1000000) || ''' AS big', repeat('L', 100000), transaction_mode => 'new')
  AS big_id \gset
SELECT length(n.query) AS query_length, length(i.label) AS label_length
  FROM df.instances i JOIN df.nodes n ON n.instance_id = i.id WHERE i.id = :'big_id';

-- The vars snapshot is the caller's committed vars: an uncommitted setvar is not in it.
SELECT df.setvar('tm_committed', 'yes');
BEGIN;
SELECT df.setvar('tm_uncommitted', 'no');
SELECT df.setvar('tm_committed', 'changed');
SELECT df.start('SELECT 1', 'tm-vars', transaction_mode => 'new') AS vars_id \gset
ROLLBACK;
RESET ROLE;
SELECT name, value FROM df._instance_vars WHERE instance_id = :'vars_id' ORDER BY name;

-- Inside a workflow step (df.in_workflow, as df._run_step sets it).
SET ROLE regress_tm_alice;
SET df.in_workflow = 'true';
SELECT df.start('SELECT 1', transaction_mode => 'new');
SELECT df.start('SELECT 1', transaction_mode => 'caller') IS NOT NULL AS caller_allowed;
RESET df.in_workflow;
RESET ROLE;

-- A role without LOGIN: the same error as 'caller', nothing started.
CREATE ROLE regress_tm_nologin;
SELECT df.grant_usage('regress_tm_nologin');
SET ROLE regress_tm_nologin;
SELECT df.start('SELECT 1', transaction_mode => 'new');
RESET ROLE;

SELECT df.revoke_usage('regress_tm_alice');
SELECT df.revoke_usage('regress_tm_nologin');
DELETE FROM df.instances WHERE submitted_by = 'regress_tm_alice'::regrole;
DROP ROLE regress_tm_alice;
DROP ROLE regress_tm_nologin;
