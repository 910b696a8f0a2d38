#!/usr/bin/env bash
# bench/run.sh [--quick] — pg_durable performance yardsticks (DESIGN.md §6)
# against a baseline measured in the same run, on a throw-away cluster.
#
#   make bench                 (= make install && bash bench/run.sh --quick)
#   bash bench/run.sh          full mode (longer runs, more samples)
#
# One run: initdb a fresh cluster in a mktemp directory (own port and socket,
# as the postgres OS user when run as root), fsync = on and
# synchronous_commit = on for pgbench and the engine alike, pg_durable
# preloaded with launch_daemon = off, and pg_durable_daemon started by this
# script. Phases:
#   1. baseline: pgbench, custom script INSERT INTO bench_t VALUES (1),
#      1 client and 8 clients (commits/s)
#   2. dispatch latency: commit of df.start (clock_timestamp() right after
#      COMMIT returned, inside a submitting procedure: no client round trip)
#      -> clock_timestamp() inside the first step; one instance at a time
#   3. chain: one instance of N trivial inserts joined by ~>; steps/s between
#      the first and the last step, and from df.start's commit to completion
#   4. throughput, 8 submitters (pgbench -c 8) of one-step instances:
#      (a) open loop: a fixed batch started as fast as possible; instances/s
#          from the first df.start to the last completion; CPU per instance
#      (b) closed loop: each submitter waits until its step committed
#   5. dispatch breakdown: the daemon at debug log level, per-hop medians
#   6. diagnostic: df.start alone (daemon stopped), 1 and 8 clients
# Short baseline probes right before and after the chain and the open-loop
# phases give a second ratio against the baseline measured around them.
# Each engine phase also counts commit records in the WAL (pg_walinspect)
# per step or instance. Server and daemon are always stopped and the directory removed
# at the end, even on failure (PGD_KEEP_BENCH=1 keeps the directory).
#
# Environment: PGD_DAEMON=/path/to/pg_durable_daemon (default: PostgreSQL's
# bindir, else build*/daemon/), PGD_BENCH_LOG_LEVEL (daemon, default info).
set -euo pipefail

MODE=full
for arg in "$@"; do
  case "$arg" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$MODE" = quick ]; then
  PGBENCH_T=8; DISPATCH_N=200; CHAIN_STEPS=200; CHAIN_RUNS=2; TP_T=10; TP_PER_CLIENT=250; PROBE_T=3
else
  PGBENCH_T=30; DISPATCH_N=1000; CHAIN_STEPS=200; CHAIN_RUNS=5; TP_T=30; TP_PER_CLIENT=1000; PROBE_T=5
fi
DISPATCH_WARMUP=10
# Overrides, for trying things out: PGD_BENCH_PGBENCH_T, PGD_BENCH_DISPATCH_N,
# PGD_BENCH_CHAIN_STEPS, PGD_BENCH_CHAIN_RUNS, PGD_BENCH_TP_T,
# PGD_BENCH_TP_PER_CLIENT, PGD_BENCH_DIAG_N, PGD_BENCH_SETTINGS (postgresql.conf lines).
PGBENCH_T="${PGD_BENCH_PGBENCH_T:-$PGBENCH_T}"
DISPATCH_N="${PGD_BENCH_DISPATCH_N:-$DISPATCH_N}"
CHAIN_STEPS="${PGD_BENCH_CHAIN_STEPS:-$CHAIN_STEPS}"
CHAIN_RUNS="${PGD_BENCH_CHAIN_RUNS:-$CHAIN_RUNS}"
TP_T="${PGD_BENCH_TP_T:-$TP_T}"
TP_PER_CLIENT="${PGD_BENCH_TP_PER_CLIENT:-$TP_PER_CLIENT}"
PROBE_T="${PGD_BENCH_PROBE_T:-$PROBE_T}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/.." && pwd -P)"
if [ -n "${PG_CONFIG:-}" ]; then
  BINDIR="$("$PG_CONFIG" --bindir)"
