-- Diagnostic baseline: the same tiny write plus a NOTIFY in the transaction,
-- as df.start does. PostgreSQL serialises notifying commits (a global lock,
-- held through the commit's WAL flush), so this shows the ceiling NOTIFY puts
-- on instance starts, whatever the engine does.
BEGIN;
INSERT INTO bench_t VALUES (1);
NOTIFY bench_notify;
COMMIT;
