-- pg_durable 1.0 -> 1.1: the step's own bookkeeping made cheaper (issue 12;
-- bench/BENCHMARKS.md "Issue 12: the step function's own cost"). The same
-- objects as sql/parts/40_runtime.sql and sql/parts/55_operator_metrics.sql
-- create on a fresh install.

-- The one writer of node states moves into C (extension/node_state.cpp), so
-- df._run_step calls it directly. Same signature, defaults and grants; the
-- function pins its own search_path instead of a SET clause.
CREATE OR REPLACE FUNCTION df._set_node_state(p_instance_id text, p_node_id text, p_stamp text, p_status text,
                                              p_result json, p_error text,
                                              p_started_at timestamptz DEFAULT NULL,
                                              p_completed_at timestamptz DEFAULT NULL,
                                              p_executed_query text DEFAULT NULL,
                                              p_attempts int DEFAULT NULL,
                                              p_min_attempts int DEFAULT 0)
    RETURNS boolean
    LANGUAGE C VOLATILE
    AS 'MODULE_PATHNAME', 'df__set_node_state';
ALTER FUNCTION df._set_node_state(text, text, text, text, json, text, timestamptz, timestamptz, text, integer,
                                  integer) RESET ALL;

-- df._run_step counts the SQL step outcomes it records in its own record
-- statement; the trigger counts every other writer's (rows without
-- executed_query, which only df._run_step writes).
DROP TRIGGER _activations_count_outcome ON df._activations;
CREATE TRIGGER _activations_count_outcome
    AFTER INSERT OR UPDATE OF status ON df._activations
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.executed_query IS NULL)
    EXECUTE FUNCTION df._count_step_outcome();

-- Room for HOT updates of node rows (pages written from now on).
ALTER TABLE df.nodes SET (fillfactor = 70);
