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
-- Returns whether the row exists. In C (extension/node_state.cpp), so that
-- df._run_step calls the same code directly, without a SQL function call per
-- step; it runs with the caller's rights and its own pinned search_path.
CREATE FUNCTION df._set_node_state(p_instance_id text, p_node_id text, p_stamp text, p_status text,
                                   p_result json, p_error text,
                                   p_started_at timestamptz DEFAULT NULL,
                                   p_completed_at timestamptz DEFAULT NULL,
                                   p_executed_query text DEFAULT NULL,
                                   p_attempts int DEFAULT NULL,
                                   p_min_attempts int DEFAULT 0)
    RETURNS boolean
    LANGUAGE C VOLATILE
    AS 'MODULE_PATHNAME', 'df__set_node_state';

CREATE FUNCTION df.signal(instance_id text, signal_name text, signal_data text DEFAULT '{}')
    RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_signal';

CREATE FUNCTION df.cancel(instance_id text, reason text DEFAULT 'Cancelled by user')
    RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_cancel';

CREATE FUNCTION df.await_instance(instance_id text, timeout_seconds int DEFAULT 30)
    RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_await_instance';