elif [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
  BINDIR="$(/usr/lib/postgresql/15/bin/pg_config --bindir)"
else
  BINDIR="$(pg_config --bindir)"
fi
PKGLIBDIR="$("$BINDIR/pg_config" --pkglibdir)"

say()  { printf '==> %s\n' "$*" >&2; }
die()  { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- preflight
for tool in initdb pg_ctl psql pgbench; do
  [ -x "$BINDIR/$tool" ] || die "$BINDIR/$tool not found (PostgreSQL 15 server and client packages)"
done
[ -f "$PKGLIBDIR/pg_durable.so" ] || die "$PKGLIBDIR/pg_durable.so is not installed (make install)"
DAEMON="${PGD_DAEMON:-}"
if [ -z "$DAEMON" ]; then
  if [ -x "$BINDIR/pg_durable_daemon" ]; then
    DAEMON="$BINDIR/pg_durable_daemon"
  else
    DAEMON="$(ls -t "$ROOT"/build*/daemon/pg_durable_daemon 2>/dev/null | head -n1 || true)"
  fi
fi
[ -n "$DAEMON" ] && [ -x "$DAEMON" ] || die "pg_durable_daemon not found (make install, or PGD_DAEMON=...)"

if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user"
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
  SUPERUSER=postgres
else
  as_pg() { (cd / && "$@"); }
  SUPERUSER="$(id -un)"
fi

# ------------------------------------------------------ throw-away cluster
DIR="$(mktemp -d /tmp/pgd-bench-XXXXXX)"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
chmod 755 "$DIR"
DATA="$DIR/data"
SERVER_LOG="$DIR/server.log"
DAEMON_LOG="$DIR/daemon.log"
DAEMON_PID=""
SERVER_UP=0

cleanup() {
  local rc=$?
  set +e
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DAEMON_PID" 2>/dev/null && kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  if [ "$SERVER_UP" = 1 ]; then
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -w -t 60 -m immediate stop >/dev/null 2>&1 ||
      echo "bench: WARNING: pg_ctl stop failed; cluster in $DIR" >&2
  fi
  if [ "$rc" -ne 0 ]; then
    echo "bench: FAILED (exit $rc). Last lines of the server and daemon logs:" >&2
    tail -n 15 "$SERVER_LOG" >&2 2>/dev/null
    tail -n 15 "$DAEMON_LOG" >&2 2>/dev/null
  fi
  if [ "${PGD_KEEP_BENCH:-0}" = 1 ]; then
    echo "bench: kept $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port (the port also names the socket file in $DIR).
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000)))"

