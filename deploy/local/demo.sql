-- pg_durable demo, run by `make run` as the demo role durable_demo (a plain
-- LOGIN role with df.grant_usage and privileges on the playground schema).
-- Run it again any time:  PGD_ROLE=durable_demo bash deploy/local/psql.sh < deploy/local/demo.sql
-- psql variable demo_timeout (seconds to wait for the instance, default 20).
\if :{?demo_timeout}
\else
\set demo_timeout 20
\endif
\set QUIET on
\pset footer off

SELECT current_user AS "running as", df.version() AS "pg_durable";

\echo
\echo '== 1. df.explain of a workflow (dry run, nothing is started) =='
\echo '   ''SELECT 1'' |=> ''a'' ~> df.sleep(5) ~> (''SELECT $a > 0'' ?> ''SELECT 1'' !> ''SELECT 2'')'
\pset format unaligned
\pset tuples_only on
SELECT df.explain('SELECT 1' |=> 'a' ~> df.sleep(5) ~> ('SELECT $a > 0' ?> 'SELECT 1' !> 'SELECT 2'));
\pset tuples_only off
\pset format aligned

\echo
\echo '== 2. df.start: a one-step workflow, labelled demo =='
SELECT df.start('SELECT count(*) AS users FROM playground.users', 'demo') AS id \gset
SELECT :'id' AS instance_id, df.status(:'id') AS status;

-- ==========================================================================
-- WORKFLOW RESULT -- milestone "engine": this part shows the outcome once the
-- daemon executes workflows. It waits up to :demo_timeout seconds with
-- df.await_instance, then prints df.result. Without a working daemon it says
-- the instance is still pending instead of failing (it starts as soon as a
-- daemon attaches; see docs/OPERATIONS.md, Troubleshooting).
-- ==========================================================================
\echo
\echo '== 3. waiting for the daemon to run it (df.await_instance, up to' :demo_timeout 's) =='
SELECT set_config('pg_durable_demo.id', :'id', false),
       set_config('pg_durable_demo.timeout', :'demo_timeout', false) \g /dev/null
DO $$
DECLARE
    v_id      text := current_setting('pg_durable_demo.id');
    v_timeout int  := current_setting('pg_durable_demo.timeout')::int;
    v_status  text;
BEGIN
    v_status := df.await_instance(v_id, v_timeout);
    RAISE NOTICE 'instance % finished: %', v_id, v_status;
EXCEPTION
    WHEN undefined_function THEN
        RAISE NOTICE 'df.await_instance is not in this build yet; instance % is %',
            v_id, df.status(v_id);
    WHEN others THEN
        IF SQLERRM LIKE 'Timeout after%' THEN
            RAISE NOTICE 'instance % is still % after % s: no daemon has run it yet (it will start once one attaches)',
                v_id, df.status(v_id), v_timeout;
        ELSE
            RAISE;
        END IF;
END
$$;
SELECT df.status(:'id') AS status, df.result(:'id') AS result;
