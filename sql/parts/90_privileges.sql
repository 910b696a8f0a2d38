-- Functions that stay closed to PUBLIC (SPEC §5); df.grant_usage opens them.
-- Runs last so every function exists. df.http and df.metrics arrive with
-- their milestones; revoke what exists.
DO $revoke$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['df.http(text,text,text,jsonb,integer)', 'df.metrics()',
                              'df.grant_usage(text,boolean,boolean)', 'df.revoke_usage(text)'] LOOP
        IF to_regprocedure(fn) IS NOT NULL THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        END IF;
    END LOOP;
END
$revoke$;
