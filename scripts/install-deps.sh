#!/usr/bin/env bash
# Installs the Debian packages pg_durable builds and tests with. Idempotent:
# only missing packages are fetched, so a second run costs one dpkg query.
set -euo pipefail

# PGD_PG_MAJOR (the Makefile's PG_MAJOR, default 15): the server whose
# packages to install (`make install PG_CONFIG=/usr/lib/postgresql/17/bin/pg_config`
# on a Debian with PostgreSQL 17).
pg=${PGD_PG_MAJOR:-15}
case "$pg" in ''|*[!0-9]*) echo "install-deps: PGD_PG_MAJOR must be a number, not '$pg'" >&2; exit 2 ;; esac
PACKAGES=(
  build-essential cmake pkg-config iproute2
  "postgresql-$pg" "postgresql-server-dev-$pg" "postgresql-client-$pg" postgresql-contrib
  libpq-dev libpqxx-dev
  libboost-dev libboost-system-dev
  nlohmann-json3-dev libspdlog-dev catch2 libcctz-dev
  libssl-dev ca-certificates tzdata
  prometheus prometheus-postgres-exporter
)
# `make fuzz` (tests/fuzz) alone needs clang with libFuzzer and the sanitizer
# runtimes, and llvm-symbolizer for readable reports: only with --fuzz, so
# `make test` on a clean machine does not fetch a second compiler.
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES=(clang libclang-rt-14-dev llvm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${1:+fuzz }build and test dependencies present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The Debian postgresql package would otherwise create and start a default
# cluster on port 5432; we never use it, so keep the machine quiet.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/pg_durable.conf >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
