-- df.explain (SPEC §16): runs with the caller's privileges, so it shows only
-- instances the caller can see and evaluates DSL text as the caller.
CREATE FUNCTION df.explain(input text) RETURNS text
    LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'df_explain';
