-- pg_durable_target 1.0: installed in every database OTHER than
-- pg_durable.database where workflow steps run (df.start(..., database =>
-- '<this database>')). It holds one function, df._run_step, which the daemon
-- calls on its own connection to run a step as the role that started the
-- workflow (docs/ARCHITECTURE.md "Steps in another database"). The workflow
-- state stays in pg_durable.database; nothing is stored here.
\echo Use "CREATE EXTENSION pg_durable_target" to load this file. \quit

-- The library must have been preloaded (the same check as pg_durable's).
LOAD 'pg_durable';

DO $check$
BEGIN
    IF current_database() = current_setting('pg_durable.database') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('pg_durable_target is not needed in database "%s": it is pg_durable.database, where pg_durable itself runs steps', current_database()),
            HINT = 'Install pg_durable_target in the other databases that workflow steps run in.';
    END IF;
END
$check$;

-- Plain CREATE SCHEMA: an existing df schema makes CREATE EXTENSION fail.
CREATE SCHEMA df;
REVOKE ALL ON SCHEMA df FROM PUBLIC;
-- df._run_step is the schema's only object and refuses every caller but the
-- daemon's role, so USAGE for everyone spares a grant per daemon role.
GRANT USAGE ON SCHEMA df TO PUBLIC;

-- Runs one step as `submitter` (a security-restricted identity switch, as in
-- pg_durable's df._run_step) and returns its outcome JSON; records nothing.
-- The SET clause marks the step's SQL as running inside a workflow.
CREATE FUNCTION df._run_step(instance_id text, submitter oid, query text)
    RETURNS text
    LANGUAGE C VOLATILE STRICT
    SET df.in_workflow = 'true'
    AS 'MODULE_PATHNAME', 'df__run_target_step';
