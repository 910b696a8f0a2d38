#!/usr/bin/env bash
# bench/step_cost.sh — the server-side cost of one SQL step, without a daemon
# (issue 12: the step function's own cost). One throw-away cluster
# (bench/lib_cluster.sh); it plays the daemon's part itself: it writes a
# daemon secret and calls df._run_step from pgbench, one client, each call a
# new activation (a fresh stamp) of one of 200 one-step instances submitted by
# a non-superuser, the step's SQL `SELECT 1`, in autocommit (one commit per
# call, as the daemon does). Prints, each against a 1-client pgbench commit
# measured just before and after:
#   1. calls/s and the mean latency of df._run_step (its commit included)
#   2. server time per call of df._run_step and the functions it calls
#      (track_functions = all, pg_stat_user_functions)
#   3. the WAL records of one call (pg_walinspect, between the LSNs around
#      it, after warm-up calls so that no full-page image of a page first
#      touched since the last checkpoint is counted... unless it is one)
#   4. with --chain: the daemon runs one chain of 200 `SELECT 1` steps; the
#      WAL of the whole chain per step, by record type (pg_get_wal_stats),
#      with and without full-page images
#   5. with --metrics: df.metrics() and df_monitor.operator_metrics() with
#      PGD_STEP_HISTORY (100000) instances loaded (bench_load_history), 50
#      calls each: p50 / p95 / max
#
#   bash bench/step_cost.sh [--chain] [--metrics]
# Environment: PGD_STEP_SECONDS (10) per pgbench run, PGD_STEP_COUNTING=off
# (the instance counters' triggers disabled: their cost is the difference), PGD_STEP_PERF=1 (a
# flat perf profile of the calling backend), PGD_KEEP_BENCH=1, PGD_BENCH_PORT.
set -euo pipefail
BENCH_NAME=step_cost
BENCH_CONF="track_functions = all
max_wal_size = '4GB'
checkpoint_timeout = '30min'"
# shellcheck source=bench/lib_cluster.sh
. "$(dirname "$0")/lib_cluster.sh"

METRICS=0
CHAIN=0
for arg in "$@"; do
  case "$arg" in
    --metrics) METRICS=1 ;;
    --chain) CHAIN=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
SECS="${PGD_STEP_SECONDS:-10}"

bench_cluster_start
PGBENCH="$BINDIR/pgbench"

psql_su <<'SQL'
CREATE EXTENSION pg_walinspect;
CREATE TABLE bench_t (x int);
CREATE ROLE bench_user LOGIN;
SELECT df.grant_usage('bench_user') \g /dev/null
INSERT INTO df._daemon_secret (secret) VALUES ('bench-secret');
SQL
# 200 one-step instances, started as bench_user; no daemon, so they stay pending.
psql_su -c "SET ROLE bench_user; SELECT count(df.start('SELECT 1')) FROM generate_series(1, 200);" >/dev/null
psql_su <<'SQL'
CREATE TABLE bench_steps AS
SELECT row_number() OVER (ORDER BY i.id)::int AS k, i.id AS instance_id, i.root_node AS node_id
  FROM df.instances i;
ANALYZE bench_steps;
SQL

if [ "${PGD_STEP_COUNTING:-on}" = off ]; then
  say "instance counting triggers disabled"
  psql_su -At <<'SQL' >/dev/null
SELECT format('ALTER TABLE %s DISABLE TRIGGER %I', t.tgrelid::regclass, t.tgname)
  FROM pg_trigger t WHERE t.tgfoid = 'df._count_instances()'::regprocedure
\gexec
SQL
fi

cat >"$DIR/insert.sql" <<'EOF'
INSERT INTO bench_t VALUES (1);
EOF
cat >"$DIR/step.sql" <<'EOF'
\set k random(1, 200)
\set s random(1, 1000000000000000)
SELECT df._run_step('bench-secret', b.instance_id, b.instance_id || '::1::x' || :s, b.node_id, 1, 'SELECT 1', 1, NULL) FROM bench_steps b WHERE b.k = :k;
EOF