say "cluster in $DIR (port $PORT), mode $MODE"
# scram-sha-256 everywhere, as in production: one throw-away password for the
# superuser, bench and the daemon's role durable_worker, in a passfile
# (one wildcard line) that psql, pgbench and the daemon read through PGPASSFILE.
PASSWORD="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$PASSWORD" >"$DIR/pwfile"
printf '*:*:*:*:%s\n' "$PASSWORD" >"$DIR/pgpass"
chmod 600 "$DIR/pwfile" "$DIR/pgpass"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR/pwfile"
export PGPASSFILE="$DIR/pgpass"
as_pg "$BINDIR/initdb" -D "$DATA" --auth=scram-sha-256 --pwfile="$DIR/pwfile" -U "$SUPERUSER" -E UTF8 --locale=C \
  --no-instructions >"$DIR/initdb.log" 2>&1 ||
  { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# pg_durable benchmark cluster (bench/run.sh): durable commits, as in production
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
max_connections = 100
fsync = on
synchronous_commit = on
full_page_writes = on
shared_preload_libraries = 'pg_durable'
pg_durable.database = 'postgres'
pg_durable.launch_daemon = off
pg_durable.worker_role = 'durable_worker'
pg_durable.max_user_connections = 10
log_line_prefix = '%m [%p] %u %a '
log_checkpoints = off
# no background writes in the commit counts (pg_walinspect); runs are minutes long
autovacuum = off
EOF
# PGD_BENCH_SETTINGS: further postgresql.conf lines, e.g. for an A/B run
# without the wake-up relay: PGD_BENCH_SETTINGS='pg_durable.wakeup_relay_slots = 0'.
if [ -n "${PGD_BENCH_SETTINGS:-}" ]; then
  printf '%s\n' "$PGD_BENCH_SETTINGS" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
  say "extra settings: $PGD_BENCH_SETTINGS"
fi
as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 start >/dev/null || die "pg_ctl start failed"
SERVER_UP=1

CONN=(-h "$DIR" -p "$PORT" -d postgres)
psql_su()    { "$BINDIR/psql" "${CONN[@]}" -U "$SUPERUSER" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_bench() { "$BINDIR/psql" "${CONN[@]}" -U bench -X -q -v ON_ERROR_STOP=1 "$@"; }
val()        { psql_su -At -c "$1"; }

# The daemon's own role (docs/OPERATIONS.md §3), before CREATE EXTENSION,
# which grants it what the daemon needs.
psql_su -c "CREATE ROLE durable_worker LOGIN BYPASSRLS PASSWORD '$PASSWORD'" \
  -c "GRANT pg_read_all_settings TO durable_worker" >/dev/null
psql_su -c "CREATE EXTENSION pg_durable" >/dev/null
psql_su -f "$HERE/setup.sql" >/dev/null
psql_su -c "ALTER ROLE bench PASSWORD '$PASSWORD'" >/dev/null

SERVER_VERSION="$(val "SHOW server_version")"
SETTINGS="$(val "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
                 WHERE name IN ('fsync','synchronous_commit','wal_sync_method','full_page_writes','shared_buffers')")"

# --------------------------------------------------------------- baseline
# pgbench_tps CLIENTS: commits/s of the one-insert script (no vacuum, no init).
pgbench_tps() {
  local clients="$1" script="${2:-pgbench_insert.sql}" user="${3:-$SUPERUSER}" jobs=1 out
  [ "$clients" -gt 1 ] && jobs=2
  out="$("$BINDIR/pgbench" "${CONN[@]}" -U "$user" -n -M prepared -f "$HERE/$script" \
          -c "$clients" -j "$jobs" -T "$PGBENCH_T" 2>&1)" || { echo "$out" >&2; die "pgbench failed"; }
  echo "$out" | awk '/^tps = / { printf "%.1f", $3; exit }'
}
# probe CLIENTS: a short baseline run right before/after an engine phase. The
# fsync latency of a shared (virtual) disk can swing several-fold within a
# minute, so each engine figure is also compared with the baseline measured
# around it.
probe() { PGBENCH_T="$PROBE_T" pgbench_tps "$1"; }
mean2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a + b) / 2 }'; }
say "baseline: pgbench 1 client, ${PGBENCH_T}s"
TPS1="$(pgbench_tps 1)"
say "baseline: pgbench 8 clients, ${PGBENCH_T}s"
TPS8="$(pgbench_tps 8)"
say "diagnostic: pgbench 8 clients, insert + NOTIFY, ${PGBENCH_T}s"
TPS8N="$(pgbench_tps 8 pgbench_notify.sql)"

# ------------------------------------------------------------------ daemon
DAEMON_STARTS=0
start_daemon() {
  DAEMON_STARTS=$((DAEMON_STARTS + 1))
  TZ=UTC "$DAEMON" --conninfo "host=$DIR port=$PORT dbname=postgres user=durable_worker" \
    --log-level "${1:-${PGD_BENCH_LOG_LEVEL:-info}}" >>"$DAEMON_LOG" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 300); do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      echo "bench: WARNING: the daemon exited at start: $(tail -n 3 "$DAEMON_LOG")" >&2
      DAEMON_PID=""
      return 1
    fi
    [ "$(val "SELECT count(*) FROM df._daemon_secret WHERE updated_at >= now() - interval '60 s'" 2>/dev/null || echo 0)" -gt 0 ] &&
      return 0
    sleep 0.1
  done
  echo "bench: WARNING: the daemon did not attach within 30 s" >&2
  return 1
}
# daemon_check PHASE: notes a daemon that died during PHASE and restarts it
# once; after a second death the remaining engine phases are skipped.
DAEMON_DEATHS="" DEATH_COUNT=0
daemon_check() {
  local status
  [ -n "$DAEMON_PID" ] || return 0  # already given up (and reported)
  if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    wait "$DAEMON_PID" 2>/dev/null && status=0 || status=$?
    [ "$status" -gt 128 ] && status="signal $((status - 128))" || status="exit $status"
    DAEMON_DEATHS="$DAEMON_DEATHS daemon died during $1 ($status);"
    DEATH_COUNT=$((DEATH_COUNT + 1))
    DAEMON_PID=""
    if [ "$DEATH_COUNT" -lt 2 ]; then
      echo "bench: WARNING: the daemon died during $1 ($status); restarting it" >&2
      start_daemon || DAEMON_DEATHS="$DAEMON_DEATHS the restarted daemon did not come up;"
    else
      echo "bench: WARNING: the daemon died during $1 ($status); skipping the remaining engine phases" >&2
    fi
    return 1
  fi
  return 0
}
# daemon_up: false (and the phase is skipped) once the daemon is given up.
daemon_up() { [ -n "$DAEMON_PID" ] || { fail "$1 skipped: the daemon is down"; return 1; }; }
say "starting $DAEMON"
: >"$DAEMON_LOG"
start_daemon || die "the daemon did not start"

