#!/usr/bin/env bash
# make run, after the build and `cmake --install`: starts (or restarts) the
# local developer cluster with pg_durable preloaded and the daemon launched by
# the extension's shim, loads the playground data, creates the demo role, waits
# for the daemon's heartbeat and runs deploy/local/demo.sql.
#
# Runs as root, or as a normal user with sudo. Safe to run again: an existing
# cluster is reused (restarted, so a freshly installed library is loaded).
# Knobs: see deploy/local/common.sh. Operations guide: docs/OPERATIONS.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGD_ATTACH_TIMEOUT="${PGD_ATTACH_TIMEOUT:-60}"
PGD_DEMO_TIMEOUT="${PGD_DEMO_TIMEOUT:-20}"
HERE="$PGD_ROOT/deploy/local"

# ---------------------------------------------------------------- preflight
[ -x "$PGD_BINDIR/initdb" ] ||
  pgd_die "PostgreSQL 15 server binaries not found in $PGD_BINDIR (run: make deps)"
id postgres >/dev/null 2>&1 ||
  pgd_die "no 'postgres' OS user; install postgresql-15 (make deps)"
[ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null ||
  pgd_die "run as root, or as a user with sudo"
case "$PGD_AUTH" in scram-sha-256|peer) ;; *) pgd_die "PGD_AUTH must be scram-sha-256 or peer" ;; esac
case "$PGD_PORT" in ''|*[!0-9]*) pgd_die "PGD_PORT must be a number" ;; esac

PRELOAD=1
[ "${PGD_NO_PRELOAD:-0}" = 1 ] && PRELOAD=0
if [ "$PRELOAD" = 1 ]; then
  pkglibdir="$("$PGD_PG_CONFIG" --pkglibdir)"
  sharedir="$("$PGD_PG_CONFIG" --sharedir)"
  [ -f "$pkglibdir/pg_durable.so" ] ||
    pgd_die "$pkglibdir/pg_durable.so is not installed (make install)"
  [ -f "$sharedir/extension/pg_durable.control" ] ||
    pgd_die "$sharedir/extension/pg_durable.control is not installed (make install)"
  [ -x "$PGD_BINDIR/pg_durable_daemon" ] ||
    pgd_warn "$PGD_BINDIR/pg_durable_daemon is not installed: the shim has nothing to launch"
else
  pgd_warn "PGD_NO_PRELOAD=1: cluster without pg_durable (testing the scripts only)"
fi

# ------------------------------------------------------------- directories
if [ "$PGD_STATE_FALLBACK" = 1 ]; then
  pgd_warn "the postgres OS user cannot reach $PGD_ROOT/.local (no search permission on a" \
    "parent directory, or the path is too long for a unix socket), or an earlier run put the" \
    "cluster in $PGD_STATE: the cluster lives there"
fi
pgd_say "local cluster: $PGD_DATA (port $PGD_PORT, socket $PGD_SOCK, auth $PGD_AUTH)"

# The state directory belongs to whoever runs make (or root for /var/tmp);
# postgres only needs to traverse it. Inside, postgres owns data and socket.
mkdir -p "$PGD_STATE" 2>/dev/null || as_root mkdir -p "$PGD_STATE"
chmod 755 "$PGD_STATE" 2>/dev/null || as_root chmod 755 "$PGD_STATE"
as_root install -d -o postgres -g postgres -m 700 "$PGD_DATA"
# Anyone may reach the socket: pg_hba.conf decides who logs in as whom.
as_root install -d -o postgres -g postgres -m 755 "$PGD_SOCK"
printf '# written by deploy/local/run.sh\nPGD_PORT=%s\nPGD_AUTH=%s\n' "$PGD_PORT" "$PGD_AUTH" |
  if [ -w "$PGD_STATE" ]; then tee "$PGD_STATE/cluster.env"; else as_root tee "$PGD_STATE/cluster.env"; fi >/dev/null
as_root test -e "$PGD_LOG" || as_root install -o postgres -g postgres -m 644 /dev/null "$PGD_LOG"
as_root chown postgres:postgres "$PGD_LOG"

