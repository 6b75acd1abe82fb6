#!/usr/bin/env bash
# tests/run.sh: the whole suite (make test). Every test runs as a child under
# a timeout, so a deadlock is one failed test with its name, never a stuck CI.
# Unit binaries (build/fp{32,64}/tests/test_*) print "ok NAME" / "not ok NAME";
# script suites (tests/suite_*.sh) print the same lines. The last line is
# "N passed, N failed"; the exit code is non-zero when anything failed.
#
#   tests/run.sh              everything
#   tests/run.sh layouts      only suites/binaries whose name contains "layouts"
set -uo pipefail
cd "$(dirname "$0")/.."
filter=${1:-}
BUILD=${BUILD:-build}
export MT_TEST_TMP=${MT_TEST_TMP:-$(mktemp -d /tmp/mt-test.XXXXXX)}
mkdir -p "$MT_TEST_TMP" || { echo "cannot create $MT_TEST_TMP"; exit 1; }
passed=0; failed=0; failures=()
start=$(date +%s)

# run_one NAME TIMEOUT CMD...: counts the ok / not ok lines CMD prints; a
# timeout or a crash without output counts as one failure.
run_one() {
  local name=$1 limit=$2; shift 2
  [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && return 0
  local log="$MT_TEST_TMP/$(echo "$name" | tr '/ ' '__').log" t0 rc
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1; rc=$?
  local ok nok
  ok=$(grep -c '^ok ' "$log" 2>/dev/null); nok=$(grep -c '^not ok ' "$log" 2>/dev/null)
  ok=${ok:-0}; nok=${nok:-0}
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "not ok $name: timed out after ${limit}s"; nok=$((nok + 1))
  elif [ "$rc" != 0 ] && [ "$nok" = 0 ]; then
    echo "not ok $name: exit code $rc"; nok=1
  fi
  grep -E '^(not ok|ok) ' "$log" | sed "s|^|  |"
  if [ "$nok" != 0 ]; then
    failures+=("$name")
    echo "  --- $name log (last 30 lines): $log"
    tail -n 30 "$log" | sed 's/^/  | /'
  fi
  passed=$((passed + ok)); failed=$((failed + nok))
  echo "# $name: $ok passed, $nok failed ($(( $(date +%s) - t0 ))s)"
}

for b in "$BUILD"/fp64/tests/test_* "$BUILD"/fp32/tests/test_*; do
  [ -x "$b" ] || continue
  prec=$(basename "$(dirname "$(dirname "$b")")")
  run_one "$prec/$(basename "$b")" 300 "$b"
done
for s in tests/suite_*.sh; do
  run_one "$(basename "$s" .sh)" 900 bash "$s"
done

echo "# total time $(( $(date +%s) - start ))s; logs in $MT_TEST_TMP"
[ ${#failures[@]} -gt 0 ] && echo "# failed: ${failures[*]}"
echo "$passed passed, $failed failed"
# A run that executed nothing, or lost a failure, is not a pass.
[ "$failed" = 0 ] && [ ${#failures[@]} = 0 ] && [ "$passed" -gt 0 ]
