#!/usr/bin/env bash
# bench/operator_metrics.sh — is df_monitor.operator_metrics() cheap enough to
# scrape every 5 s with 100,000 instances in the tables? (issue 11 item 5)
#
#   bash bench/operator_metrics.sh            (about 2 minutes)
#   PGD_OM_INSTANCES=200000 bash bench/operator_metrics.sh
#
# One throw-away cluster (bench/lib_cluster.sh), retention off
# (retention_max_instances = 0, retention_days = 36500) so the rows stay.
# Loads PGD_OM_INSTANCES (default 100,000) instances straight into the tables,
# shaped like a busy system's history: each a THEN of two SQL steps (3 nodes,
# 2 step activations); 95 % completed, 1 % failed, 1 % cancelled, 1 % pending,
# 2 % running (half waiting on a timer, half on a signal); 1,000 of the
# completed ones started in the last minute (dispatch-lag samples). Then the
# daemon runs (active, heartbeat) with a second one as standby, 8 real
# chain instances of 100 steps run, and a pg_monitor member calls
# df_monitor.operator_metrics() 100 times, then the exporter's pivot query
# (deploy/monitoring/queries.yaml) 100 times: min / p50 / p95 / max in ms.
# Also prints the step-counter trigger's cost: the 8 x 100-step chains timed
# with the trigger enabled and disabled.
#
# Environment: PGD_DAEMON, PGD_KEEP_BENCH=1 (see bench/lib_cluster.sh),
# PGD_OM_INSTANCES.
set -euo pipefail

N="${PGD_OM_INSTANCES:-100000}"
BENCH_NAME=operator_metrics
BENCH_CONF="pg_durable.retention_max_instances = 0
pg_durable.retention_days = 36500
pg_durable.max_user_connections = 8"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
. "$HERE/lib_cluster.sh"
bench_cluster_start

psql_su -c "CREATE ROLE bench_user LOGIN PASSWORD '$PASSWORD'" >/dev/null
psql_su -c "SELECT df.grant_usage('bench_user')" >/dev/null
psql_su -c "CREATE ROLE bench_watch LOGIN PASSWORD '$PASSWORD' IN ROLE pg_monitor" >/dev/null

say "loading $N instances"
t0="$(date +%s.%N)"
bench_load_history "$N" bench_user
say "loaded in $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s: $(val "SELECT string_agg(format('%s=%s', status, n), ' ' ORDER BY status) FROM (SELECT status, count(*) AS n FROM df.instances GROUP BY status) s"); activations $(val "SELECT count(*) FROM df._activations")"

time_it() {  # $1 = label, $2 = query; 100 calls as bench_watch, 5 warm-up
  "$BINDIR/psql" "${CONN[@]}" -U bench_watch -X -At -v ON_ERROR_STOP=1 <<SQL
DO \$\$
DECLARE
    t0 timestamptz;
    ms float8[] := '{}';
BEGIN
    FOR i IN 1..105 LOOP
        t0 := clock_timestamp();
        PERFORM * FROM ($2) q;
        IF i > 5 THEN ms := ms || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000; END IF;
    END LOOP;
    RAISE NOTICE '%', (SELECT format('$1: min %s ms, p50 %s ms, p95 %s ms, max %s ms (%s calls)',
        round(min(x)::numeric, 1), round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x))::numeric, 1),
        round((percentile_cont(0.95) WITHIN GROUP (ORDER BY x))::numeric, 1), round(max(x)::numeric, 1), count(*))
        FROM unnest(ms) x);
END
\$\$;
SQL
}
PIVOT="$(sed -n '/^  query: |$/,/^  master:/p' "$BENCH_ROOT/deploy/monitoring/queries.yaml" | sed '1d;$d')"
time_both() {
  time_it "df_monitor.operator_metrics()" "SELECT * FROM df_monitor.operator_metrics()" 2>&1 | sed 's/^psql:[^ ]* NOTICE:  //' | grep -v '^DO$'
  time_it "exporter query (queries.yaml)" "$PIVOT" 2>&1 | sed 's/^psql:[^ ]* NOTICE:  //' | grep -v '^DO$'
}
say "as loaded (no daemon; 1,000 pending, 1,000 waiting on timers, 1,000 on signals):"
time_both
if [ "${PGD_OM_EXPLAIN:-0}" = 1 ]; then
  BODY="$(sed -n '/^CREATE FUNCTION df_monitor.operator_metrics()/,/^\$\$;/p' "$BENCH_ROOT/sql/parts/55_operator_metrics.sql" |
          sed '1,/RETURN QUERY/d' | sed '/^END$/,$d')"
  psql_su -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) $BODY"
fi

bench_daemon_start
# A standby: a second daemon waits for the orchestrator lock.
TZ=UTC "$DAEMON" --conninfo "host=$DIR port=$PORT dbname=postgres user=$SUPERUSER" --log-level info \
  >>"$DIR/standby.log" 2>&1 &
STANDBY_PID=$!
trap 'rc=$?; kill -TERM $STANDBY_PID 2>/dev/null; wait $STANDBY_PID 2>/dev/null; (exit $rc); bench_cleanup' EXIT

# Real work: 8 chains of 100 steps, with the counter trigger and without.
CHAIN="'SELECT 1'$(for _ in $(seq 99); do printf " ~> 'SELECT 1'"; done)"
run_chains() {
  local ids t0
  t0="$(date +%s.%N)"
  ids="$("$BINDIR/psql" "${CONN[@]}" -U bench_user -X -At -v ON_ERROR_STOP=1 \
          -c "SELECT string_agg(df.start($CHAIN), ',') FROM generate_series(1, 8)")"
  for _ in $(seq 1200); do
    [ "$(val "SELECT count(*) FROM df.instances WHERE id = ANY (string_to_array('$ids', ',')) AND status = 'completed'")" = 8 ] && break
    sleep 0.05
  done
  [ "$(val "SELECT count(*) FROM df.instances WHERE id = ANY (string_to_array('$ids', ',')) AND status = 'completed'")" = 8 ] ||
    die "chains did not complete"
  awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.0f", 800 / (a - b) }'
}
with1="$(run_chains)"
psql_su -c "ALTER TABLE df._activations DISABLE TRIGGER _activations_count_outcome" >/dev/null
without1="$(run_chains)"
psql_su -c "ALTER TABLE df._activations ENABLE TRIGGER _activations_count_outcome" >/dev/null
with2="$(run_chains)"
psql_su -c "ALTER TABLE df._activations DISABLE TRIGGER _activations_count_outcome" >/dev/null
without2="$(run_chains)"
psql_su -c "ALTER TABLE df._activations ENABLE TRIGGER _activations_count_outcome" >/dev/null
say "8 x 100-step chains, steps/s: with the counter trigger $with1, $with2; without $without1, $without2"

# Wait for a heartbeat to report the started steps, so the numbers are live.
sleep 3
say "live (daemon and standby attached, the daemon has resumed the synthetic live instances):"
time_both

say "the metrics as bench_watch sees them:"
"$BINDIR/psql" "${CONN[@]}" -U bench_watch -X -v ON_ERROR_STOP=1 -c "SELECT * FROM df_monitor.operator_metrics()"
