#!/usr/bin/env bash
# ctest monitoring_rules: promtool check rules + promtool test rules on
# deploy/monitoring. Skips (exit 77) only when promtool is not installed
# (Debian package prometheus; scripts/install-deps.sh installs it).
set -euo pipefail
dir=$1
if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: promtool not found (apt-get install prometheus, or run scripts/install-deps.sh)"
  exit 77
fi
cd "$dir"
promtool check rules rules.yml
promtool test rules rules_test.yml
