-- df.start_once: one instance per (role, idempotency key) (SPEC §19.2).
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_once_alice LOGIN;
CREATE ROLE regress_once_bob LOGIN;
SELECT df.grant_usage('regress_once_alice');
SELECT df.grant_usage('regress_once_bob');

-- The signature and the column (NULL for df.start).
SELECT p.oid::regprocedure AS signature, p.provolatile, p.proisstrict, pg_get_function_arguments(p.oid) AS args
  FROM pg_proc p WHERE p.proname = 'start_once' AND p.pronamespace = 'df'::regnamespace;
SELECT attname, format_type(atttypid, atttypmod), attnotnull
  FROM pg_attribute WHERE attrelid = 'df.instances'::regclass AND attname = 'idempotency_key';

SET ROLE regress_once_alice;
-- Keys: empty, NULL, 201 characters (multibyte characters count as one), then 200.
SELECT df.start_once('', 'SELECT 1');
SELECT df.start_once(NULL, 'SELECT 1');
SELECT df.start_once(repeat('k', 201), 'SELECT 1');
SELECT df.start_once(repeat('é', 201), 'SELECT 1');
SELECT length(df.start_once(repeat('é', 200), 'SELECT 1')) AS id_length;
-- The rest is checked as by df.start: NULL graph, bad graph, missing database.
SELECT df.start_once('k-null', NULL);
SELECT df.start_once('k-bad', '{"node_type":"BOGUS"}');
SELECT df.start_once('k-db', 'SELECT 1', NULL, 'regress_no_such_db');
-- Nothing was started by the failures.
SELECT count(*) AS failed_keys FROM df.instances WHERE idempotency_key IN ('', 'k-null', 'k-bad', 'k-db');

-- The same key twice: the same id, one instance, one set of nodes.
SELECT df.start_once('order-42', 'SELECT 1' ~> 'SELECT 2', 'first') AS first_id \gset
SELECT df.start_once('order-42', 'SELECT 3', 'second') AS second_id \gset
SELECT :'first_id' = :'second_id' AS same_id;
SELECT count(*) AS instances, min(label) AS label, min(idempotency_key) AS key
  FROM df.instances WHERE idempotency_key = 'order-42';
SELECT count(*) AS nodes FROM df.nodes WHERE instance_id = :'first_id';
-- Keys are exact (case and spaces count).
SELECT df.start_once('Order-42', 'SELECT 1') <> :'first_id' AS other_key_other_id;
SELECT df.start_once('order-42 ', 'SELECT 1') <> :'first_id' AS trailing_space_other_id;
-- A plain df.start has no key.
SELECT df.start('SELECT 1') AS plain_id \gset
SELECT idempotency_key IS NULL AS plain_has_no_key FROM df.instances WHERE id = :'plain_id';
-- Named arguments.
SELECT df.start_once(idempotency_key => 'named', fut => 'SELECT 1', label => 'by-name') AS named_id \gset
SELECT label, idempotency_key FROM df.instances WHERE id = :'named_id';
RESET ROLE;

-- Another role with the same key gets its own instance.
SET ROLE regress_once_bob;
SELECT df.start_once('order-42', 'SELECT 1') AS bob_id \gset
SELECT df.start_once('order-42', 'SELECT 1') = :'bob_id' AS bob_same_again;
-- Bob sees only his own row.
SELECT count(*) AS bob_visible FROM df.instances WHERE idempotency_key = 'order-42';
RESET ROLE;
SELECT :'bob_id' <> :'first_id' AS roles_differ;
SELECT submitted_by, count(*) FROM df.instances WHERE idempotency_key = 'order-42' GROUP BY 1 ORDER BY 1;

-- A rolled-back start frees the key; a committed one in the same
-- transaction is found again.
SET ROLE regress_once_alice;
BEGIN;
SELECT df.start_once('tx-key', 'SELECT 1') AS rb_id \gset
SELECT df.start_once('tx-key', 'SELECT 1') = :'rb_id' AS same_in_transaction;
ROLLBACK;
SELECT count(*) AS after_rollback FROM df.instances WHERE idempotency_key = 'tx-key';
SELECT df.start_once('tx-key', 'SELECT 1') <> :'rb_id' AS new_after_rollback;
RESET ROLE;

-- Deleting the instance (what retention does) frees the key.
DELETE FROM df.instances WHERE idempotency_key = 'tx-key' AND submitted_by = 'regress_once_alice'::regrole;
SET ROLE regress_once_alice;
SELECT count(*) AS freed FROM df.instances WHERE idempotency_key = 'tx-key';
SELECT df.start_once('tx-key', 'SELECT 1') IS NOT NULL AS started_again;
-- Users cannot write the column themselves.
UPDATE df.instances SET idempotency_key = 'stolen' WHERE id = :'first_id';
RESET ROLE;

-- The table's own guard (for writers that bypass df.start_once).
\set VERBOSITY terse
INSERT INTO df.instances (id, root_node, submitted_by, database, idempotency_key)
VALUES ('0000ffff', '0000ffff', 'regress_once_alice', current_database(), '');
\set VERBOSITY default

-- Superusers are refused like df.start.
SELECT df.start_once('su', 'SELECT 1');

DELETE FROM df.instances;
SELECT df.revoke_usage('regress_once_alice');
SELECT df.revoke_usage('regress_once_bob');
DROP ROLE regress_once_alice;
DROP ROLE regress_once_bob;
