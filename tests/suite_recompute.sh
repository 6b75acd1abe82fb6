#!/usr/bin/env bash
# suite_recompute.sh: activation recomputation changes no number. Full
# (uniform groups of 1 and 2, block) and selective recomputation against no
# recomputation in the same layout, both builds: losses and every parameter
# bitwise equal after 10 iterations with dropout on (the masks are keyed by
# global indices, so a recomputed forward reproduces them exactly).
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
BASE=$(tiny_model)
check() {
  local name=$1 np=$2 layout=$3 bin prec
  for bin in ./pretrain_gpt_fp64 ./pretrain_gpt; do
    prec=fp32; [ $bin = ./pretrain_gpt_fp64 ] && prec=fp64
    mt_run "$T/${name}_${prec}_ref" $np $bin $BASE $layout || { not_ok "$name/$prec" "reference failed"; continue; }
    for mode in "selective:--recompute-granularity selective" "full_uniform1:--recompute-granularity full" \
                "full_uniform2:--recompute-granularity full --recompute-method uniform --recompute-num-layers 2" \
                "full_block1:--recompute-granularity full --recompute-method block --recompute-num-layers 1"; do
      local tag=${mode%%:*} flags=${mode#*:} out="$T/${name}_${prec}_${mode%%:*}"
      if ! mt_run "$out" $np $bin $BASE $layout $flags; then not_ok "$name/$prec/$tag" "run failed: $(grep -m1 error "$out.log")"; continue; fi
      if diff <(metrics_iters "$T/${name}_${prec}_ref.json" | cut -d, -f1-3) <(metrics_iters "$out.json" | cut -d, -f1-3) > /dev/null &&
         tools/compare "$T/${name}_${prec}_ref.st" "$out.st" --max-abs 0 > /dev/null 2>&1; then ok "$name/$prec/$tag (bitwise)"
      else not_ok "$name/$prec/$tag" "differs from no recomputation: $(tools/compare "$T/${name}_${prec}_ref.st" "$out.st" --max-abs 0 2>&1 | tail -n 1)"; fi
    done
  done
}
check one_rank 1 ""
check tp2_sp 2 "--tensor-model-parallel-size 2 --sequence-parallel"
check tp2_pp2_1f1b 4 "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2"

# Block with more layers than a chunk holds (Megatron accepts it; NeMo's guide
# sets N to all the model's layers): every layer of each 2-layer chunk is
# recomputed, with a note, bitwise equal to no recomputation (it was refused).
mt_run "$T/block_over_ref" 2 ./pretrain_gpt_fp64 $BASE --pipeline-model-parallel-size 2 &&
mt_run "$T/block_over" 2 ./pretrain_gpt_fp64 $BASE --pipeline-model-parallel-size 2 --recompute-granularity full --recompute-method block --recompute-num-layers 4
rc=$?
# All recomputed: rank 0 holds the activations of block 2 (its whole chunk), fewer than block 1's.
acts() { $MPIRUN 2 ./pretrain_gpt_fp64 $BASE --pipeline-model-parallel-size 2 --train-iters 1 --log-memory \
           --recompute-granularity full --recompute-method block --recompute-num-layers "$1" 2>&1 | sed -n 's/^memory (rank 0,.*| activations \([0-9]*\) |.*/\1/p'; }
a1=$(acts 1); a2=$(acts 2); a4=$(acts 4)
if [ $rc = 0 ] && grep -q 'note: --recompute-num-layers 4 with --recompute-method block: each pipeline chunk has 2 layers, all recomputed' "$T/block_over.log" &&
   [ -n "$a4" ] && [ "$a4" = "$a2" ] && [ "$a4" -lt "$a1" ] && tools/compare "$T/block_over_ref.st" "$T/block_over.st" --max-abs 0 > /dev/null 2>&1 &&
   diff <(metrics_iters "$T/block_over_ref.json" | cut -d, -f1-3) <(metrics_iters "$T/block_over.json" | cut -d, -f1-3) > /dev/null; then
  ok "pp2_block_num_layers_past_the_chunk_recomputes_all (bitwise; rank 0 activations $a4 bytes = block 2's, block 1 $a1)"
else not_ok "pp2_block_num_layers_past_the_chunk_recomputes_all" "exit $rc, activations $a1/$a2/$a4: $(grep -m1 -E 'error|note: --recompute' "$T/block_over.log")"; fi

# The blocked (flash) attention kernel: the same training as the plain one
# (fp64: losses 1e-10, parameters 1e-9, as for layouts), on one rank and with
# TP 2 + SP, with attention dropout on.
for lay in "1:" "2:--tensor-model-parallel-size 2 --sequence-parallel"; do
  np=${lay%%:*}; flags=${lay#*:}
  ref="$T/flash_ref_$np"; out="$T/flash_$np"
  mt_run "$ref" 1 ./pretrain_gpt_fp64 $BASE && mt_run "$out" $np ./pretrain_gpt_fp64 $BASE $flags --use-flash-attn || { not_ok "flash_np$np" "run failed"; continue; }
  why=$(compare_losses "$ref.json" "$out.json" 1e-10) && tools/compare "$ref.st" "$out.st" --max-abs 1e-9 > /dev/null 2>&1 &&
    ok "flash_attention_trains_like_plain_np$np ($why)" || not_ok "flash_attention_trains_like_plain_np$np" "$why"
done
