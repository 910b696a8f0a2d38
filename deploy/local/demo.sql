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

-- demo_wait waits for an instance with df.await_instance and says how it
-- went; on timeout (e.g. no daemon attached: the instance stays pending and
-- starts as soon as one attaches) it says so instead of failing.
CREATE FUNCTION pg_temp.demo_wait(p_id text, p_timeout int) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN format('instance %s finished: %s', p_id, df.await_instance(p_id, p_timeout));
EXCEPTION
    WHEN undefined_function THEN
        RETURN format('df.await_instance is not in this build; instance %s is %s',
                      p_id, df.status(p_id));
    WHEN others THEN
        IF SQLERRM LIKE 'Timeout after%' THEN
            RETURN format('instance %s is still %s after %s s%s', p_id, df.status(p_id), p_timeout,
                          CASE WHEN df.status(p_id) = 'pending'
                               THEN ': no daemon has picked it up yet (see docs/OPERATIONS.md, Troubleshooting)'
                               ELSE '' END);
        END IF;
        RAISE;
END
$$;

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
-- WORKFLOW RESULTS (the daemon's engine runs them): wait up to :demo_timeout
-- seconds with df.await_instance, then show df.result / df.explain.
-- ==========================================================================
\echo
\echo '== 3. the daemon runs it: df.await_instance (up to' :demo_timeout 's), df.result =='
SELECT pg_temp.demo_wait(:'id', :demo_timeout) AS await;
SELECT df.status(:'id') AS status, df.result(:'id') AS result;

\echo
\echo '== 4. the workflow of step 1, run for real (a durable 5 s sleep, then the IF) =='
SELECT df.start('SELECT 1' |=> 'a' ~> df.sleep(5) ~> ('SELECT $a > 0' ?> 'SELECT 1' !> 'SELECT 2'),
                'demo-flow') AS flow \gset
SELECT pg_temp.demo_wait(:'flow', :demo_timeout) AS await;
\pset format unaligned
\pset tuples_only on
SELECT df.explain(:'flow');
\pset tuples_only off
\pset format aligned