# wait_idle: every instance terminal (deadline 60 s); false if not.
wait_idle() {
  local left
  for _ in $(seq 600); do
    if [ -z "$DAEMON_PID" ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      echo "bench: WARNING: the daemon is not running; not waiting for instances" >&2
      return 1
    fi
    left="$(val "SELECT count(*) FROM df.instances WHERE status IN ('pending','running')")"
    [ "$left" = 0 ] && return 0
    sleep 0.1
  done
  echo "bench: WARNING: $left instance(s) still not terminal after 60 s" >&2
  return 1
}

# percentile FILE P: nearest-rank percentile of the numbers in FILE.
percentile() {
  sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; printf "%.2f", v[i] }'
}
lsn() { val "SELECT bench_wal_lsn()"; }
# commits_between A B N: "commits/N walbytes/N" of the WAL between A and B.
commits_between() {
  val "SELECT round(commits::numeric / $3, 2) || ' ' || round(wal_bytes / $3) FROM bench_commits('$1', '$2')"
}
FAILURES=""
fail() { FAILURES="$FAILURES $1;"; echo "bench: WARNING: $1" >&2; }

# --------------------------------------------------------- dispatch latency
say "dispatch latency: $DISPATCH_N one-step instances, one at a time (+$DISPATCH_WARMUP warm-up)"
D_P50=n/a D_P99=n/a D_MAX=n/a D_COMMITS="n/a n/a"
dispatch_phase() {
  local a b
  psql_bench -c "CALL bench_dispatch('warmup', 0, $DISPATCH_WARMUP)" || return 1
  a="$(lsn)"
  psql_bench -c "CALL bench_dispatch('dispatch', $DISPATCH_N, 0)" || return 1
  b="$(lsn)"
  wait_idle || return 1
  val "SELECT ms FROM bench_dispatch WHERE run = 'dispatch'" >"$DIR/dispatch.txt"
  [ "$(wc -l <"$DIR/dispatch.txt")" -eq "$DISPATCH_N" ] || return 1
  D_P50="$(percentile "$DIR/dispatch.txt" 50)"
  D_P99="$(percentile "$DIR/dispatch.txt" 99)"
  D_MAX="$(percentile "$DIR/dispatch.txt" 100)"
  # the samples' own INSERT at the end is one more commit: not per sample
  D_COMMITS="$(val "SELECT round((commits - 1)::numeric / $DISPATCH_N, 2) || ' ' || round(wal_bytes / $DISPATCH_N)
                    FROM bench_commits('$a', '$b')")"
}
daemon_up dispatch && { dispatch_phase || fail "dispatch phase failed"; }
daemon_check dispatch || fail "daemon crashed in the dispatch phase"

