#!/usr/bin/env bash
# suite_train.sh: the trainer learns, and the launch lines in configs/ run.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)

# Overfitting: 2 layers, hidden 64, on the first 600 bytes of the corpus.
# Bound: the training loss (mean over a step's 8 x 32 tokens) falls below 0.5
# by iteration 150 (it starts at ln 256 = 5.55; a model that does not learn,
# or learns only byte frequencies, stays above 2.5). Measured 0.16 when this
# bound was set.
head -c 600 "$(dirname "$c")/corpus.txt" > "$T/overfit.txt"
tools/prepare_data "$T/overfit.txt" "$T/overfit" > /dev/null
for bin in pretrain_gpt pretrain_gpt_fp64; do
  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 timeout 120 ./$bin --num-layers 2 --hidden-size 64 --num-attention-heads 4 \
    --seq-length 32 --micro-batch-size 4 --global-batch-size 8 --train-iters 150 --lr 3e-3 --lr-warmup-iters 10 \
    --hidden-dropout 0 --attention-dropout 0 --weight-decay 0 --train-data-path "$T/overfit_train.bin" \
    --metrics-file "$T/overfit_$bin.json" > "$T/overfit.log" 2>&1
  last=$(grep '"iteration": 150,' "$T/overfit_$bin.json" | sed 's/.*"lm_loss": \([^,]*\),.*/\1/')
  # A missing or non-numeric value fails too (awk's +0 of "" is 0: guard it).
  if [[ "$last" =~ ^[0-9.eE+-]+$ ]] && awk -v l="$last" 'BEGIN { exit !(l + 0 < 0.5) }'; then
    ok "overfit_600_bytes_$bin (loss $last < 0.5 at iteration 150)"
  else not_ok "overfit_600_bytes_$bin" "loss '$last' at iteration 150, bound 0.5"; fi
done

# The guide's launch line scaled down (configs/megatron-sp-guide-laptop.conf):
# 8 ranks as TP 4 x PP 2 with sequence parallelism, against one rank, in
# fp64 (the config's --bf16 left out: the oracle does not emulate it;
# suite_bf16 runs the launch as written).
grep -vx -- --bf16 configs/megatron-sp-guide-laptop.conf > "$T/guide.conf"
G="--config $T/guide.conf --data-path ${c}_train.bin --train-iters 5"
ONE="--tensor-model-parallel-size 1 --pipeline-model-parallel-size 1"
if mt_run "$T/guide1" 1 ./pretrain_gpt_fp64 $G $ONE && mt_run "$T/guide8" 8 ./pretrain_gpt_fp64 $G; then
  why=$(compare_losses "$T/guide1.json" "$T/guide8.json" 1e-10) &&
    tools/compare "$T/guide1.st" "$T/guide8.st" --max-abs 1e-9 > /dev/null &&
    ok "guide_launch_tp4_pp2_sp_8_ranks_equals_one ($why)" || not_ok guide_launch_tp4_pp2_sp_8_ranks_equals_one "$why"
  n=$(grep -c '^note: ' "$T/guide8.log")
  # --use-flash-attn is honoured (the blocked CPU kernel); the FP8 flags are noted.
  [ "$n" = 2 ] && ok "guide_launch_gpu_flags_noted (2 notes)" || not_ok guide_launch_gpu_flags_noted "$n notes, want 2 (--fp8-margin, --fp8-format)"
else
  not_ok guide_launch_tp4_pp2_sp_8_ranks_equals_one "run failed: $(tail -n 2 "$T/guide8.log" "$T/guide1.log" | tr '\n' ' ')"
fi

# The full-size guide line parses (it is only too big to allocate): with
# --train-iters 0 and a tiny data file it must get past every flag check.
out=$(timeout 20 $MPIRUN 8 ./pretrain_gpt --config configs/megatron-sp-guide.conf --data-path "${c}_train.bin" \
  --train-iters 0 --dry-run 2>&1); rc=$?
[ $rc = 0 ] && ok "guide_full_size_parses" || not_ok guide_full_size_parses "exit $rc: $(echo "$out" | tail -n 2 | tr '\n' ' ')"

# make run's launch (tools/run-demo.sh) for a few iterations, its model and
# checkpoint in this suite's directory (never the user's out/).
out=$(MT_DEMO_OUT="$T/demo" timeout 120 tools/run-demo.sh --train-iters 3 --eval-interval 3 --log-interval 1 2>&1); rc=$?
if [ $rc = 0 ] && echo "$out" | grep -q "validation loss at iteration 3" && echo "$out" | grep -q "iteration        3/" &&
   [ -s "$T/demo/demo_model.bin" ] && [ -f "$T/demo/demo_ckpt/latest_checkpointed_iteration.txt" ]; then
  ok "make_run_demo_tp2_pp2_sp"
else not_ok make_run_demo_tp2_pp2_sp "exit $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi

