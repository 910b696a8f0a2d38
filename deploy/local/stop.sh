#!/usr/bin/env bash
# make stop: stops the local developer cluster (fast mode: sessions are
# disconnected, running transactions roll back). The shim stops the daemon
# with the server. Does nothing when the cluster does not exist or is down.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! as_root test -f "$PGD_DATA/PG_VERSION"; then
  echo "no local cluster in $PGD_DATA: nothing to stop"
  exit 0
fi
if ! pgd_running; then
  echo "local cluster ($PGD_DATA) is not running"
  exit 0
fi

# Remember the daemon's pid(s) to check that it went down with the server.
daemon_pids="$(pgd_cluster_processes | awk '/pg_durable_daemon/ { print $1 }')"
pgd_say "stopping the local cluster ($PGD_DATA, port $PGD_PORT)"
pgd_ctl -w -t 120 stop -m fast >/dev/null
echo "stopped"

for pid in $daemon_pids; do
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    pgd_warn "pg_durable_daemon (pid $pid) is still running after the server stopped;" \
      "it retries its connection until stopped (kill $pid)"
  fi
done