# Passwords (scram-sha-256): made once, kept in passfiles only postgres (and
# root) can read; run.sh sets them on the roles on every run, so the files
# are the truth. passfile_password FILE prints the password of its one line.
passfile_password() { as_root test -f "$1" && as_root cut -d: -f5- "$1" | head -n1; }
new_password() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
# write_passfile FILE ROLE PASSWORD
write_passfile() {
  printf '*:*:*:%s:%s\n' "$2" "$3" | as_root install -o postgres -g postgres -m 600 /dev/stdin "$1"
}
WORKER_PASSWORD="" DEMO_PASSWORD=""
if [ "$PGD_AUTH" = scram-sha-256 ]; then
  WORKER_PASSWORD="$(passfile_password "$PGD_DAEMON_PASSFILE" || true)"
  [ -n "$WORKER_PASSWORD" ] || WORKER_PASSWORD="$(new_password)"
  write_passfile "$PGD_DAEMON_PASSFILE" "$PGD_WORKER_ROLE" "$WORKER_PASSWORD"
  DEMO_PASSWORD="$(passfile_password "$PGD_PASSFILE" || true)"
  [ -n "$DEMO_PASSWORD" ] || DEMO_PASSWORD="$(new_password)"
  write_passfile "$PGD_PASSFILE" "$PGD_DEMO_ROLE" "$DEMO_PASSWORD"
fi

# ------------------------------------------------------------------ initdb
if ! as_root test -f "$PGD_DATA/PG_VERSION"; then
  pgd_say "initdb"
  as_postgres "$PGD_BINDIR/initdb" -D "$PGD_DATA" -U postgres --encoding=UTF8 \
    --locale=C.UTF-8 --data-checksums -A peer --no-instructions >/dev/null
fi

# ------------------------------------------------------------ configuration
# sq VALUE quotes VALUE as a postgresql.conf string.
sq() { printf "'%s'" "${1//\'/\'\'}"; }

# The daemon's connection budget (SPEC.md §3): management + orchestrator +
# user connections. Room for a second daemon (a standby, or the old one while
# the shim restarts it) and for interactive sessions on top.
MGMT=6 DUROX=10 USERC=10
BUDGET=$((MGMT + DUROX + USERC))
MAXCONN=$((2 * BUDGET + 48))

# conf_file NAME writes stdin to $PGD_DATA/NAME as postgres.
conf_file() { as_postgres tee "$PGD_DATA/$1" >/dev/null; }

if [ "$PRELOAD" = 1 ]; then preload="shared_preload_libraries = 'pg_durable'"
else preload="# shared_preload_libraries = 'pg_durable'   (PGD_NO_PRELOAD=1)"; fi

conf_file pg_durable.local.conf <<EOF
# Written by deploy/local/run.sh on every run: edit run.sh, not this file
# (or put overrides in postgresql.auto.conf with ALTER SYSTEM).
listen_addresses = 'localhost'
port = $PGD_PORT
unix_socket_directories = $(sq "$PGD_SOCK")

# daemon budget $BUDGET (= $MGMT management + $DUROX orchestrator + $USERC user
# connections), twice for a standby daemon, plus 48 for sessions
max_connections = $MAXCONN

$preload
pg_durable.database = 'postgres'
pg_durable.worker_role = '$PGD_WORKER_ROLE'
pg_durable.launch_daemon = on
pg_durable.max_management_connections = $MGMT
pg_durable.max_duroxide_connections = $DUROX
pg_durable.max_user_connections = $USERC

# One log for postmaster, shim and daemon (the daemon inherits stderr).
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
EOF

if ! as_root grep -q "^include 'pg_durable.local.conf'" "$PGD_DATA/postgresql.conf"; then
  printf "\n# pg_durable developer cluster settings (deploy/local/run.sh)\ninclude 'pg_durable.local.conf'\n" |
    as_postgres tee -a "$PGD_DATA/postgresql.conf" >/dev/null
fi

# Who may use the local socket (docs/OPERATIONS.md §1, §3). The daemon logs
# in as its one role durable_worker (steps run as their submitter inside
# df._run_step), so it needs one line; no trust anywhere.
# The developer: ourselves, or who ran `sudo make run`. postgres, root and the
# developer log in as the superuser postgres by peer.
if [ "$(id -u)" -ne 0 ]; then invoker="$(id -un)"; else invoker="${SUDO_USER:-root}"; fi
mapped_os_users="postgres root"
case " $mapped_os_users " in *" $invoker "*) ;; *) mapped_os_users="$mapped_os_users $invoker" ;; esac
if [ "$PGD_AUTH" = scram-sha-256 ]; then
  {
    echo "# Written by deploy/local/run.sh (PGD_AUTH=scram-sha-256)."
    echo "# MAPNAME   SYSTEM-USERNAME  PG-USERNAME"
    for u in $mapped_os_users; do printf 'pg_durable  %-15s  postgres\n' "$u"; done
  } | conf_file pg_ident.conf
  conf_file pg_hba.conf <<EOF