# ------------------------------------------------------------------- chain
say "chain: $CHAIN_RUNS x one instance of $CHAIN_STEPS sequential steps"
: >"$DIR/chain.txt"
chain_run() {
  local a b line id t_commit
  a="$(lsn)"
  # The submitter's time right after df.start's COMMIT returned (ms since epoch).
  line="$(psql_bench -At -F ' ' <<EOF
SELECT df.start(bench_chain_graph($CHAIN_STEPS), 'chain') AS id \gset
SELECT :'id', (extract(epoch FROM clock_timestamp()) * 1000)::numeric(20,3);
EOF
)" || return 1
  id="${line%% *}"
  t_commit="${line##* }"
  wait_idle || return 1
  b="$(lsn)"
  # steps seen, status, steps/s first->last step, steps/s commit->completion,
  # ms per step, commits per step (df.start's own commit excluded), WAL bytes per step
  val "SELECT c.n, i.status,
              round(($CHAIN_STEPS - 1) / extract(epoch FROM c.last - c.first), 1),
              round($CHAIN_STEPS / ((extract(epoch FROM i.completed_at) * 1000 - $t_commit) / 1000)::numeric, 1),
              round((extract(epoch FROM c.last - c.first) * 1000 / ($CHAIN_STEPS - 1))::numeric, 3),
              round((w.commits - 1)::numeric / $CHAIN_STEPS, 2),
              round(w.wal_bytes / $CHAIN_STEPS)
       FROM (SELECT count(*) n, min(ts) first, max(ts) last FROM bench_chain WHERE id = '$id') c,
            df.instances i, bench_commits('$a', '$b') w
       WHERE i.id = '$id'" | tr '|' ' ' >>"$DIR/chain.txt"
  read -r n status _ < <(tail -n1 "$DIR/chain.txt")
  [ "$status" = completed ] && [ "$n" = "$CHAIN_STEPS" ]
}
median_col() { awk -v c="$1" '{ print $c }' "$DIR/chain.txt" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
C_RATE=n/a C_RATE_E2E=n/a C_GAP=n/a C_COMMITS=n/a C_WAL=n/a
P1A="$(probe 1)"
chain_ok=1
for run in $(seq "$CHAIN_RUNS"); do
  daemon_up "chain run $run" || { chain_ok=0; break; }
  chain_run || { chain_ok=0; fail "chain run $run failed"; }
  daemon_check "chain run $run" || { chain_ok=0; fail "daemon crashed in chain run $run"; }
done
P1B="$(probe 1)"
P1="$(mean2 "$P1A" "$P1B")"
if [ "$chain_ok" = 1 ]; then
  C_RATE="$(median_col 3)"
  C_RATE_E2E="$(median_col 4)"
  C_GAP="$(median_col 5)"
  C_COMMITS="$(median_col 6)"
  C_WAL="$(median_col 7)"
fi

# -------------------------------------------------------------- throughput
# cpu_snapshot: CPU clock ticks so far of the daemon process, its state/LISTEN
# backends, its step backends, and the whole machine (all cores, every
# process: the machine may be shared).
cpu_snapshot() {
  local d=0 st=0 us=0 pid app total
  [ -n "$DAEMON_PID" ] && d="$(awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat" 2>/dev/null || echo 0)"
  while IFS='|' read -r pid app; do
    t="$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)"
    if [ "$app" = "pg_durable step" ]; then us=$((us + t)); else st=$((st + t)); fi
  done < <(val "SELECT pid, application_name FROM pg_stat_activity
                WHERE application_name IN ('pg_durable step', 'pg_durable_daemon')")
  total="$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat)"
  echo "$d $st $us $total"
}
# cpu_per CPU0 CPU1 N: ms of CPU per item for each column.
cpu_per() {
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= 4; i++) printf "%s%.2f", (i > 1 ? " " : ""), (y[i] - x[i]) * 1000 / hz / n }'
}

# (a) open loop: 8 submitters (pgbench -c 8 -t K) start one-step instances as
# fast as they can; rate = instances / (first df.start -> last completion).
say "throughput: 8 submitters x $TP_PER_CLIENT one-step instances (open loop)"
TPO=n/a TPO_COMMITS="n/a n/a" TPO_CPU="n/a n/a n/a n/a" TPO_SUBMIT=n/a
P8A="$(probe 8)"
tpo_phase() {
  local a b c0 c1 n out
  a="$(lsn)"
  c0="$(cpu_snapshot)"
  out="$("$BINDIR/pgbench" "${CONN[@]}" -U bench -n -M extended -f "$HERE/pgbench_start.sql" \
           -c 8 -j 2 -t "$TP_PER_CLIENT" 2>&1)" || { echo "$out" | tail -n 5 >&2; return 1; }
  TPO_SUBMIT="$(echo "$out" | awk '/^tps = / { printf "%.0f", $3; exit }')"
  wait_idle || return 1
  c1="$(cpu_snapshot)"
  b="$(lsn)"
  read -r n TPO <<<"$(val "SELECT count(*), round(count(*) / extract(epoch FROM max(completed_at) - min(created_at)), 1)
                           FROM df.instances WHERE label = 'tpo' AND status = 'completed'" | tr '|' ' ')"
  [ "$n" = "$((8 * TP_PER_CLIENT))" ] || { echo "bench: only $n instances completed" >&2; return 1; }
  TPO_COMMITS="$(commits_between "$a" "$b" "$n")"
  TPO_CPU="$(cpu_per "$c0" "$c1" "$n")"
}
daemon_up "open-loop throughput" && { tpo_phase || fail "open-loop throughput phase failed"; }
daemon_check "open-loop throughput" || fail "daemon crashed in the open-loop throughput phase"
P8B="$(probe 8)"
P8="$(mean2 "$P8A" "$P8B")"

