#!/usr/bin/env bash
# bench/relay_ab.sh — the wake-up relay (issue 12), A/B on one cluster:
# rounds alternate pg_durable.wakeup_relay_slots = 8192 (relay) and 0
# (df.start NOTIFYs itself, as before the relay), with a server restart in
# between, so a drifting disk hits both sides alike. Per round and side:
#   base1 / base8   pgbench INSERT, 1 and 8 clients (commits/s)
#   notify8         pgbench INSERT + NOTIFY, 8 clients (what every df.start paid before)
#   start8          8 submitters (pgbench -f pgbench_start.sql, role bench)
#                   starting one-step instances for T s, the daemon running:
#                   df.start commits/s
#   done/s          those instances, first created_at -> last completed_at
#   commits/inst    commit records in the WAL per instance (pg_walinspect),
#                   the relay's own commits included
#   dispatch        p50 / p99 of bench_dispatch (setup.sql): df.start's
#                   COMMIT returned -> its step's clock_timestamp()
# Run as root or the cluster's OS user; needs the installed pg_durable.
#   bash bench/relay_ab.sh    (PGD_AB_ROUNDS, default 3; PGD_AB_T seconds, default 5;
#                              PGD_AB_DISPATCH_N, default 100; PGD_DAEMON as lib_cluster.sh)
set -euo pipefail
BENCH_NAME=relay_ab
BENCH_CONF="fsync = on
synchronous_commit = on
full_page_writes = on
autovacuum = off
max_connections = 100"
# shellcheck source=bench/lib_cluster.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/lib_cluster.sh"
ROUNDS="${PGD_AB_ROUNDS:-3}"
T="${PGD_AB_T:-5}"
N="${PGD_AB_DISPATCH_N:-100}"

bench_cluster_start
HERE="$BENCH_ROOT/bench"
psql_su -f "$HERE/setup.sql" >/dev/null
psql_su -c "ALTER ROLE bench PASSWORD '$PASSWORD'" >/dev/null
bench_daemon_start

tps() {  # clients script user
  local jobs=1
  [ "$1" -gt 1 ] && jobs=2
  "$BINDIR/pgbench" "${CONN[@]}" -U "$3" -n -M prepared -f "$HERE/$2" -c "$1" -j "$jobs" -T "$T" 2>&1 |
    awk '/^tps = / { printf "%.0f", $3; exit }'
}
percentile() {
  sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; printf "%.2f", v[i] }'
}
wait_idle() {
  for _ in $(seq 1200); do
    [ "$(val "SELECT count(*) FROM df.instances WHERE status IN ('pending', 'running')")" = 0 ] && return
    sleep 0.1
  done
  die "instances still live after 120 s"
}
set_mode() {  # slots
  psql_su -c "ALTER SYSTEM SET pg_durable.wakeup_relay_slots = $1" >/dev/null
  as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 -m fast restart >/dev/null
  for _ in $(seq 300); do
    local relay orch
    relay="$(val "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_durable wakeup relay'" || echo x)"
    orch="$(val "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable orchestrator'" || echo 0)"
    if { [ "$1" = 0 ] && [ "$relay" = 0 ]; } || { [ "$1" != 0 ] && [ "$relay" = 1 ]; }; then
      [ "$orch" != 0 ] && return
    fi
    sleep 0.1
  done
  die "relay/daemon not ready after the restart (slots $1)"
}

printf '%-6s %-6s %7s %7s %8s %7s %7s %12s %9s %9s\n' round side base1 base8 notify8 start8 done/s commits/inst p50_ms p99_ms
for round in $(seq "$ROUNDS"); do
  for side in relay direct; do
    slots=8192
    [ "$side" = direct ] && slots=0
    set_mode "$slots"
    b1="$(tps 1 pgbench_insert.sql "$SUPERUSER")"
    b8="$(tps 8 pgbench_insert.sql "$SUPERUSER")"
    n8="$(tps 8 pgbench_notify.sql "$SUPERUSER")"
    wait_idle
    since="$(val "SELECT clock_timestamp()")"
    a="$(val "SELECT bench_wal_lsn()")"
    s8="$(tps 8 pgbench_start.sql bench)"
    wait_idle
    b="$(val "SELECT bench_wal_lsn()")"
    read -r count rate <<<"$(val "SELECT count(*), round(count(*) / extract(epoch FROM max(completed_at) - min(created_at))::numeric, 0)
                                   FROM df.instances WHERE created_at >= '$since'" | tr '|' ' ')"
    per="$(val "SELECT round(commits::numeric / $count, 2) FROM bench_commits('$a', '$b')")"
    run="r${round}${side}"
    "$BINDIR/psql" "${CONN[@]}" -U bench -X -q -v ON_ERROR_STOP=1 -c "CALL bench_dispatch('$run', $N, 5)"
    val "SELECT ms FROM bench_dispatch WHERE run = '$run'" >"$DIR/$run.txt"
    printf '%-6s %-6s %7s %7s %8s %7s %7s %12s %9s %9s\n' "$round" "$side" "$b1" "$b8" "$n8" "$s8" "$rate" "$per" \
      "$(percentile "$DIR/$run.txt" 50)" "$(percentile "$DIR/$run.txt" 99)"
  done
done
