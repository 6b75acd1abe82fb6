#!/usr/bin/env bash
# tests/suite_sanitize.sh: the trainer under AddressSanitizer, UndefinedBehavior-
# Sanitizer and LeakSanitizer (`make test SANITIZE=1`, which builds
# build/san/pretrain_gpt{,_fp64} and build/san/tools/*). Each run must exit
# with its expected code and print no sanitizer report; Open MPI's own leaks
# are suppressed by tests/lsan.supp (and only those).
#
#   1. one rank, both builds: tiny.conf with dropout, evaluation, --save,
#      --export-llmc, --dump-params, --timeline, --log-comm, --log-memory,
#      --dump-step; then --load of that checkpoint, and --init-from of the
#      exported llm.c file;
#   2. two ranks: TP 2 + sequence parallelism (save, then load in the other
#      build), and interleaved PP 2 with full recomputation (the p2p paths);
#   3. the tools on those files (compare, plan, generate);
#   4. bad input (a flag, a --config file, a token file): exit 2, no report.
#
# Only in the sanitizer mode of tests/run.sh (MT_SANITIZE=1); runs alone with
#   BUILD=build/san bash tests/suite_sanitize.sh
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
SAN=${BUILD:-build/san}
[ -x "$SAN/pretrain_gpt" ] && [ -x "$SAN/pretrain_gpt_fp64" ] ||
  { not_ok sanitize_setup "no $SAN/pretrain_gpt{,_fp64} (make all SANITIZE=1)"; exit 1; }
# Fail loudly: the first report ends the process with a distinctive code.
# fast_unwind_on_malloc=0: Open MPI's libraries have no frame pointers, and
# only a full stack reaches the libmpi frame tests/lsan.supp names.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:exitcode=86:fast_unwind_on_malloc=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=87}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0:exitcode=86}
# A one-rank run is an MPI singleton: no helper daemon (see suite_bad_input.sh).
export OMPI_MCA_ess_singleton_isolated=1

# The corpus, prepared by the sanitized prepare_data when no plain one exists.
dir=${MT_TEST_TMP:-/tmp/mt-test}
if [ ! -f "$dir/corpus_train.bin" ]; then
  [ -f data/fortunes.txt ] || tools/get-data.sh > /dev/null
  head -c 65536 data/fortunes.txt > "$dir/corpus.txt"
  "$SAN/tools/prepare_data" "$dir/corpus.txt" "$dir/corpus" > "$T/prepare_data.log" 2>&1 ||
    { not_ok sanitize_prepare_data "$(grep -m1 -E 'ERROR|runtime error|error' "$T/prepare_data.log")"; exit 1; }
fi
C=$(test_corpus)

# san NAME WANT_RC CMD...: runs CMD (log $T/NAME.log); ok when it exits WANT_RC
# and no sanitizer spoke.
san() {
  local name=$1 want=$2; shift 2
  local log="$T/$name.log" rc
  timeout --kill-after=5 300 "$@" > "$log" 2>&1; rc=$?
  local report
  report=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' "$log")
  if [ -n "$report" ]; then not_ok "sanitize_$name" "$report (log $log)"
  elif [ "$rc" != "$want" ]; then not_ok "sanitize_$name" "exit $rc, want $want: $(grep -m1 -E 'error' "$log" | cut -c1-200) (log $log)"
  else ok "sanitize_$name (exit $rc, no sanitizer report)"; fi
}

