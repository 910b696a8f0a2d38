#!/usr/bin/env bash
# `make test-pg17`: builds pg_durable against PostgreSQL 17 and runs the ctest
# suites there, in a Debian 13 (trixie) root made with debootstrap from
# Debian's own archive (README, "Testing against PostgreSQL 17").
#
#   scripts/test-pg17.sh <out dir> [suites]
#
# <out dir> (default build-pg17) keeps the root (<out dir>/root, made once;
# its packages are refreshed only when the list below changes) and, inside
# the root, the build directory (/build) and a ccache (/var/cache/pgd-ccache),
# so a second run only rebuilds what changed and reruns the tests.
# [suites] is "all" (default: every ctest suite, as `make test` on 15), "ci"
# (unit, regress and the [engine] integration cases: what CI would run on 17
# if the budget could not hold both full suites) or a Catch2 tag spec such as
# "[keepalive]" (only those integration cases). Extra ctest arguments:
# PG17_CTEST_ARGS.
#
# Isolation and cleanup: the build and the tests run in their own mount, PID,
# network and IPC namespaces (unshare). Every process the run starts (the
# clusters, the daemons, the tests) lives in the PID namespace and is killed
# by the kernel when its first process exits, whichever way the run ends; the
# /proc, /dev and source mounts exist only in the mount namespace and vanish
# with it; the clusters listen on the namespace's own loopback, so their
# ports cannot collide with the host's clusters. Package installs run in a
# mount and PID namespace of their own (with the host's network).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$src/build-pg17}" && cd "${1:-$src/build-pg17}" && pwd)
suites=${2:-all}
root=$out/root
[ "$(id -u)" -eq 0 ] || { echo "test-pg17: needs root (debootstrap, chroot, unshare); run with sudo" >&2; exit 1; }

# The mirror this machine's apt uses, for the same host with trixie.
mirror=${PGD_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list 2>/dev/null |
           grep -oE 'https?://[^ ]+/debian/?$' | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

# scripts/install-deps.sh's list with Debian 13's names (postgresql-17),
# plus ccache.
PACKAGES=(
  build-essential cmake pkg-config ccache iproute2
  postgresql-17 postgresql-server-dev-17 postgresql-client-17 postgresql-contrib
  libpq-dev libpqxx-dev
  libboost-dev libboost-system-dev
  nlohmann-json3-dev libspdlog-dev catch2 libcctz-dev
  libssl-dev ca-certificates tzdata
  prometheus prometheus-postgres-exporter
)

step_start=$(date +%s)
step() {
  local now; now=$(date +%s)
  echo "test-pg17: [$((now - step_start)) s] $*"
}

if [ ! -e "$root/.pgd-debootstrap" ]; then
  step "debootstrap trixie from $mirror into $root"
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  rm -rf "$root.tmp"
  debootstrap --variant=minbase trixie "$root.tmp" "$mirror" > "$out/debootstrap.log" 2>&1 ||
    { tail -n 30 "$out/debootstrap.log"; exit 1; }
  rm -rf "$root" && mv "$root.tmp" "$root"
  touch "$root/.pgd-debootstrap"
fi

# Runs a command chrooted in the root, in new mount and PID namespaces with
# /proc, /dev and the source tree (read-only, at /src) mounted. Arguments:
# extra unshare options, then "--", then the command. Call it through
# run_in_root (it ends its shell by exec'ing unshare).
in_root() {
  local opts=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  exec unshare --mount --propagation private --pid --fork --kill-child "${opts[@]}" \
    env PGD_ROOT="$root" PGD_SRC="$src" bash -c '
      set -e
      mount -t proc proc "$PGD_ROOT/proc"
      mount --rbind /dev "$PGD_ROOT/dev"
      # POSIX shared memory (PostgreSQL'"'"'s dynamic shared memory) of our own.
      mount -t tmpfs -o mode=1777 shm "$PGD_ROOT/dev/shm"
      mkdir -p "$PGD_ROOT/src"
      mount --bind "$PGD_SRC" "$PGD_ROOT/src"
      mount -o remount,bind,ro "$PGD_ROOT/src"
      # A network namespace of our own starts with loopback down.
      if [ -n "${PGD_NETNS:-}" ]; then chroot "$PGD_ROOT" /usr/sbin/ip link set lo up; fi
      exec chroot "$PGD_ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        TERM=dumb "$@"' in_root "$@"
}

# in_root in the background, waited for, so that this script's end, however
# it comes (an error, Ctrl-C, kill), ends the namespace too: unshare blocks
# SIGINT and SIGTERM (they are meant for its child, and the namespace's first
# process ignores them), so it gets SIGKILL, and --kill-child then SIGKILLs
# that first process; the kernel kills every other process of the namespace
# (clusters, daemons, tests) and drops its mounts.
child=
stop_child() {
  if [ -n "$child" ]; then kill -KILL "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  child=
}
trap 'stop_child; exit 130' INT TERM HUP
trap stop_child EXIT
run_in_root() {
  local rc=0
  in_root "$@" &
  child=$!
  wait "$child" || rc=$?
  child=
  return $rc
}

stamp="$root/.pgd-packages-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  step "installing ${PACKAGES[*]} in the root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # As scripts/install-deps.sh: no default cluster on port 5432.
  mkdir -p "$root/etc/postgresql-common/createcluster.d"
  echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.d/pg_durable.conf"
  # No daemons started by package scripts inside the root.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
  run_in_root -- bash -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends ${PACKAGES[*]}" > "$out/packages.log" 2>&1 ||
    { tail -n 30 "$out/packages.log"; exit 1; }
  rm -f "$root"/.pgd-packages-* && touch "$stamp"
fi

# "ci": ctest's unit, regress and frozen-script tests, then the [engine]
# integration cases through the Catch2 binary (its tag selects them).
engine_tags=
case "$suites" in
  all) ctest_args=() ;;
  ci) ctest_args=(-R '^(unit|regress|meta_json|frozen_sql_.*)$'); engine_tags='[engine]' ;;
  # While working on one area: only these integration cases (a Catch2 test
  # spec, e.g. "[keepalive],[monitor]"), plus the quick meta_json check.
  \[*) ctest_args=(-R '^meta_json$'); engine_tags=$suites ;;
  *) echo "test-pg17: suites must be 'all', 'ci' or a Catch2 tag spec, not '$suites'" >&2; exit 2 ;;
esac
# shellcheck disable=SC2206
ctest_args+=(${PG17_CTEST_ARGS:-})

step "building and testing against PostgreSQL 17 in the root (suites: $suites)"
jobs=${JOBS:-$(nproc)}
status=0
PGD_NETNS=1 run_in_root --net --ipc -- bash -c '
  set -euo pipefail
  export CCACHE_DIR=/var/cache/pgd-ccache CCACHE_BASEDIR=/
  cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPG_CONFIG=/usr/lib/postgresql/17/bin/pg_config \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache > /build.configure.log ||
    { cat /build.configure.log; exit 1; }
  cmake --build /build -j "$0"
  cmake --install /build > /dev/null
  engine_tags=$1; shift
  cd /build && ctest --output-on-failure "${@}"
  if [ -n "$engine_tags" ]; then
    cd /build/tests/integration && ./pgd_integration_tests "$engine_tags"
  fi' "$jobs" "$engine_tags" "${ctest_args[@]}" || status=$?
step "done (exit $status)"
exit $status
