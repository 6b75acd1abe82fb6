#!/usr/bin/env bash
# suite_fused.sh: the fused sweeps (ops.h MT_OPS_FUSED, docs/design.md
# "Fused sweeps") change no bit of a training run. Each case trains the tiny
# model twice, fused (the default) and op by op (the test hook
# MT_INJECT_BUG=unfused), with hidden and attention dropout on, gradient
# clipping, and a vocabulary with padding columns, and demands identical
# --dump-params files and identical per-iteration losses and gradient norms.
# Cases: fp32, --bf16, the fp64 build, Llama blocks (SwiGLU, RMSNorm, no
# biases: GELU's fusion off, the rest on), TP 2 + SP (the cross-entropy's
# three steps under TP), DP 2 with the distributed optimizer under --bf16
# (AdamW's bf16 copy on each shard). Negative control: the same comparison
# sees a one-step difference in --seed. Then the gradient norm's fusion
# (src/gradnorm.c) against --no-grad-norm-fusion, with its own negative
# control. tests/test_ops_fused.c holds the op-level checks.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
export OMP_WAIT_POLICY=PASSIVE
base="$(tiny_model) --vocab-size 250 --hidden-dropout 0.1 --attention-dropout 0.1 --clip-grad 0.5 --train-iters 6"

# same A B: the two runs' dumps and loss/grad-norm lines are bitwise equal.
same() {
  cmp -s "$1.st" "$2.st" || { echo "parameters differ"; return 1; }
  local la lb
  la=$(grep -o '"lm_loss": [^,]*, "grad_norm": [^,]*' "$1.json"); lb=$(grep -o '"lm_loss": [^,]*, "grad_norm": [^,]*' "$2.json")
  [ -n "$la" ] || { echo "no losses in $1.json"; return 1; }
  [ "$la" = "$lb" ] || { echo "losses or gradient norms differ"; return 1; }
}

check() {  # NAME NP BIN FLAGS...
  local name=$1 np=$2 bin=$3; shift 3
  mt_run "$T/$name.f" "$np" "$bin" $base "$@" || { not_ok "fused_bitwise_$name" "fused run failed: $(tail -n 1 "$T/$name.f.log")"; return; }
  MT_INJECT_BUG=unfused mt_run "$T/$name.u" "$np" "$bin" $base "$@" ||
    { not_ok "fused_bitwise_$name" "unfused run failed: $(tail -n 1 "$T/$name.u.log")"; return; }
  grep -q "deliberate bug" "$T/$name.u.log" || { not_ok "fused_bitwise_$name" "the hook did not take effect"; return; }
  local why; if why=$(same "$T/$name.f" "$T/$name.u"); then ok "fused_bitwise_$name"; else not_ok "fused_bitwise_$name" "$why"; fi
}

check fp32 1 ./pretrain_gpt
check bf16 1 ./pretrain_gpt --bf16
check fp64 1 ./pretrain_gpt_fp64
check llama 1 ./pretrain_gpt --bf16 --swiglu --normalization RMSNorm --disable-bias-linear --position-embedding-type rope
check tp2_sp 2 ./pretrain_gpt --tensor-model-parallel-size 2 --sequence-parallel
check dp2_distopt_bf16 2 ./pretrain_gpt --use-distributed-optimizer --bf16

# Megatron's --no-bias-gelu-fusion and --no-bias-dropout-fusion switch one
# sweep each back to its op chain (the timing switches of tools/bench-opts.sh):
# the banner says so, and no bit changes against the fused fp32 run above.
for fl in gelu dropout; do
  name=no_${fl}_fusion
  if ! mt_run "$T/$name" 1 ./pretrain_gpt $base --no-bias-$fl-fusion; then not_ok "fused_flag_$name" "run failed: $(tail -n 1 "$T/$name.log")"
  elif ! grep -q "^fusions off (same bits): .*bias-$fl" "$T/$name.log"; then not_ok "fused_flag_$name" "no 'fusions off' line naming bias-$fl"
  elif why=$(same "$T/fp32.f" "$T/$name"); then ok "fused_flag_$name"
  else not_ok "fused_flag_$name" "$why"; fi
done