# (b) closed loop: 8 submitters each start an instance and wait (bench_wait
# polls every 1 ms) until its step committed; pgbench's tps = instances/s.
say "throughput: 8 closed-loop submitters, ${TP_T}s"
TP=n/a TP_LAT=n/a TP_COMMITS="n/a n/a"
tp_phase() {
  local a b n0 n1 out
  a="$(lsn)"
  n0="$(val "SELECT count(*) FROM df.instances WHERE status = 'completed'")"
  out="$("$BINDIR/pgbench" "${CONN[@]}" -U bench -n -M extended -f "$HERE/pgbench_submit.sql" \
           -c 8 -j 2 -T "$TP_T" 2>&1)" || { echo "$out" | tail -n 5 >&2; return 1; }
  wait_idle || return 1
  b="$(lsn)"
  n1="$(val "SELECT count(*) FROM df.instances WHERE status = 'completed'")"
  TP="$(echo "$out" | awk '/^tps = / { printf "%.1f", $3; exit }')"
  TP_LAT="$(echo "$out" | awk '/^latency average/ { print $4; exit }')"
  TP_COMMITS="$(commits_between "$a" "$b" "$((n1 - n0))")"
}
daemon_up "closed-loop throughput" && { tp_phase || fail "closed-loop throughput phase failed"; }
daemon_check "closed-loop throughput" || fail "daemon crashed in the closed-loop throughput phase"
NOT_DONE="$(val "SELECT count(*) FROM df.instances WHERE status <> 'completed'")"
[ "$NOT_DONE" = 0 ] || fail "$NOT_DONE instance(s) did not complete"

# ------------------------------------------------------ dispatch breakdown
# Where dispatch time goes: the daemon restarted with debug logging (its log
# lines carry millisecond UTC timestamps), then one instance at a time:
#   commit -> "wake-up received" (NOTIFY delivered and drained)
#   wake-up -> "instance started" (instance loaded on the state connection)
#   started -> the step's clock_timestamp() (executor hop, df._run_step preamble)
DIAG_N="${PGD_BENCH_DIAG_N:-200}"
say "dispatch breakdown: $DIAG_N samples with daemon debug logging"
B_WAKE=n/a B_LOAD=n/a B_EXEC=n/a B_TOTAL=n/a B_TAIL=n/a
diag_phase() {
  kill -TERM "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
  local mark
  mark="$(wc -l <"$DAEMON_LOG")"
  start_daemon debug || return 1
  psql_bench -c "CALL bench_dispatch('diag', $DIAG_N, 5)" || return 1
  val "SELECT id, round(extract(epoch FROM t0) * 1000, 3), ms FROM bench_dispatch WHERE run = 'diag'" |
    tr '|' ' ' >"$DIR/diag.txt"
  tail -n +"$((mark + 1))" "$DAEMON_LOG" |
    awk '/wake-up received for / { id = ""; dr = -1
                                   for (i = 1; i < NF; i++) { if ($i == "for" && id == "") id = $(i + 1); if ($i == "drained") dr = $(i + 1) }
                                   print $1 " " $2 " wake " id " " dr }
         /\[orchestrator\] instance [0-9a-f]+ started/ { print $1 " " $2 " load " $(NF-1) " -1" }' >"$DIR/diag-log.txt"
  psql_su -At -F ' ' >"$DIR/diag-breakdown.txt" <<EOF || return 1
CREATE TEMP TABLE s (id text, t0 numeric, lat float8);
CREATE TEMP TABLE l (d text, t text, kind text, id text, drained_us int);
\copy s FROM '$DIR/diag.txt' WITH (FORMAT text, DELIMITER ' ')
\copy l FROM '$DIR/diag-log.txt' WITH (FORMAT text, DELIMITER ' ')
CREATE TEMP TABLE x AS
  SELECT s.id, s.lat, w.drained_us / 1000.0 AS drained,
         extract(epoch FROM (w.d || ' ' || w.t || '+00')::timestamptz) * 1000 - s.t0 AS wake,
         extract(epoch FROM (o.d || ' ' || o.t || '+00')::timestamptz) * 1000 - s.t0 AS load
  FROM s JOIN l w ON w.id = s.id AND w.kind = 'wake' JOIN l o ON o.id = s.id AND o.kind = 'load';
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wake)::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY load - wake)::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat - load)::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat)::numeric, 1),
       count(*)
