#!/usr/bin/env bash
# Runs the pg_regress suite on a throw-away instance with pg_durable preloaded
# and created in contrib_regression before the first file (so every file sees
# the same NOTICE from its own CREATE EXTENSION IF NOT EXISTS).
# initdb refuses to run as root, so when we are root the suite runs as the
# postgres OS user in a scratch directory it owns.
# Usage: run.sh <pg_regress> <bindir> <suite dir>
set -euo pipefail
pg_regress=$1 bindir=$2 suite=$3

work=$(mktemp -d /tmp/pgd_regress.XXXXXX)
cleanup() {
  # pg_regress stops its own temp instance; this catches an interrupted run.
  if [ -f "$work/tmp_check/data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$work/tmp_check/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cp -r "$suite/sql" "$suite/expected" "$work/"
cat > "$work/regress.conf" <<CONF
shared_preload_libraries = 'pg_durable'
pg_durable.launch_daemon = off
pg_durable.database = 'contrib_regression'
CONF
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"

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

status=0
(cd "$work" && as_owner "$pg_regress" \
    --temp-instance="$work/tmp_check" --temp-config="$work/regress.conf" \
    --bindir="$bindir" --inputdir="$work" --outputdir="$work" --port="$port" \
    --dbname=contrib_regression --load-extension=pg_durable \
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
