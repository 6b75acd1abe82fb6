#!/usr/bin/env bash
# suite_memory.sh: memory measured from the allocations (--log-memory).
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)
RUN="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 1 --log-memory"
# field LOG RANK NAME: bytes of category NAME on world rank RANK.
field() { grep "^memory (rank $2," "$1" | sed "s/.* $3 \([0-9]*\) |.*/\1/"; }

# The distributed optimizer keeps 1/dp of the AdamW moments per rank: DP 4,
# measured optimizer bytes x 4 equals the plain optimizer's bytes, up to the
# arena's padding to a multiple of dp (< dp elements per moment).
$MPIRUN 4 ./pretrain_gpt $RUN > "$T/plain.log" 2>&1
$MPIRUN 4 ./pretrain_gpt $RUN --use-distributed-optimizer > "$T/dist.log" 2>&1
for r in 0 3; do
  p=$(field "$T/plain.log" $r optimizer); d=$(field "$T/dist.log" $r optimizer)
  if [ -n "$p" ] && [ -n "$d" ] && [ "$p" -gt 0 ] && [ $((d * 4 - p)) -ge 0 ] && [ $((d * 4 - p)) -lt $((2 * 4 * 4)) ]; then
    ok "distributed_optimizer_quarter_state_rank$r ($d x 4 vs $p bytes)"
  else not_ok "distributed_optimizer_quarter_state_rank$r" "dist $d x 4 vs plain $p"; fi
done

# Pipeline activation memory of stage 0: 1F1B keeps min(p - stage, M) = 2
# micro-batches in flight, all-forward-all-backward all M = 4 (PP 2).
$MPIRUN 2 ./pretrain_gpt $RUN --pipeline-model-parallel-size 2 > "$T/1f1b.log" 2>&1
$MPIRUN 2 ./pretrain_gpt $RUN --pipeline-model-parallel-size 2 --pipeline-schedule afab > "$T/afab.log" 2>&1
a=$(field "$T/1f1b.log" 0 activations); b=$(field "$T/afab.log" 0 activations)
if [ -n "$a" ] && [ -n "$b" ] && [ "$a" -gt 0 ] && [ $((a * 2)) = "$b" ]; then ok "stage0_activations_1f1b_half_of_afab ($a vs $b bytes)"
else not_ok stage0_activations_1f1b_half_of_afab "1F1B $a vs AFAB $b bytes, want 1:2"; fi
