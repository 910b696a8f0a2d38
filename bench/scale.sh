#!/usr/bin/env bash
# bench/scale.sh [--quick] — the DESIGN.md §6 yardsticks bench/run.sh does not
# cover, each against a baseline measured in the same run (issue 12 item 2):
#   1. df.start's own cost (no commit): a warm session, and the first call of
#      a new session; one-step graph, inside BEGIN ... ROLLBACK
#   2. a root loop of one step, N iterations (the chain yardstick past the
#      256-node depth limit of a `~>` chain): iterations/s, as a ratio to the
#      1-client commit rate
#   3. 10,000 concurrently sleeping instances (df.sleep(60)): daemon memory per sleeping
#      instance (RSS before and after), and how late each timer fired
#      (the SLEEP activation's completed_at - wake_at) and each instance
#      completed (instances.completed_at - wake_at): p50 / p99 / max
#   4. 100,000 instances in the tables: df.list_instances, df.metrics and
#      df.start (rolled back) as their owner: p50 / p95 of 50 calls
#   5. idle: CPU of the daemon process and of its backends over 30 s (10 s
#      quick) once everything has ended
# One throw-away cluster (bench/lib_cluster.sh: scram, fsync on, pg_durable
# preloaded, launch_daemon off, retention off so the rows stay,
# loop_min_interval_ms = 0), steps run as the non-superuser bench_user.
#
#   bash bench/scale.sh --quick      (about 3 minutes; make bench runs it)
#   bash bench/scale.sh              (full: 10,000 loop iterations, 30 s idle)
# Environment: PGD_DAEMON, PGD_KEEP_BENCH=1 (see bench/lib_cluster.sh),
# PGD_SCALE_SLEEPERS (10000), PGD_SCALE_HISTORY (100000), PGD_SCALE_LOOP.
set -euo pipefail

MODE=full
for arg in "$@"; do
  case "$arg" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/scale.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$MODE" = quick ]; then
  PGBENCH_T=5; LOOP_N=2000; IDLE_S=10
else
  PGBENCH_T=15; LOOP_N=10000; IDLE_S=30
fi
LOOP_N="${PGD_SCALE_LOOP:-$LOOP_N}"
SLEEPERS="${PGD_SCALE_SLEEPERS:-10000}"
HISTORY="${PGD_SCALE_HISTORY:-100000}"
SLEEP_S=60  # long enough for all of them to be asleep at once (the daemon picks up a few hundred starts a second)

BENCH_NAME=scale
BENCH_CONF="pg_durable.retention_max_instances = 0
pg_durable.retention_days = 36500
pg_durable.loop_min_interval_ms = 0
autovacuum = off"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
. "$HERE/lib_cluster.sh"
bench_cluster_start

