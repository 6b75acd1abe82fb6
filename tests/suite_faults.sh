#!/usr/bin/env bash
# suite_faults.sh: a failure seen by one rank alone ends the whole job within
# seconds, with a non-zero exit and one error line, instead of leaving the
# other ranks waiting in a collective. The faults are planted at the second
# iteration by MT_INJECT_BUG (config.h): a real allocation failure, a write
# error on rank 0's --metrics-file, a failed internal check.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)
RUN="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 20"

# fault NAME NP SITE@RANK WANT: the job ends with exit 1 in under 10 s and
# stderr holds exactly one line besides the planted-bug warning, naming WANT.
fault() {
  local name=$1 np=$2 bug=$3 want=$4 t0 t1 rc lines
  t0=$(date +%s.%N)
  MT_INJECT_BUG=$bug timeout --kill-after=5 30 $MPIRUN "$np" ./pretrain_gpt $RUN --metrics-file "$T/$name.json" \
    > "$T/$name.out" 2> "$T/$name.err"
  rc=$?
  t1=$(date +%s.%N)
  local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  grep -v '^warning: MT_INJECT_BUG' "$T/$name.err" > "$T/$name.lines"
  lines=$(wc -l < "$T/$name.lines")
  if [ "$rc" = 1 ] && awk -v s="$secs" 'BEGIN { exit !(s < 10) }' && [ "$lines" = 1 ] && grep -q "$want" "$T/$name.lines"; then
    ok "$name (exit 1 after ${secs}s: $(cat "$T/$name.lines"))"
  else
    not_ok "$name" "exit $rc after ${secs}s, $lines lines: $(head -c 400 "$T/$name.lines" | tr '\n' '|')"
  fi
}

for np in 2 4; do
  last=$((np - 1))
  fault "alloc_on_rank${last}_np$np" $np "fail-alloc@$last" "error: out of memory allocating"
  fault "metrics_write_on_rank0_np$np" $np "fail-write@0" "error: --metrics-file .*write failed at iteration 2"
  fault "internal_check_on_rank${last}_np$np" $np "fail-check@$last" "error: internal check failed on rank $last"
done
# A rank in the middle of the world, while the ranks on either side wait.
fault "alloc_on_rank1_np4" 4 "fail-alloc@1" "error: out of memory allocating"

# Positive control: the same run without a fault trains to the end.
if timeout 60 $MPIRUN 2 ./pretrain_gpt $RUN --metrics-file "$T/clean.json" > "$T/clean.out" 2>&1 &&
   grep -q '"iteration": 20,' "$T/clean.json"; then ok "no_fault_trains_20_iterations"
else not_ok "no_fault_trains_20_iterations" "$(tail -n 2 "$T/clean.out")"; fi
