#!/usr/bin/env bash
# suite_layouts.sh: the promise. Every layout trains the same model as one
# rank: 10 iterations of the tiny model, dropout on, both builds, against the
# one-rank run of the same binary with the same non-layout flags.
# Tolerances are docs/design.md §1's: fp64 loss rel. diff <= 1e-10 every iteration and
# every parameter element within 1e-9; fp32 loss rel. diff <= 1e-5 and each
# tensor's relative RMS diff <= 1e-4.
#   MT_LAYOUTS=quick   only the TP/SP rows (issue 3's matrix)
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
BASE=$(tiny_model)

# reference BUILD EXTRA: path prefix of the cached one-rank run.
reference() {
  local bin=$1 extra=$2 key
  key=$(echo "$bin $extra" | md5sum | cut -c1-12)
  local out="$T/ref_$key"
  if [ ! -f "$out.st" ]; then
    mt_run "$out" 1 "$bin" $BASE $extra || { echo "reference failed: $(tail -n 3 "$out.log")" >&2; return 1; }
  fi
  echo "$out"
}

# check NAME NP "LAYOUT FLAGS" ["EXTRA FLAGS" shared with the reference]
check() {
  local name=$1 np=$2 layout=$3 extra=${4:-}
  local bin prec ref out why
  for bin in ./pretrain_gpt_fp64 ./pretrain_gpt; do
    prec=fp32; [ "$bin" = ./pretrain_gpt_fp64 ] && prec=fp64
    ref=$(reference "$bin" "$extra") || { not_ok "$name/$prec" "reference run failed"; continue; }
    out="$T/${name}_$prec"
    if ! mt_run "$out" "$np" "$bin" $BASE $extra $layout; then
      not_ok "$name/$prec" "run failed: $(grep -m1 error "$out.log" || tail -n 1 "$out.log")"; continue
    fi
    local bound="--max-rel-rms 1e-4" ltol=1e-5
    [ $prec = fp64 ] && { bound="--max-abs 1e-9"; ltol=1e-10; }
    why=$(compare_losses "$ref.json" "$out.json" $ltol) && tools/compare "$ref.st" "$out.st" $bound > /dev/null 2>&1
    if [ $? = 0 ]; then ok "$name/$prec"; else
      not_ok "$name/$prec" "$why $(tools/compare "$ref.st" "$out.st" --top 2 2>&1 | tail -n 2 | tr '\n' ' ')"; fi
  done
}

NODROP="--hidden-dropout 0 --attention-dropout 0"
# Issue 3: TP in {2, 4} x SP on/off x dropout on/off.
for tp in 2 4; do
  check "tp$tp" $tp "--tensor-model-parallel-size $tp"
  check "tp${tp}_sp" $tp "--tensor-model-parallel-size $tp --sequence-parallel"
  check "tp${tp}_nodrop" $tp "--tensor-model-parallel-size $tp" "$NODROP"
  check "tp${tp}_sp_nodrop" $tp "--tensor-model-parallel-size $tp --sequence-parallel" "$NODROP"
