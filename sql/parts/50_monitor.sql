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

-- df.metrics, the admin overview over all users (SPEC §15.3), reads the
-- instance counters: sql/parts/52_instance_counters.sql.