pgb() {  # $1 = script; prints "tps latency_ms"
  "$PGBENCH" -h "$DIR" -p "$PORT" -U "$SUPERUSER" -n -c 1 -T "$SECS" -f "$1" postgres 2>&1 |
    awk '/^latency average/ {lat=$4} /^tps/ {tps=$3} END {printf "%.0f %.3f\n", tps, lat}'
}

say "warm-up"
"$PGBENCH" -h "$DIR" -p "$PORT" -U "$SUPERUSER" -n -c 1 -t 2000 -f "$DIR/step.sql" postgres >/dev/null 2>&1
psql_su -c "CHECKPOINT" >/dev/null
"$PGBENCH" -h "$DIR" -p "$PORT" -U "$SUPERUSER" -n -c 1 -t 500 -f "$DIR/step.sql" postgres >/dev/null 2>&1

read -r b1_tps b1_lat < <(pgb "$DIR/insert.sql")
psql_su -c "SELECT pg_stat_reset()" >/dev/null
read -r s_tps s_lat < <(pgb "$DIR/step.sql")
sleep 0.6  # the stats collector's flush
psql_su -At -F ' ' -c "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions WHERE calls > 0" >"$DIR/funcs.txt"
read -r b2_tps b2_lat < <(pgb "$DIR/insert.sql")

echo
echo "1-client pgbench insert commit: before ${b1_tps} commits/s (${b1_lat} ms), after ${b2_tps} commits/s (${b2_lat} ms)"
echo "df._run_step, 1 client: ${s_tps} calls/s (${s_lat} ms per call, commit included)"
echo
echo "server time per call (track_functions = all):"
printf '  %-26s %8s %10s %10s\n' function calls "total µs" "self µs"
while read -r name calls total self; do
  awk -v n="$name" -v c="$calls" -v t="$total" -v s="$self" \
    'BEGIN { printf "  %-26s %8d %10.1f %10.1f\n", n, c, t * 1000 / c, s * 1000 / c }'
done <"$DIR/funcs.txt"

