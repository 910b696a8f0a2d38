-- pg_durable 1.0 -> 1.1: retry and timeout wrappers (SPEC §19.3).
-- The same objects as sql/parts/10_schema.sql (node types) and
-- sql/parts/20_dsl.sql (df.retry, df.timeout) create on a fresh install.

-- RETRY and TIMEOUT join the node types of df.nodes.
ALTER TABLE df.nodes DROP CONSTRAINT nodes_type_valid;
ALTER TABLE df.nodes ADD CONSTRAINT nodes_type_valid CHECK (node_type IN
    ('SQL', 'THEN', 'IF', 'JOIN', 'LOOP', 'BREAK', 'RACE', 'SLEEP', 'WAIT_SCHEDULE', 'HTTP', 'SIGNAL',
     'RETRY', 'TIMEOUT'));

-- df.retry has optional arguments, so it is not STRICT and raises on a NULL
-- fut or max_attempts; df.timeout has none and is STRICT (SPEC §1).
CREATE FUNCTION df.retry(fut text, max_attempts int, initial_interval_seconds float8 DEFAULT 1,
                         backoff_rate float8 DEFAULT 2, max_interval_seconds float8 DEFAULT 60) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_retry';
CREATE FUNCTION df.timeout(fut text, seconds float8) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_timeout';