# Written by deploy/local/run.sh (PGD_AUTH=scram-sha-256): the superuser by
# peer (the OS users pg_ident.conf maps), every other role -- the daemon's
# $PGD_WORKER_ROLE (passfile $PGD_DAEMON_PASSFILE) and $PGD_DEMO_ROLE
# (passfile $PGD_PASSFILE) -- by password.
# TYPE  DATABASE     USER      ADDRESS       METHOD
local   all          postgres                peer map=pg_durable
local   all          all                     scram-sha-256
local   replication  postgres                peer map=pg_durable
host    all          all       127.0.0.1/32  scram-sha-256
host    all          all       ::1/128       scram-sha-256
EOF
else
  # The daemon runs as the postgres OS user and logs in as $PGD_WORKER_ROLE.
  roles="postgres $PGD_DEMO_ROLE ${PGD_PEER_ROLES:-}"
  {
    echo "# Written by deploy/local/run.sh (PGD_AUTH=peer)."
    echo "# PostgreSQL 15 matches the role column literally (PG 16 adds 'all' and"
    echo "# regular expressions there), so every role needs its own line. Add"
    echo "# roles with PGD_PEER_ROLES='a b' make run."
    echo "# MAPNAME   SYSTEM-USERNAME  PG-USERNAME"
    printf 'pg_durable  %-15s  %s\n' postgres "$PGD_WORKER_ROLE"
    for u in $mapped_os_users; do
      for r in $roles; do printf 'pg_durable  %-15s  %s\n' "$u" "$r"; done
    done
  } | conf_file pg_ident.conf
  conf_file pg_hba.conf <<EOF
# Written by deploy/local/run.sh (PGD_AUTH=peer): OS users connect over the
# local socket as the roles pg_ident.conf's map pg_durable lists for them.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 peer map=pg_durable
local   replication  all                 peer map=pg_durable
host    all          all   127.0.0.1/32  scram-sha-256
host    all          all   ::1/128       scram-sha-256
EOF
fi

# ------------------------------------------------------------- start server
log_offset="$(as_root stat -c %s "$PGD_LOG")"
# log_since_start prints what the server logged since this run's start/restart.
log_since_start() { as_root tail -c +"$((log_offset + 1))" "$PGD_LOG"; }

if pgd_running; then
  pgd_say "cluster is running: restarting it so the installed library is loaded"
  ctl_args=(restart -m fast)
else
  pgd_say "starting the cluster"
  ctl_args=(start)
fi
# PGPASSFILE in the server's environment: the daemon the shim launches
# inherits it and finds durable_worker's password there.
if ! as_postgres env PGPASSFILE="$PGD_DAEMON_PASSFILE" "$PGD_BINDIR/pg_ctl" -D "$PGD_DATA" \
     -l "$PGD_LOG" -w -t 120 "${ctl_args[@]}" >/dev/null; then
  log_since_start | tail -n 25 >&2 || true
  pgd_die "pg_ctl ${ctl_args[0]} failed; log: $PGD_LOG (is port $PGD_PORT taken by another server?)"
fi
pgd_psql -Atqc "SELECT 'server: ' || version()"

print_connect_help() {
  local psql_cmd="psql -h $PGD_SOCK -p $PGD_PORT -U postgres postgres"
  cat <<EOF

Connect:  make psql                      (PGD_ROLE=$PGD_DEMO_ROLE make psql for the demo role)
          $psql_cmd
Log:      $PGD_LOG
Stop:     make stop
EOF
}

if [ "$PRELOAD" = 0 ]; then
  print_connect_help
  exit 0
fi

# ---------------------------------------------------------------- extension
if [ "${PGD_RECREATE:-0}" = 1 ]; then
  pgd_say "PGD_RECREATE=1: dropping the extension (all instances are lost)"
  pgd_psql -qc "DROP EXTENSION IF EXISTS pg_durable CASCADE"
fi
# The daemon's own role (docs/OPERATIONS.md §3.1), before CREATE EXTENSION,
# which grants it what the daemon needs. The GRANTs after it cover a cluster
# whose extension predates the role.
pgd_say "daemon role $PGD_WORKER_ROLE"
if [ "$PGD_AUTH" = scram-sha-256 ]; then worker_pw="PASSWORD '$WORKER_PASSWORD'"; else worker_pw="PASSWORD NULL"; fi
pgd_psql -q <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '$PGD_WORKER_ROLE') THEN
    CREATE ROLE $PGD_WORKER_ROLE LOGIN BYPASSRLS;
  END IF;
END
\$\$;
ALTER ROLE $PGD_WORKER_ROLE LOGIN BYPASSRLS NOSUPERUSER $worker_pw;
GRANT pg_read_all_settings TO $PGD_WORKER_ROLE;
EOF

