-- Workflow variables: per-role isolation, guards (SPEC §6, §8).
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_vars_a LOGIN;
CREATE ROLE regress_vars_b LOGIN;
SELECT df.grant_usage('regress_vars_a');
SELECT df.grant_usage('regress_vars_b');

SET ROLE regress_vars_a;
SELECT df.setvar('tenant', 'acme');
SELECT df.setvar('limit_rows', '10');
SELECT df.setvar('tenant', 'acme-2');   -- replaces
SELECT df.getvar('tenant');
SELECT df.getvar('missing') IS NULL AS missing_is_null;
SELECT df.setvar('', 'x');
SELECT name, value, owner FROM df.vars ORDER BY name;

SET ROLE regress_vars_b;
SELECT df.getvar('tenant') IS NULL AS b_cannot_read_a;
SELECT df.setvar('tenant', 'globex');
SELECT name, value, owner FROM df.vars ORDER BY name;
SELECT df.clearvars();
SELECT count(*) AS b_vars_after_clear FROM df.vars;

SET ROLE regress_vars_a;
SELECT df.getvar('tenant') AS a_unchanged;
SELECT df.unsetvar('limit_rows');
SELECT df.unsetvar('never_set');
SELECT name FROM df.vars ORDER BY name;

-- Variable helpers are refused inside a workflow step.
SET df.in_workflow = 'true';
SELECT df.setvar('x', '1');
SELECT df.unsetvar('x');
SELECT df.clearvars();
SELECT df.getvar('tenant') AS getvar_allowed;
RESET df.in_workflow;

-- Their results are not workflow steps.
SELECT df.start(df.setvar('x', '1'));
SELECT df.start(df.unsetvar('x'));
SELECT df.start(df.clearvars());
-- ... but the text 'OK' from elsewhere is an ordinary SQL step text.
SELECT df.start('OK') ~ '^[0-9a-f]{8}$' AS ok_text_is_sql;

RESET ROLE;

-- df functions resolve their own SQL in pg_catalog: an operator a user puts
-- ahead of pg_catalog never runs with the table owner's rights.
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.spy_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE NOTICE 'spy called as %', current_user; RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.spy_eq);
GRANT USAGE ON SCHEMA regress_evil TO PUBLIC;
SET ROLE regress_vars_a;
SET search_path = regress_evil, pg_catalog;
SELECT 'x'::text = 'x'::text AS spy_is_active;
SELECT df.getvar('tenant') AS no_spy;
SELECT df.setvar('tenant', 'acme-3') AS no_spy;
SELECT df.start('SELECT 1') ~ '^[0-9a-f]{8}$' AS no_spy;
RESET search_path;
RESET ROLE;
DROP SCHEMA regress_evil CASCADE;

DELETE FROM df.instances;
DELETE FROM df.vars;
SELECT df.revoke_usage('regress_vars_a');
SELECT df.revoke_usage('regress_vars_b');
DROP ROLE regress_vars_a;
DROP ROLE regress_vars_b;
