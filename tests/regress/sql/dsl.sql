-- The DSL functions and operators: exact graph JSON, auto-wrap, DSL-time
-- errors, precedence (SPEC §1, §6, §7, §8, §10.10, §14).
-- Quiet, so the output is the same whether or not an earlier file created it.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_durable;
RESET client_min_messages;

-- Volatility and strictness (SPEC §1).
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict
  FROM pg_proc p
 WHERE p.pronamespace = 'df'::regnamespace
   AND p.proname IN ('sql', 'seq', 'as', 'sleep', 'wait_for_schedule', 'loop', 'break', 'if', 'if_rows',
                     'join', 'join3', 'race', 'http', 'wait_for_signal', 'as_op', 'if_then_op', 'if_else_op',
                     'loop_prefix_op')
 ORDER BY p.proname;

-- The operators and the functions behind them (SPEC §7).
SELECT o.oprname, o.oprleft::regtype, o.oprright::regtype, o.oprcode, o.oprnamespace::regnamespace
  FROM pg_operator o
 WHERE o.oprcode::regproc::text LIKE 'df.%'
 ORDER BY o.oprname;

-- Constructors.
SELECT df.sql('SELECT 1');
SELECT df.seq('SELECT 1', 'SELECT 2');
SELECT df."as"('SELECT 1', 'a');
SELECT df.sleep(5);
SELECT df.wait_for_schedule('0 9 * * 1-5');
SELECT df.wait_for_schedule('0 9 * * *', 'Europe/Berlin');
SELECT df."loop"('SELECT 1');
SELECT df."loop"('SELECT 1', 'SELECT false', 250);
SELECT df."loop"('SELECT 1', min_interval_ms => 0);
SELECT df."break"();
SELECT df."break"('done');
SELECT df."break"('SELECT 1');  -- a literal, never a step
SELECT df."if"('SELECT true', 'SELECT 1', 'SELECT 2');
SELECT df.if_rows('batch', 'SELECT 1', 'SELECT 2');
SELECT df."join"('SELECT 1', 'SELECT 2');
SELECT df.join3('SELECT 1', 'SELECT 2', 'SELECT 3');
SELECT df.race('SELECT 1', df.sleep(30));
SELECT df.wait_for_signal('approve');
SELECT df.wait_for_signal('approve', 3600);

-- Identical calls, identical text.
SELECT df.seq('SELECT 1', 'SELECT 2') = df.seq('SELECT 1', 'SELECT 2') AS same_text;

-- Auto-wrap: graphs are kept (canonical), other text becomes a SQL node.
SELECT df.seq('{ "query": "SELECT 1", "node_type": "SQL" }', '{"a": 1}');
SELECT df.seq('SELECT 1', '{"node_type":"BOGUS"}');
SELECT df.seq('SELECT 1', '{"node_type":"THEN","left_node":"SELECT 2"}');

-- Operators: generic, equal precedence, left-associative (SPEC §7).
SELECT 'SELECT 1' ~> 'SELECT 2';
SELECT 'SELECT 1' |=> 'a' ~> 'SELECT 2';
SELECT 'SELECT 1' ~> 'SELECT 2' |=> 'n' ~> 'SELECT 3';
SELECT 'SELECT 1' & 'SELECT 2';
SELECT 'SELECT 1' | 'SELECT 2';
SELECT 'SELECT 1' & 'SELECT 2' ~> 'SELECT 3';
SELECT 'SELECT true' ?> 'SELECT 1';
SELECT 'SELECT true' ?> 'SELECT 1' !> 'SELECT 2';
SELECT ('SELECT true' ?> 'SELECT 1' !> 'SELECT 2') = df."if"('SELECT true', 'SELECT 1', 'SELECT 2') AS if_ops_equal_df_if;
SELECT @> 'SELECT 1';
SELECT @> 'SELECT 1' ~> 'SELECT 2';
SELECT (@> ('SELECT 1' ~> df.sleep(60))) = df."loop"(df.seq('SELECT 1', df.sleep(60))) AS loop_op_equals_df_loop;
SELECT 'SELECT 1' !> 'SELECT 2';
SELECT df.seq('SELECT 1', 'SELECT 2') !> 'SELECT 3';

-- Named results (SPEC §10.10).
SELECT df."as"('SELECT 1', '');
SELECT 'SELECT 1' |=> '1abc';
SELECT 'SELECT 1' |=> 'a b';
SELECT df."as"(df."as"('SELECT 1', 'first'), 'second');

-- DSL-time errors.
SELECT df.sleep(-1);
SELECT df."loop"('SELECT 1', NULL, -1);
SELECT df.wait_for_signal('');
SELECT df.wait_for_signal('approve', 0);
SELECT df.wait_for_schedule('0 9 * * *', 'Mars/Olympus');
DO $$
BEGIN
    PERFORM df.wait_for_schedule('61 * * * *');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'cron error starts right: %', SQLERRM LIKE 'Invalid cron expression ''61 * * * *'': %';
END
$$;

-- HTTP is off by default: the first DSL-time check (SPEC §14).
SHOW pg_durable.http_enabled;
SELECT df.http('https://example.com/hook');
SELECT df.http('ftp://example.com/x', 'FETCH', NULL, '{}', 0);

-- NULL arguments: STRICT functions give NULL; required arguments of the
-- others raise.
SELECT df.seq(NULL, 'SELECT 1') IS NULL AS strict_null;
SELECT df."loop"(NULL);
SELECT df.wait_for_schedule(NULL);
SELECT df.wait_for_signal(NULL);
SELECT df."break"(NULL);
SELECT df."loop"('SELECT 1', NULL, NULL);

-- The setvar guard: a helper's result is not a step (SPEC §8 "Guard"),
-- also when it reaches df.if through ?> and !>.
SELECT df.setvar('regress_dsl_var', '1') ~> 'SELECT 1';
SELECT df.seq('SELECT 1', df.unsetvar('regress_dsl_var'));
SELECT df.setvar('regress_dsl_var', '1') ?> 'SELECT 1' !> 'SELECT 2';
SELECT df."loop"(df.clearvars());
SELECT df.sql(df.setvar('regress_dsl_var', '1')) AS sql_takes_text_as_is;
SELECT df.clearvars();
