#!/usr/bin/env bash
# make psql: psql on the local developer cluster, as the postgres role (or
# PGD_ROLE=<role>). Extra arguments go to psql: bash deploy/local/psql.sh -c 'SELECT 1'
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

role="${PGD_ROLE:-postgres}"
pgd_running || pgd_die "the local cluster ($PGD_DATA) is not running: make run"

args=(-h "$PGD_SOCK" -p "$PGD_PORT" -U "$role" -d "$PGD_DB" "$@")
if [ "$(id -u)" -eq 0 ] || [ "$PGD_AUTH" = peer ] || [ "$role" = postgres ]; then
  # peer maps root and the invoking user to postgres (and, with PGD_AUTH=peer,
  # to the demo role); root also reads the passfile of the other roles. Run
  # psql as ourselves so history and ~/.psqlrc are ours.
  exec env PGPASSFILE="$PGD_PASSFILE" "$PGD_BINDIR/psql" "${args[@]}"
else
  # scram-sha-256: the demo role's passfile belongs to postgres (0600). From
  # /, as postgres may not be able to enter the current directory; so psql's
  # -f needs an absolute path it can read (or feed the file on stdin).
  cd /
  exec sudo -H -u postgres -- env PGPASSFILE="$PGD_PASSFILE" "$PGD_BINDIR/psql" "${args[@]}"
fi
