-- df.start_once (SPEC §19.2): the idempotency key of an instance, one per
-- (role, key), and the function. Mirrors sql/parts/10_schema.sql and
-- sql/parts/30_core.sql.
ALTER TABLE df.instances ADD COLUMN idempotency_key text CONSTRAINT instances_idempotency_key_valid
    CHECK (idempotency_key <> '' AND pg_catalog.char_length(idempotency_key) <= 200);
CREATE UNIQUE INDEX instances_idempotency_key_idx ON df.instances (submitted_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE FUNCTION df.start_once(idempotency_key text, fut text, label text DEFAULT NULL, database text DEFAULT NULL)
    RETURNS text
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'df_start_once';