FROM x;
-- The tail: the slowest samples hop by hop (what dispatch p99 is made of).
SELECT string_agg(format('%s ms = %s (link thread %s) + %s + %s', round(lat::numeric, 1), round(wake::numeric, 1),
                         round(drained::numeric, 1), round((load - wake)::numeric, 1), round((lat - load)::numeric, 1)),
                  '; ' ORDER BY lat DESC)
FROM (SELECT * FROM x ORDER BY lat DESC LIMIT 4) slowest;
EOF
  read -r B_WAKE B_LOAD B_EXEC B_TOTAL B_N <<<"$(sed -n 1p "$DIR/diag-breakdown.txt")"
  B_TAIL="$(sed -n 2p "$DIR/diag-breakdown.txt")"
  # The per-step timeline of one chain (the daemon's "step timeline" debug
  # lines): where each step's time goes between the interpreter asking for it
  # and the next decision made on its result.
  local id
  id="$(psql_bench -At -c "SELECT df.start(bench_chain_graph($CHAIN_STEPS), 'chain-timeline')")" || return 1
  wait_idle || return 1
  tail -n +"$((mark + 1))" "$DAEMON_LOG" | grep -F "step timeline $id " |
    sed -E 's/.*queued (-?[0-9]+) us, login (-?[0-9]+) us, statement (-?[0-9]+) us, to orchestrator (-?[0-9]+) us, next decision (-?[0-9]+) us.*/\1 \2 \3 \4 \5/' \
    >"$DIR/timeline.txt"
  T_N="$(wc -l <"$DIR/timeline.txt")"
  T_QUEUED="$(col_median "$DIR/timeline.txt" 1)"
  T_STATEMENT="$(col_median "$DIR/timeline.txt" 3)"
  T_TO_ORCH="$(col_median "$DIR/timeline.txt" 4)"
  T_DECIDE="$(col_median "$DIR/timeline.txt" 5)"
  T_STEP="$(val "SELECT round((extract(epoch FROM max(ts) - min(ts)) * 1000000 / (count(*) - 1))::numeric)
                 FROM bench_chain WHERE id = '$id'")"
}
# Median of column $2 of file $1 (whitespace-separated numbers).
col_median() { awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }
T_N=0 T_QUEUED=n/a T_STATEMENT=n/a T_TO_ORCH=n/a T_DECIDE=n/a T_STEP=n/a
daemon_up "dispatch breakdown" && { diag_phase || fail "dispatch breakdown failed"; }

# ------------------------------------------- df.start alone, daemon stopped
# How fast can submitters start instances at all? The daemon is stopped, so
# nothing else competes; the instances stay pending (the cluster is thrown
# away). 1 vs 8 clients shows whether starts scale with clients.
say "diagnostic: df.start alone (daemon stopped), 1 and 8 clients, ${PGBENCH_T}s each"
if [ -n "$DAEMON_PID" ]; then
  kill -TERM "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
fi
S1="$(pgbench_tps 1 pgbench_start.sql bench)"
S8="$(pgbench_tps 8 pgbench_start.sql bench)"

# ------------------------------------------------------------------ report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0) print "n/a"; else printf "%.1f%%", 100 * a / b }'; }
# verdict VALUE OP LIMIT: met / MISSED / n/a
verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
    ok = (op == "<") ? (v + 0 < l + 0) : (v + 0 >= l + 0); print ok ? "met" : "MISSED" }'
}
PER_COMMIT_MS="$(awk -v t="$TPS1" 'BEGIN { printf "%.2f", 1000 / t }')"
read -r D_C D_W <<<"$D_COMMITS"
read -r TP_C TP_W <<<"$TP_COMMITS"
read -r TPO_C TPO_W <<<"$TPO_COMMITS"
cat <<EOF

