-- pg_durable 1.0 install script, assembled from sql/parts/ at build time.
\echo Use "CREATE EXTENSION pg_durable" to load this file. \quit

-- ---- sql/parts/10_schema.sql ----
-- Schema, tables, row security and the least-privilege baseline (SPEC §2, §4, §5).

-- The library must have been preloaded: loading it here runs _PG_init, which
-- refuses (with the SPEC message) when it was not in shared_preload_libraries.
LOAD 'pg_durable';

-- The extension serves one database: the one the daemon attaches to.
DO $check$
DECLARE
    target text := current_setting('pg_durable.database');
    wrole  text := current_setting('pg_durable.worker_role');
    rsuper boolean;
    rbypass boolean;
BEGIN
    IF current_database() <> target THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('pg_durable extension must be created in database "%s" (currently in "%s"). The background worker only processes functions in the database specified by the pg_durable.database GUC (defaults to "postgres").', target, current_database()),
            HINT = 'Connect to the correct database and run: CREATE EXTENSION pg_durable;';
    END IF;
    IF wrole <> '' THEN
        SELECT rolsuper, rolbypassrls INTO rsuper, rbypass FROM pg_catalog.pg_roles WHERE rolname = wrole;
        IF NOT FOUND THEN
            RAISE WARNING 'pg_durable: worker role "%" does not exist. The background worker will not be able to process workflows. Create the role as a superuser before using pg_durable.', wrole;
        ELSIF NOT (rsuper OR rbypass) THEN
            RAISE WARNING 'pg_durable: worker role "%" is not a superuser. The background worker must be a superuser to bypass RLS and manage all users'' instances. Grant superuser or BYPASSRLS to this role.', wrole;
        END IF;
    END IF;
END
$check$;

-- Plain CREATE SCHEMA: an existing df schema makes CREATE EXTENSION fail.
CREATE SCHEMA df;
REVOKE ALL ON SCHEMA df FROM PUBLIC;

CREATE TABLE df.instances (
    id              varchar(8) PRIMARY KEY,
    label           text,
    root_node       varchar(8) NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    submitted_by    regrole NOT NULL,
    database        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    execution_count bigint NOT NULL DEFAULT 1,
    error           text,
    error_node      varchar(8),
    CONSTRAINT instances_id_format CHECK (id ~ '^[0-9a-f]{8}$'),
    CONSTRAINT instances_status_valid
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled'))
);
-- The daemon scans unfinished instances on attach and after a lost LISTEN.
CREATE INDEX instances_active_idx ON df.instances (created_at)
    WHERE status IN ('pending', 'running');
-- list_instances orders by (created_at DESC, id); retention by age of terminal rows.
CREATE INDEX instances_created_idx ON df.instances (created_at DESC, id);
CREATE INDEX instances_submitted_by_idx ON df.instances (submitted_by);

CREATE TABLE df.nodes (
    id             varchar(8) NOT NULL,
    instance_id    varchar(8) NOT NULL REFERENCES df.instances (id) ON DELETE CASCADE,
    node_type      text NOT NULL,
    query          text,
    result_name    text,
    left_node      varchar(8),
    right_node     varchar(8),
    status         text NOT NULL DEFAULT 'pending',
    result         json,
    error          text,
    submitted_by   regrole NOT NULL,
    database       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    status_details jsonb,
    executed_query text,
    attempts       int NOT NULL DEFAULT 0,
    started_at     timestamptz,
    completed_at   timestamptz,
    PRIMARY KEY (instance_id, id),
    CONSTRAINT nodes_id_format CHECK (id ~ '^[0-9a-f]{8}$'),
    CONSTRAINT nodes_status_valid
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT nodes_type_valid CHECK (node_type IN
        ('SQL', 'THEN', 'IF', 'JOIN', 'LOOP', 'BREAK', 'RACE', 'SLEEP', 'WAIT_SCHEDULE', 'HTTP', 'SIGNAL')),
    CONSTRAINT nodes_result_name_valid CHECK (result_name ~ '^[A-Za-z_][A-Za-z0-9_]*$')
);

CREATE TABLE df.vars (
    name  text NOT NULL,
    value text,
    owner regrole NOT NULL DEFAULT pg_catalog.quote_ident(current_user)::regrole,
    PRIMARY KEY (owner, name)
);

CREATE TABLE df._worker_epoch (
    epoch_id       uuid PRIMARY KEY,
    started_at     timestamptz DEFAULT now(),
    last_seen_at   timestamptz DEFAULT now(),
    http_in_flight bigint NOT NULL DEFAULT 0  -- written with each heartbeat (df_monitor.operator_metrics)
);

