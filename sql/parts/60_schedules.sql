-- Schedules (SPEC §19.4): pg_cron's job model, each run an ordinary instance.
-- The same text is sql/upgrade/1.0--1.1/40_schedules.sql (the 1.0 -> 1.1 upgrade).

-- One row per (owner, name). next_run_at is the tick the daemon takes next
-- (NULL while paused, or when the expression never matches again); the
-- daemon records each tick it takes (next_run_at, last_tick_at, counters,
-- last_instance_id) in the same transaction as the run it starts.
CREATE TABLE df._schedules (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner            regrole NOT NULL,
    name             text NOT NULL,
    cron_expr        text NOT NULL,
    timezone         text NOT NULL,
    overlap          text NOT NULL,
    definition       text NOT NULL,        -- fut as given to df.schedule (validated)
    database         text NOT NULL,        -- effective target database
    paused           boolean NOT NULL DEFAULT false,
    next_run_at      timestamptz,
    last_tick_at     timestamptz,
    last_instance_id varchar(8),
    runs             bigint NOT NULL DEFAULT 0,  -- runs started
    skipped          bigint NOT NULL DEFAULT 0,  -- ticks skipped: previous run still live (overlap 'skip')
    missed           bigint NOT NULL DEFAULT 0,  -- ticks that came due while no daemon ran
    failed_starts    bigint NOT NULL DEFAULT 0,  -- ticks whose start failed its checks (last_error)
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_owner_name UNIQUE (owner, name),
    CONSTRAINT schedules_name_valid CHECK (name <> '' AND char_length(name) <= 200),
    CONSTRAINT schedules_overlap_valid CHECK (overlap IN ('skip', 'allow', 'cancel_previous'))
);
-- The daemon's timer: the earliest tick of all active schedules.
CREATE INDEX schedules_due_idx ON df._schedules (next_run_at) WHERE NOT paused AND next_run_at IS NOT NULL;

REVOKE ALL ON df._schedules FROM PUBLIC;
ALTER TABLE df._schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY schedules_user_isolation ON df._schedules
    USING (owner = (SELECT pg_catalog.quote_ident(current_user)::regrole));

CREATE FUNCTION df.schedule(name text, cron_expr text, fut text, timezone text DEFAULT 'UTC',
                            overlap text DEFAULT 'skip', database text DEFAULT NULL) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_schedule';
CREATE FUNCTION df.unschedule(name text) RETURNS boolean
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_unschedule';
CREATE FUNCTION df.pause_schedule(name text) RETURNS boolean
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_pause_schedule';
CREATE FUNCTION df.resume_schedule(name text) RETURNS boolean
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_resume_schedule';

-- The caller's schedules (superusers: all), read by the extension as the
-- table owner and filtered as the row security policy above filters.
CREATE FUNCTION df._list_schedules() RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df__list_schedules';
CREATE FUNCTION df.list_schedules()
    RETURNS TABLE(name text, cron_expr text, timezone text, overlap text, database text, paused boolean,
                  next_run_at timestamptz, last_instance_id text, last_status text, runs bigint,
                  created_at timestamptz)
    LANGUAGE sql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT x.name, x.cron_expr, x.timezone, x.overlap, x.database, x.paused, x.next_run_at,
           x.last_instance_id, x.last_status, x.runs, x.created_at
      FROM json_to_recordset(df._list_schedules()::json) AS x(name text, cron_expr text, timezone text,
           overlap text, database text, paused boolean, next_run_at timestamptz, last_instance_id text,
           last_status text, runs bigint, created_at timestamptz)
    $$;

-- The daemon starts each run through this (as the schedule's owner, df.start's
-- path); it admits only the daemon's role in a session bound to the attached
-- worker epoch, so PUBLIC EXECUTE is harmless (as for df._run_step).
CREATE FUNCTION df._start_scheduled(schedule_id bigint) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df__start_scheduled';

-- The daemon's role (pg_durable.worker_role, when it is a non-superuser)
-- reads due schedules and records the ticks it takes.
DO $schedules_worker$
DECLARE
    wrole text := current_setting('pg_durable.worker_role');
BEGIN
    IF wrole <> '' AND EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = wrole AND NOT rolsuper) THEN
        EXECUTE format('GRANT SELECT, UPDATE ON df._schedules TO %s', pg_catalog.quote_ident(wrole));
    END IF;
END
$schedules_worker$;
