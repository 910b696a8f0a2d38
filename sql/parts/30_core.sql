-- df.start, variables, status/result, version and the privilege helpers
-- (SPEC §5, §6, §9, §15.1).

CREATE FUNCTION df.version() RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_version';
CREATE FUNCTION df.target_database() RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_target_database';

-- transaction_mode (SPEC §19.1): 'caller' (NULL too) writes in the caller's
-- transaction; 'new' commits the start on its own (a background worker).
CREATE FUNCTION df.start(fut text, label text DEFAULT NULL, database text DEFAULT NULL,
                         transaction_mode text DEFAULT 'caller') RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_start';

-- df.start once per (current_user, idempotency_key) (SPEC §19.2).
CREATE FUNCTION df.start_once(idempotency_key text, fut text, label text DEFAULT NULL, database text DEFAULT NULL)
    RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_start_once';

CREATE FUNCTION df.setvar(name text, value text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_setvar';
CREATE FUNCTION df.getvar(name text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_getvar';
CREATE FUNCTION df.unsetvar(name text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_unsetvar';
CREATE FUNCTION df.clearvars() RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_clearvars';

-- Reads run with the caller's privileges, so row security shows each role
-- only its own instances (superusers all); unknown and invisible ids alike
-- give NULL.
CREATE FUNCTION df.status(instance_id text) RETURNS text
    LANGUAGE sql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT i.status FROM df.instances i WHERE i.id = instance_id $$;

CREATE FUNCTION df.result(instance_id text) RETURNS text
    LANGUAGE sql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE i.status
             WHEN 'completed' THEN (SELECT n.result::text FROM df.nodes n
                                    WHERE n.instance_id = i.id AND n.id = i.root_node)
             WHEN 'failed' THEN jsonb_build_object(
                 'error', i.error,
                 'node_id', i.error_node,
                 'node_type', (SELECT n.node_type FROM df.nodes n
                               WHERE n.instance_id = i.id AND n.id = i.error_node))::text
           END
      FROM df.instances i
     WHERE i.id = instance_id
    $$;

-- Only the exact string 'public' means PUBLIC (SPEC §5): role names are
-- case-sensitive, and a role may really be called "Public".
CREATE FUNCTION df.grant_usage(p_role text, include_http boolean DEFAULT false,
                               with_grant boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    grantee text := CASE WHEN p_role = 'public' THEN 'PUBLIC' ELSE quote_ident(p_role) END;
    option  text := CASE WHEN with_grant THEN ' WITH GRANT OPTION' ELSE '' END;
BEGIN
    IF p_role IS NULL THEN
        RAISE EXCEPTION 'p_role cannot be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA df TO %s%s', grantee, option);
    EXECUTE format('GRANT SELECT ON df.instances, df.nodes, df.vars, df._worker_epoch TO %s%s', grantee, option);
    IF include_http THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.http(text, text, text, jsonb, integer) TO %s%s', grantee, option);
    END IF;
    IF with_grant THEN
        IF to_regprocedure('df.metrics()') IS NOT NULL THEN  -- arrives with monitoring
            EXECUTE format('GRANT EXECUTE ON FUNCTION df.metrics() TO %s%s', grantee, option);
        END IF;
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.grant_usage(text, boolean, boolean) TO %s%s', grantee, option);
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.revoke_usage(text) TO %s%s', grantee, option);
    END IF;
    RAISE NOTICE 'pg_durable: granted df usage privileges to "%"', p_role;
END
$$;

CREATE FUNCTION df.revoke_usage(p_role text) RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    grantee text := CASE WHEN p_role = 'public' THEN 'PUBLIC' ELSE quote_ident(p_role) END;
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['df.http(text, text, text, jsonb, integer)', 'df.metrics()',
                              'df.grant_usage(text, boolean, boolean)', 'df.revoke_usage(text)'] LOOP
        CONTINUE WHEN to_regprocedure(fn) IS NULL;
        BEGIN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s CASCADE', fn, grantee);
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;  -- not ours to revoke: normal grantor rules
        END;
    END LOOP;
    EXECUTE format('REVOKE SELECT ON df.instances, df.nodes, df.vars, df._worker_epoch FROM %s CASCADE', grantee);
    EXECUTE format('REVOKE USAGE ON SCHEMA df FROM %s CASCADE', grantee);
    RAISE NOTICE 'pg_durable: revoked df usage privileges granted by "%" from "%"', current_user, p_role;
END
$$;