-- Internal: the caller's df.vars frozen at df.start ({name} substitution reads
-- only this snapshot, so later setvar calls never change a running instance).
CREATE TABLE df._instance_vars (
    instance_id varchar(8) NOT NULL REFERENCES df.instances (id) ON DELETE CASCADE,
    name        text NOT NULL,
    value       text,
    PRIMARY KEY (instance_id, name)
);

-- Least privilege: nothing is granted to PUBLIC; df.grant_usage hands out
-- USAGE and SELECT; every write goes through df functions.
REVOKE ALL ON ALL TABLES IN SCHEMA df FROM PUBLIC;

ALTER TABLE df.instances ENABLE ROW LEVEL SECURITY;
ALTER TABLE df.nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE df.vars ENABLE ROW LEVEL SECURITY;

CREATE POLICY instances_user_isolation ON df.instances
    USING (submitted_by = (SELECT pg_catalog.quote_ident(current_user)::regrole));
CREATE POLICY nodes_user_isolation ON df.nodes
    USING (submitted_by = (SELECT pg_catalog.quote_ident(current_user)::regrole));
CREATE POLICY vars_user_isolation ON df.vars
    USING (owner = (SELECT pg_catalog.quote_ident(current_user)::regrole));

-- ---- sql/parts/20_dsl.sql ----
-- The workflow DSL: constructors returning graph JSON (SPEC §6, §8) and the
-- operators of §7.
--
-- Every df function is VOLATILE; those without optional arguments are STRICT.
-- The non-STRICT ones raise on a NULL required argument themselves (SPEC §1).

