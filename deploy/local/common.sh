# shellcheck shell=bash disable=SC2034
# (SC2034: the variables below are used by the scripts that source this file.)
# Shared variables and helpers of the local developer cluster (make run /
# make stop / make psql). Sourced, never executed.
#
# Layout (all under the project, git-ignored):
#   .local/pgdata        the cluster, owned by the postgres OS user
#   .local/run           its unix socket directory
#   .local/postgres.log  server log (stderr of postmaster, shim and daemon)
#   .local/daemon.pgpass the daemon's password (role durable_worker), owner
#                        postgres, 0600; PGPASSFILE of the server, so of the
#                        daemon the shim launches (PGD_AUTH=scram-sha-256)
#   .local/pgpass        durable_demo's password, for make psql and the demo
# If the postgres OS user cannot traverse into the project directory (e.g. a
# checkout under a 0700 home), the same layout lives in
# /var/tmp/pg_durable-<hash of the project path> instead.
#
# Environment knobs:
#   PGD_PORT=5499          TCP port and socket name of the cluster (run.sh
#                          remembers PGD_PORT and PGD_AUTH in cluster.env)
#   PGD_AUTH=scram-sha-256|peer  local-socket authentication of the daemon
#                          and the demo role (docs/OPERATIONS.md §1, §3)
#   PGD_ROLE=postgres      role make psql connects as
#   PGD_ATTACH_TIMEOUT=60  seconds run.sh waits for the daemon heartbeat
#   PGD_DEMO_TIMEOUT=20    seconds demo.sql waits for its instance
#   PGD_NO_PRELOAD=1       testing the cluster scripts without the library:
#                          no shared_preload_libraries, no extension, no demo

PGD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
PGD_DB=postgres
PGD_DEMO_ROLE=durable_demo
PGD_WORKER_ROLE=durable_worker

# Same choice as cmake/PostgreSQL.cmake: PG_CONFIG when given (`make run
# PG_CONFIG=/usr/lib/postgresql/17/bin/pg_config`), else the PostgreSQL 15 tree.
if [ -n "${PG_CONFIG:-}" ]; then
  PGD_PG_CONFIG=$PG_CONFIG
