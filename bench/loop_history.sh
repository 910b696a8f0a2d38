#!/usr/bin/env bash
# bench/loop_history.sh — does a root loop's history stay bounded at any
# speed? (issue 11 item 3, DESIGN.md §2.8)
#
#   bash bench/loop_history.sh              samples at 1 and 10 minutes (about 11 min)
#   PGD_LOOP_MINUTES="1 2" bash bench/loop_history.sh   other sample times (minutes, ascending)
#
# One throw-away cluster (mktemp directory, own port and socket, as the
# postgres OS user when run as root), pg_durable preloaded with
# launch_daemon = off, pg_durable.history_executions = 10, autovacuum on (as
# in production), and pg_durable_daemon started by this script. One instance
# runs the zero-interval root loop
#     df.loop('SELECT 1' ~> 'SELECT 2' ~> 'SELECT 3', NULL, 0)
# as a non-superuser role. At each sample time the script prints the row
# count of every table in schema df, the loop's execution number, and the
# executions per second since the previous sample, and the file sizes of the
# tables that turn over. Bounded history means the
# counts at 1 minute and at 10 minutes are the same (up to the one execution
# in flight), while the execution number grows by tens of thousands.
#
# Environment: PGD_DAEMON=/path/to/pg_durable_daemon (default: PostgreSQL's
# bindir, else build*/daemon/), PGD_LOOP_MINUTES (default "1 10"),
# PGD_KEEP_BENCH=1 keeps the cluster directory and logs.
set -euo pipefail

MINUTES="${PGD_LOOP_MINUTES:-1 10}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/.." && pwd -P)"
if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
  BINDIR="$(/usr/lib/postgresql/15/bin/pg_config --bindir)"
else
  BINDIR="$(pg_config --bindir)"
fi
PKGLIBDIR="$("$BINDIR/pg_config" --pkglibdir)"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'loop_history: ERROR: %s\n' "$*" >&2; exit 1; }

for tool in initdb pg_ctl psql; do
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

DIR="$(mktemp -d /tmp/pgd-loop-XXXXXX)"
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
      echo "loop_history: WARNING: pg_ctl stop failed; cluster in $DIR" >&2
  fi
  if [ "$rc" -ne 0 ]; then
    echo "loop_history: FAILED (exit $rc). Last lines of the server and daemon logs:" >&2
    tail -n 15 "$SERVER_LOG" >&2 2>/dev/null
    tail -n 15 "$DAEMON_LOG" >&2 2>/dev/null
  fi
  if [ "${PGD_KEEP_BENCH:-0}" = 1 ]; then
    echo "loop_history: kept $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000)))"

say "cluster in $DIR (port $PORT)"
# scram-sha-256, no trust (as bench/run.sh): one throw-away password for every
# role, in a passfile (one wildcard line) that psql and the daemon read.
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

# pg_durable loop-history benchmark cluster (bench/loop_history.sh)
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_durable'
pg_durable.database = 'postgres'
pg_durable.launch_daemon = off
pg_durable.history_executions = 10
log_line_prefix = '%m [%p] %u %a '
EOF
as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 start >/dev/null || die "pg_ctl start failed"
SERVER_UP=1

CONN=(-h "$DIR" -p "$PORT" -d postgres)
psql_su() { "$BINDIR/psql" "${CONN[@]}" -U "$SUPERUSER" -X -q -v ON_ERROR_STOP=1 "$@"; }
val()     { psql_su -At -c "$1"; }

psql_su -c "CREATE EXTENSION pg_durable" >/dev/null
psql_su -c "CREATE ROLE looper LOGIN PASSWORD '$PASSWORD'" >/dev/null
psql_su -c "SELECT df.grant_usage('looper')" >/dev/null

TZ=UTC "$DAEMON" --conninfo "host=$DIR port=$PORT dbname=postgres user=$SUPERUSER" --log-level info \
  >>"$DAEMON_LOG" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 300); do
  kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited at start: $(tail -n 3 "$DAEMON_LOG")"
  [ "$(val "SELECT count(*) FROM df._daemon_secret WHERE updated_at >= now() - interval '60 s'")" -gt 0 ] && break
  sleep 0.1
done

ID="$("$BINDIR/psql" "${CONN[@]}" -U looper -X -At -v ON_ERROR_STOP=1 \
        -c "SELECT df.start(df.loop('SELECT 1' ~> 'SELECT 2' ~> 'SELECT 3', NULL, 0), 'loop-history')")"
T0="$(date +%s.%N)"
say "instance $ID started; daemon $DAEMON"

# One line per df table: "<table> <rows>", in name order.
TABLE_COUNTS_SQL="SELECT string_agg(format('%s=%s', c.relname,
                     (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM df.%I', c.relname),
                                                          false, true, '')))[1]::text), ' ' ORDER BY c.relname)
                    FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                   WHERE s.nspname = 'df' AND c.relkind IN ('r', 'p')"

# The tables' files (with indexes and TOAST) of the tables that turn over.
TABLE_SIZES_SQL="SELECT string_agg(format('%s=%s', c.relname, pg_size_pretty(pg_total_relation_size(c.oid))), ' '
                                   ORDER BY c.relname)
                   FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                  WHERE s.nspname = 'df' AND c.relname IN ('_activations', '_executions', 'nodes', 'instances')"

PREV_T="$T0" PREV_EXEC=1
printf '%-8s %-10s %-8s %s\n' minute execution exec/s "row counts (schema df)"
for m in $MINUTES; do
  target="$(awk -v t0="$T0" -v m="$m" 'BEGIN { printf "%.3f", t0 + m * 60 }')"
  while :; do
    now="$(date +%s.%N)"
    left="$(awk -v a="$target" -v b="$now" 'BEGIN { print (a - b > 0) ? a - b : 0 }')"
    [ "$left" = 0 ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon died: $(tail -n 5 "$DAEMON_LOG")"
    sleep "$(awk -v l="$left" 'BEGIN { print (l > 5) ? 5 : l }')"
  done
  status="$(val "SELECT status FROM df.instances WHERE id = '$ID'")"
  [ "$status" = running ] || die "the loop is $status, not running"
  exec_now="$(val "SELECT execution_count FROM df.instances WHERE id = '$ID'")"
  t_now="$(date +%s.%N)"
  counts="$(val "$TABLE_COUNTS_SQL")"
  rate="$(awk -v e="$exec_now" -v p="$PREV_EXEC" -v a="$t_now" -v b="$PREV_T" 'BEGIN { printf "%.0f", (e - p) / (a - b) }')"
  sizes="$(val "$TABLE_SIZES_SQL")"
  printf '%-8s %-10s %-8s %s\n' "$m" "$exec_now" "$rate" "$counts"
  printf '%-8s %-10s %-8s %s\n' "" "" "" "sizes: $sizes"
  PREV_T="$t_now" PREV_EXEC="$exec_now"
done
