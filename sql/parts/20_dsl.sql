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

-- Retry and timeout wrappers (SPEC §19.3). df.retry has optional arguments,
-- so it is not STRICT and raises on a NULL fut or max_attempts; df.timeout
-- has none and is STRICT.
CREATE FUNCTION df.retry(fut text, max_attempts int, initial_interval_seconds float8 DEFAULT 1,
                         backoff_rate float8 DEFAULT 2, max_interval_seconds float8 DEFAULT 60) RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_retry';
CREATE FUNCTION df.timeout(fut text, seconds float8) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_timeout';

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
