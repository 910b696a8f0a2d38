-- df.retry and df.timeout (SPEC §19.3): graph JSON with float8-printed
-- numbers, the checks and their texts, NULL arguments, raw graph JSON given to
-- df.start and df.explain (hostile parameter JSON included), and explain.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_durable;
RESET client_min_messages;

CREATE FUNCTION regress_retry_lines(input text) RETURNS TABLE(line text)
    LANGUAGE sql AS $$
    SELECT l.line || '|' FROM regexp_split_to_table(df.explain(input), E'\n') WITH ORDINALITY AS l(line, n)
     ORDER BY l.n
$$;

-- Graph JSON, defaults and given values; identical calls give identical text.
SELECT df.retry('SELECT 1', 3);
SELECT df.retry('SELECT 1', 5, 0.5, 1.5, 10);
SELECT df.retry('SELECT 1', 2, 1e-5, 1, 1e15);
SELECT df.retry('SELECT 1', 2, initial_interval_seconds => 0, max_interval_seconds => 0.25);
SELECT df.timeout('SELECT 1', 5);
SELECT df.timeout('SELECT 1', 0.25);
SELECT df.retry(df.timeout(df.sleep(1), 2), 2) |=> 'r';
SELECT df.retry('SELECT 1', 3) = df.retry('SELECT 1', 3) AS same;
-- An explicit NULL for an optional argument means its default.
SELECT df.retry('SELECT 1', 3, NULL, NULL, NULL) = df.retry('SELECT 1', 3) AS null_is_default;

-- The checks of SPEC §19.3.
SELECT df.retry('SELECT 1', 0);
SELECT df.retry('SELECT 1', 1001);
SELECT df.retry('SELECT 1', -1);
SELECT df.retry('SELECT 1', 3, -1);
SELECT df.retry('SELECT 1', 3, 'NaN');
SELECT df.retry('SELECT 1', 3, 'Infinity');
SELECT df.retry('SELECT 1', 3, 1, 0.5);
SELECT df.retry('SELECT 1', 3, 1, 'NaN');
SELECT df.retry('SELECT 1', 3, 1, 2, -1);
SELECT df.retry('SELECT 1', 3, 1, 2, '-Infinity');
SELECT df.retry('SELECT 1', 3, 1, 2, 'Infinity');
SELECT df.retry('SELECT 1', 3, 1, 2, 1e308) IS NOT NULL AS huge_max_is_fine;
SELECT df.timeout('SELECT 1', 0);
SELECT df.timeout('SELECT 1', -5);
SELECT df.timeout('SELECT 1', 'NaN');
SELECT df.timeout('SELECT 1', 'Infinity');
-- Out of the argument's SQL type.
SELECT df.retry('SELECT 1', '3000000000');
SELECT df.timeout('SELECT 1', '1e999');

-- NULL required arguments: df.retry raises, df.timeout is STRICT (SPEC §1).
SELECT df.retry(NULL, 3);
SELECT df.retry('SELECT 1', NULL);
SELECT df.timeout(NULL, 5) IS NULL AS strict_null;
SELECT df.timeout('SELECT 1', NULL) IS NULL AS strict_null;
SELECT p.oid::regprocedure, p.proisstrict, p.provolatile FROM pg_proc p
 WHERE p.pronamespace = 'df'::regnamespace AND p.proname IN ('retry', 'timeout') ORDER BY 1::text;

-- A composer's guard and a bad child.
SELECT df.retry('{"node_type":"NOPE"}', 3);

-- Raw graph JSON given to df.start meets the same checks (df.start validates
-- before anything else, so these fail whoever calls it).
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"max_attempts\":0}"}');
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{}"}');
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"max_attempts\":\"3\"}"}');
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"max_attempts\":3,\"backoff_rate\":NaN}"}');
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"max_attempts\":3,\"max_interval_seconds\":1e999}"}');
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"max_attempts\":99999999999}"}');
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"max_attempts\":3,\"initial_interval_seconds\":\"1\"}"}');
SELECT df.start('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"}}');
SELECT df.start('{"node_type":"RETRY","query":"{\"max_attempts\":3}"}');
SELECT df.start('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SQL","query":"SELECT 2"},"query":"{\"seconds\":1}"}');
SELECT df.start('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"seconds\":-1}"}');
SELECT df.start('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"seconds\":null}"}');
SELECT df.start('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"[5]"}');
SELECT df.start('{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"seconds\":0}"}}');
SELECT df.start('{"node_type":"retry"}');

-- Explain: headers, child blocks laid out like LOOP's, nesting, names.
SELECT * FROM regress_retry_lines($$df.retry('SELECT 1', 3)$$);
SELECT * FROM regress_retry_lines($$df.timeout('SELECT 1', 5) |=> 't'$$);
SELECT * FROM regress_retry_lines($$df.retry(df.timeout('SELECT a' ~> 'SELECT b', 0.25), 5, 0.5, 1.5, 10) |=> 'r' ~> 'SELECT $r'$$);
SELECT * FROM regress_retry_lines($$df.join(df.timeout('SELECT c', 1e15), df.retry(df.sleep(1), 2)) ~> df.loop(df.retry('SELECT 1', 2))$$);
SELECT * FROM regress_retry_lines('{"node_type":"TIMEOUT","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"seconds\":1.5}"}');
-- Errors are returned, not raised.
SELECT df.explain($$df.retry('SELECT 1', 0)$$);
SELECT df.explain('{"node_type":"RETRY","left_node":{"node_type":"SQL","query":"SELECT 1"},"query":"{\"max_attempts\":1,\"backoff_rate\":0}"}');
SELECT df.explain('{"node_type":"TIMEOUT","query":"{\"seconds\":1}"}');

DROP FUNCTION regress_retry_lines(text);
