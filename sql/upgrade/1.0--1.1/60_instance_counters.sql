-- pg_durable 1.0 -> 1.1: instance counters (issue 12). The same objects as
-- sql/parts/52_instance_counters.sql creates on a fresh install, counted from
-- the existing rows (df.instances is locked since 10_versioning.sql); df.metrics
-- and df_monitor.operator_metrics (sql/parts/55_operator_metrics.sql) read them.

CREATE TABLE df._instance_counters (
    shard      int PRIMARY KEY,  -- 0-15; no CHECK: every count would evaluate it
    pending    bigint NOT NULL DEFAULT 0,
    running    bigint NOT NULL DEFAULT 0,
    completed  bigint NOT NULL DEFAULT 0,
    failed     bigint NOT NULL DEFAULT 0,
    cancelled  bigint NOT NULL DEFAULT 0,
    executions bigint NOT NULL DEFAULT 0,
    events     bigint NOT NULL DEFAULT 0
);

-- Counts everything again from the tables (install, upgrade, TRUNCATE; an
-- administrator may run it any time). SHARE locks wait for the transactions
-- writing the tables and keep new writers out until the recount commits, so
-- no count in flight is lost or doubled.
CREATE FUNCTION df._count_instance_rows() RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    LOCK TABLE df.instances, df._activations, df._executions IN SHARE MODE;
    DELETE FROM df._instance_counters;
    INSERT INTO df._instance_counters (shard, pending, running, completed, failed, cancelled, executions, events)
    SELECT 0,
           count(*) FILTER (WHERE i.status = 'pending'),
           count(*) FILTER (WHERE i.status = 'running'),
           count(*) FILTER (WHERE i.status = 'completed'),
           count(*) FILTER (WHERE i.status = 'failed'),
           count(*) FILTER (WHERE i.status = 'cancelled'),
           COALESCE(sum(i.execution_count), 0),
           (SELECT COALESCE(sum(e.event_count), 0) FROM df._executions e)
             + (SELECT count(*) FROM df._activations a
                  JOIN df.instances c ON c.id = a.instance_id AND a.execution = c.execution_count)
      FROM df.instances i;
    INSERT INTO df._instance_counters (shard) SELECT generate_series(1, 15);
END
$$;

CREATE FUNCTION df._count_instances() RETURNS trigger
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df__count_instances';

-- df.instances: inserted and deleted rows per statement; status and
-- execution-number changes per row, written once by the UPDATE statement
-- trigger; a deleted instance's events taken before its rows cascade away.
CREATE TRIGGER _instances_count_insert
    AFTER INSERT ON df.instances REFERENCING NEW TABLE AS new_instances
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _instances_count_delete
    AFTER DELETE ON df.instances REFERENCING OLD TABLE AS old_instances
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _instances_count_update
    AFTER UPDATE ON df.instances
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.execution_count IS DISTINCT FROM NEW.execution_count)
    EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _instances_count_update_statement
    AFTER UPDATE ON df.instances
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _instances_count_delete_row
    BEFORE DELETE ON df.instances
    FOR EACH ROW EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _instances_count_truncate
    AFTER TRUNCATE ON df.instances
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();

-- df._activations: rows of their instance's current execution.
CREATE TRIGGER _activations_count_insert
    AFTER INSERT ON df._activations REFERENCING NEW TABLE AS new_activations
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _activations_count_delete
    AFTER DELETE ON df._activations REFERENCING OLD TABLE AS old_activations
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _activations_count_update
    AFTER UPDATE ON df._activations
    FOR EACH ROW WHEN (OLD.execution IS DISTINCT FROM NEW.execution OR OLD.instance_id IS DISTINCT FROM NEW.instance_id)
    EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _activations_count_truncate
    AFTER TRUNCATE ON df._activations
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();

-- df._executions: event_count of the retained past executions.
CREATE TRIGGER _executions_count_insert
    AFTER INSERT ON df._executions REFERENCING NEW TABLE AS new_executions
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _executions_count_delete
    AFTER DELETE ON df._executions REFERENCING OLD TABLE AS old_executions
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _executions_count_update
    AFTER UPDATE ON df._executions
    FOR EACH ROW WHEN (OLD.event_count IS DISTINCT FROM NEW.event_count)
    EXECUTE FUNCTION df._count_instances();
CREATE TRIGGER _executions_count_truncate
    AFTER TRUNCATE ON df._executions
    FOR EACH STATEMENT EXECUTE FUNCTION df._count_instances();

-- Nobody but the owner calls these: a trigger of a user's own table on
-- df._count_instances would count into the counters (the function refuses
-- other tables anyway), and the recount takes SHARE locks on the df tables.
REVOKE EXECUTE ON FUNCTION df._count_instances() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION df._count_instance_rows() FROM PUBLIC;

SELECT df._count_instance_rows();

-- Admin overview over all users (SPEC §15.3), from the counters:
-- total_events are the events of the retained executions (the current
-- execution's activations and the past executions' event_count).
CREATE OR REPLACE FUNCTION df.metrics()
    RETURNS TABLE(total_instances bigint, running_instances bigint, completed_instances bigint,
                  failed_instances bigint, total_executions bigint, total_events bigint)
    LANGUAGE sql VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT COALESCE(sum(c.pending + c.running + c.completed + c.failed + c.cancelled), 0)::bigint,
           COALESCE(sum(c.running), 0)::bigint,
           COALESCE(sum(c.completed), 0)::bigint,
           COALESCE(sum(c.failed), 0)::bigint,
           COALESCE(sum(c.executions), 0)::bigint,
           COALESCE(sum(c.events), 0)::bigint
      FROM df._instance_counters c
    $$;

-- One row per metric (docs/MONITORING.md lists them). Runs as the owner so
-- it can count over every role's rows; what it returns are numbers only.
-- PL/pgSQL so that a scraper's session plans the query once, not per call.
CREATE OR REPLACE FUNCTION df_monitor.operator_metrics()
    RETURNS TABLE(metric text, value double precision)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH inst AS (  -- the instance counters (sql/parts/52_instance_counters.sql)
        SELECT COALESCE(sum(c.pending), 0) AS pending, COALESCE(sum(c.running), 0) AS running,
               COALESCE(sum(c.completed), 0) AS completed, COALESCE(sum(c.failed), 0) AS failed,
               COALESCE(sum(c.cancelled), 0) AS cancelled
          FROM df._instance_counters c),
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

-- The step counters' trigger function runs as the owner (SECURITY DEFINER):
-- as a trigger of a user's own table it would count into df._step_counters
-- (sql/parts/90_privileges.sql).
REVOKE EXECUTE ON FUNCTION df._count_step_outcome() FROM PUBLIC;
