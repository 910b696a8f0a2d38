-- The operator metrics surface (docs/MONITORING.md "Operators"): aggregates
-- for a monitoring role, never a query, result, error, label or instance id.
--
-- df_monitor is a schema of its own on purpose: USAGE on df is the gate to
-- every df function (SPEC §5), and a monitoring role must not be able to call
-- df.start. pg_monitor gets USAGE on df_monitor and EXECUTE on its one
-- function, nothing on df.

-- Durable step counters that retention and loop-history trimming never
-- touch. completed / failed / cancelled are added in the statement that
-- records a SQL or HTTP step's outcome (so in that step's transaction: no
-- extra commit): by df._run_step itself for the SQL step outcomes it records
-- (extension/step.cpp; it is the only writer of executed_query), by the
-- trigger below for every other writer (the daemon's HTTP steps, steps
-- recorded after a step in another database, df.cancel); started is added by the active daemon's
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
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.executed_query IS NULL)
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

REVOKE ALL ON FUNCTION df_monitor.operator_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION df_monitor.operator_metrics() TO pg_monitor;
