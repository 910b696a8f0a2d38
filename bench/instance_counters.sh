#!/usr/bin/env bash
# bench/instance_counters.sh — issue 12: df.metrics from the instance counters
# (df._instance_counters, docs/ARCHITECTURE.md "Instance counters"). One
# throw-away cluster (bench/lib_cluster.sh) with the daemon running.
#
#   1. What the counting triggers cost on the hot path: A/B on the same
#      cluster and binary, the counting triggers disabled (A) and enabled (B),
#      alternated PGD_COUNTERS_ROUNDS (3) times. Each phase: pgbench, 1 client,
#      PGD_COUNTERS_SECONDS (10) of `SELECT df.start('SELECT 1')` as a
#      non-superuser, then wait until the daemon has completed them all.
#      Reported per phase: df.start and df._run_step server time per call
#      (track_functions), and the server time of every statement per
#      one-step instance (pg_stat_statements, top level: df.start, the
#      daemon's bookkeeping and df._run_step; commit flushes not included).
#   2. df.metrics at PGD_COUNTERS_HISTORY (100000) instances
#      (bench_load_history): the old body (a count over df.instances and a
#      join of every activation with its instance) run as a query, against
#      df.metrics() now, and df_monitor.operator_metrics(); 50 calls each:
#      p50 / p95 / max.
#
#   bash bench/instance_counters.sh
# Environment: PGD_KEEP_BENCH=1, PGD_BENCH_PORT, the PGD_COUNTERS_* above.
set -euo pipefail
BENCH_NAME=instance_counters
BENCH_CONF="track_functions = all
shared_preload_libraries = 'pg_durable,pg_stat_statements'
pg_stat_statements.track = top
max_wal_size = '4GB'
checkpoint_timeout = '30min'"
# shellcheck source=bench/lib_cluster.sh
. "$(dirname "$0")/lib_cluster.sh"

SECS="${PGD_COUNTERS_SECONDS:-10}"
ROUNDS="${PGD_COUNTERS_ROUNDS:-3}"
N_HISTORY="${PGD_COUNTERS_HISTORY:-100000}"

bench_cluster_start
PGBENCH="$BINDIR/pgbench"
psql_su <<SQL
CREATE EXTENSION pg_stat_statements;
CREATE ROLE bench_user LOGIN PASSWORD '$PASSWORD';
SELECT df.grant_usage('bench_user') \g /dev/null
SQL
bench_daemon_start

cat >"$DIR/start.sql" <<'EOF'
SELECT df.start('SELECT 1');
EOF

# The counting triggers (TRUNCATE's recount stays on).
triggers() {  # $1 = ENABLE | DISABLE
  psql_su -At <<SQL >/dev/null
SELECT format('ALTER TABLE %s $1 TRIGGER %I', t.tgrelid::regclass, t.tgname)
  FROM pg_trigger t
 WHERE t.tgfoid = 'df._count_instances()'::regprocedure AND NOT t.tgname LIKE '%truncate'
\gexec
SQL
}

wait_idle() {
  for _ in $(seq 1200); do
    [ "$(val "SELECT count(*) FROM df.instances WHERE status IN ('pending', 'running')")" = 0 ] && return
    sleep 0.1
  done
  die "instances still live after 120 s: $(tail -n 3 "$DAEMON_LOG")"
}