elif [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
  PGD_PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
else
  PGD_PG_CONFIG="$(command -v pg_config || true)"
fi
if [ -n "$PGD_PG_CONFIG" ]; then
  PGD_BINDIR="$("$PGD_PG_CONFIG" --bindir)"
else
  PGD_BINDIR=/usr/lib/postgresql/15/bin
fi

pgd_say()  { printf '\033[1m==> %s\033[0m\n' "$*"; }
pgd_warn() { printf '\033[1;33mWARNING: %s\033[0m\n' "$*" >&2; }
pgd_die()  { printf '\033[1;31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

# as_root CMD... runs CMD as root (directly, or through sudo).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -- "$@"; fi
}

# as_postgres CMD... runs CMD as the postgres OS user, from / so that a
# working directory it cannot read does not bother initdb or pg_ctl.
as_postgres() {
  if [ "$(id -un)" = postgres ]; then
    (cd / && "$@")
  elif [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && sudo -H -u postgres -- "$@")
  fi
}

# pgd_choose_state_dir sets PGD_STATE (and PGD_STATE_FALLBACK=1 when it is
# not the project-local .local/). .local/ when the postgres OS user can reach
# it, unless only a fallback cluster exists; so run, stop and psql agree.
pgd_choose_state_dir() {
  local local_dir="$PGD_ROOT/.local"
  local hash local_ok=0
  hash="$(printf '%s' "$PGD_ROOT" | sha256sum | cut -c1-12)"
  local fallback="/var/tmp/pg_durable-$hash"
  # unix socket paths max out at 107 bytes: keep room for /run/.s.PGSQL.NNNNN
  if [ "${#local_dir}" -le 80 ] && as_postgres test -x "$PGD_ROOT"; then local_ok=1; fi
  PGD_STATE="$local_dir"; PGD_STATE_FALLBACK=0
  if [ "$local_ok" = 1 ] && as_root test -f "$local_dir/pgdata/PG_VERSION"; then
    :
  elif as_root test -f "$fallback/pgdata/PG_VERSION" || [ "$local_ok" = 0 ]; then
    PGD_STATE="$fallback"; PGD_STATE_FALLBACK=1
  fi
  PGD_DATA="$PGD_STATE/pgdata"
  PGD_SOCK="$PGD_STATE/run"
  PGD_LOG="$PGD_STATE/postgres.log"
  PGD_DAEMON_PASSFILE="$PGD_STATE/daemon.pgpass"
  PGD_PASSFILE="$PGD_STATE/pgpass"
}

pgd_choose_state_dir

# Port and auth mode: the environment, else what run.sh last used for this
# cluster (cluster.env), else the defaults. So `PGD_PORT=5600 make run` is
# followed by a plain `make psql` / `make stop`.
pgd_saved() {
  [ -f "$PGD_STATE/cluster.env" ] || return 0
  sed -n "s/^$1=\([A-Za-z0-9_-]*\)$/\1/p" "$PGD_STATE/cluster.env" | tail -n1
}
PGD_PORT="${PGD_PORT:-$(pgd_saved PGD_PORT)}"
PGD_PORT="${PGD_PORT:-5499}"
PGD_AUTH="${PGD_AUTH:-$(pgd_saved PGD_AUTH)}"
PGD_AUTH="${PGD_AUTH:-scram-sha-256}"
# A cluster from before trust was dropped remembers it: move on to the default.
if [ "$PGD_AUTH" = trust ]; then
  pgd_warn "PGD_AUTH=trust is no longer supported: using scram-sha-256"
  PGD_AUTH=scram-sha-256
fi

# pgd_ctl ARGS... runs pg_ctl on this cluster as postgres.
pgd_ctl() { as_postgres "$PGD_BINDIR/pg_ctl" -D "$PGD_DATA" "$@"; }

# pgd_running succeeds when the cluster's postmaster is alive.
pgd_running() { as_root test -f "$PGD_DATA/PG_VERSION" && pgd_ctl status >/dev/null 2>&1; }

# pgd_psql [ARGS...] runs psql on the cluster as the postgres role (add
# -U <role> to change it), without psqlrc, stopping at the first error.
# postgres logs in by peer; other roles find their password in $PGD_PASSFILE.
pgd_psql() {
  as_postgres env PGPASSFILE="$PGD_PASSFILE" "$PGD_BINDIR/psql" -X -v ON_ERROR_STOP=1 -h "$PGD_SOCK" \
    -p "$PGD_PORT" -d "$PGD_DB" -U postgres "$@"
}

# pgd_postmaster_pid prints the postmaster's pid (first line of postmaster.pid).
pgd_postmaster_pid() { as_root head -n1 "$PGD_DATA/postmaster.pid" 2>/dev/null; }

# pgd_cluster_processes prints the pg_durable processes (shim, daemon)
# descending from this cluster's postmaster; other clusters' are ignored.
pgd_cluster_processes() {
  local pm
  pm="$(pgd_postmaster_pid)"
  [ -n "$pm" ] || return 0
  ps -eo pid=,ppid=,user=,etime=,args= | awk -v pm="$pm" '
    { pid[NR] = $1; ppid[$1] = $2; line[NR] = $0; args = $0
      sub(/^ *[0-9]+ +[0-9]+ +[^ ]+ +[^ ]+ +/, "", args); cmd[NR] = args }
    END {
      for (i = 1; i <= NR; i++) {
        if (cmd[i] !~ /pg_durable/) continue
        p = pid[i]; n = 0
        while (p != "" && p != 0 && p != pm && n++ < 64) p = ppid[p]
        if (p == pm) print line[i]
      }
    }'
}