# Optional: a flat perf profile of the backend running the calls.
if [ "${PGD_STEP_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
  "$PGBENCH" -h "$DIR" -p "$PORT" -U "$SUPERUSER" -n -c 1 -T 8 -f "$DIR/step.sql" postgres >/dev/null 2>&1 &
  pgb_pid=$!
  sleep 1
  backend="$(val "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'")"
  perf record -q -o "$DIR/perf.data" -p "$backend" -- sleep 5 >/dev/null 2>&1 || true
  wait "$pgb_pid" || true
  echo
  echo "perf, the backend running df._run_step (top symbols, self %):"
  { perf report -q -i "$DIR/perf.data" --no-children --sort dso,symbol 2>/dev/null || true; } |
    sed -n '1,30s/^/  /p'
fi

# 3. One call's WAL records.
psql_su -At <<'SQL' >"$DIR/wal.txt"
SELECT b.instance_id, b.node_id FROM bench_steps b WHERE b.k = 7 \gset
SELECT pg_current_wal_insert_lsn() AS lsn0 \gset
SELECT df._run_step('bench-secret', :'instance_id', :'instance_id' || '::1::wal', :'node_id', 1, 'SELECT 1', 1, NULL) \g /dev/null
SELECT pg_current_wal_insert_lsn() AS lsn1 \gset
SELECT format('  %-12s %-14s %-32s %6s %6s', w.resource_manager, w.record_type,
              (SELECT string_agg(COALESCE(c.relname::text, m[1]), ',')
                 FROM regexp_matches(w.block_ref, 'rel [0-9]+/[0-9]+/([0-9]+)', 'g') m
                 LEFT JOIN pg_class c ON c.relfilenode = m[1]::oid),
              w.record_length, w.fpi_length)
  FROM pg_get_wal_records_info(:'lsn0', :'lsn1') w
 ORDER BY w.start_lsn;
SELECT format('  total: %s records, %s bytes (%s of them full-page images)', count(*), sum(record_length),
              sum(fpi_length))
  FROM pg_get_wal_records_info(:'lsn0', :'lsn1');
SQL
echo
echo "WAL records of one call (rmgr, type, relation, length, fpi length):"
cat "$DIR/wal.txt"

if [ "$CHAIN" = 1 ]; then
  # The daemon must not pick up the instances the calls above ran steps of
  # by hand (their stamps are this script's own).
  psql_su -c "DELETE FROM df.instances" >/dev/null
  bench_daemon_start
  psql_su <<'SQL'
CREATE FUNCTION bench_chain_graph(n int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  g text := 'SELECT 1';
BEGIN
  FOR i IN 2..n LOOP
    g := g ~> 'SELECT 1';
  END LOOP;
  RETURN g;
END $$;
SQL
  # A first chain warms the step connection; the second is measured.
  for round in warm measured; do
    lsn0="$(val "SELECT pg_current_wal_flush_lsn()")"
    id="$(psql_su -At -c "SET ROLE bench_user; SELECT df.start(bench_chain_graph(200));" | tail -n1)"
    for _ in $(seq 600); do
      [ "$(val "SELECT status FROM df.instances WHERE id = '$id'")" = completed ] && break
      sleep 0.1
    done
    [ "$(val "SELECT status FROM df.instances WHERE id = '$id'")" = completed ] || die "chain $id did not complete"
    lsn1="$(val "SELECT pg_current_wal_flush_lsn()")"  # every commit of the chain is flushed
  done
  echo
  echo "WAL of a 200-step chain run by the daemon, per step (df.start and the daemon's own writes included):"
  psql_su -At <<SQL
SELECT format('  %-24s %7s records %8s bytes %8s fpi bytes', s."resource_manager/record_type",
              round(s.count / 200.0, 2), round(s.record_size / 200.0 + s.fpi_size / 200.0, 0),
              round(s.fpi_size / 200.0, 0))
  FROM pg_get_wal_stats('$lsn0', '$lsn1', true) s
 WHERE s.count > 0
 ORDER BY s.record_size + s.fpi_size DESC;
SELECT format('  %-24s %-28s %7s records %8s bytes', w.resource_manager || '/' || w.record_type, w.rel,
              round(count(*) / 200.0, 2), round(sum(w.record_length) / 200.0, 0))
  FROM (SELECT r.resource_manager, r.record_type, r.record_length,
               COALESCE((SELECT string_agg(COALESCE(c.relname::text, m[1]), ',')
                           FROM regexp_matches(r.block_ref, 'rel [0-9]+/[0-9]+/([0-9]+)', 'g') m
                           LEFT JOIN pg_class c ON c.relfilenode = m[1]::oid), '') AS rel
          FROM pg_get_wal_records_info('$lsn0', '$lsn1') r) w
 GROUP BY w.resource_manager, w.record_type, w.rel
HAVING count(*) >= 100
 ORDER BY sum(w.record_length) DESC;
SELECT format('  total: %s records, %s bytes per step (%s of them full-page images)', round(sum(s.count) / 200.0, 2),
              round(sum(s.record_size + s.fpi_size) / 200.0, 0), round(sum(s.fpi_size) / 200.0, 0))
  FROM pg_get_wal_stats('$lsn0', '$lsn1', true) s;
SQL
fi

if [ "$METRICS" = 1 ]; then
  N="${PGD_STEP_HISTORY:-100000}"
  say "loading $N instances"
  bench_load_history "$N" bench_user >/dev/null
  psql_su -c "CREATE ROLE bench_watch LOGIN IN ROLE pg_monitor" >/dev/null
  for fn in "df.metrics()" "df_monitor.operator_metrics()"; do
    psql_su -At <<SQL
CREATE TEMP TABLE t (ms float8);
DO \$\$
DECLARE t0 timestamptz; i int;
BEGIN
  FOR i IN 1..55 LOOP
    t0 := clock_timestamp();
    PERFORM * FROM $fn;
    IF i > 5 THEN INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000); END IF;
  END LOOP;
END
\$\$;
SELECT format('$fn with $N instances: p50 %s ms, p95 %s ms, max %s ms',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2))
  FROM t;
SQL
  done
  echo "where df.metrics() spends its time (EXPLAIN ANALYZE of its body):"
  # The function's own body from the catalog, so this never drifts from it.
  psql_su -At <<'SQL' | sed 's/^/  /'
SELECT 'EXPLAIN (ANALYZE, COSTS OFF) ' || prosrc FROM pg_catalog.pg_proc WHERE oid = 'df.metrics()'::regprocedure
\gexec
SQL
fi
