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
    -- df.start_once (SPEC §19.2); NULL for df.start. Since 1.1: the last column,
    -- as ALTER TABLE ADD COLUMN puts it (sql/upgrade/1.0--1.1/20_start_once.sql).
    idempotency_key text CONSTRAINT instances_idempotency_key_valid
        CHECK (idempotency_key <> '' AND pg_catalog.char_length(idempotency_key) <= 200),
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
-- One instance per (role, idempotency key): a second df.start_once inserting
-- the same pair waits on this index for the first one's transaction, then
-- finds its row (commit) or inserts its own (rollback).
CREATE UNIQUE INDEX instances_idempotency_key_idx ON df.instances (submitted_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

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
        ('SQL', 'THEN', 'IF', 'JOIN', 'LOOP', 'BREAK', 'RACE', 'SLEEP', 'WAIT_SCHEDULE', 'HTTP', 'SIGNAL',
         'RETRY', 'TIMEOUT')),
    CONSTRAINT nodes_result_name_valid CHECK (result_name ~ '^[A-Za-z_][A-Za-z0-9_]*$')
)
-- df.start writes all of a graph's rows at once, densely; each is then
-- rewritten as its node runs and ends. Room on the page keeps those updates
-- HOT (no index entry, no page-move lock record; bench/BENCHMARKS.md
-- "Issue 12: the step function's own cost").
WITH (fillfactor = 70);

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
