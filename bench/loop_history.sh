#!/usr/bin/env bash
# bench/loop_history.sh — does a root loop's history stay bounded at any
# speed? (issue 11 item 3, DESIGN.md §2.8)
#
#   bash bench/loop_history.sh              samples at 1 and 10 minutes (about 11 min)
#   PGD_LOOP_MINUTES="1 2" bash bench/loop_history.sh   other sample times (minutes, ascending)
#
# One throw-away cluster (bench/lib_cluster.sh: mktemp directory, own port
# and socket, as the postgres OS user when run as root), pg_durable preloaded
# with launch_daemon = off, pg_durable.history_executions = 10, autovacuum on (as
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

BENCH_NAME=loop_history
BENCH_CONF="pg_durable.history_executions = 10"
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/lib_cluster.sh"
bench_cluster_start

psql_su -c "CREATE ROLE looper LOGIN PASSWORD '$PASSWORD'" >/dev/null
psql_su -c "SELECT df.grant_usage('looper')" >/dev/null

bench_daemon_start

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
