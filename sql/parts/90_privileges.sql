-- Functions that stay closed to PUBLIC (SPEC §5); df.grant_usage opens them.
-- Runs last so every function exists. df.http and df.metrics arrive with
-- their milestones; revoke what exists.
DO $revoke$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['df.http(text,text,text,jsonb,integer)', 'df.metrics()',
                              'df.grant_usage(text,boolean,boolean)', 'df.revoke_usage(text)'] LOOP
        IF to_regprocedure(fn) IS NOT NULL THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        END IF;
    END LOOP;
END
$revoke$;

-- The node-state writer is the engine's alone (the extension as table owner,
-- the daemon's role): a user could otherwise rewrite what monitoring shows.
REVOKE EXECUTE ON FUNCTION df._set_node_state(text, text, text, text, json, text, timestamptz, timestamptz, text,
                                              integer, integer) FROM PUBLIC;
-- The step counters' trigger function runs as the owner (SECURITY DEFINER):
-- as a trigger of a user's own table it would count into df._step_counters.
REVOKE EXECUTE ON FUNCTION df._count_step_outcome() FROM PUBLIC;

-- The daemon's own role (pg_durable.worker_role, DESIGN §2.4): when it names
-- an existing role that is not a superuser, it gets exactly what the daemon's
-- work needs and nothing else (docs/ARCHITECTURE.md "Privileges" says why
-- each one). The role itself (LOGIN, BYPASSRLS, pg_read_all_settings) is the
-- operator's one-time step before CREATE EXTENSION; a role created later gets
-- these same statements by hand (docs/OPERATIONS.md §3). EXECUTE on
-- df._run_step is PUBLIC already: the function itself admits only this role.
DO $worker$
DECLARE
    wrole text := current_setting('pg_durable.worker_role');
    r     text := pg_catalog.quote_ident(current_setting('pg_durable.worker_role'));
BEGIN
    IF wrole = '' OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = wrole AND NOT rolsuper) THEN
        RETURN;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA df TO %s', r);
    EXECUTE format('GRANT SELECT, UPDATE, DELETE ON df.instances TO %s', r);
    EXECUTE format('GRANT SELECT, UPDATE ON df.nodes TO %s', r);
    EXECUTE format('GRANT EXECUTE ON FUNCTION df._set_node_state(text, text, text, text, json, text, timestamptz, '
                   'timestamptz, text, integer, integer) TO %s', r);
    EXECUTE format('GRANT SELECT ON df._instance_vars TO %s', r);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON df._activations, df._worker_epoch TO %s', r);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON df._executions TO %s', r);
    EXECUTE format('GRANT SELECT, DELETE ON df._signals TO %s', r);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON df._daemon_secret TO %s', r);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON df._step_counters TO %s', r);  -- heartbeat: steps started
END
$worker$;
