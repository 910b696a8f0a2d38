-- df.explain (SPEC §16): dry runs of DSL text, graph JSON and SQL, the texts
-- it returns instead of raising, and instance mode with status markers.
-- Quiet, so the output is the same whether or not an earlier file created it.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_durable;
RESET client_min_messages;

-- One row per line, '|' after each so the padding to the longest line + 4
-- characters shows.
CREATE FUNCTION regress_explain_lines(input text) RETURNS TABLE(line text)
    LANGUAGE sql AS $$
    SELECT l.line || '|' FROM regexp_split_to_table(df.explain(input), E'\n') WITH ORDINALITY AS l(line, n)
     ORDER BY l.n
$$;

-- The acceptance example: operators applied left to right.
SELECT * FROM regress_explain_lines($$'SELECT 1' |=> 'a' ~> df.sleep(5) ~> ('SELECT $a > 0' ?> 'SELECT 1' !> 'SELECT 2')$$);

-- Every node type's label; THEN chains flattened, JOIN/RACE branches.
SELECT * FROM regress_explain_lines($$
    df.wait_for_schedule('0 3 * * *', 'Europe/Berlin')
    ~> df.join3('SELECT 1' |=> 'one', df.sleep(10) ~> 'SELECT 2', df.wait_for_signal('go', 60) |=> 'sig')
    ~> df.race('SELECT pg_sleep(1)', df.sleep(30)) |=> 'ignored_on_then'
    ~> (df."loop"('SELECT 1' ~> df."if"('SELECT $n > 3', df."break"('a break value longer than twenty'), 'SELECT 0'),
                  'SELECT true', 100) |=> 'l')
    ~> df.if_rows('one', @> df."break"(), 'SELECT ''none''')
$$);

-- A compound node that is not the last branch keeps the vertical line.
SELECT * FROM regress_explain_lines($$df."join"(df."loop"('SELECT 1', 'SELECT 0'), 'SELECT 2')$$);

-- Plain SQL is one node; long text is cut at 50 characters, newlines and tabs
-- show as spaces, lengths count characters.
SELECT * FROM regress_explain_lines('  SELECT 1  ');
SELECT * FROM regress_explain_lines(E'select *\n\tfrom pg_class where relname = ''ééééééééééééééééééééééééééééééééééé''');
SELECT * FROM regress_explain_lines(E'WITH\nx AS (SELECT 1) SELECT * FROM x');

-- Graph JSON is previewed as is.
SELECT * FROM regress_explain_lines('{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},"right_node":{"node_type":"SLEEP","query":"2"}}');

-- Returned, not raised.
SELECT df.explain('hello world');
SELECT df.explain('{"a": 1}');
SELECT df.explain($$df.getvar('regress_explain_no_such_var')$$);
SELECT df.explain($$df.no_such_function('x')$$);
SELECT df.explain($$df.sleep(-1)$$);
SELECT df.explain($$df.sql('SELECT 1'); CREATE TABLE regress_explain_injected ()$$);
SELECT to_regclass('regress_explain_injected') IS NULL AS second_statement_never_ran;
SELECT df.explain($$'plain text' || 'df.'$$);
SELECT df.explain('{"node_type":"NOPE"}');
SELECT df.explain('{"node_type":"THEN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"X"}}');
SELECT df.explain('{"node_type":"IF","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"condition_node":"SELECT 1"}');
SELECT df.explain(NULL) IS NULL AS strict;

-- A dry run has no side effects: what the expression did is rolled back.
SELECT df.explain($$df.sql(df.setvar('regress_explain_var', 'set during explain'))$$) IS NOT NULL AS explained;
SELECT df.getvar('regress_explain_var') IS NULL AS nothing_left_behind;

-- Too deep to start, so too deep to explain.
DO $$
DECLARE
    g text := 'SELECT 0';
BEGIN
    FOR i IN 1..257 LOOP
        g := g ~> 'SELECT 1';
    END LOOP;
    RAISE NOTICE '%', regexp_replace(df.explain(g), '(\.left)+', '.left…');
END
$$;

-- Instance mode. Instances stay pending here: no daemon runs.
CREATE ROLE regress_explain_alice LOGIN;
CREATE ROLE regress_explain_bob LOGIN;
SELECT df.grant_usage('regress_explain_alice');
SELECT df.grant_usage('regress_explain_bob');

SET ROLE regress_explain_alice;
SELECT df.start(df."join"('SELECT 1', 'SELECT 2') ~> 'SELECT 3 AS n', 'regress-explain-demo') AS id \gset
SELECT replace(line, :'id', '<id>') AS line FROM regress_explain_lines(:'id');
SELECT df.start('SELECT 1') AS unlabelled \gset
SELECT replace(line, :'unlabelled', '<id>') AS line FROM regress_explain_lines(:'unlabelled');
-- Upper-case hex is an instance id too, and ids are lower-case: never found.
SELECT df.explain('ABCDEF01') = 'Instance ''ABCDEF01'' not found' AS upper_case_not_found;

-- Others' instances are invisible.
SET ROLE regress_explain_bob;
SELECT replace(df.explain(:'id'), :'id', '<id>') AS explain_as_bob;
RESET ROLE;
SELECT df.explain('00000000');

-- The daemon's bookkeeping, faked: one marker per node status, and the
-- header's output.
UPDATE df.nodes n SET status = CASE WHEN n.query = 'SELECT 1' THEN 'completed'
                                    WHEN n.query = 'SELECT 2' THEN 'failed'
                                    WHEN n.query = 'SELECT 3 AS n' THEN 'cancelled'
                                    WHEN n.node_type = 'JOIN' THEN 'running'
                                    ELSE n.status END
 WHERE n.instance_id = :'id';
UPDATE df.instances SET status = 'failed', error = 'JOIN branch 2 failed: SQL execution failed: division by zero'
 WHERE id = :'id';
SET ROLE regress_explain_alice;
SELECT replace(line, :'id', '<id>') AS line FROM regress_explain_lines(:'id');
RESET ROLE;

UPDATE df.nodes SET status = 'completed' WHERE instance_id = :'id';
UPDATE df.nodes n SET result = '{"rows":[{"n":3}],"row_count":1}'
  FROM df.instances i WHERE i.id = :'id' AND n.instance_id = i.id AND n.id = i.root_node;
UPDATE df.instances SET status = 'completed', error = NULL WHERE id = :'id';
SELECT replace(line, :'id', '<id>') AS line FROM regress_explain_lines(:'id');

UPDATE df.instances SET status = 'cancelled', error = repeat('x', 61) WHERE id = :'id';
SELECT replace(line, :'id', '<id>') AS line FROM regress_explain_lines(:'id');

UPDATE df.instances SET status = 'running', error = NULL WHERE id = :'unlabelled';
SELECT replace(line, :'unlabelled', '<id>') AS line FROM regress_explain_lines(:'unlabelled');

DELETE FROM df.nodes WHERE instance_id = :'unlabelled';
SELECT replace(df.explain(:'unlabelled'), :'unlabelled', '<id>') AS no_nodes;

DELETE FROM df.instances WHERE id IN (:'id', :'unlabelled');
SELECT df.revoke_usage('regress_explain_alice');
SELECT df.revoke_usage('regress_explain_bob');
DROP ROLE regress_explain_alice;
DROP ROLE regress_explain_bob;
DROP FUNCTION regress_explain_lines(text);