psql_su -c "CREATE ROLE bench_user LOGIN PASSWORD '$PASSWORD'" >/dev/null
psql_su -c "SELECT df.grant_usage('bench_user')" >/dev/null
psql_su <<'SQL' >/dev/null
CREATE TABLE bench_t (x int);
CREATE TABLE scale_loop (id text NOT NULL, ts timestamptz NOT NULL);
GRANT SELECT, INSERT ON bench_t, scale_loop TO bench_user;
SQL
psql_user() { "$BINDIR/psql" "${CONN[@]}" -U bench_user -X -q -v ON_ERROR_STOP=1 "$@"; }
echo 'INSERT INTO bench_t VALUES (1);' >"$DIR/insert.sql"
tps1() {
  "$BINDIR/pgbench" "${CONN[@]}" -U "$SUPERUSER" -n -M prepared -f "$DIR/insert.sql" -c 1 -T "$1" 2>/dev/null |
    awk '/^tps = / { printf "%.0f", $3 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "n/a"; else printf "%.1f%%", 100 * a / b }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# CPU ticks (utime + stime) of a set of pids.
ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
wait_for() {  # $1 = seconds, $2 = SQL that returns t when done
  local deadline=$(( $(date +%s) + $1 ))
  until [ "$(val "$2")" = t ]; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon died: $(tail -n 3 "$DAEMON_LOG")"
    sleep 0.1
  done
}
# p50 / p95 / max (ms) of `$2` called 55 times in one session (5 warm-up
# calls) as role $4 (default bench_user), each inside BEGIN ... ROLLBACK
# when $3 = rollback.
time_calls() {
  local label="$1" query="$2" wrap="${3:-}" who="${4:-bench_user}"
  local body="PERFORM * FROM ($query) q;"
  [ "$wrap" = rollback ] && body="BEGIN PERFORM * FROM ($query) q; RAISE EXCEPTION 'rollback' USING ERRCODE = 'P0099'; EXCEPTION WHEN SQLSTATE 'P0099' THEN NULL; END;"
  "$BINDIR/psql" "${CONN[@]}" -U "$who" -X -q -v ON_ERROR_STOP=1 -At 2>&1 <<SQL | sed 's/^\(psql:[^ ]* \)\{0,1\}NOTICE:  //' | grep -v '^DO$'
DO \$\$
DECLARE
    t0 timestamptz;
    ms float8[] := '{}';
BEGIN
    FOR i IN 1..55 LOOP
        t0 := clock_timestamp();
        $body
        IF i > 5 THEN ms := ms || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000; END IF;
    END LOOP;
    RAISE NOTICE '%', (SELECT format('%s p50 %s ms, p95 %s ms, max %s ms', rpad('$label', 28),
        round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x))::numeric, 3),
        round((percentile_cont(0.95) WITHIN GROUP (ORDER BY x))::numeric, 3), round(max(x)::numeric, 3))
        FROM unnest(ms) x);
END
\$\$;
SQL
}

# ------------------------------------------------------------- baseline
say "baseline: pgbench INSERT, 1 client, ${PGBENCH_T}s"
TPS1="$(tps1 "$PGBENCH_T")"

# --------------------------------------------------- 1. df.start's cost
# Inside one transaction that is rolled back, with a savepoint per call
# (the subtransaction the exception block opens): the function alone,
# without its commit. The daemon is not running yet: nothing else works.
say "df.start: warm session (500 calls) and first call of 30 new sessions"
START_WARM="$(psql_user -At <<'SQL' 2>&1 | sed 's/^\(psql:[^ ]* \)\{0,1\}NOTICE:  //' | grep -v '^DO$'
BEGIN;
DO $$
DECLARE
    t0 timestamptz;
    ms float8[] := '{}';
BEGIN
    FOR i IN 1..520 LOOP
        t0 := clock_timestamp();
        PERFORM df.start('SELECT 1');
        IF i > 20 THEN ms := ms || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000; END IF;
    END LOOP;
    RAISE NOTICE '%', (SELECT format('p50 %s ms, p95 %s ms',
        round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x))::numeric, 3),
        round((percentile_cont(0.95) WITHIN GROUP (ORDER BY x))::numeric, 3)) FROM unnest(ms) x);
END $$;
ROLLBACK;
SQL
)"
: >"$DIR/first.txt"
for _ in $(seq 30); do
  psql_user -At <<'SQL' 2>&1 | sed -n 's/^\(psql:[^ ]* \)\{0,1\}NOTICE:  //p' >>"$DIR/first.txt"
BEGIN;
DO $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM df.start('SELECT 1');
    RAISE NOTICE '%', round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 3);
END $$;
ROLLBACK;
SQL
done
START_FIRST="$(sort -g "$DIR/first.txt" | awk '{ v[NR] = $1 } END { printf "p50 %s ms, max %s ms (%d sessions)", v[int((NR + 1) / 2)], v[NR], NR }')"

bench_daemon_start

