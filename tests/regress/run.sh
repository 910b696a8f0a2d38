#!/usr/bin/env bash
# Runs the pg_regress suite on a throw-away instance with pg_durable preloaded
# and created in contrib_regression before the first file (so every file sees
# the same NOTICE from its own CREATE EXTENSION IF NOT EXISTS).
# The instance is our own, not pg_regress's --temp-instance (whose initdb
# trusts every local connection): initdb --auth=scram-sha-256 with a password
# for the superuser, which psql finds in a passfile (PGPASSFILE).
# initdb refuses to run as root, so when we are root the suite runs as the
# postgres OS user in a scratch directory it owns.
# Usage: run.sh <pg_regress> <bindir> <suite dir>
set -euo pipefail
pg_regress=$1 bindir=$2 suite=$3

work=$(mktemp -d /tmp/pgd_regress.XXXXXX)
cleanup() {
  if [ -f "$work/data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cp -r "$suite/sql" "$suite/expected" "$work/"
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$password" > "$work/pwfile"
printf '*:*:*:*:%s\n' "$password" > "$work/pgpass"
chmod 600 "$work/pwfile" "$work/pgpass"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
export PGPASSFILE="$work/pgpass"

# Free port: ask the kernel for one (pg_regress would otherwise pick a fixed one).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    # Neither a TCP listener nor a socket file of another cluster on it.
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && ! ls /tmp/.s.PGSQL.$p >/dev/null 2>&1; then
      echo $p; return
    fi
  done
}
port=$(free_port)
tests=$(cd "$work/sql" && ls *.sql | sed 's/\.sql$//' | sort)

as_owner "$bindir/initdb" -D "$work/data" --auth=scram-sha-256 --pwfile="$work/pwfile" \
  --no-sync --no-instructions > "$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
# What pg_regress's temp instance would have (-F, its own additions), plus ours.
cat >> "$work/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
fsync = off
max_prepared_transactions = 2
shared_preload_libraries = 'pg_durable'
pg_durable.launch_daemon = off
pg_durable.database = 'contrib_regression'
CONF
mkdir -p "$work/log" && { [ "$(id -u)" -ne 0 ] || chown postgres: "$work/log"; }
# The server inherits PGHOST, PGPORT and PGPASSFILE, as under pg_regress's
# temp instance: dblink in the tests connects back to it with them.
export PGHOST="$work" PGPORT="$port"
as_owner "$bindir/pg_ctl" -D "$work/data" -l "$work/log/postmaster.log" -w -t 120 start >/dev/null
# pg_regress --use-existing creates no database: do what it would have done.
psql_su() { as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_su -d postgres -c "CREATE DATABASE contrib_regression TEMPLATE=template0" \
  -c "ALTER DATABASE contrib_regression SET lc_messages TO 'C'" \
  -c "ALTER DATABASE contrib_regression SET lc_monetary TO 'C'" \
  -c "ALTER DATABASE contrib_regression SET lc_numeric TO 'C'" \
  -c "ALTER DATABASE contrib_regression SET lc_time TO 'C'" \
  -c "ALTER DATABASE contrib_regression SET bytea_output TO 'hex'" \
  -c "ALTER DATABASE contrib_regression SET timezone_abbreviations TO 'Default'"
psql_su -d contrib_regression -c 'CREATE EXTENSION IF NOT EXISTS "pg_durable"'

status=0
(cd "$work" && as_owner "$pg_regress" --use-existing \
    --bindir="$bindir" --inputdir="$work" --outputdir="$work" --host="$work" --port="$port" \
    --dbname=contrib_regression \
    $tests) || status=$?
# For writing expected files: PGD_REGRESS_RESULTS=<dir> keeps the actual output.
if [ -n "${PGD_REGRESS_RESULTS:-}" ]; then
  mkdir -p "$PGD_REGRESS_RESULTS" && cp "$work"/results/*.out "$PGD_REGRESS_RESULTS"/ 2>/dev/null || true
fi
if [ $status -ne 0 ] && [ -f "$work/regression.diffs" ]; then
  cat "$work/regression.diffs"
  tail -n 50 "$work/log/postmaster.log" 2>/dev/null || true
fi
exit $status
