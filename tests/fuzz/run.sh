#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [JOBS [NAME...]]: runs the libFuzzer harnesses
# build/fuzz/fuzz_NAME (make fuzz-build) for SECONDS each, JOBS at a time
# (default 2; NAMEs default to all four), and prints per harness
#   ok fuzz_NAME (N runs, cov C, ft F, corpus K)   or   not ok fuzz_NAME: why
# The working corpus is $FUZZ_WORK/corpus_NAME (default build/fuzz), seeded
# from tests/fuzz/corpus_NAME (never written); crash/leak/timeout inputs go
# to $FUZZ_WORK/artifacts/. Logs: $FUZZ_WORK/fuzz_NAME.log. Exit code 1 if any
# harness failed (a finding, or no harness binary).
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:?usage: tests/fuzz/run.sh SECONDS [JOBS [NAME...]]}
jobs=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(config tokens llmc safetensors ckpt_meta generate bpe)
work=${FUZZ_WORK:-build/fuzz}
mkdir -p "$work/artifacts"

# LeakSanitizer is on (libFuzzer reports a leak as a finding); UBSan stops
# at the first report with a stack, so UB counts as a crash.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

one() {
  local n=$1 bin=build/fuzz/fuzz_$1 log=$work/fuzz_$1.log
  local opts=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$work/artifacts/$n-")
  [ -f "tests/fuzz/$n.dict" ] && opts+=(-dict="tests/fuzz/$n.dict")
  mkdir -p "$work/corpus_$n"
  # -close_fd_mask=1: the harness's own stdout (notes) is noise here.
  "$bin" "${opts[@]}" -close_fd_mask=1 "$work/corpus_$n" "tests/fuzz/corpus_$n" > "$log" 2>&1
  echo $? > "$work/fuzz_$n.rc"
}

declare -a pids=()
for n in "${names[@]}"; do
  if [ ! -x "build/fuzz/fuzz_$n" ]; then echo 127 > "$work/fuzz_$n.rc"; continue; fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  one "$n" &
done
wait

fails=0
for n in "${names[@]}"; do
  log=$work/fuzz_$n.log rc=$(cat "$work/fuzz_$n.rc" 2>/dev/null || echo 1)
  if [ "$rc" = 127 ] && [ ! -x "build/fuzz/fuzz_$n" ]; then
    echo "not ok fuzz_$n: build/fuzz/fuzz_$n missing (make fuzz-build)"; fails=$((fails + 1)); continue
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
  cov=$(sed -E -n 's/.* cov: ([0-9]+).*/\1/p' <<< "$done_line")
  ft=$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<< "$done_line")
  corp=$(sed -E -n 's/.* corp: ([0-9]+).*/\1/p' <<< "$done_line")
  if [ "$rc" = 0 ] && [ -n "$done_line" ]; then
    echo "ok fuzz_$n (${runs:-?} runs in ${secs}s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?})"
  else
    art=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -n 1)
    why=$(grep -m1 -E '==ERROR|SUMMARY|runtime error|fuzz: |ALARM|deadly signal' "$log" | cut -c1-200)
    echo "not ok fuzz_$n: exit $rc, ${why:-see $log}${art:+ (input: $art)}"
    fails=$((fails + 1))
  fi
done
[ "$fails" = 0 ]