done
if [ "${MT_LAYOUTS:-}" != quick ]; then
# Issue 4: pipeline and data parallelism, schedules, clipping active.
CLIP="--clip-grad 0.05"
check "pp2_1f1b" 2 "--pipeline-model-parallel-size 2"
check "pp2_afab" 2 "--pipeline-model-parallel-size 2 --pipeline-schedule afab"
check "pp4_1f1b" 4 "--pipeline-model-parallel-size 4"
check "dp2" 2 "" "$CLIP"
check "dp4" 4 ""
check "dp8" 8 "" "--global-batch-size 16"
check "tp2_sp_pp2_clip" 4 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2" "$CLIP"
check "tp2_dp2_clip" 4 "--tensor-model-parallel-size 2 --sequence-parallel" "$CLIP"
check "pp2_dp2" 4 "--pipeline-model-parallel-size 2"
check "tp2_pp2_dp2_sp_clip" 8 "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel" "$CLIP"
check "tp4_pp2_sp" 8 "--tensor-model-parallel-size 4 --pipeline-model-parallel-size 2 --sequence-parallel"
check "pp4_dp2_afab" 8 "--pipeline-model-parallel-size 4 --pipeline-schedule afab"
check "tp2_dp4" 8 "--tensor-model-parallel-size 2"
# Distributed optimizer: reduce-scattered gradients, 1/dp of the AdamW state.
DO=--use-distributed-optimizer
check "dp2_distopt_clip" 2 "$DO" "$CLIP"
check "dp4_distopt" 4 "$DO"
check "tp2_sp_dp2_distopt_clip" 4 "--tensor-model-parallel-size 2 --sequence-parallel $DO" "$CLIP"
check "tp2_pp2_dp2_sp_distopt_clip" 8 "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel $DO" "$CLIP"
check "pp2_dp4_distopt_afab" 8 "--pipeline-model-parallel-size 2 --pipeline-schedule afab $DO"
# Interleaved 1F1B (virtual stages).
VP="--num-layers-per-virtual-pipeline-stage 1"
check "pp2_interleaved" 2 "--pipeline-model-parallel-size 2 $VP"
check "tp2_sp_pp2_interleaved_clip" 4 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 $VP" "$CLIP"
check "pp4_interleaved_8layers" 4 "--pipeline-model-parallel-size 4 $VP" "--num-layers 8"
check "tp2_pp2_dp2_interleaved_distopt" 8 "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 $VP $DO"
fi

# The Llama family: RMSNorm, RoPE, SwiGLU, 2 KV groups for 4 heads, an
# untied head, no linear biases (docs/design.md §4). TP 2 splits the KV
# groups; TP 4 with 2 groups is refused (Megatron's rule; suite_llama).
LLAMA="--normalization RMSNorm --position-embedding-type rope --swiglu --group-query-attention --num-query-groups 2 --untie-embeddings-and-output-weights --disable-bias-linear --ffn-hidden-size 48"
check "llama_tp2_sp_gqa" 2 "--tensor-model-parallel-size 2 --sequence-parallel" "$LLAMA"
if [ "${MT_LAYOUTS:-}" != quick ]; then
check "llama_pp2_1f1b" 2 "--pipeline-model-parallel-size 2" "$LLAMA"
check "llama_tp2_pp2_dp2_interleaved_distopt" 8 "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 $VP $DO --sequence-parallel" "$LLAMA $CLIP"
check "llama_tp2_sp_recompute_full" 2 "--tensor-model-parallel-size 2 --sequence-parallel --recompute-granularity full" "$LLAMA"
check "llama_tp2_sp_selective" 2 "--tensor-model-parallel-size 2 --sequence-parallel --recompute-granularity selective" "$LLAMA"
check "llama_tp2_sp_flash" 2 "--tensor-model-parallel-size 2 --sequence-parallel --use-flash-attn" "$LLAMA"
check "llama_dp2_distopt" 2 "$DO" "$LLAMA $CLIP"
fi