phase() {  # $1 = label; prints one result line
  local label="$1" t0 n
  wait_idle
  psql_su -c "CHECKPOINT" >/dev/null
  psql_su -c "SELECT pg_stat_statements_reset(), pg_stat_reset()" >/dev/null
  t0="$(val "SELECT clock_timestamp()")"
  "$PGBENCH" -h "$DIR" -p "$PORT" -U bench_user -n -M prepared -c 1 -T "$SECS" -f "$DIR/start.sql" postgres \
    >"$DIR/pgbench.out" 2>&1 || die "pgbench failed: $(tail -n 3 "$DIR/pgbench.out")"
  wait_idle
  sleep 0.6  # the daemon's backends report their function stats when idle
  n="$(val "SELECT count(*) FROM df.instances WHERE created_at >= '$t0'")"
  psql_su -At <<SQL
SELECT format('%-22s %6s instances  df.start %6s µs/call  df._run_step %6s µs/call  all statements %6s µs/instance  of them counting %5s µs',
              '$label', $n,
              (SELECT round((total_time * 1000 / nullif(calls, 0))::numeric, 1) FROM pg_stat_user_functions
                WHERE schemaname = 'df' AND funcname = 'start'),
              (SELECT round((total_time * 1000 / nullif(calls, 0))::numeric, 1) FROM pg_stat_user_functions
                WHERE schemaname = 'df' AND funcname = '_run_step'),
              (SELECT round((sum(total_exec_time + total_plan_time) * 1000 / $n)::numeric, 1)
                 FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'),
              COALESCE((SELECT round((total_time * 1000 / $n)::numeric, 1) FROM pg_stat_user_functions
                         WHERE schemaname = 'df' AND funcname = '_count_instances'), 0));
SQL
}

say "warm-up"
"$PGBENCH" -h "$DIR" -p "$PORT" -U bench_user -n -M prepared -c 1 -T 5 -f "$DIR/start.sql" postgres >/dev/null 2>&1
echo "1. Hot path, one-step instances (\`SELECT df.start('SELECT 1')\`, 1 client, ${SECS} s per phase):"
for r in $(seq "$ROUNDS"); do
  triggers DISABLE
  phase "A (no counting) #$r"
  triggers ENABLE
  phase "B (counting) #$r"
done
psql_su -c "SELECT df._count_instance_rows()" >/dev/null  # the A phases were not counted
echo "   1-client pgbench of df.start: $(grep -E '^tps' "$DIR/pgbench.out" | head -n1) (last phase)"

echo
say "loading $N_HISTORY instances"
psql_su -c "TRUNCATE df.instances CASCADE" >/dev/null
bench_load_history "$N_HISTORY" bench_user >/dev/null
echo "2. df.metrics with $N_HISTORY instances (50 calls each after 5 warm-up calls):"
time_it() {  # $1 = label, $2 = statement
  psql_su -At <<SQL
CREATE TEMP TABLE t (ms float8);
DO \$\$
DECLARE t0 timestamptz; i int;
BEGIN
  FOR i IN 1..55 LOOP
    t0 := clock_timestamp();
    EXECUTE \$q\$$2\$q\$;
    IF i > 5 THEN INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000); END IF;
  END LOOP;
END
\$\$;
SELECT format('   %-46s p50 %8s ms, p95 %8s ms, max %8s ms', '$1',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2))
  FROM t;
SQL
}
time_it "before: the old body, counting rows" "SELECT count(*), count(*) FILTER (WHERE i.status = 'running'), count(*) FILTER (WHERE i.status = 'completed'), count(*) FILTER (WHERE i.status = 'failed'), COALESCE(sum(i.execution_count), 0)::bigint, (SELECT COALESCE(sum(e.event_count), 0)::bigint FROM df._executions e) + (SELECT count(*) FROM df._activations a JOIN df.instances c ON c.id = a.instance_id AND a.execution = c.execution_count) FROM df.instances i"
time_it "after: df.metrics()" "SELECT * FROM df.metrics()"
time_it "df_monitor.operator_metrics()" "SELECT * FROM df_monitor.operator_metrics()"
echo "   same numbers: $(val "SELECT (SELECT row(m.*)::text FROM df.metrics() m) = (SELECT row(count(*), count(*) FILTER (WHERE i.status = 'running'), count(*) FILTER (WHERE i.status = 'completed'), count(*) FILTER (WHERE i.status = 'failed'), COALESCE(sum(i.execution_count), 0)::bigint, (SELECT COALESCE(sum(e.event_count), 0)::bigint FROM df._executions e) + (SELECT count(*) FROM df._activations a JOIN df.instances c ON c.id = a.instance_id AND a.execution = c.execution_count))::text FROM df.instances i)")"
