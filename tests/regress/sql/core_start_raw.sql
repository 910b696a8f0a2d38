-- df.start with raw graph JSON: every leaf configuration meets the checks the
-- DSL functions make, with their texts, under the node's path (SPEC §6, §8,
-- §10.8, §14). Such graphs used to reach the daemon and crash it.
CREATE EXTENSION IF NOT EXISTS pg_durable;

CREATE ROLE regress_raw LOGIN;
SELECT df.grant_usage('regress_raw');
SET ROLE regress_raw;

-- As the ERROR a user sees.
SELECT df.start('{"node_type":"SLEEP","query":"x"}');
SELECT df.start('{"node_type":"SIGNAL","query":"{\"signal_name\":null}"}');

-- The same and the other shapes with their SQLSTATE.
CREATE FUNCTION pg_temp.start_error(fut text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM df.start(fut);
    RETURN 'started';
EXCEPTION WHEN others THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

SELECT shape, pg_temp.start_error(fut) AS error FROM (VALUES
    ('sleep not a number',       '{"node_type":"SLEEP","query":"x"}'),
    ('sleep beyond bigint',      '{"node_type":"SLEEP","query":"99999999999999999999999"}'),
    ('sleep negative',           '{"node_type":"SLEEP","query":"-5"}'),
    ('sleep with spaces',        '{"node_type":"SLEEP","query":" 5"}'),
    ('sleep without query',      '{"node_type":"SLEEP"}'),
    ('signal null name',         '{"node_type":"SIGNAL","query":"{\"signal_name\":null}"}'),
    ('signal empty config',      '{"node_type":"SIGNAL","query":"{}"}'),
    ('signal blank name',        '{"node_type":"SIGNAL","query":"{\"signal_name\":\" \"}"}'),
    ('signal numeric name',      '{"node_type":"SIGNAL","query":"{\"signal_name\":7}"}'),
    ('signal zero timeout',      '{"node_type":"SIGNAL","query":"{\"signal_name\":\"a\",\"timeout_seconds\":0}"}'),
    ('signal text timeout',      '{"node_type":"SIGNAL","query":"{\"signal_name\":\"a\",\"timeout_seconds\":\"5\"}"}'),
    ('signal huge timeout',      '{"node_type":"SIGNAL","query":"{\"signal_name\":\"a\",\"timeout_seconds\":2147483648}"}'),
    ('signal config not json',   '{"node_type":"SIGNAL","query":"approve"}'),
    ('signal config an array',   '{"node_type":"SIGNAL","query":"[]"}'),
    ('signal without query',     '{"node_type":"SIGNAL"}'),
    ('cron numeric expression',  '{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":5}"}'),
    ('cron missing expression',  '{"node_type":"WAIT_SCHEDULE","query":"{}"}'),
    ('cron bad field',           '{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"61 * * * *\"}"}'),
    ('cron never matches',       '{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"0 0 30 2 *\"}"}'),
    ('cron unknown zone',        '{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"* * * * *\",\"timezone\":\"Mars/Olympus\"}"}'),
    ('cron numeric zone',        '{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"* * * * *\",\"timezone\":1}"}'),
    ('http without url',         '{"node_type":"HTTP","query":"{}"}'),
    ('http ftp url',             '{"node_type":"HTTP","query":"{\"url\":\"ftp://x\"}"}'),
    ('http bad method',          '{"node_type":"HTTP","query":"{\"url\":\"http://x\",\"method\":\"FETCH\"}"}'),
    ('http lower-case method',   '{"node_type":"HTTP","query":"{\"url\":\"http://x\",\"method\":\"get\"}"}'),
    ('http zero timeout',        '{"node_type":"HTTP","query":"{\"url\":\"http://x\",\"timeout_seconds\":0}"}'),
    ('http headers an array',    '{"node_type":"HTTP","query":"{\"url\":\"http://x\",\"headers\":[]}"}'),
    ('http body an object',      '{"node_type":"HTTP","query":"{\"url\":\"http://x\",\"body\":{}}"}'),
    ('break numeric value',      '{"node_type":"BREAK","query":"{\"break_value\":5}"}'),
    ('loop negative interval',   '{"node_type":"LOOP","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"min_interval_ms\":-1}"}'),
    ('loop text interval',       '{"node_type":"LOOP","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"min_interval_ms\":\"5\"}"}'),
    ('loop config an array',     '{"node_type":"LOOP","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"[1]"}'),
    ('deep in a graph',          '{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"RACE","left_node":{"node_type":"SQL","query":"SELECT 2"},"right_node":{"node_type":"SLEEP","query":"-1"}}}')
) AS shapes(shape, fut);

-- Composers pass a raw step through; df.start still refuses it.
SELECT pg_temp.start_error('SELECT 1' ~> '{"node_type":"SIGNAL","query":"{}"}') AS composed;
-- df.explain materialises the same way.
SELECT df.explain('{"node_type":"SLEEP","query":"x"}');

-- What the DSL writes passes, and so does the same raw text; long sleeps are
-- valid (the daemon bounds the timer).
SELECT shape, pg_temp.start_error(fut) AS error FROM (VALUES
    ('dsl sleep',                df.sleep(5)),
    ('dsl huge sleep',           df.sleep(1000000000000)),
    ('raw sleep',                '{"node_type":"SLEEP","query":"9223372036854775807"}'),
    ('dsl signal',               df.wait_for_signal('go', 60)),
    ('raw signal',               '{"node_type":"SIGNAL","query":"{\"signal_name\":\"go\"}"}'),
    ('dsl schedule',             df.wait_for_schedule('0 9 * * 1-5', 'Europe/Berlin')),
    ('dsl break in loop',        df."loop"(df."break"('done'), NULL, 0)),
    ('raw http defaults',        '{"node_type":"HTTP","query":"{\"url\":\"https://example.com\"}"}'),
    ('raw templated url',        '{"node_type":"HTTP","query":"{\"url\":\"{base}/hook\",\"method\":\"GET\"}"}')
) AS shapes(shape, fut);

DROP FUNCTION pg_temp.start_error(text);
RESET ROLE;
DELETE FROM df.instances WHERE submitted_by = 'regress_raw'::regrole;
SELECT df.revoke_usage('regress_raw');
DROP ROLE regress_raw;