# Interchange: --export-llmc then --init-from reproduces the parameters
# exactly (fp32 files, fp32 build), through a TP 2 x PP 2 layout both ways.
X="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 3"
if mt_run "$T/exp" 4 ./pretrain_gpt $X --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --export-llmc "$T/exp.bin" &&
   mt_run "$T/imp" 1 ./pretrain_gpt $X --train-iters 0 --init-from "$T/exp.bin" &&
   tools/compare "$T/exp.st" "$T/imp.st" --max-abs 0 > "$T/exp.cmp" 2>&1; then ok "export_llmc_then_init_from_is_exact"
else not_ok export_llmc_then_init_from_is_exact "$(tail -n 2 "$T/exp.cmp" "$T/imp.log" 2>/dev/null | tr '\n' ' ')"; fi

# OpenMP waits passively by default (src/main.c, default_wait_policy): with
# neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT set, the trainer runs itself
# again with OMP_WAIT_POLICY=PASSIVE, so libgomp's own report of its settings
# (OMP_DISPLAY_ENV) ends with a spin count of 0; a user's choice is kept
# (one report, their value). Without the re-exec the count stays 300000.
W="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 1"
# spins ENV...: the spin counts libgomp reports, one per process image.
spins() { env "$@" OMP_DISPLAY_ENV=verbose ./pretrain_gpt $W 2>&1 | sed -n "s/^ *GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tr '\n' ' '; }
sp_default=$(spins -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT)
sp_user=$(spins -u OMP_WAIT_POLICY GOMP_SPINCOUNT=1234)
sp_active=$(env OMP_WAIT_POLICY=ACTIVE OMP_DISPLAY_ENV=verbose ./pretrain_gpt $W 2>&1 | grep -c "OMP_WAIT_POLICY = 'ACTIVE'")
# The re-executed process keeps its name (/proc/PID/comm is what ps, pgrep
# and suite_multihost go by): exec'ing the link /proc/self/exe named every
# rank "exe". Read once the second image has started (its libgomp report,
# which ends in a spin count of 0, is in the log).
env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose ./pretrain_gpt $W --train-iters 400 > "$T/comm.log" 2>&1 &
cpid=$!; comm=""
for _ in $(seq 100); do
  grep -q "GOMP_SPINCOUNT = '0'" "$T/comm.log" 2> /dev/null && { comm=$(cat /proc/$cpid/comm 2> /dev/null); break; }
  sleep 0.05
done
kill "$cpid" 2> /dev/null; wait "$cpid" 2> /dev/null
[[ "$sp_default" =~ \ 0\ $ ]] && [ "$sp_user" = "1234 " ] && [ "$sp_active" = 1 ] && [ "$comm" = pretrain_gpt ] && ok openmp_waits_passively_unless_chosen ||
  not_ok openmp_waits_passively_unless_chosen "spin counts: default '$sp_default', GOMP_SPINCOUNT=1234 '$sp_user'; ACTIVE kept: $sp_active; process name after the re-exec '$comm'"

# The banner says which: the trainer's choice, the user's (a user's own
# PASSIVE is theirs, not the trainer's), or libgomp's spinning default when
# the re-exec is skipped (an explicit dynamic loader).
ban() { env "$@" ./pretrain_gpt $W 2>&1 | grep '^threads: '; }
b_def=$(ban -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT)
b_pas=$(ban -u GOMP_SPINCOUNT OMP_WAIT_POLICY=PASSIVE)
b_spn=$(ban -u OMP_WAIT_POLICY GOMP_SPINCOUNT=1234)
ldso=$(ls /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1 2> /dev/null | head -n 1)
b_lds="(no dynamic loader found to run it through)"
[ -n "$ldso" ] && b_lds=$(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$ldso" ./pretrain_gpt $W 2>&1 | grep '^threads: ')
# A stray MT_WAIT_CHOSEN (copied from another process's environment) names
# another PID: it neither skips the re-exec (the spin count still ends at 0)
# nor claims a user's ACTIVE as the trainer's choice.
b_str=$(ban -u GOMP_SPINCOUNT OMP_WAIT_POLICY=ACTIVE MT_WAIT_CHOSEN=1)
sp_str=$(spins -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT MT_WAIT_CHOSEN=1)
[[ "$b_def" == *"waiting passively (the trainer's default"* ]] && [[ "$b_pas" == *"OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=(unset) (from the environment)" ]] &&
  [[ "$b_spn" == *"GOMP_SPINCOUNT=1234 (from the environment)" ]] && [[ "$b_lds" == *"spinning while idle"* ]] &&
  [[ "$b_str" == *"OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=(unset) (from the environment)" ]] && [[ "$sp_str" =~ \ 0\ $ ]] &&
  ok banner_says_how_threads_wait ||
  not_ok banner_says_how_threads_wait "default '$b_def'; PASSIVE set '$b_pas'; spin count set '$b_spn'; through $ldso '$b_lds'; stray MT_WAIT_CHOSEN with ACTIVE '$b_str', alone: spin counts '$sp_str'"
