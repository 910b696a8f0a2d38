-- Instance counters (issue 12; docs/ARCHITECTURE.md "Instance counters"):
-- df.metrics and the instance gauges of df_monitor.operator_metrics sum 16
-- rows instead of reading every instance and activation. The same objects are
-- created by sql/upgrade/1.0--1.1/60_instance_counters.sql on an upgrade.
--
-- Per row: instances by status, the sum of their execution numbers, and
-- events = the activations of each instance's current execution plus the
-- event_count of the retained past executions (df._executions), i.e. exactly
-- what df.metrics used to count. Kept by the triggers below (one function in C,
-- extension/instance_counters.cpp, which says how) in the writer's own
-- statement, so no commit is added; a writer takes its backend's row (pid %
-- 16) or any row no other transaction holds, never waiting for another
-- writer's count. Internal: granted to no one; the trigger function writes as
-- the table owner.
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
CREATE FUNCTION df.metrics()
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