# The gradient norm summed layer by layer as each gradient becomes final
# (src/gradnorm.c) against --no-grad-norm-fusion's one pass after backward:
# identical bits, the banner naming the switch, and --log-comm's `grad norm`
# line saying how much was summed during backward on every rank and
# iteration: all of it with one copy of each gradient (one rank, full
# recomputation, --bf16, TP 2 without SP), a part where some tensors still
# wait for a sum on the rank that counts them (TP 2 + SP: the SP-partial
# norms; PP 2 interleaved: the tied embedding); under DP all of it in the
# average's scaling pass after the reduction, the gradients' last write;
# none under CP alone, and none in the one-pass run.
gn_frac() {  # LOG WANTS: each rank's `grad norm` lines, a word per rank: all / part / none
  # summed during backward, or avg: all in DP's averaging pass
  awk -v wants="$2" 'BEGIN { nw = split(wants, want, " ") }
    /^grad norm rank/ { n++; r = $4 + 0; e = $5; t = $7; f = $12; w = want[r < nw ? r + 1 : nw]
      ok = w == "all" ? e == t && f == 0 : w == "none" ? e == 0 && f == 0 : w == "avg" ? e == 0 && f == t : e > 0 && e < t && f == 0
      if (!ok) { print "rank " r " summed " e " of " t " during backward and " f " in the average, want " w; bad = 1; exit } }
    END { if (!bad && !n) print "no grad norm lines"; exit bad || !n }' "$1"
}
gn_check() {  # NAME NP "WANTS" FLAGS...
  local name=gn_$1 np=$2 want=$3 why; shift 3
  mt_run "$T/$name.f" "$np" ./pretrain_gpt $base --log-comm "$@" ||
    { not_ok "grad_norm_fusion_$name" "fused run failed: $(tail -n 1 "$T/$name.f.log")"; return; }
  mt_run "$T/$name.u" "$np" ./pretrain_gpt $base --log-comm --no-grad-norm-fusion "$@" ||
    { not_ok "grad_norm_fusion_$name" "--no-grad-norm-fusion run failed: $(tail -n 1 "$T/$name.u.log")"; return; }
  if ! grep -q '^fusions off (same bits): .*grad-norm' "$T/$name.u.log"; then
    not_ok "grad_norm_fusion_$name" "no 'fusions off' line naming grad-norm"
  elif ! why=$(same "$T/$name.f" "$T/$name.u"); then not_ok "grad_norm_fusion_$name" "$why"
  elif ! why=$(gn_frac "$T/$name.f.log" "$want"); then not_ok "grad_norm_fusion_$name" "fused: $why"
  elif ! why=$(gn_frac "$T/$name.u.log" none); then not_ok "grad_norm_fusion_$name" "--no-grad-norm-fusion: $why"
  else ok "grad_norm_fusion_$name (per rank: $want)"; fi
}
gn_check one_rank 1 all
gn_check recompute 1 all --recompute-granularity full
gn_check bf16 1 all --bf16
gn_check tp2 2 all --tensor-model-parallel-size 2
# TP rank 0 counts the SP-partial norms, the other ranks none; h 128 so that
# some 16384-element chunks hold none of them.
gn_check tp2_sp 2 "part all" --tensor-model-parallel-size 2 --sequence-parallel --hidden-size 128
# The first stage counts the tied embedding, the last stage's copy is not counted.
gn_check pp2_interleaved 2 "part all" --pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1
# DP: the blocks are summed in the average's scaling pass instead; CP
# alone has no such pass (its sum is not averaged), so one pass after it.
gn_check dp2 2 avg
gn_check dp2_distopt 2 avg --use-distributed-optimizer
gn_check dp2_tp2_sp 4 avg --tensor-model-parallel-size 2 --sequence-parallel --use-distributed-optimizer
gn_check dp2_cp2 4 avg --context-parallel-size 2
gn_check cp2 2 none --context-parallel-size 2
# Negative control: a layer's gradients reported final one layer early
# (MT_INJECT_BUG=bucket-early) are summed before their backward wrote them.
if ! MT_INJECT_BUG=bucket-early mt_run "$T/gn_early.f" 1 ./pretrain_gpt $base ||
   ! MT_INJECT_BUG=bucket-early mt_run "$T/gn_early.u" 1 ./pretrain_gpt $base --no-grad-norm-fusion; then
  not_ok grad_norm_fusion_negative_control "a run failed: $(tail -n 1 "$T"/gn_early.*.log | tail -n 1)"
elif ! grep -q "deliberate bug" "$T/gn_early.f.log"; then not_ok grad_norm_fusion_negative_control "the hook did not take effect"
elif same "$T/gn_early.f" "$T/gn_early.u" > /dev/null; then not_ok grad_norm_fusion_negative_control "a norm summed too early compares equal"
else ok grad_norm_fusion_negative_control; fi

# Negative control: the comparison must see a real difference.
if ! mt_run "$T/seed.a" 1 ./pretrain_gpt $base --seed 1 || ! mt_run "$T/seed.b" 1 ./pretrain_gpt $base --seed 2; then
  not_ok fused_compare_sees_difference "a run failed"
elif same "$T/seed.a" "$T/seed.b" > /dev/null; then not_ok fused_compare_sees_difference "two seeds compare equal"
else ok fused_compare_sees_difference; fi
