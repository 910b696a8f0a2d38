# bench/lib_cluster.sh — the throw-away cluster and daemon of the bench
# scripts that need one (loop_history.sh, operator_metrics.sh). Sourced, not run.
#
# The caller sets BENCH_NAME (messages, mktemp prefix) and may set BENCH_CONF
# (extra postgresql.conf lines), then calls
#   bench_cluster_start   preflight; initdb in a mktemp directory (own port and
#                         socket, as the postgres OS user when run as root),
#                         scram-sha-256 with one throw-away password for every
#                         role in a passfile (PGPASSFILE), pg_durable preloaded
#                         with launch_daemon = off, server started,
#                         CREATE EXTENSION pg_durable; an EXIT trap stops the
#                         daemon and the server and removes the directory
#                         (PGD_KEEP_BENCH=1 keeps it), even on failure; PGD_BENCH_PORT picks the port
#   bench_daemon_start    pg_durable_daemon (PGD_DAEMON, else PostgreSQL's
#                         bindir, else build*/daemon/) until it has attached
# and then uses BINDIR, DIR, PORT, PASSWORD, SUPERUSER, CONN (psql connection
# arguments), psql_su (psql as the superuser), val (one value), say, die.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

bench_cluster_start() {
  BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
  if [ -n "${PG_CONFIG:-}" ]; then
    BINDIR="$("$PG_CONFIG" --bindir)"
  elif [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
    BINDIR="$(/usr/lib/postgresql/15/bin/pg_config --bindir)"
  else
    BINDIR="$(pg_config --bindir)"
  fi
  PKGLIBDIR="$("$BINDIR/pg_config" --pkglibdir)"
  for tool in initdb pg_ctl psql; do
    [ -x "$BINDIR/$tool" ] || die "$BINDIR/$tool not found (PostgreSQL 15 server and client packages)"
  done
  [ -f "$PKGLIBDIR/pg_durable.so" ] || die "$PKGLIBDIR/pg_durable.so is not installed (make install)"
  DAEMON="${PGD_DAEMON:-}"
  if [ -z "$DAEMON" ]; then
    if [ -x "$BINDIR/pg_durable_daemon" ]; then
      DAEMON="$BINDIR/pg_durable_daemon"
    else
      DAEMON="$(ls -t "$BENCH_ROOT"/build*/daemon/pg_durable_daemon 2>/dev/null | head -n1 || true)"
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

  DIR="$(mktemp -d "/tmp/pgd-$BENCH_NAME-XXXXXX")"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
  chmod 755 "$DIR"
  DATA="$DIR/data"
  SERVER_LOG="$DIR/server.log"
  DAEMON_LOG="$DIR/daemon.log"
  DAEMON_PID=""
  SERVER_UP=0
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  PORT="${PGD_BENCH_PORT:-}"
  [ -n "$PORT" ] || PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
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
  as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<CONF

# pg_durable benchmark cluster (bench/$BENCH_NAME.sh)
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_durable'
pg_durable.database = 'postgres'
pg_durable.launch_daemon = off
log_line_prefix = '%m [%p] %u %a '
${BENCH_CONF:-}
CONF
  as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 start >/dev/null || die "pg_ctl start failed"
  SERVER_UP=1

  CONN=(-h "$DIR" -p "$PORT" -d postgres)
  psql_su -c "CREATE EXTENSION pg_durable" >/dev/null
}

psql_su() { "$BINDIR/psql" "${CONN[@]}" -U "$SUPERUSER" -X -q -v ON_ERROR_STOP=1 "$@"; }
val()     { psql_su -At -c "$1"; }

# Loads $1 instances straight into the tables, shaped like a busy system's
# history: each a THEN of two SQL steps (3 nodes, 2 step activations); 95 %
# completed, 1 % failed, 1 % cancelled, 1 % pending, 2 % running (half
# waiting on a timer due in a day, half on a signal); 1,000 of the completed
# ones started in the last minute.
# Synthetic history: the step-counter trigger is off while it loads (one
# transaction updating one counter row 200,000 times is quadratic: every
# update walks the row's chain of versions that transaction wrote).
bench_load_history() {  # $1 = instances, $2 = the role that submitted them
  local N="$1" ROLE="$2"
  psql_su <<SQL
BEGIN;
ALTER TABLE df._activations DISABLE TRIGGER _activations_count_outcome;
INSERT INTO df.instances (id, root_node, status, submitted_by, database, created_at, updated_at, completed_at)
SELECT lpad(to_hex(g), 8, '0'), 'a0000001', s.status, '$ROLE', 'postgres', c.created, c.created + interval '1 s',
       CASE WHEN s.status = 'completed' THEN c.created + interval '1 s' END
  FROM generate_series(1, $N) g,
       LATERAL (SELECT CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 100 = 1 THEN 'cancelled'
                            WHEN g % 100 = 2 THEN 'pending' WHEN g % 100 IN (3, 4) THEN 'running'
                            ELSE 'completed' END AS status) s,
       LATERAL (SELECT CASE WHEN g > $N - 1000 AND s.status = 'completed' THEN now() - interval '30 s'
                            ELSE now() - interval '1 hour' - make_interval(secs => g) END AS created) c;
INSERT INTO df.nodes (id, instance_id, node_type, query, left_node, right_node, status, submitted_by, database)
SELECT n.id, i.id, n.type, n.query, n.l, n.r,
       CASE WHEN i.status IN ('pending', 'running') THEN 'pending' ELSE i.status END, '$ROLE', 'postgres'
  FROM df.instances i,
       LATERAL (VALUES ('a0000001', 'THEN', NULL, 'a0000002', 'a0000003'),
                       ('a0000002', 'SQL', 'SELECT 1', NULL, NULL),
                       ('a0000003', CASE WHEN i.status = 'running' AND ('x' || i.id)::bit(32)::int % 2 = 0 THEN 'SIGNAL'
                                         WHEN i.status = 'running' THEN 'SLEEP' ELSE 'SQL' END,
                        CASE WHEN i.status = 'running' AND ('x' || i.id)::bit(32)::int % 2 = 0 THEN '{"signal_name":"go","timeout_seconds":null}'
                             WHEN i.status = 'running' THEN '86400' ELSE 'SELECT 2' END,
                        NULL, NULL)) AS n(id, type, query, l, r);
INSERT INTO df._activations (instance_id, stamp, node_id, execution, status, result, started_at, completed_at, wake_at)
SELECT i.id, i.id || '::1', n.node_id,  1,
       CASE WHEN i.status = 'running' AND n.node_id = 'a0000003' THEN 'running'
            WHEN i.status = 'failed' AND n.node_id = 'a0000003' THEN 'failed'
            WHEN i.status = 'cancelled' AND n.node_id = 'a0000003' THEN 'cancelled'
            ELSE 'completed' END,
       '{"rows":[{"?column?":1}],"row_count":1}',
       i.created_at + interval '0.2 s', i.created_at + interval '0.5 s',
       CASE WHEN i.status = 'running' AND n.node_id = 'a0000003' AND ('x' || i.id)::bit(32)::int % 2 = 1
            THEN now() + interval '1 day' END
  FROM df.instances i, LATERAL (VALUES ('a0000002'), ('a0000003')) AS n(node_id)
 WHERE i.status <> 'pending';
ALTER TABLE df._activations ENABLE TRIGGER _activations_count_outcome;
COMMIT;
VACUUM ANALYZE df.instances, df.nodes, df._activations;
SQL
}

bench_daemon_start() {
  TZ=UTC "$DAEMON" --conninfo "host=$DIR port=$PORT dbname=postgres user=$SUPERUSER" --log-level info \
    >>"$DAEMON_LOG" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 300); do
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited at start: $(tail -n 3 "$DAEMON_LOG")"
    [ "$(val "SELECT count(*) FROM df._daemon_secret WHERE updated_at >= now() - interval '60 s'")" -gt 0 ] && return
    sleep 0.1
  done
  die "the daemon did not attach within 30 s: $(tail -n 3 "$DAEMON_LOG")"
}

bench_cleanup() {
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
      echo "$BENCH_NAME: WARNING: pg_ctl stop failed; cluster in $DIR" >&2
  fi
  if [ "$rc" -ne 0 ]; then
    echo "$BENCH_NAME: FAILED (exit $rc). Last lines of the server and daemon logs:" >&2
    tail -n 15 "$SERVER_LOG" >&2 2>/dev/null
    tail -n 15 "$DAEMON_LOG" >&2 2>/dev/null
  fi
  if [ "${PGD_KEEP_BENCH:-0}" = 1 ]; then
    echo "$BENCH_NAME: kept $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$rc"
}