# ------------------------------------------------ 2. a long root loop
say "root loop of one step, $LOOP_N iterations"
P_LOOP_A="$(tps1 3)"
# Where a step's server time goes: function timings of the loop's steps
# (df._run_step, the node-state writer, the step-counter trigger), averaged
# per call from pg_stat_user_functions.
psql_su -c "ALTER SYSTEM SET track_functions = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
psql_su -c "SELECT pg_stat_reset()" >/dev/null
LOOP_ID="$(psql_user -At -c "SELECT df.start(df.loop(
    \$q\$INSERT INTO scale_loop VALUES ('{sys_instance_id}', clock_timestamp())\$q\$,
    \$q\$SELECT count(*) < $LOOP_N FROM scale_loop WHERE id = '{sys_instance_id}'\$q\$, 0))")"
wait_for 900 "SELECT status <> 'running' AND status <> 'pending' FROM df.instances WHERE id = '$LOOP_ID'" ||
  die "the loop did not end within 900 s"
psql_su -c "ALTER SYSTEM RESET track_functions" -c "SELECT pg_reload_conf()" >/dev/null
sleep 11  # an idle backend reports its function statistics within 10 s
LOOP_PROFILE="$(val "SELECT string_agg(format('%-34s %7s calls, %8s us total, %8s us self per call', funcname, calls,
                          round((total_time * 1000 / calls)::numeric, 1), round((self_time * 1000 / calls)::numeric, 1)),
                          E'\n  ' ORDER BY total_time DESC)
                     FROM pg_stat_user_functions WHERE schemaname = 'df' AND calls > 0")"
P_LOOP_B="$(tps1 3)"
read -r LOOP_STATUS LOOP_ROWS LOOP_RATE <<<"$(val "SELECT i.status, c.n, round(((c.n - 1) / extract(epoch FROM c.last - c.first))::numeric, 1)
    FROM df.instances i, (SELECT count(*) n, min(ts) first, max(ts) last FROM scale_loop WHERE id = '$LOOP_ID') c
    WHERE i.id = '$LOOP_ID'" | tr '|' ' ')"
[ "$LOOP_STATUS" = completed ] && [ "$LOOP_ROWS" = "$LOOP_N" ] ||
  die "loop ended $LOOP_STATUS with $LOOP_ROWS of $LOOP_N iterations: $(val "SELECT error FROM df.instances WHERE id = '$LOOP_ID'")"
P_LOOP="$(awk -v a="$P_LOOP_A" -v b="$P_LOOP_B" 'BEGIN { printf "%.0f", (a + b) / 2 }')"

# ------------------------------------------- 3. 10,000 sleeping instances
say "$SLEEPERS instances sleeping ${SLEEP_S}s at once"
sleep 1
RSS_BEFORE="$(rss_kb "$DAEMON_PID")"
psql_user -At -c "SELECT count(df.start(df.sleep($SLEEP_S))) FROM generate_series(1, $SLEEPERS)" >/dev/null
T_STARTED="$(date +%s.%N)"
wait_for $((SLEEP_S - 5)) "SELECT count(*) = $SLEEPERS FROM df._activations a JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id
              WHERE n.node_type = 'SLEEP' AND a.status = 'running' AND a.wake_at IS NOT NULL" ||
  die "the sleepers were not all asleep at once within $((SLEEP_S - 5)) s"
T_ASLEEP="$(date +%s.%N)"
RSS_ASLEEP="$(rss_kb "$DAEMON_PID")"
wait_for $((SLEEP_S + 120)) "SELECT count(*) = 0 FROM df.instances WHERE status IN ('pending', 'running')" ||
  die "the sleepers did not all complete"
RSS_AFTER="$(rss_kb "$DAEMON_PID")"
read -r TL50 TL99 TLMAX IL50 IL99 ILMAX <<<"$(val "
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY t)::numeric, 1),
           round(max(t)::numeric, 1),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY c)::numeric, 1),
           round(max(c)::numeric, 1)
      FROM (SELECT extract(epoch FROM a.completed_at - a.wake_at) * 1000 AS t,
                   extract(epoch FROM i.completed_at - a.wake_at) * 1000 AS c
              FROM df._activations a JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id
              JOIN df.instances i ON i.id = a.instance_id
             WHERE n.node_type = 'SLEEP' AND a.status = 'completed') s" | tr '|' ' ')"
