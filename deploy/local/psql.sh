#!/usr/bin/env bash
# make psql: psql on the local developer cluster, as the postgres role (or
# PGD_ROLE=<role>). Extra arguments go to psql: bash deploy/local/psql.sh -c 'SELECT 1'
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

role="${PGD_ROLE:-postgres}"
pgd_running || pgd_die "the local cluster ($PGD_DATA) is not running: make run"

args=(-h "$PGD_SOCK" -p "$PGD_PORT" -U "$role" -d "$PGD_DB" "$@")
if [ "$(id -u)" -eq 0 ] || [ "$PGD_AUTH" = peer ]; then
  # root reaches the private socket (trust), peer maps root and the invoking
  # user: run psql as ourselves so history and ~/.psqlrc are ours.
  exec "$PGD_BINDIR/psql" "${args[@]}"
else
  # trust: only the postgres OS user can reach the socket directory. From /,
  # as postgres may not be able to enter the current directory; so psql's -f
  # needs an absolute path it can read (or feed the file on stdin).
  cd /
  exec sudo -H -u postgres -- "$PGD_BINDIR/psql" "${args[@]}"
fi
