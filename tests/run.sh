#!/usr/bin/env bash
# tests/run.sh: the whole suite (make test). Every test runs as a child under
# a timeout, so a deadlock is one failed test with its name, never a stuck CI.
# Unit binaries (build/fp{32,64}/tests/test_*) print "ok NAME" / "not ok NAME";
# script suites (tests/suite_*.sh) print the same lines. The last line is
# "N passed, N failed"; the exit code is non-zero when anything failed.
#
#   tests/run.sh              everything
#   tests/run.sh layouts      only suites/binaries whose name contains "layouts"
#
# Sanitizer mode (make test SANITIZE=1 runs MT_SANITIZE=1 BUILD=build/san
# tests/run.sh): the unit binaries of $BUILD and tests/suite_sanitize.sh only,
# with ASan/UBSan/LSan set to stop at the first report (tests/lsan.supp
# suppresses Open MPI's own leaks). The other suites are for the plain build.
set -uo pipefail
cd "$(dirname "$0")/.."
filter=${1:-}
BUILD=${BUILD:-build}
SANITIZE_MODE=${MT_SANITIZE:-0}
if [ "$SANITIZE_MODE" = 1 ]; then
  # fast_unwind_on_malloc=0: Open MPI's libraries lack frame pointers; only a
  # full stack reaches the libmpi frame that tests/lsan.supp names.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:exitcode=86:fast_unwind_on_malloc=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=87}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0:exitcode=86}
  export OMPI_MCA_ess_singleton_isolated=${OMPI_MCA_ess_singleton_isolated:-1}
  export BUILD
fi
export MT_TEST_TMP=${MT_TEST_TMP:-$(mktemp -d /tmp/mt-test.XXXXXX)}
mkdir -p "$MT_TEST_TMP" || { echo "cannot create $MT_TEST_TMP"; exit 1; }
passed=0; failed=0; failures=()
start=$(date +%s)

# Isolation: tests write only under $MT_TEST_TMP. The user's out/ (a trained
# model, a checkpoint, bench reports) and data/ must be as they were: the
# runner prepares data/ first (as `make run` would), records every file's
# path, size, modification time and checksum, and compares at the end.
# manifest DIR...: one line per file, sorted; absent directories list nothing.
manifest() {
  local d
  for d in "$@"; do
    [ -d "$d" ] || continue
    find "$d" -type f -printf '%p %s %T@ ' -exec sh -c 'cksum < "$1" | cut -d" " -f1' _ {} \;
  done | LC_ALL=C sort
}
isolation=0
if [ "$SANITIZE_MODE" != 1 ] && { [ -z "$filter" ] || [[ isolation == *"$filter"* ]]; }; then
  isolation=1
  tools/get-data.sh > /dev/null
  manifest out data > "$MT_TEST_TMP/manifest.before"
fi

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
  # A suite that cannot run here (e.g. suite_multihost without root) says
  # why in a "# ... skipped: reason" line, and counts nothing.
  grep -E '^# .*skipped' "$log" | sed "s|^|  |"
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
  # suite_sanitize needs build/san and is the only suite of sanitizer mode.
  if [ "$SANITIZE_MODE" = 1 ]; then [ "$s" = tests/suite_sanitize.sh ] || continue
  else [ "$s" = tests/suite_sanitize.sh ] && continue; fi
  run_one "$(basename "$s" .sh)" 900 bash "$s"
done

if [ "$isolation" = 1 ]; then
  # The check must be able to fail: the same function sees a rewritten file.
  probe="$MT_TEST_TMP/isolation_probe"; mkdir -p "$probe"; echo a > "$probe/f"
  m1=$(manifest "$probe"); sleep 0.01; echo b > "$probe/f"; m2=$(manifest "$probe")
  manifest out data > "$MT_TEST_TMP/manifest.after"
  if [ "$m1" = "$m2" ]; then
    echo "not ok isolation_out_data_unchanged: the manifest does not see a rewritten file"; failed=$((failed + 1)); failures+=(isolation)
  elif ! diff "$MT_TEST_TMP/manifest.before" "$MT_TEST_TMP/manifest.after" > "$MT_TEST_TMP/manifest.diff"; then
    echo "not ok isolation_out_data_unchanged: a test wrote into out/ or data/:"; sed 's/^/  | /' "$MT_TEST_TMP/manifest.diff" | head -n 20
    failed=$((failed + 1)); failures+=(isolation)
  else
    echo "ok isolation_out_data_unchanged ($(wc -l < "$MT_TEST_TMP/manifest.before") files in out/ and data/ as before)"
    passed=$((passed + 1))
  fi
fi
echo "# total time $(( $(date +%s) - start ))s; logs in $MT_TEST_TMP"
[ ${#failures[@]} -gt 0 ] && echo "# failed: ${failures[*]}"
echo "$passed passed, $failed failed"
# A run that executed nothing, or lost a failure, is not a pass.
[ "$failed" = 0 ] && [ ${#failures[@]} = 0 ] && [ "$passed" -gt 0 ]