# Context parallelism (the tiny model's seq 16 cuts into 2C chunks of 4 or 2).
CP2="--context-parallel-size 2"
check "cp2_p2p" 2 "$CP2"
if [ "${MT_LAYOUTS:-}" != quick ]; then
check "cp4_p2p" 4 "--context-parallel-size 4"
check "cp2_a2a" 2 "$CP2 --cp-comm-type a2a"
check "cp2_tp2_sp" 4 "$CP2 --tensor-model-parallel-size 2 --sequence-parallel"
check "cp2_pp2_dp2_distopt" 8 "$CP2 --pipeline-model-parallel-size 2 $DO" "$CLIP"
check "cp2_tp2_pp2_interleaved" 8 "$CP2 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 $VP"
check "cp2_a2a_tp2_sp_flash" 4 "$CP2 --cp-comm-type a2a --tensor-model-parallel-size 2 --sequence-parallel --use-flash-attn"
check "cp4_recompute_full" 4 "--context-parallel-size 4 --recompute-granularity full"
check "llama_cp2_tp2_sp" 4 "$CP2 --tensor-model-parallel-size 2 --sequence-parallel" "$LLAMA"
check "llama_cp2_a2a_selective" 2 "$CP2 --cp-comm-type a2a --recompute-granularity selective" "$LLAMA"
AG="--cp-comm-type allgather"
check "cp4_allgather" 4 "--context-parallel-size 4 $AG"
check "cp2_allgather_tp2_sp_pp2_distopt" 8 "$CP2 $AG --tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 $DO" "$CLIP"
check "llama_cp2_allgather_recompute_full" 2 "$CP2 $AG --recompute-granularity full" "$LLAMA"
# a2a+p2p: all-to-alls within A adjacent CP ranks, a ring over P.
H="--cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes"
check "cp4_a2a_p2p_2x2" 4 "--context-parallel-size 4 $H 2 2"
check "cp8_a2a_p2p_2x4_one_position_chunks" 8 "--context-parallel-size 8 $H 2 4"
check "cp4_a2a_p2p_4x1" 4 "--context-parallel-size 4 $H 4 1"
check "cp4_a2a_p2p_1x4" 4 "--context-parallel-size 4 $H 1 4"
check "llama_cp4_a2a_p2p_2x2_pp2_recompute_full" 8 "--context-parallel-size 4 $H 2 2 --pipeline-model-parallel-size 2 --recompute-granularity full" "$LLAMA"
check "cp2_a2a_p2p_2x1_tp2_sp_dp2_distopt" 8 "$CP2 $H 2 1 --tensor-model-parallel-size 2 --sequence-parallel $DO" "$CLIP"
fi

# Negative controls: each planted bug must make the equivalence check fail,
# proving the check can see it (fp64, where the bound is tightest).
# check_fails NAME NP "LAYOUT" BUG ["EXTRA"]
check_fails() {
  local name=$1 np=$2 layout=$3 bug=$4 extra=${5:-} ref out
  ref=$(reference ./pretrain_gpt_fp64 "$extra") || { not_ok "$name" "reference run failed"; return; }
  out="$T/${name}_bug"
  if ! MT_INJECT_BUG=$bug mt_run "$out" "$np" ./pretrain_gpt_fp64 $BASE $extra $layout; then
    not_ok "$name" "the run with MT_INJECT_BUG=$bug crashed instead of training"; return
  fi
  if compare_losses "$ref.json" "$out.json" 1e-10 > /dev/null && tools/compare "$ref.st" "$out.st" --max-abs 1e-9 > /dev/null 2>&1; then
    not_ok "$name" "MT_INJECT_BUG=$bug went unnoticed: the layout check cannot see this bug"
  else
    ok "$name (MT_INJECT_BUG=$bug detected: $(compare_losses "$ref.json" "$out.json" 1e-10 | head -n 1))"
  fi
}
check_fails "control_sp_ln_grad_not_summed" 2 "--tensor-model-parallel-size 2 --sequence-parallel" sp-grad-sync
check_fails "control_dropout_seeded_per_rank" 2 "--tensor-model-parallel-size 2" rank-dropout
check_fails "control_rope_positions_rank_local" 2 "--tensor-model-parallel-size 2 --sequence-parallel" rope-local "$LLAMA"
check_fails "control_cp_grads_not_summed" 2 "--context-parallel-size 2" cp-grad-sum
check_fails "control_cp_rank_local_positions" 2 "--context-parallel-size 2" cp-local-pos
check_fails "control_cp_no_causal_mask_between_chunks" 2 "--context-parallel-size 2" cp-no-causal
check_fails "control_cp_allgather_no_causal_mask" 2 "--context-parallel-size 2 --cp-comm-type allgather" cp-no-causal
check_fails "control_cp_allgather_reads_before_the_gather" 2 "--context-parallel-size 2 --cp-comm-type allgather" cp-ag-early
check_fails "control_cp_a2a_p2p_no_causal_mask" 4 "--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2" cp-no-causal
check_fails "control_cp_a2a_p2p_rank_local_positions" 4 "--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2" cp-local-pos
[ "${MT_LAYOUTS:-}" = quick ] && exit 0
check_fails "control_loss_divided_per_stage" 2 "--pipeline-model-parallel-size 2" loss-per-stage
check_fails "control_norm_counts_replicated_twice" 2 "--tensor-model-parallel-size 2" norm-double "--clip-grad 0.05"