TINY=(--config configs/tiny.conf --data-path "${C}_train.bin" --hidden-dropout 0.1 --attention-dropout 0.1)
for prec in fp32 fp64; do
  bin=$SAN/pretrain_gpt; [ $prec = fp64 ] && bin=$SAN/pretrain_gpt_fp64
  d=$T/$prec; rm -rf "$d"; mkdir -p "$d"
  OMP_NUM_THREADS=2 san "1rank_train_save_export_$prec" 0 "$bin" "${TINY[@]}" --train-iters 4 --eval-interval 2 --eval-iters 1 \
    --save "$d/ck" --save-interval 2 --export-llmc "$d/model.bin" --dump-params "$d/params.st" --timeline "$d/tl" \
    --dump-step 3 --dump-dir "$d/dump" --log-comm --log-memory --metrics-file "$d/m.json"
  san "1rank_load_$prec" 0 "$bin" "${TINY[@]}" --train-iters 6 --load "$d/ck" --save "$d/ck" --dump-params "$d/params2.st"
  san "1rank_init_from_llmc_$prec" 0 "$bin" --config configs/tiny.conf --data-path "${C}_train.bin" --vocab-size 256 \
    --train-iters 2 --init-from "$d/model.bin" --recompute-granularity selective
done

d=$T/np2; rm -rf "$d"; mkdir -p "$d"
san np2_tp2_sp_save_fp32 0 $MPIRUN 2 "$SAN/pretrain_gpt" "${TINY[@]}" --train-iters 3 --tensor-model-parallel-size 2 \
  --sequence-parallel --save "$d/ck" --dump-params "$d/tp2.st" --log-comm --log-memory
san np2_tp2_sp_load_fp64 0 $MPIRUN 2 "$SAN/pretrain_gpt_fp64" "${TINY[@]}" --train-iters 5 --tensor-model-parallel-size 2 \
  --sequence-parallel --load "$d/ck" --export-llmc "$d/tp2.bin" --timeline "$d/tl"
san np2_pp2_distopt_recompute_fp32 0 $MPIRUN 2 "$SAN/pretrain_gpt" "${TINY[@]}" --train-iters 3 --pipeline-model-parallel-size 2 \
  --num-layers-per-virtual-pipeline-stage 1 --use-distributed-optimizer --recompute-granularity full --log-comm

san tools_compare 0 "$SAN/tools/compare" "$T/fp32/params.st" "$T/fp32/params.st" --max-abs 0
san tools_plan 0 "$SAN/tools/plan" --config configs/tiny.conf --data-path "${C}_train.bin" --world-size 8 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
san tools_generate 0 "$SAN/tools/generate" --load "$T/fp32/ck" --tokens 8 --prompt "A"

printf -- '--num-layers 2\n--hidden-size\n' > "$T/bad.conf"
head -c 1000 "${C}_train.bin" > "$T/short.bin"
san bad_flag 2 "$SAN/pretrain_gpt" "${TINY[@]}" --num-layers zero
san bad_config_file 2 "$SAN/pretrain_gpt" --config "$T/bad.conf" --data-path "${C}_train.bin"
san bad_token_file 2 "$SAN/pretrain_gpt" --config configs/tiny.conf --data-path "$T/short.bin"
san np2_bad_layout 2 $MPIRUN 2 "$SAN/pretrain_gpt" "${TINY[@]}" --tensor-model-parallel-size 3

# Negative control: a leak in our own code past MPI_Init must still be
# reported through these options and suppressions (they hide Open MPI only).
cat > "$T/leak.c" <<'SRC'
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    char *p = malloc(77);
    strcpy(p, "leaked");
    p = NULL;
    MPI_Finalize();
    return 0;
}
SRC
if mpicc -g -fsanitize=address,undefined -fno-omit-frame-pointer "$T/leak.c" -o "$T/leak" > "$T/leak_build.log" 2>&1; then
  "$T/leak" > "$T/leak.log" 2>&1; rc=$?
  if [ $rc = 86 ] && grep -q "Direct leak of 77 byte" "$T/leak.log" && grep -q "leak.c:6" "$T/leak.log"; then
    ok "sanitize_control_leak_in_our_code_is_reported (exit $rc)"
  else not_ok sanitize_control_leak_in_our_code_is_reported "exit $rc, no report of the 77-byte leak (log $T/leak.log)"; fi
else not_ok sanitize_control_leak_in_our_code_is_reported "cannot build $T/leak.c: $(head -n 1 "$T/leak_build.log")"; fi