pgd_say "CREATE EXTENSION pg_durable"
pgd_psql -qc "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_durable"
pgd_psql -q <<EOF
GRANT USAGE ON SCHEMA df TO $PGD_WORKER_ROLE;
GRANT SELECT, UPDATE, DELETE ON df.instances TO $PGD_WORKER_ROLE;
GRANT SELECT, UPDATE ON df.nodes TO $PGD_WORKER_ROLE;
GRANT SELECT ON df._instance_vars TO $PGD_WORKER_ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON df._activations, df._worker_epoch TO $PGD_WORKER_ROLE;
GRANT SELECT, INSERT, DELETE ON df._executions TO $PGD_WORKER_ROLE;
GRANT SELECT, DELETE ON df._signals TO $PGD_WORKER_ROLE;
GRANT SELECT, INSERT, UPDATE ON df._daemon_secret TO $PGD_WORKER_ROLE;
EOF
pgd_psql -Atqc "SELECT 'pg_durable ' || extversion FROM pg_extension WHERE extname = 'pg_durable'"
pgd_psql -Atqc "SELECT 'df.version(): ' || df.version()" 2>/dev/null || true

pgd_say "playground schema (deploy/local/playground.sql)"
# Fed through stdin: the postgres OS user need not be able to read the project.
pgd_psql -q -At < "$HERE/playground.sql"

pgd_say "demo role $PGD_DEMO_ROLE"
if [ "$PGD_AUTH" = scram-sha-256 ]; then demo_pw="PASSWORD '$DEMO_PASSWORD'"; else demo_pw="PASSWORD NULL"; fi
pgd_psql -q <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '$PGD_DEMO_ROLE') THEN
    CREATE ROLE $PGD_DEMO_ROLE LOGIN;
  END IF;
END
\$\$;
ALTER ROLE $PGD_DEMO_ROLE LOGIN NOSUPERUSER $demo_pw;
\o /dev/null
SELECT df.grant_usage('$PGD_DEMO_ROLE');
\o
GRANT USAGE ON SCHEMA playground TO $PGD_DEMO_ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA playground TO $PGD_DEMO_ROLE;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA playground TO $PGD_DEMO_ROLE;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA playground TO $PGD_DEMO_ROLE;
EOF

# ------------------------------------------------------- daemon heartbeat
# Attached = a df._worker_epoch row written since this server start and
# refreshed recently (the daemon updates last_seen_at at least every 5 s).
pgd_say "waiting up to ${PGD_ATTACH_TIMEOUT}s for the daemon to attach (df._worker_epoch)"
hb_sql="SELECT format('epoch %s, attached %s, last seen %s (%s s ago)', epoch_id,
          date_trunc('second', started_at), last_seen_at,
          round(extract(epoch FROM clock_timestamp() - last_seen_at)::numeric, 1))
        FROM df._worker_epoch
        WHERE started_at >= pg_postmaster_start_time()
          AND last_seen_at > clock_timestamp() - interval '15 seconds'
        ORDER BY last_seen_at DESC LIMIT 1"
deadline=$((SECONDS + PGD_ATTACH_TIMEOUT))
hb=""
while :; do
  hb="$(pgd_psql -Atq -c "$hb_sql" 2>/dev/null || true)"
  [ -n "$hb" ] && break
  [ "$SECONDS" -ge "$deadline" ] && break
  sleep 1
done
attached=0
if [ -n "$hb" ]; then
  attached=1
  echo "daemon attached: $hb"
else
  pgd_warn "no daemon heartbeat within ${PGD_ATTACH_TIMEOUT}s; instances stay pending until one attaches"
  echo "df._worker_epoch now:"
  pgd_psql -q -c "SELECT *, now() - last_seen_at AS age FROM df._worker_epoch" 2>&1 || true
fi
echo "pg_durable processes of this cluster (pid ppid user elapsed command):"
procs="$(pgd_cluster_processes)"
if [ -n "$procs" ]; then echo "$procs"; else echo "  (none: no shim, no daemon)"; fi
echo "pg_durable log lines since the start:"
log_since_start | grep -E 'pg_durable' | tail -n 15 || echo "  (none)"

# -------------------------------------------------------------------- demo
pgd_say "demo (deploy/local/demo.sql, as $PGD_DEMO_ROLE)"
if ! pgd_psql -U "$PGD_DEMO_ROLE" -v demo_timeout="$PGD_DEMO_TIMEOUT" < "$HERE/demo.sql"; then
  pgd_warn "the demo failed (see above); the cluster is up anyway"
fi

[ "$attached" = 1 ] || pgd_warn "the daemon is not attached: check $PGD_LOG and docs/OPERATIONS.md (Troubleshooting)"
print_connect_help