CREATE FUNCTION df.sql(query text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_sql';
CREATE FUNCTION df.seq(a text, b text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_seq';
CREATE FUNCTION df."as"(fut text, name text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_as';
CREATE FUNCTION df.sleep(seconds bigint) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_sleep';
CREATE FUNCTION df.wait_for_schedule(cron_expr text, timezone text DEFAULT NULL) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_wait_for_schedule';
CREATE FUNCTION df."loop"(body text, condition text DEFAULT NULL, min_interval_ms int DEFAULT NULL) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_loop';
CREATE FUNCTION df."break"(value text DEFAULT NULL) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_break';
CREATE FUNCTION df."if"(condition text, then_branch text, else_branch text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_if';
CREATE FUNCTION df.if_rows(result_name text, then_branch text, else_branch text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_if_rows';
CREATE FUNCTION df."join"(a text, b text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_join';
CREATE FUNCTION df.join3(a text, b text, c text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_join3';
CREATE FUNCTION df.race(a text, b text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_race';
-- EXECUTE is revoked from PUBLIC in 90_privileges.sql (SPEC §5).
CREATE FUNCTION df.http(url text, method text DEFAULT 'POST', body text DEFAULT NULL,
                        headers jsonb DEFAULT '{}', timeout_seconds int DEFAULT 30) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_http';
CREATE FUNCTION df.wait_for_signal(name text, timeout_seconds int DEFAULT NULL) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_wait_for_signal';

-- Operator helpers (SPEC §6, §7).
CREATE FUNCTION df.as_op(fut text, name text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_as';
-- `cond ?> then` is only half an IF; `!> else` completes it (df.if_else_op).
CREATE FUNCTION df.if_then_op(condition text, then_branch text) RETURNS text
    LANGUAGE sql VOLATILE STRICT
    AS $$ SELECT pg_catalog.jsonb_build_object('_partial_if', true, 'condition', condition,
                                               'then_branch', then_branch)::pg_catalog.text $$;
CREATE FUNCTION df.if_else_op(partial_if text, else_branch text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_if_else_op';
CREATE FUNCTION df.loop_prefix_op(body text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_loop_prefix_op';

-- The operators live in pg_catalog (the extension's schema), which every
-- search_path includes, so `'SELECT 1' ~> 'SELECT 2'` works without df on the
-- path. Generic operators: PostgreSQL gives them all the same precedence,
-- left-associative (SPEC §7).
CREATE OPERATOR pg_catalog.~> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.seq);
CREATE OPERATOR pg_catalog.|=> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.as_op);
CREATE OPERATOR pg_catalog.& (LEFTARG = text, RIGHTARG = text, FUNCTION = df."join");
CREATE OPERATOR pg_catalog.| (LEFTARG = text, RIGHTARG = text, FUNCTION = df.race);
CREATE OPERATOR pg_catalog.?> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.if_then_op);
CREATE OPERATOR pg_catalog.!> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.if_else_op);
CREATE OPERATOR pg_catalog.@> (RIGHTARG = text, FUNCTION = df.loop_prefix_op);

-- ---- sql/parts/25_explain.sql ----
-- df.explain (SPEC §16): runs with the caller's privileges, so it shows only
-- instances the caller can see and evaluates DSL text as the caller.
CREATE FUNCTION df.explain(input text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_explain';

-- ---- sql/parts/30_core.sql ----
-- df.start, variables, status/result, version and the privilege helpers
-- (SPEC §5, §6, §9, §15.1).

CREATE FUNCTION df.version() RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_version';
CREATE FUNCTION df.target_database() RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_target_database';

CREATE FUNCTION df.start(fut text, label text DEFAULT NULL, database text DEFAULT NULL) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_start';

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

-- ---- sql/parts/40_runtime.sql ----
-- The execution engine's state and the extension half of its protocol
-- (SPEC §10, §13, §15.1, §17; docs/ARCHITECTURE.md "Engine: the extension side").
-- API: Private — every table here is internal, extension-owned and granted to
-- no one, so no row security is needed; the daemon (a superuser) and the df
-- functions (as table owner, after their own checks) are the only writers.

-- The active daemon's secret. The daemon writes a fresh random secret when it
-- takes the orchestrator lock; a standby that takes over rotates it, which
-- fences a dead daemon's in-flight steps (df._run_step refuses the old one).
CREATE TABLE df._daemon_secret (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret     text NOT NULL,
    epoch_id   uuid,
    updated_at timestamptz DEFAULT now()
);

-- One row per activation of a leaf node: (instance, execution_id stamp
-- '<scope>::<generation>' of SPEC §15.5, node). A SQL step's row is written by
-- df._run_step in the step's own transaction; timers and signal waits are
-- written by the daemon, with wake_at as their durable due time.
CREATE TABLE df._activations (
    instance_id    varchar(8) NOT NULL REFERENCES df.instances (id) ON DELETE CASCADE,
    stamp          text NOT NULL,
    node_id        varchar(8) NOT NULL,
    execution      bigint NOT NULL,
    status         text NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    result         text,          -- JSON text exactly as produced (column order kept)
    error          text,
    executed_query text,
    attempts       int NOT NULL DEFAULT 0,
    started_at     timestamptz,
    completed_at   timestamptz,
    wake_at        timestamptz,   -- due time of SLEEP / WAIT_SCHEDULE / SIGNAL timeout / loop pacing
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, stamp, node_id)
);
-- The daemon re-arms its timers from this after attach, reload or a lost LISTEN.
CREATE INDEX _activations_wake_idx ON df._activations (wake_at)
    WHERE status = 'running' AND wake_at IS NOT NULL;

-- Signals queued FIFO per (instance, name) (SPEC §13). The daemon consumes one
-- by deleting its row in the transaction that completes the SIGNAL activation.
CREATE TABLE df._signals (
    seq         bigserial PRIMARY KEY,
    instance_id varchar(8) NOT NULL REFERENCES df.instances (id) ON DELETE CASCADE,
    signal_name text NOT NULL,
    payload     text NOT NULL,    -- JSON text
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX _signals_fifo_idx ON df._signals (instance_id, signal_name, seq);

-- Runs one SQL step for the daemon, called on the daemon's own connection
-- (its role: pg_durable.worker_role, else a superuser), as the submitting
-- role (a security-restricted identity switch, DESIGN §2.4), and records its
-- completion in the same transaction
-- (exactly-once, one commit per step; DESIGN §2.2, §2.3). Returns an outcome
-- JSON object: completed / failed / cancelled / duplicate / instance_not_running.
-- The SET clause marks the step's SQL as running inside a workflow; PostgreSQL
-- restores it when the function exits. Every other setting the step changes
-- (role settings, SET, SET LOCAL, set_config) is reverted by the function
-- itself before it returns, so nothing leaks into the next step on that
-- connection. Callable by anyone with USAGE on df, but it refuses every caller
-- that is not the daemon's role or does not present the active daemon's secret.
CREATE FUNCTION df._run_step(secret text, instance_id text, stamp text, node_id text,
                             execution bigint, query text, attempt int, finish jsonb)
    RETURNS text
    LANGUAGE C VOLATILE
    SET df.in_workflow = 'true'
    AS 'MODULE_PATHNAME', 'df__run_step';

-- Scope stamps ('<instance>::<execution>[::<child root>::<generation>]...')
-- taken apart by common/protocol, the one definition of their form: the
-- execution of a stamp, and the generation of the child scope of a parent
-- scope that a stamp lies in. NULL where the stamp does not have that form.
-- VOLATILE like every df function (SPEC §1), though pure.
CREATE FUNCTION df._stamp_execution(stamp text) RETURNS bigint
    LANGUAGE C VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'df__stamp_execution';
CREATE FUNCTION df._stamp_generation(stamp text, parent_stamp text, child_root_id text) RETURNS bigint
    LANGUAGE C VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'df__stamp_generation';

-- The one writer of node states (df.nodes status, result, error, times and
-- stamp; DESIGN §2.14): df._run_step's record, the instance's finish and its
-- compound mirrors, the daemon's bookkeeping and df.cancel all write through
-- it, so a node row means the same thing whoever wrote it. Rows are created
-- by df.start and deleted with their instance. Arguments left NULL keep:
-- executed_query and attempts keep the row's (attempts is raised to
-- min_attempts); started_at keeps the row's start, or is now() for a node that
-- begins running or ends without a start on record (a never-started node that
-- is cancelled has none); stamp keeps the row's status_details. A terminal
-- status gets completed_at (given, else now); a live one has none.
-- Returns whether the row exists.
CREATE FUNCTION df._set_node_state(p_instance_id text, p_node_id text, p_stamp text, p_status text,
                                   p_result json, p_error text,
                                   p_started_at timestamptz DEFAULT NULL,
                                   p_completed_at timestamptz DEFAULT NULL,
                                   p_executed_query text DEFAULT NULL,
                                   p_attempts int DEFAULT NULL,
                                   p_min_attempts int DEFAULT 0)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    UPDATE df.nodes n
       SET status = p_status, result = p_result, error = p_error,
           executed_query = COALESCE(p_executed_query, n.executed_query),
           attempts = COALESCE(p_attempts, GREATEST(n.attempts, p_min_attempts)),
           started_at = COALESCE(p_started_at, n.started_at,
                                 CASE WHEN p_status IN ('running', 'completed', 'failed') THEN now() END),
           completed_at = CASE WHEN p_status IN ('completed', 'failed', 'cancelled')
                               THEN COALESCE(p_completed_at, clock_timestamp()) END,
           status_details = CASE WHEN p_stamp IS NULL THEN n.status_details
                                 ELSE jsonb_build_object('execution_id', p_stamp) END,
           updated_at = COALESCE(p_completed_at, clock_timestamp())
     WHERE n.instance_id = p_instance_id AND n.id = p_node_id;
    RETURN FOUND;
END
$fn$;

CREATE FUNCTION df.signal(instance_id text, signal_name text, signal_data text DEFAULT '{}')
    RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_signal';

CREATE FUNCTION df.cancel(instance_id text, reason text DEFAULT 'Cancelled by user')
    RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_cancel';

CREATE FUNCTION df.await_instance(instance_id text, timeout_seconds int DEFAULT 30)
    RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_await_instance';

-- ---- sql/parts/50_monitor.sql ----
-- Monitoring reads (SPEC §15): list_instances, instance_info,
-- instance_executions, instance_nodes, metrics; plus the execution history
-- the daemon keeps for root loops and the indexes its retention sweep uses.
--
-- The read functions run with the caller's privileges (SECURITY INVOKER), so
-- row security shows each role only its own instances (superusers all) and
-- unknown and invisible ids behave alike. What they need from the internal
-- tables comes through df._monitor (extension/monitor.cpp), which checks
-- visibility as the caller first. df.metrics is the exception: an admin
-- function (EXECUTE revoked from PUBLIC in 90_privileges.sql) counting over
-- all users, so it runs as the owner.

-- Internal: one row per past execution of a root loop, written by the daemon
-- in the transaction that starts the next execution (status 'continued',
-- output = the body result of the execution that went on). The current
-- execution is derived from df.instances and df._activations. The daemon
-- keeps the newest pg_durable.history_executions past executions.
CREATE TABLE df._executions (
    instance_id varchar(8) NOT NULL REFERENCES df.instances (id) ON DELETE CASCADE,
    execution   bigint NOT NULL,
    status      text NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'continued')),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    output      text,
    event_count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, execution)
);

-- Retention: terminal instances by the time they became terminal (terminal
-- rows never change again, so updated_at is that time).
CREATE INDEX instances_terminal_idx ON df.instances (updated_at, id)
    WHERE status IN ('completed', 'failed', 'cancelled');
-- Loop history bounding finds loops without scanning every node.
CREATE INDEX nodes_loop_idx ON df.nodes (instance_id, id) WHERE node_type = 'LOOP';

CREATE FUNCTION df._monitor(instance_id text, kind text, arg bigint) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df__monitor';

-- list_instances' output column (SPEC §15.2): result, error or cancel reason.
CREATE FUNCTION df._instance_output(p_id text, p_status text, p_error text, p_root text) RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE p_status
             WHEN 'completed' THEN (SELECT n.result::text FROM df.nodes n
                                    WHERE n.instance_id = p_id AND n.id = p_root)
             WHEN 'failed' THEN p_error
             WHEN 'cancelled' THEN p_error
           END
    $$;

CREATE FUNCTION df._check_list_limit(limit_count int) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    max_limit int := current_setting('pg_durable.list_instances_max_limit')::int;
BEGIN
    IF limit_count IS NULL OR limit_count < 1 THEN
        RAISE EXCEPTION 'limit_count must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF limit_count > max_limit THEN
        RAISE EXCEPTION 'df.list_instances: limit_count (%) exceeds pg_durable.list_instances_max_limit (%); request fewer rows, or use the paginated df.list_instances overload (after_cursor/next_cursor) for large result sets',
            limit_count, max_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

CREATE FUNCTION df.list_instances(status_filter text DEFAULT NULL, limit_count int DEFAULT 100)
    RETURNS TABLE(instance_id text, label text, function_name text, status text, execution_count bigint,
                  output text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM df._check_list_limit(limit_count);
    RETURN QUERY
        SELECT i.id::text, i.label, 'pg_durable.graph'::text, i.status, i.execution_count,
               df._instance_output(i.id, i.status, i.error, i.root_node)
          FROM df.instances i
         WHERE status_filter IS NULL OR i.status = status_filter
         ORDER BY i.created_at DESC, i.id ASC
         LIMIT limit_count;
END
$$;

-- Keyset pagination: next_cursor = hex of 'v1|<created_at>|<id>' of the
-- page's last row, NULL on the last page.
CREATE FUNCTION df.list_instances(status_filter text, limit_count int, label_filter text,
                                  after_cursor text DEFAULT NULL)
    RETURNS TABLE(instance_id text, label text, function_name text, status text, execution_count bigint,
                  output text, created_at timestamptz, completed_at timestamptz, next_cursor text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    decoded text;
    parts text[];
    after_ts timestamptz;
    after_id text;
BEGIN
    PERFORM df._check_list_limit(limit_count);
    IF after_cursor IS NOT NULL THEN
        BEGIN
            IF length(after_cursor) > 512 THEN
                RAISE EXCEPTION 'too long';
            END IF;
            decoded := convert_from(decode(after_cursor, 'hex'), 'UTF8');
            parts := string_to_array(decoded, '|');
            IF COALESCE(array_length(parts, 1), 0) <> 3 OR parts[1] <> 'v1'
               OR parts[2] !~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}[+-]\d{2}(:\d{2})?$' THEN
                RAISE EXCEPTION 'malformed';
            END IF;
            after_ts := parts[2]::timestamptz;
            after_id := parts[3];
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'df.list_instances: invalid after_cursor' USING ERRCODE = 'invalid_parameter_value';
        END;
    END IF;
    RETURN QUERY
        WITH page AS (
            SELECT i.id, i.label, i.status, i.execution_count, i.error, i.root_node, i.created_at, i.completed_at,
                   row_number() OVER (ORDER BY i.created_at DESC, i.id ASC) AS rn
              FROM df.instances i
             WHERE (status_filter IS NULL OR i.status = status_filter)
               AND (label_filter IS NULL OR i.label = label_filter)
               AND (after_cursor IS NULL OR i.created_at < after_ts
                    OR (i.created_at = after_ts AND i.id > after_id))
             ORDER BY i.created_at DESC, i.id ASC
             LIMIT limit_count + 1),
        next_page AS (
            SELECT encode(convert_to('v1|' || to_char(p.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.USOF') || '|' || p.id,
                                     'UTF8'), 'hex') AS next
              FROM page p
             WHERE p.rn = limit_count AND EXISTS (SELECT 1 FROM page q WHERE q.rn > limit_count))
        SELECT p.id::text, p.label, 'pg_durable.graph'::text, p.status, p.execution_count,
               df._instance_output(p.id, p.status, p.error, p.root_node), p.created_at, p.completed_at,
               (SELECT c.next FROM next_page c)
          FROM page p
         WHERE p.rn <= limit_count
         ORDER BY p.rn;
END
$$;

CREATE FUNCTION df.instance_info(instance_id text)
    RETURNS TABLE(instance_id text, label text, function_name text, function_version text,
                  current_execution_id bigint, status text, output text)
    LANGUAGE sql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT i.id::text, i.label, 'pg_durable.graph'::text,
           (SELECT e.extversion::text FROM pg_extension e WHERE e.extname = 'pg_durable'),
           i.execution_count, i.status, df._instance_output(i.id, i.status, i.error, i.root_node)
      FROM df.instances i
     WHERE i.id = $1
    $$;

-- Newest first: the current execution (derived), then the retained past ones.
CREATE FUNCTION df.instance_executions(instance_id text, limit_count int DEFAULT 5)
    RETURNS TABLE(execution_id bigint, status text, event_count bigint, duration_ms bigint, output text)
    LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    inst record;
    info json;
    n int;
    started timestamptz;
    ended timestamptz;
BEGIN
    IF limit_count < 1 THEN
        RAISE EXCEPTION 'limit_count must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := least(limit_count, 10000);
    SELECT i.id, i.status, i.error, i.root_node, i.execution_count, i.created_at, i.updated_at, i.completed_at
      INTO inst FROM df.instances i WHERE i.id = $1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    info := df._monitor(inst.id, 'executions', n - 1)::json;
    IF info IS NULL THEN
        RETURN;
    END IF;
    started := COALESCE((info ->> 'current_started')::timestamptz, inst.created_at);
    ended := CASE WHEN inst.status IN ('completed', 'failed', 'cancelled')
                  THEN COALESCE(inst.completed_at, inst.updated_at) ELSE clock_timestamp() END;
    execution_id := inst.execution_count;
    status := CASE WHEN inst.status = 'pending' THEN 'running' ELSE inst.status END;
    event_count := (info ->> 'current_events')::bigint;
    duration_ms := greatest(0, floor(extract(epoch FROM ended - started) * 1000))::bigint;
    output := df._instance_output(inst.id, inst.status, inst.error, inst.root_node);
    RETURN NEXT;
    RETURN QUERY
        SELECT (e ->> 'execution')::bigint, e ->> 'status', (e ->> 'event_count')::bigint,
               greatest(0, floor(extract(epoch FROM COALESCE((e ->> 'ended_at')::timestamptz, clock_timestamp())
                                             - (e ->> 'started_at')::timestamptz) * 1000))::bigint,
               e ->> 'output'
          FROM json_array_elements(info -> 'past') AS e
         LIMIT n - 1;
END
$$;

-- One row per node of the current execution, with the inferred status of
-- SPEC §15.5 (common/inference.cpp).
CREATE FUNCTION df.instance_nodes(instance_id_param text)
    RETURNS TABLE(node_id text, node_type text, query text, result_name text, left_node text, right_node text,
                  status text, result text, status_details text, inferred_status text,
                  inferred_status_from_ancestor_id text, updated_at timestamptz, error text,
                  executed_query text, attempts int, started_at timestamptz, completed_at timestamptz)
    LANGUAGE sql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH inference AS MATERIALIZED (
        SELECT df._monitor(instance_id_param, 'inference', 0)::json AS j)
    SELECT n.id::text, n.node_type, n.query, n.result_name, n.left_node::text, n.right_node::text, n.status,
           n.result::text, n.status_details::text, e.value ->> 0, e.value ->> 1, n.updated_at, n.error,
           n.executed_query, n.attempts, n.started_at, n.completed_at
      FROM inference, json_each(inference.j) AS e
      JOIN df.nodes n ON n.instance_id = instance_id_param AND n.id = e.key
    $$;

-- Rows of the newest _last_n_executions executions: the current one from
-- df.nodes with each node's inferred status (what it does in the current
-- execution, as df.instance_nodes(id) infers it: a node last written in an
-- older execution is not shown with that execution's state), past ones from
-- their recorded leaf activations.
CREATE FUNCTION df.instance_nodes(instance_id_param text, _last_n_executions int)
    RETURNS TABLE(execution_id bigint, node_id text, node_type text, query text, result_name text,
                  left_node text, right_node text, status text, result text, updated_at timestamptz)
    LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    current_execution bigint;
BEGIN
    IF _last_n_executions < 1 THEN
        RAISE EXCEPTION '_last_n_executions must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i.execution_count INTO current_execution FROM df.instances i WHERE i.id = instance_id_param;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT current_execution, n.id::text, n.node_type, n.query, n.result_name, n.left_node::text,
               n.right_node::text,
               COALESCE(inference.j -> n.id::text ->> 0, CASE WHEN stale THEN 'pending' ELSE n.status END),
               CASE WHEN stale THEN NULL ELSE n.result::text END,
               n.updated_at
          FROM (SELECT df._monitor(instance_id_param, 'inference', 0)::json AS j) inference,
               df.nodes n,
               LATERAL (SELECT COALESCE(df._stamp_execution(n.status_details ->> 'execution_id')
                                            < current_execution, false) AS stale) s
         WHERE n.instance_id = instance_id_param;
    IF _last_n_executions > 1 AND current_execution > 1 THEN
        RETURN QUERY
            SELECT (h ->> 'execution')::bigint, n.id::text, n.node_type, n.query, n.result_name,
                   n.left_node::text, n.right_node::text, h ->> 'status', h ->> 'result',
                   (h ->> 'updated_at')::timestamptz
              FROM json_array_elements(df._monitor(instance_id_param, 'history', _last_n_executions)::json) AS h
              JOIN df.nodes n ON n.instance_id = instance_id_param AND n.id = h ->> 'node_id';
    END IF;
END
$$;

-- Admin overview over all users (SPEC §15.3): one pass over df.instances,
-- plus the event counts of the retained executions.
CREATE FUNCTION df.metrics()
    RETURNS TABLE(total_instances bigint, running_instances bigint, completed_instances bigint,
                  failed_instances bigint, total_executions bigint, total_events bigint)
    LANGUAGE sql VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT count(*),
           count(*) FILTER (WHERE i.status = 'running'),
           count(*) FILTER (WHERE i.status = 'completed'),
           count(*) FILTER (WHERE i.status = 'failed'),
           COALESCE(sum(i.execution_count), 0)::bigint,
           (SELECT COALESCE(sum(e.event_count), 0)::bigint FROM df._executions e)
             + (SELECT count(*) FROM df._activations a
                  JOIN df.instances c ON c.id = a.instance_id AND a.execution = c.execution_count)
      FROM df.instances i
    $$;

-- ---- sql/parts/55_operator_metrics.sql ----
-- The operator metrics surface (docs/MONITORING.md "Operators"): aggregates
-- for a monitoring role, never a query, result, error, label or instance id.
--
-- df_monitor is a schema of its own on purpose: USAGE on df is the gate to
-- every df function (SPEC §5), and a monitoring role must not be able to call
-- df.start. pg_monitor gets USAGE on df_monitor and EXECUTE on its one
-- function, nothing on df.

-- Durable step counters that retention and loop-history trimming never
-- touch. completed / failed / cancelled are added by the trigger below, in
-- the statement that records a SQL or HTTP step's outcome (so in that step's
-- transaction: no extra commit); started is added by the active daemon's
-- heartbeat (every 2 s, the same statement that refreshes df._worker_epoch)
-- on row 16, which nothing else writes. Outcomes go to one of rows 0-15: the
-- backend's own (pid % 16) unless another transaction holds it, then any free
-- one (SKIP LOCKED), so a step never waits for another step's counter update
-- (not even for a paused daemon's transaction that holds one), and each
-- transaction locks one row.
CREATE TABLE df._step_counters (
    shard     int PRIMARY KEY CHECK (shard >= 0 AND shard <= 16),
    started   bigint NOT NULL DEFAULT 0,
    completed bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0,
    cancelled bigint NOT NULL DEFAULT 0
);
INSERT INTO df._step_counters (shard) SELECT generate_series(0, 16);

CREATE FUNCTION df._count_step_outcome() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;  -- rewritten, not newly ended
    END IF;
    IF NOT EXISTS (SELECT 1 FROM df.nodes n
                    WHERE n.instance_id = NEW.instance_id AND n.id = NEW.node_id AND n.node_type IN ('SQL', 'HTTP')) THEN
        RETURN NULL;  -- timers, signal waits, loop checkpoints, RACE decisions
    END IF;
    UPDATE df._step_counters c
       SET completed = c.completed + (NEW.status = 'completed')::int,
           failed = c.failed + (NEW.status = 'failed')::int,
           cancelled = c.cancelled + (NEW.status = 'cancelled')::int
     WHERE c.shard = (SELECT s.shard FROM df._step_counters s
                       WHERE s.shard < 16
                       ORDER BY s.shard = pg_backend_pid() % 16 DESC, s.shard
                       LIMIT 1 FOR UPDATE SKIP LOCKED);
    IF NOT FOUND THEN  -- all 16 busy (or a row went missing): wait for our own
        INSERT INTO df._step_counters AS c (shard, completed, failed, cancelled)
        VALUES (pg_backend_pid() % 16, (NEW.status = 'completed')::int, (NEW.status = 'failed')::int,
                (NEW.status = 'cancelled')::int)
        ON CONFLICT (shard) DO UPDATE
            SET completed = c.completed + EXCLUDED.completed, failed = c.failed + EXCLUDED.failed,
                cancelled = c.cancelled + EXCLUDED.cancelled;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER _activations_count_outcome
    AFTER INSERT OR UPDATE OF status ON df._activations
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION df._count_step_outcome();

-- Timer and signal waits without scanning every activation.
CREATE INDEX _activations_running_idx ON df._activations (instance_id) WHERE status = 'running';

CREATE SCHEMA df_monitor;
REVOKE ALL ON SCHEMA df_monitor FROM PUBLIC;
GRANT USAGE ON SCHEMA df_monitor TO pg_monitor;

-- One row per metric (docs/MONITORING.md lists them). Runs as the owner so
-- it can count over every role's rows; what it returns are numbers only.
-- PL/pgSQL so that a scraper's session plans the query once, not per call.
CREATE FUNCTION df_monitor.operator_metrics()
    RETURNS TABLE(metric text, value double precision)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH by_status AS (
        SELECT i.status, count(*) AS n FROM df.instances i GROUP BY i.status),
    inst AS (
        SELECT COALESCE(sum(b.n) FILTER (WHERE b.status = 'pending'), 0) AS pending,
               COALESCE(sum(b.n) FILTER (WHERE b.status = 'running'), 0) AS running,
               COALESCE(sum(b.n) FILTER (WHERE b.status = 'completed'), 0) AS completed,
               COALESCE(sum(b.n) FILTER (WHERE b.status = 'failed'), 0) AS failed,
               COALESCE(sum(b.n) FILTER (WHERE b.status = 'cancelled'), 0) AS cancelled
          FROM by_status b),
    oldest AS (
        SELECT min(i.created_at) AS created_at FROM df.instances i WHERE i.status = 'pending'),
    steps AS (
        SELECT COALESCE(sum(c.started), 0) AS started, COALESCE(sum(c.completed), 0) AS completed,
               COALESCE(sum(c.failed), 0) AS failed, COALESCE(sum(c.cancelled), 0) AS cancelled
          FROM df._step_counters c),
    lag AS (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l.seconds) AS p50,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY l.seconds) AS p99,
               count(*) AS samples
          FROM (SELECT extract(epoch FROM f.first_start - i.created_at)::float8 AS seconds
                  FROM df.instances i
                  CROSS JOIN LATERAL (SELECT min(a.started_at) AS first_start FROM df._activations a
                                       WHERE a.instance_id = i.id) f
                 WHERE i.created_at > now() - interval '1 minute' AND f.first_start IS NOT NULL) l),
    waits AS (
        SELECT count(DISTINCT a.instance_id) FILTER (WHERE n.node_type <> 'SIGNAL' AND a.wake_at IS NOT NULL)
                 AS timer,
               count(DISTINCT a.instance_id) FILTER (WHERE n.node_type = 'SIGNAL') AS signal
          FROM df._activations a
          JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id
          JOIN df.instances i ON i.id = a.instance_id AND i.status IN ('pending', 'running')
         WHERE a.status = 'running'),
    conns AS (
        SELECT count(*) FILTER (WHERE s.state IS DISTINCT FROM 'idle') AS in_use, count(*) AS open
          FROM pg_stat_activity s
         WHERE s.application_name = 'pg_durable step' AND s.backend_type = 'client backend'),
    epoch AS (
        SELECT max(e.last_seen_at) AS last_seen_at, COALESCE(sum(e.http_in_flight), 0) AS http_in_flight
          FROM df._worker_epoch e),
    locks AS (
        SELECT count(*) FILTER (WHERE l.objid = 1) AS active, count(*) FILTER (WHERE l.objid = 3) AS standbys
          FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.classid = 1885824117 AND l.objsubid = 2 AND l.granted  -- 'pgdu'
           AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())),
    retention AS (
        SELECT greatest(
                   (SELECT count(*) FROM df.instances i
                     WHERE i.status IN ('completed', 'failed', 'cancelled')
                       AND i.updated_at < now() - make_interval(days => current_setting('pg_durable.retention_days')::int)),
                   CASE WHEN current_setting('pg_durable.retention_max_instances')::bigint > 0
                        THEN inst.completed + inst.failed + inst.cancelled
                             - current_setting('pg_durable.retention_max_instances')::bigint
                        ELSE 0 END,
                   0) AS backlog
          FROM inst)
    SELECT m.metric, m.value
      FROM inst, oldest, steps, lag, waits, conns, epoch, locks, retention,
           LATERAL (VALUES
               ('instances_pending', inst.pending::float8),
               ('instances_running', inst.running::float8),
               ('instances_completed', inst.completed::float8),
               ('instances_failed', inst.failed::float8),
               ('instances_cancelled', inst.cancelled::float8),
               ('steps_started_total', steps.started::float8),
               ('steps_completed_total', steps.completed::float8),
               ('steps_failed_total', steps.failed::float8),
               ('steps_cancelled_total', steps.cancelled::float8),
               ('dispatch_lag_p50_seconds', lag.p50),
               ('dispatch_lag_p99_seconds', lag.p99),
               ('dispatch_lag_samples', lag.samples::float8),
               ('oldest_pending_age_seconds',
                COALESCE(greatest(0, extract(epoch FROM clock_timestamp() - oldest.created_at)), 0)::float8),
               ('instances_waiting_timer', waits.timer::float8),
               ('instances_waiting_signal', waits.signal::float8),
               ('user_connections_in_use', conns.in_use::float8),
               ('user_connections_open', conns.open::float8),
               ('user_connections_max', current_setting('pg_durable.max_user_connections')::float8),
               ('http_requests_in_flight', epoch.http_in_flight::float8),
               ('daemon_active', locks.active::float8),
               ('daemon_standbys', locks.standbys::float8),
               ('daemon_heartbeat_age_seconds',
                CASE WHEN epoch.last_seen_at IS NOT NULL
                     THEN greatest(0, extract(epoch FROM clock_timestamp() - epoch.last_seen_at))::float8 END),
               ('retention_backlog_instances', retention.backlog::float8)) AS m(metric, value);
END
$$;

REVOKE ALL ON FUNCTION df_monitor.operator_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION df_monitor.operator_metrics() TO pg_monitor;

-- ---- sql/parts/90_privileges.sql ----
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