pg_durable benchmark ($MODE mode) — $(date -u '+%Y-%m-%d %H:%M UTC')
machine:  $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg)
server:   PostgreSQL $SERVER_VERSION; $SETTINGS
daemon:   $DAEMON ($("$DAEMON" --version 2>/dev/null | head -n1))
baseline (pgbench, INSERT INTO bench_t VALUES (1), -T $PGBENCH_T):
  1 client                 $(printf '%9s' "$TPS1") commits/s   ($PER_COMMIT_MS ms per commit)
  8 clients                $(printf '%9s' "$TPS8") commits/s
  8 clients, + NOTIFY      $(printf '%9s' "$TPS8N") commits/s   (diagnostic: df.start NOTIFYs at commit)
  df.start alone, 1 client $(printf '%9s' "$S1") starts/s    (diagnostic, daemon stopped)
  df.start alone, 8 clients$(printf '%9s' "$S8") starts/s    (diagnostic, daemon stopped)
engine:
  dispatch p50             $(printf '%9s' "$D_P50") ms          target < 1 ms:  $(verdict "$D_P50" '<' 1)
  dispatch p99             $(printf '%9s' "$D_P99") ms          target < 5 ms:  $(verdict "$D_P99" '<' 5)   (max $D_MAX ms, n=$DISPATCH_N)
  chain                    $(printf '%9s' "$C_RATE") steps/s     $(ratio "$C_RATE" "$TPS1") of 1-client rate, target >= 40%: $(verdict "$C_RATE" '>=' "$(awk -v t="$TPS1" 'BEGIN { print 0.4 * t }')")
                           $(ratio "$C_RATE" "$P1") of the 1-client rate measured around it ($P1A before, $P1B after, ${PROBE_T}s each)
                           ($CHAIN_STEPS steps, median of $CHAIN_RUNS runs, first->last step: $C_GAP ms per step; df.start commit->completion: $C_RATE_E2E steps/s)
  one-step instances/s, 8 submitters:
    open loop              $(printf '%9s' "$TPO") inst/s      $(ratio "$TPO" "$TPS8") of 8-client rate, target >= 30%: $(verdict "$TPO" '>=' "$(awk -v t="$TPS8" 'BEGIN { print 0.3 * t }')")
                           $(ratio "$TPO" "$P8") of the 8-client rate measured around it ($P8A before, $P8B after)
                           ($((8 * TP_PER_CLIENT)) instances; first df.start -> last completion; submitters alone ran at $TPO_SUBMIT df.start/s)
    closed loop            $(printf '%9s' "$TP") inst/s      $(ratio "$TP" "$TPS8") of 8-client rate  (submit -> step committed avg $TP_LAT ms; includes 1 ms polling)
  CPU per open-loop instance, ms (daemon process, its state backends, its step backends, whole machine):
                           $TPO_CPU
dispatch breakdown (medians of $DIAG_N samples, daemon at debug log level; log stamps have 1 ms resolution):
  commit -> daemon wake-up $B_WAKE ms, wake-up -> instance loaded $B_LOAD ms, loaded -> step running $B_EXEC ms (total $B_TOTAL ms)
  slowest: $B_TAIL
           (total = commit->wake-up (of it: socket readable->drained on the link thread) + wake-up->loaded + loaded->step)
step timeline (one chain of $CHAIN_STEPS steps at debug log level, medians of $T_N steps, microseconds):
  step to step $T_STEP us = queued for a connection $T_QUEUED + statement (sent -> result read) $T_STATEMENT
  + result to orchestrator $T_TO_ORCH + next decision (interpreter, next step sent) $T_DECIDE + the rest
  (a 1-client pgbench commit took $(awk -v t="$TPS1" 'BEGIN { printf "%.0f", 1000000 / t }') us)
commit records in the WAL (pg_walinspect) and WAL bytes:
  per dispatch sample (df.start + its step)   $D_C commits, $D_W bytes
  per chain step                              $C_COMMITS commits, $C_WAL bytes
  per one-step instance (open loop)           $TPO_C commits, $TPO_W bytes
  per one-step instance (closed loop)         $TP_C commits, $TP_W bytes
chain runs (steps, status, steps/s, commit->completion steps/s, ms/step, commits/step, WAL bytes/step):
$(sed 's/^/  /' "$DIR/chain.txt")
EOF
if [ -n "$FAILURES$DAEMON_DEATHS" ]; then
  echo "FAILURES:$FAILURES$DAEMON_DEATHS"
  echo "daemon log (last lines):"
  tail -n 8 "$DAEMON_LOG"
  exit 1
fi
