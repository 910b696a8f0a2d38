-- df.start's transaction_mode (SPEC §19.1): the 3-argument df.start of 1.0
-- becomes the 4-argument one of sql/parts/30_core.sql. CREATE OR REPLACE
-- cannot add an argument, so drop and re-create; EXECUTE stays PUBLIC's
-- (90_privileges.sql revokes nothing of df.start). The C symbol is the same
-- (df_start serves both: PG_NARGS() tells them apart).
DROP FUNCTION df.start(text, text, text);
-- transaction_mode (SPEC §19.1): 'caller' (NULL too) writes in the caller's
-- transaction; 'new' commits the start on its own (a background worker).
CREATE FUNCTION df.start(fut text, label text DEFAULT NULL, database text DEFAULT NULL,
                         transaction_mode text DEFAULT 'caller') RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_start';
