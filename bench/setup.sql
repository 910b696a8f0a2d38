-- bench/setup.sql: objects of the benchmark database (run by bench/run.sh as
-- the cluster superuser, after CREATE EXTENSION pg_durable).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- Baseline: pgbench's tiny write transaction (bench/pgbench_insert.sql).
CREATE TABLE bench_t (x int);

-- Dispatch latency and throughput: the step writes the time it started.
CREATE TABLE bench_lat (id text PRIMARY KEY, started timestamptz NOT NULL);
-- Sequential chain: every step appends the time it ran.
CREATE TABLE bench_chain (id text NOT NULL, ts timestamptz NOT NULL);

-- The submitting role: steps run as it (superuser instances are off).
CREATE ROLE bench LOGIN;
SELECT df.grant_usage('bench') \g /dev/null
GRANT SELECT, INSERT ON bench_t, bench_lat, bench_chain TO bench;

-- bench_wait(id, t0): waits until the step of instance `id` has committed its
-- row in bench_lat and returns (step start - t0) in milliseconds. Called as
-- SELECT bench_wait(:'id', clock_timestamp()) right after df.start's COMMIT
-- returned, so t0 is the submitter's "commit done" time. Each SELECT in the
-- loop takes a fresh snapshot (READ COMMITTED, volatile function).
CREATE FUNCTION bench_wait(p_id text, t0 timestamptz, timeout_s float8 DEFAULT 60)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  s timestamptz;
  deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
BEGIN
  LOOP
    SELECT started INTO s FROM bench_lat WHERE id = p_id;
    IF FOUND THEN
      RETURN extract(epoch FROM s - t0) * 1000;
    END IF;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'bench: instance % did not run its step within % s', p_id, timeout_s;
    END IF;
    PERFORM pg_sleep(0.001);
  END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION bench_wait(text, timestamptz, float8) TO bench;

-- bench_chain_graph(n): n trivial inserts chained with ~>.
CREATE FUNCTION bench_chain_graph(n int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  step constant text := 'INSERT INTO bench_chain (id, ts) VALUES (''{sys_instance_id}'', clock_timestamp())';
  g text := step;
BEGIN
  FOR i IN 2..n LOOP
    g := g ~> step;
  END LOOP;
  RETURN g;
END $$;
GRANT EXECUTE ON FUNCTION bench_chain_graph(int) TO bench;

-- Commit records in the WAL between two positions (pg_walinspect): every
-- durable commit writes one, read-only transactions none, subtransactions
-- none of their own. Exact and immediate, unlike pg_stat_database.xact_commit,
-- which backends report with a delay. Also the WAL volume.
CREATE EXTENSION pg_walinspect;
CREATE FUNCTION bench_wal_lsn() RETURNS pg_lsn LANGUAGE sql AS $$ SELECT pg_current_wal_flush_lsn() $$;
CREATE FUNCTION bench_commits(a pg_lsn, b pg_lsn, OUT commits bigint, OUT wal_bytes numeric)
LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pg_get_wal_records_info(a, b)
          WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'),
         b - a
$$;

-- Dispatch samples. bench_dispatch(run, n, warmup) starts one-step instances
-- one at a time; each df.start is committed INSIDE the procedure, and
-- clock_timestamp() right after that COMMIT returned is the sample's t0, free
-- of any client round trip. The procedure then waits (1 ms polls) until the
-- step has committed its row and keeps (id, t0, step start - t0); the samples
-- are written in one transaction at the end, so no extra commit runs while an
-- instance is in flight.
CREATE TABLE bench_dispatch (run text NOT NULL, id text NOT NULL, t0 timestamptz NOT NULL, ms float8 NOT NULL);
GRANT SELECT, INSERT ON bench_dispatch TO bench;
CREATE PROCEDURE bench_dispatch(p_run text, n int, warmup int)
LANGUAGE plpgsql AS $$
DECLARE
  v_id text;
  t0 timestamptz;
  s timestamptz;
  ids text[] := '{}';
  t0s timestamptz[] := '{}';
  mss float8[] := '{}';
  deadline timestamptz;
BEGIN
  FOR i IN 1 .. n + warmup LOOP
    v_id := df.start('INSERT INTO bench_lat (id, started) VALUES (''{sys_instance_id}'', clock_timestamp())', p_run);
    COMMIT;
    t0 := clock_timestamp();
    deadline := t0 + interval '15 s';
    LOOP
      SELECT started INTO s FROM bench_lat WHERE id = v_id;
      EXIT WHEN FOUND;
      IF clock_timestamp() > deadline THEN
        RAISE EXCEPTION 'bench: instance % did not run its step within 15 s', v_id;
      END IF;
      PERFORM pg_sleep(0.001);
    END LOOP;
    IF i > warmup THEN
      ids := ids || v_id;
      t0s := t0s || t0;
      mss := mss || extract(epoch FROM s - t0)::float8 * 1000;
    END IF;
  END LOOP;
  INSERT INTO bench_dispatch SELECT p_run, u.id, u.t0, u.ms FROM unnest(ids, t0s, mss) AS u(id, t0, ms);
END $$;
GRANT EXECUTE ON PROCEDURE bench_dispatch(text, int, int) TO bench;