PER_SLEEPER="$(awk -v a="$RSS_ASLEEP" -v b="$RSS_BEFORE" -v n="$SLEEPERS" 'BEGIN { printf "%.2f", (a - b) * 1024 / n / 1024 }')"

# ------------------------------------------- 4. 100,000 instances present
say "loading $HISTORY instances of history"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
psql_su -c "DELETE FROM df.instances" >/dev/null
bench_load_history "$HISTORY" bench_user
bench_daemon_start
sleep 2
H_LIST="$(time_calls "df.list_instances()" "SELECT * FROM df.list_instances()")"
H_METRICS="$(time_calls "df.metrics() (superuser)" "SELECT * FROM df.metrics()" "" "$SUPERUSER")"
H_START="$(time_calls "df.start (rolled back)" "SELECT df.start('SELECT 1')" rollback)"

# ---------------------------------------------------------------- 5. idle
say "idle: ${IDLE_S}s with nothing to do"
sleep 3
BACKENDS=($(val "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pg_durable%'"))
HZ="$(getconf CLK_TCK)"
D0="$(ticks "$DAEMON_PID")"; B0="$(ticks "${BACKENDS[@]}")"
sleep "$IDLE_S"
D1="$(ticks "$DAEMON_PID")"; B1="$(ticks "${BACKENDS[@]}")"
IDLE_DAEMON="$(awk -v t=$((D1 - D0)) -v hz="$HZ" -v s="$IDLE_S" 'BEGIN { printf "%.2f", 1000 * t / hz / s }')"
IDLE_BACKENDS="$(awk -v t=$((B1 - B0)) -v hz="$HZ" -v s="$IDLE_S" 'BEGIN { printf "%.2f", 1000 * t / hz / s }')"

cat <<EOF

pg_durable scale benchmark ($MODE mode) — $(date -u '+%Y-%m-%d %H:%M UTC')
machine:  $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)
daemon:   $DAEMON ($("$DAEMON" --version 2>/dev/null | head -n1))
baseline: pgbench INSERT, 1 client: $TPS1 commits/s ($(awk -v t="$TPS1" 'BEGIN { printf "%.3f", 1000 / t }') ms per commit)
df.start, one-step graph, no commit (target: warm <= 0.3 ms, first call <= 1 ms):
  warm session             $START_WARM
  first call of a session  $START_FIRST
root loop of one step (condition step each iteration), $LOOP_N iterations:
  $LOOP_RATE iterations/s = $(ratio "$LOOP_RATE" "$TPS1") of the 1-client rate, $(ratio "$LOOP_RATE" "$P_LOOP") of the rate around it ($P_LOOP_A before, $P_LOOP_B after)
  ($(awk -v r="$LOOP_RATE" 'BEGIN { printf "%.0f", 2 * r }') steps/s: body + condition)
  server time per call in the loop's steps (track_functions = all, pg_stat_user_functions):
  $LOOP_PROFILE
$SLEEPERS sleeping instances (df.sleep($SLEEP_S), target: wake within 50 ms, <= 2 KB each):
  all asleep $(awk -v a="$T_ASLEEP" -v b="$T_STARTED" 'BEGIN { printf "%.1f", a - b }') s after the start transaction committed
  daemon RSS $RSS_BEFORE kB before, $RSS_ASLEEP kB asleep, $RSS_AFTER kB after: $PER_SLEEPER kB per sleeping instance
  timer fired late by      p50 $TL50 ms, p99 $TL99 ms, max $TLMAX ms
  instance completed after p50 $IL50 ms, p99 $IL99 ms, max $ILMAX ms (its completion committed)
$HISTORY instances in the tables (target: under 10 ms each), as their owner:
  $H_LIST
  $H_METRICS
  $H_START
idle, ${IDLE_S}s (target: zero CPU): daemon $IDLE_DAEMON ms CPU/s, its ${#BACKENDS[@]} backends $IDLE_BACKENDS ms CPU/s
EOF
