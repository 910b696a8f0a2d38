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
#      (track_functions = all, pg_stat_user_functions), and the calling
#      backend's CPU time per call (/proc/self/schedstat: robust to a loaded
#      machine, where waiting for a CPU inflates the server time)
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
# Environment: PGD_STEP_SECONDS (10) per pgbench run, PGD_STEP_CPU_CALLS (2000),
# PGD_STEP_AB=<another pg_durable.so> (an A/B of the installed build and that
# one in this cluster, PGD_STEP_AB_ROUNDS (4) rounds; see below; under the
# install lock), PGD_STEP_COUNTING=off
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
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# A/B of two builds in this one cluster: the installed pg_durable.so (A) and
# PGD_STEP_AB (B) take turns, the server restarted between phases (the
# library is preloaded, so a phase's backends all run one build), ABAB...
# PGD_STEP_AB_ROUNDS times. Each phase: 300 warm-up calls, then
# PGD_STEP_SECONDS of pgbench and the server time per call of df._run_step,
# then PGD_STEP_CPU_CALLS calls from psql and the backend's CPU time per call
# (see 2b below). Phases minutes apart on a shared machine differ more than
# two builds do; alternating in short phases lets the drift hit both alike.
# It overwrites the installed library (restored to A at the end): run it
# under the install lock. Then exits.
if [ -n "${PGD_STEP_AB:-}" ]; then
  [ -f "$PGD_STEP_AB" ] || die "PGD_STEP_AB=$PGD_STEP_AB: no such file"
  installed="$PKGLIBDIR/pg_durable.so"
  cp "$installed" "$DIR/a.so"
  cp "$PGD_STEP_AB" "$DIR/b.so"
  trap 'rc=$?; cp "$DIR/a.so" "$installed"; (exit "$rc"); bench_cleanup' EXIT
  CPU_CALLS="${PGD_STEP_CPU_CALLS:-1000}"
  {
    echo "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS cpu0 \\gset"
    for i in $(seq "$CPU_CALLS"); do
      echo "SELECT df._run_step('bench-secret', b.instance_id, b.instance_id || '::1::' || :'tag' || '$i', b.node_id, 1, 'SELECT 1', 1, NULL) FROM bench_steps b WHERE b.k = $(( i % 200 + 1 )) \\g /dev/null"
    done
    echo "SELECT round((split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :cpu0) / 1000.0 / $CPU_CALLS, 1)"
  } >"$DIR/cpu.sql"
  echo
  echo "A = $(md5sum <"$DIR/a.so" | cut -c1-8) (installed), B = $(md5sum <"$DIR/b.so" | cut -c1-8) ($PGD_STEP_AB)"
  printf '%-6s %-8s %-14s %12s %14s %12s %10s
' round build "load avg" "calls/s" "server µs/call" "self µs" "CPU µs"
  for round in $(seq "${PGD_STEP_AB_ROUNDS:-4}"); do
    for build in a b; do
      as_pg "$BINDIR/pg_ctl" -D "$DATA" -w -t 60 -m fast stop >/dev/null
      cp "$DIR/$build.so" "$installed"
      as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 start >/dev/null
      "$PGBENCH" -h "$DIR" -p "$PORT" -U "$SUPERUSER" -n -c 1 -t 300 -f "$DIR/step.sql" postgres >/dev/null 2>&1
      psql_su -c "SELECT pg_stat_reset()" >/dev/null
      read -r s_tps _ < <(pgb "$DIR/step.sql")
      sleep 0.6
      read -r calls total self < <(val "SELECT calls, total_time, self_time FROM pg_stat_user_functions WHERE funcname = '_run_step'" | tr '|' ' ')
      cpu="$(psql_su -At -v tag="$round$build" -f "$DIR/cpu.sql" | tail -n1)"
      printf '%-6s %-8s %-14s %12s %14.1f %12.1f %10s
' "$round" "$(echo "$build" | tr ab AB)" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$s_tps" "$(echo "$total * 1000 / $calls" | bc -l)" \
        "$(echo "$self * 1000 / $calls" | bc -l)" "$cpu"
    done
  done
  read -r b_tps b_lat < <(pgb "$DIR/insert.sql")
  echo "1-client pgbench insert commit at the end: ${b_tps} commits/s (${b_lat} ms)"
  exit 0
fi

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

# 2b. CPU time per call of the backend running them (the first field of its
# /proc/self/schedstat, read through pg_read_file): time on a CPU only, so
# waiting for a CPU on a loaded machine does not count, as it does in the
# server time above. One psql session, each call its own statement and commit.
CPU_CALLS="${PGD_STEP_CPU_CALLS:-2000}"
{
  echo "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS cpu0 \\gset"
  for i in $(seq "$CPU_CALLS"); do
    echo "SELECT df._run_step('bench-secret', b.instance_id, b.instance_id || '::1::cpu$i', b.node_id, 1, 'SELECT 1', 1, NULL) FROM bench_steps b WHERE b.k = $(( i % 200 + 1 )) \\g /dev/null"
  done
  echo "SELECT round((split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :cpu0) / 1000.0 / $CPU_CALLS, 1)"
} >"$DIR/cpu.sql"
cpu_us="$(psql_su -At -f "$DIR/cpu.sql" | tail -n1)"
echo
echo "backend CPU time per call (schedstat, $CPU_CALLS calls from psql, statement and commit included): ${cpu_us} µs"

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
-- The call committed, so its records are flushed; pg_walinspect reads no
-- further than the flush pointer (the insert pointer may be past it).
SELECT pg_current_wal_flush_lsn() AS lsn1 \gset
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
  read -r c_tps c_lat < <(pgb "$DIR/insert.sql")
  echo
  echo "200-step chain run by the daemon (the measured one; created_at to completed_at of the instance):" \
    "$(val "SELECT round(extract(epoch FROM completed_at - created_at) * 1000, 1) || ' ms, '
                   || round(extract(epoch FROM completed_at - created_at) * 1000 / 200, 3) || ' ms per step'
              FROM df.instances WHERE id = '$id'"); 1-client pgbench insert commit after it: ${c_lat} ms"
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
