#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build (docs/RELIABILITY.md, "Fuzzing")
# for a bounded time each, starting from the checked-in seed corpus.
#
#   tests/fuzz/run.sh <build-fuzz dir> <seconds per target> [target...]
#
# New inputs a run discovers go to <build dir>/fuzz-work/<target>/, never into
# the source tree; a crash, leak, timeout or sanitizer report leaves its input
# in <build dir>/fuzz-artifacts/ and makes the script fail (after running the
# other targets). Keep such an input, once fixed, as
# tests/fuzz/corpus/<target>/finding-<what>.
set -uo pipefail

build=${1:?usage: run.sh <build dir> <seconds> [target...]}
seconds=${2:?usage: run.sh <build dir> <seconds> [target...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  read -r -a targets < <(tr ';' ' ' < "$build/fuzz-targets.txt")
fi

# Leaks are findings; UBSan stops at the first report (built with
# -fno-sanitize-recover) and prints its stack.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

mkdir -p "$build/fuzz-artifacts"
failed=()
for target in "${targets[@]}"; do
  work="$build/fuzz-work/$target"
  mkdir -p "$work"
  log="$build/fuzz-artifacts/$target.log"
  echo "fuzz: $target for ${seconds}s (log $log)"
  # -timeout: one input running longer than 10 s is a hang, reported as a finding.
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
      -max_len=16384 -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-artifacts/$target-" \
      "$work" "$here/corpus/$target" >"$log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $rc); the end of its log:"
    tail -n 40 "$log"
  else
    grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/fuzz: $target /"
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: findings in ${failed[*]}; inputs in $build/fuzz-artifacts/"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets clean, ${seconds}s each"
