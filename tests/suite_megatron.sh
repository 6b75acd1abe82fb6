#!/usr/bin/env bash
# suite_megatron.sh: a Megatron launch line runs unchanged. The vocabulary is
# padded as Megatron pads it (a multiple of --make-vocab-size-divisible-by x
# TP), so TP 3 with divisor 128 runs; the padded rows are masked, so it trains
# the model one rank trains (docs/design.md §1's bounds, both builds). Files
# hold the TP 1 padding (checkpoints, llm.c export, dumps) or the real rows
# (Hugging Face), so they reshard between TP 3 and TP 1 or 2. Also the
# model-parallel group and virtual stages of --log-layout, and the table of
# Megatron flags this build notes or refuses (docs/megatron-flags.md).
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE

# Random tokens of a 200-token vocabulary: divisor 128 pads it to 256 at
# TP 1 and TP 2, to 384 at TP 3 (rank 2 then holds rows 256-383: nothing but
# padding, the case a mask must get right).
data="$T/rand.bin"
if [ ! -f "$data" ]; then
  $PY - "$data" <<'EOF'
import random, struct, sys
random.seed(7)
n = 6000
hd = [20240520, 1, n] + [0] * 253
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", *hd))
    f.write(struct.pack("<%dH" % n, *[random.randrange(200) for _ in range(n)]))
EOF
fi
M="--num-layers 2 --hidden-size 48 --num-attention-heads 6 --seq-length 18 --vocab-size 200 --make-vocab-size-divisible-by 128
   --train-data-path $data --data-order sequential --train-iters 10 --lr 1e-3 --lr-warmup-iters 2 --lr-decay-style cosine
   --micro-batch-size 2 --global-batch-size 6 --clip-grad 0.5"
TP3="--tensor-model-parallel-size 3 --sequence-parallel"

# check NAME A B PREC: losses and final parameters of runs A and B agree.
agree() {
  local name=$1 a=$2 b=$3 prec=$4 ltol bound why
  ltol=1e-5; bound="--max-rel-rms 1e-4"
  [ $prec = fp64 ] && { ltol=1e-10; bound="--max-abs 1e-9"; }
  why=$(compare_losses "$a.json" "$b.json" $ltol) && tools/compare "$a.st" "$b.st" $bound > "$b.cmp" 2>&1
  if [ $? = 0 ]; then ok "$name ($why)"; else not_ok "$name" "$why $(tail -n 2 "$b.cmp" 2>/dev/null | tr '\n' ' ')"; fi
}

# 1. TP 3 + SP with divisor 128 equals one rank, both builds.
for prec in fp64 fp32; do
  bin=./pretrain_gpt; [ $prec = fp64 ] && bin=./pretrain_gpt_fp64
  mt_run "$T/one_$prec" 1 $bin $M || { not_ok "tp3_sp_equals_one_rank/$prec" "one-rank run failed"; continue; }
  if ! mt_run "$T/tp3_$prec" 3 $bin $M $TP3 --log-layout; then
    not_ok "tp3_sp_equals_one_rank/$prec" "TP 3 run failed: $(grep -m1 error "$T/tp3_$prec.log")"; continue
  fi
  agree "tp3_sp_equals_one_rank/$prec" "$T/one_$prec" "$T/tp3_$prec" $prec
done
grep -q "vocab 200 (padded 384, 256 in files)" "$T/tp3_fp64.log" && grep -q "vocab 200 (padded 256)" "$T/one_fp64.log" &&
  ok "padding_as_megatron (TP 3: 384 in memory, 256 in files; TP 1: 256)" ||
  not_ok padding_as_megatron "$(grep -m1 '^model:' "$T/tp3_fp64.log")"

# The control: the same TP 3 run with the padded logits left in the softmax
# must not agree (the mask is what makes the padding harmless).
if MT_INJECT_BUG=no-vocab-mask mt_run "$T/tp3_nomask" 3 ./pretrain_gpt_fp64 $M $TP3 &&
   ! compare_losses "$T/one_fp64.json" "$T/tp3_nomask.json" 1e-10 > /dev/null; then
  ok "control_unmasked_padding_differs ($(compare_losses "$T/one_fp64.json" "$T/tp3_nomask.json" 1 | sed 's/worst/worst unmasked/'))"
else not_ok control_unmasked_padding_differs "the run without the mask failed or agreed: $(grep -m1 error "$T/tp3_nomask.log")"; fi

# 2. Resharding through checkpoints: save at 5 under one layout, resume under
# another; losses and parameters equal the uninterrupted one-rank run (fp64).
reshard() {
  local name=$1 np1=$2 l1=$3 np2=$4 l2=$5 d="$T/$1"
  rm -rf "$d"; mkdir -p "$d"
  mt_run "$d/a" $np1 ./pretrain_gpt_fp64 $M $l1 --exit-interval 5 --save "$d/ck" &&
    mt_run "$d/b" $np2 ./pretrain_gpt_fp64 $M $l2 --load "$d/ck" ||
    { not_ok "$name" "run failed: $(cat "$d/a.log" "$d/b.log" 2>/dev/null | grep -m1 error)"; return; }
  cat "$d/a.json" "$d/b.json" > "$d/ab.json"; cp "$d/b.st" "$d/ab.st"
  grep -q "loaded checkpoint from $d/ck at iteration 5" "$d/b.log" || { not_ok "$name" "did not resume at 5"; return; }
  agree "$name" "$T/one_fp64" "$d/ab" fp64
}
reshard reshard_tp3_to_tp1 3 "$TP3" 1 ""
reshard reshard_tp1_to_tp3 1 "" 3 "$TP3"
reshard reshard_tp3_to_tp2 3 "$TP3" 2 "--tensor-model-parallel-size 2 --sequence-parallel"

# 3. Exports: llm.c's file holds the TP 1 padding (as llm.c sizes it), the
# Hugging Face directory the real 200 rows; a TP 3 export equals a TP 1 one.
e="$T/export"; mkdir -p "$e"
for np in 1 3; do
  l=""; [ $np = 3 ] && l=$TP3
  timeout 120 $MPIRUN $np ./pretrain_gpt_fp64 $M $l --train-iters 3 --export-llmc "$e/m$np.bin" --export-hf "$e/hf$np" > "$e/$np.log" 2>&1 ||
    not_ok "export_np$np" "$(grep -m1 error "$e/$np.log")"
done
why=$($PY - "$e" <<'EOF'
import json, struct, sys
import numpy as np
e = sys.argv[1]
def llmc(p):
    b = open(p, "rb").read()
    return struct.unpack("<8i", b[:32]), np.frombuffer(b[1024:], dtype=np.float32)
def hf(d):
    b = open(d + "/model.safetensors", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return h["transformer.wte.weight"]["shape"], json.load(open(d + "/config.json"))["vocab_size"]
(h1, w1), (h3, w3) = llmc(e + "/m1.bin"), llmc(e + "/m3.bin")
if h1[3] != 200 or h1[7] != 256 or h3 != h1: sys.exit("llm.c headers V/Vp %d/%d (TP 1), %d/%d (TP 3); want 200/256" % (h1[3], h1[7], h3[3], h3[7]))
if w1.shape != w3.shape or np.abs(w1 - w3).max() > 1e-6: sys.exit("TP 3 and TP 1 llm.c weights differ by %g" % np.abs(w1 - w3).max())
for d in ("hf1", "hf3"):
    s, v = hf(e + "/" + d)
    if s != [200, 48] or v != 200: sys.exit("%s: wte %s, vocab_size %d; want [200, 48], 200" % (d, s, v))
print("llm.c Vp 256 at TP 1 and 3, max diff %.2g; HF wte 200 x 48" % np.abs(w1 - w3).max())
EOF
) && ok "exports_hold_tp1_padding_or_real_rows ($why)" || not_ok exports_hold_tp1_padding_or_real_rows "$why"

# 4. --log-layout names the model-parallel group and the virtual stages.
timeout 60 $MPIRUN 4 ./pretrain_gpt --num-layers 4 --hidden-size 32 --num-attention-heads 4 --seq-length 16 --train-data-path "$data" \
  --vocab-size 200 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 \
  --global-batch-size 4 --micro-batch-size 1 --log-layout --dry-run > "$T/layout.log" 2>&1
if grep -q "rank 3 on .*MP \[0,1,2,3\]" "$T/layout.log" && grep -q "rank 2 .*virtual stages 1 (layers 1-1) 3 (layers 3-3)" "$T/layout.log" &&
   grep -q "rank 0 .*virtual stages 0 (layers 0-0) 2 (layers 2-2)" "$T/layout.log"; then
  ok "log_layout_model_parallel_group_and_virtual_stages"
else not_ok log_layout_model_parallel_group_and_virtual_stages "$(grep -m2 '^rank' "$T/layout.log" | tr '\n' ' ')"; fi

# 5. docs/megatron-flags.md lists exactly --help's last group (the flag
# table's notes and refusals), and each row behaves as it says: noted runs
# (exit 0) with one "note: FLAG:" line; refused exits 2 with one line naming it.
help=$(./pretrain_gpt --help | sed -n '/^Megatron flags this build/,$p' | tail -n +2 | awk '{print $1}' | sort)
doc=$(sed -n 's/^| `\(--[a-z0-9_-]*\)[ V]*` | .*/\1/p' docs/megatron-flags.md | sort)
if [ -n "$help" ] && [ "$help" = "$doc" ]; then ok "megatron_flags_doc_lists_the_table ($(echo "$doc" | wc -l) flags)"
else not_ok megatron_flags_doc_lists_the_table "differ: $(diff <(echo "$help") <(echo "$doc") | grep '^[<>]' | tr '\n' ' ')"; fi
bad=""; n=0
while IFS='|' read -r _ flag outcome _; do
  flag=$(echo "$flag" | tr -d '` '); val=""
  [[ "$flag" == *V ]] && { flag=${flag%V}; val=x; }
  out=$(./pretrain_gpt --dry-run --train-data-path "$data" --vocab-size 200 "$flag" ${val:+"$val"} 2> "$T/flag.err"); rc=$?
  n=$((n + 1))
  case "$outcome" in
    *noted*) [ $rc = 0 ] && [ "$(echo "$out" | grep -c "^note: $flag: ")" = 1 ] && [ ! -s "$T/flag.err" ] || bad="$bad $flag(noted: exit $rc)";;
    *refused*) [ $rc = 2 ] && [ "$(wc -l < "$T/flag.err")" = 1 ] && grep -q -- "$flag" "$T/flag.err" && [ -z "$out" ] || bad="$bad $flag(refused: exit $rc)";;
    *) bad="$bad $flag(outcome '$outcome')";;
  esac
done < <(grep '^| `--' docs/megatron-flags.md)
[ -z "$bad" ] && ok "megatron_flags_behave_as_the_table_says ($n rows)" || not_ok megatron_flags_behave_as_the_table_says "$bad"

# 6. --num-query-groups without --group-query-attention: Megatron ignores the
# count (arguments.py sets the groups to the heads). Here too: a note, and
# the run is the run without it, bit for bit. With the switch, 2 groups of
# 6 heads is another model (fewer K/V parameters).
G="--num-layers 1 --hidden-size 48 --num-attention-heads 6 --seq-length 18 --vocab-size 200 --train-data-path $data
   --data-order sequential --train-iters 2 --micro-batch-size 2 --global-batch-size 2"
mt_run "$T/gqa_none" 1 ./pretrain_gpt_fp64 $G && mt_run "$T/gqa_count" 1 ./pretrain_gpt_fp64 $G --num-query-groups 2 &&
  mt_run "$T/gqa_on" 1 ./pretrain_gpt_fp64 $G --num-query-groups 2 --group-query-attention
rc=$?
notes=$(grep -c '^note: --num-query-groups 2 without --group-query-attention is ignored' "$T/gqa_count.log" 2>/dev/null)
if [ $rc = 0 ] && [ "$notes" = 1 ] && tools/compare "$T/gqa_none.st" "$T/gqa_count.st" --max-abs 0 > /dev/null 2>&1 &&
   ! tools/compare "$T/gqa_none.st" "$T/gqa_on.st" --max-abs 0 > /dev/null 2>&1 &&
   ! grep -q '^note: --num-query-groups' "$T/gqa_none.log" "$T/gqa_on.log"; then
  ok "num_query_groups_without_gqa_is_ignored_with_a_note (bitwise; with the switch another model)"
else not_ok num_query_groups_without_gqa_is_ignored_with_a_note "exit $rc, notes $notes: $(grep -m1 -E 'error' "$T"/gqa_*.log)"; fi

# 7. Sample-based training (--train-samples) and --rampup-batch-size, as
# Megatron's update_train_iters, RampupBatchsizeNumMicroBatchesCalculator and
# OptimizerParamScheduler (which counts samples) define them.
S="--num-layers 4 --hidden-size 32 --num-attention-heads 4 --seq-length 16 --vocab-size 200 --train-data-path $data
   --data-order sequential --lr 1e-3 --lr-decay-style cosine --micro-batch-size 2"
# 80 samples of 8 with a 16-sample warm-up are 10 iterations with a 2-iteration one, bit for bit.
mt_run "$T/it10" 1 ./pretrain_gpt_fp64 $S --global-batch-size 8 --train-iters 10 --lr-warmup-iters 2 &&
  mt_run "$T/s80" 1 ./pretrain_gpt_fp64 $S --global-batch-size 8 --train-samples 80 --lr-warmup-samples 16
rc=$?
if [ $rc = 0 ] && compare_losses "$T/it10.json" "$T/s80.json" 0 > /dev/null && cmp -s "$T/it10.st" "$T/s80.st" &&
   [ "$(metrics_iters "$T/s80.json" | wc -l)" = 10 ]; then ok "train_samples_equal_train_iters (10 iterations, bitwise)"
else not_ok train_samples_equal_train_iters "exit $rc: $(grep -m1 error "$T"/s80.log)"; fi
# The ramp 4 +4 over 16 samples to 8, 48 samples, on DP 2: batches 4 4 4 4 8 8 8 8
# (8 iterations, Megatron's count); its LR and batch every step against the
# calculator and the scheduler written out here; bitwise the chain of a
# constant batch of 4 for 4 steps, saved, then 8 from the checkpoint.
# megatron_ramp GBS START INC SAMPLES TRAIN_SAMPLES [LR]: each step's batch
# (and, given LR, its cosine LR counted in samples) as Megatron's
# RampupBatchsizeNumMicroBatchesCalculator, update_train_iters (main, 2026:
# the ramp loop also stops past --train-samples) and the scheduler compute them.
megatron_ramp() {
  /usr/bin/python3 - "$@" <<'PY'
import math, sys
gbs, start, inc, ramp, total = (int(x) for x in sys.argv[1:6])
lr = float(sys.argv[6]) if len(sys.argv) > 6 else None
per = ramp / ((gbs - start) // inc)
def batch(c): return gbs if c > ramp else start + int(c / per) * inc
c = it = 0
while c <= ramp and c <= total: c += batch(c); it += 1
if total > c: it += (total - c) // gbs
c, rows = 0, []
for i in range(it):
    b = batch(c)
    rows.append(str(b) if lr is None else "%d %.17g" % (b, 0.5 * (math.cos(math.pi * c / total) + 1) * lr)); c += b
print(" ".join(rows))
PY
}
RAMP="$S --global-batch-size 8 --train-samples 48 --rampup-batch-size 4 4 16"
mt_run "$T/ramp" 2 ./pretrain_gpt_fp64 $RAMP && mt_run "$T/chainA" 2 ./pretrain_gpt_fp64 $S --global-batch-size 4 --train-samples 48 --exit-interval 4 --save "$T/chck" &&
  mt_run "$T/chainB" 2 ./pretrain_gpt_fp64 $S --global-batch-size 8 --train-samples 64 --lr-decay-samples 48 --load "$T/chck"
rc=$?
want=$(megatron_ramp 8 4 4 16 48 1e-3)
got=$(paste -d' ' <(sed -n 's/.*global batch size: *\([0-9]*\) .*/\1/p' "$T/ramp.log") \
                  <(metrics_iters "$T/ramp.json" | sed 's/.*"lr": \([^,]*\),.*/\1/') | tr '\n' ' ' | sed 's/ $//')
cat "$T/chainA.json" "$T/chainB.json" > "$T/chain.json"
if [ $rc = 0 ] && [ -n "$want" ] && [ "$got" = "$want" ] && compare_losses "$T/ramp.json" "$T/chain.json" 0 > /dev/null &&
   cmp -s "$T/ramp.st" "$T/chainB.st"; then
  ok "rampup_batch_size_as_megatron (batches $(echo "$got" | awk '{for (i = 1; i <= NF; i += 2) printf "%s%s", $i, (i + 2 <= NF ? " " : "")}'), LR by samples; bitwise the chain 4 x 4 then 8)"
else not_ok rampup_batch_size_as_megatron "exit $rc; got '$got' want '$want'"; fi
# The ramp under layouts whose schedules depend on the micro-batch count
# (interleaved 1F1B, AFAB with TP + SP, CP with the distributed optimizer
# and overlap), equal to one rank; stopped mid-ramp and resumed, bitwise.
mt_run "$T/ramp1" 1 ./pretrain_gpt_fp64 $RAMP
for lay in "pp2_interleaved:2:--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1" \
           "tp2_sp_pp2_afab:4:--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 --pipeline-schedule afab" \
           "cp2_distopt_overlap:2:--context-parallel-size 2 --use-distributed-optimizer --overlap-grad-reduce"; do
  IFS=: read -r name np flags <<< "$lay"
  # shellcheck disable=SC2086
  mt_run "$T/rl" "$np" ./pretrain_gpt_fp64 $RAMP $flags || { not_ok "rampup_${name}" "$(grep -m1 error "$T/rl.log")"; continue; }
  agree "rampup_${name}_equals_one_rank" "$T/ramp1" "$T/rl" fp64
done
mt_run "$T/rstop" 2 ./pretrain_gpt_fp64 $RAMP --exit-interval 3 --save "$T/rck" && mt_run "$T/rgo" 2 ./pretrain_gpt_fp64 $RAMP --load "$T/rck"
rc=$?
if [ $rc = 0 ] && grep -q "at iteration 3 (12 samples consumed)" "$T/rgo.log" && cmp -s "$T/rgo.st" "$T/ramp.st"; then
  ok "rampup_resumed_mid_ramp_bitwise (stopped at 3, 12 samples)"
else not_ok rampup_resumed_mid_ramp_bitwise "exit $rc: $(grep -h -m1 -E 'error|loaded' "$T/rgo.log")"; fi

# 8. --lr-warmup-fraction and --lr-warmup-init: Megatron's scheduler takes
# the warm-up as F x the decay length in samples (2.5 iterations here, at a
# batch of 12) and starts it from init_lr. Every step's LR against
# OptimizerParamScheduler.get_lr written out, in both units: iterations
# (cosine; the decay is iterations x the batch) and samples (linear, a decay
# shorter than the run: the last step is at the floor).
megatron_lr() {  # KEY=VALUE...: OptimizerParamScheduler's LR (and WD) before each step, in samples
  /usr/bin/python3 - "$@" <<'PY'
import math, sys
a = dict(style="cosine", wsd_style="exponential", gbs=8, steps=10, warm=0, decay=None, wsd=0, frac=None,
         lr=1e-3, min_lr=1e-4, init=2e-4, wd=None, start_wd=0.0, end_wd=0.1)
for kv in sys.argv[1:]:
    k, v = kv.split("=")
    a[k] = v if k in ("style", "wsd_style", "wd") else float(v) if "." in v or "e" in v else int(v)
gbs, lr, min_lr, init = a["gbs"], a["lr"], a["min_lr"], a["init"]
decay = a["decay"] if a["decay"] is not None else a["steps"] * gbs
warm = a["frac"] * decay if a["frac"] is not None else a["warm"]
def get_lr(n):
    if warm > 0 and n <= warm: return init + ((lr - init) * float(n) / float(warm))
    if a["style"] == "constant": return lr
    if n > decay: return min_lr
    if a["style"] == "inverse-square-root":
        return max(min_lr, lr * max(warm, 1) ** 0.5 / (max(n, 1) ** 0.5))
    r = float(n - warm) / float(decay - warm)
    if a["style"] == "linear": coeff = 1.0 - r
    elif a["style"] == "cosine": coeff = 0.5 * (math.cos(math.pi * r) + 1.0)
    else:
        start = decay - a["wsd"]
        if n <= start: coeff = 1.0
        else:
            q = float(n - start) / float(a["wsd"])
            coeff = {"exponential": (2.0 * math.pow(0.5, q)) - 1.0, "linear": 1.0 - q,
                     "cosine": 0.5 * (math.cos(math.pi * q) + 1.0), "minus_sqrt": 1.0 - math.sqrt(q)}[a["wsd_style"]]
    return min_lr + coeff * (lr - min_lr)
def get_wd(n):
    total = a["steps"] * gbs
    if n > total: return a["end_wd"]
    r = float(n) / float(total)
    coeff = r if a["wd"] == "linear" else 0.5 * (math.cos(math.pi * (1 - r)) + 1.0)
    return a["start_wd"] + coeff * (a["end_wd"] - a["start_wd"])
f = get_wd if a["wd"] else get_lr
print(" ".join("%.17g" % f(i * gbs) for i in range(a["steps"])))
PY
}
lrs_of() { metrics_iters "$1" | sed 's/.*"lr": \([^,]*\),.*/\1/' | tr '\n' ' ' | sed 's/ $//'; }
W="$S --min-lr 1e-4 --lr-warmup-init 2e-4"
mt_run "$T/wf_it" 1 ./pretrain_gpt_fp64 $W --global-batch-size 12 --train-iters 10 --lr-warmup-fraction 0.25 &&
  mt_run "$T/wf_s" 1 ./pretrain_gpt_fp64 $W --lr-decay-style linear --global-batch-size 8 --train-samples 80 --lr-decay-samples 70 --lr-warmup-fraction 0.3
rc=$?
want_it=$(megatron_lr style=cosine gbs=12 frac=0.25) want_s=$(megatron_lr style=linear gbs=8 decay=70 frac=0.3)
got_it=$(lrs_of "$T/wf_it.json") got_s=$(lrs_of "$T/wf_s.json")
if [ $rc = 0 ] && [ -n "$want_it" ] && [ "$got_it" = "$want_it" ] && [ "$got_s" = "$want_s" ]; then
  ok "lr_warmup_fraction_and_init_as_megatron (iterations: warm-up 30 samples of 120, cosine; samples: 21 of 70, linear, floor at step 10)"
else not_ok lr_warmup_fraction_and_init_as_megatron "exit $rc; iterations got '$got_it' want '$want_it'; samples got '$got_s' want '$want_s'"; fi
# A fraction of 0 is no warm-up, bit for bit; the same schedule on DP 2 x PP 2.
mt_run "$T/wf0" 1 ./pretrain_gpt_fp64 $S --global-batch-size 8 --train-iters 4 --lr-warmup-fraction 0 &&
  mt_run "$T/wf_none" 1 ./pretrain_gpt_fp64 $S --global-batch-size 8 --train-iters 4 &&
  mt_run "$T/wf_lay" 4 ./pretrain_gpt_fp64 $W --global-batch-size 12 --train-iters 10 --lr-warmup-fraction 0.25 --pipeline-model-parallel-size 2
rc=$?
if [ $rc = 0 ] && cmp -s "$T/wf0.st" "$T/wf_none.st" && [ "$(lrs_of "$T/wf_lay.json")" = "$want_it" ]; then
  ok "lr_warmup_fraction_zero_is_none_and_layouts_share_the_schedule"
else not_ok lr_warmup_fraction_zero_is_none_and_layouts_share_the_schedule "exit $rc: $(grep -h -m1 error "$T"/wf0.log "$T"/wf_lay.log)"; fi
[ $rc = 0 ] && agree "lr_warmup_fraction_dp2_pp2_equals_one_rank" "$T/wf_it" "$T/wf_lay" fp64

# 9. --lr-decay-style inverse-square-root and WSD (each annealing shape), and
# --weight-decay-incr-style linear/cosine: every step's LR and weight decay
# against get_lr and get_wd written out above. The batch of 12 is not a
# power of two, so counting in iterations instead of samples would show.
for row in "isqrt:style=inverse-square-root warm=24:--lr-decay-style inverse-square-root --lr-warmup-iters 2" \
           "isqrt_no_warmup:style=inverse-square-root init=0:--lr-decay-style inverse-square-root --lr-warmup-init 0 --lr-warmup-iters 0" \
           "wsd_exponential:style=WSD warm=24 wsd=48:--lr-decay-style WSD --lr-warmup-iters 2 --lr-wsd-decay-iters 4" \
           "wsd_linear:style=WSD wsd_style=linear warm=12 wsd=60 decay=96:--lr-decay-style WSD --lr-wsd-decay-style linear --lr-warmup-iters 1 --lr-wsd-decay-iters 5 --lr-decay-iters 8" \
           "wsd_cosine:style=WSD wsd_style=cosine frac=0.1 wsd=36:--lr-decay-style WSD --lr-wsd-decay-style cosine --lr-warmup-fraction 0.1 --lr-warmup-iters 0 --lr-wsd-decay-iters 3" \
           "wsd_minus_sqrt:style=WSD wsd_style=minus_sqrt warm=24 wsd=120:--lr-decay-style WSD --lr-wsd-decay-style minus_sqrt --lr-warmup-iters 2 --lr-wsd-decay-iters 10" \
           "wsd_zero_anneal:style=WSD warm=24 wsd=0 decay=84:--lr-decay-style WSD --lr-warmup-iters 2 --lr-wsd-decay-iters 0 --lr-decay-iters 7"; do
  IFS=: read -r name keys flags <<< "$row"
  # shellcheck disable=SC2086
  mt_run "$T/$name" 1 ./pretrain_gpt_fp64 $W --global-batch-size 12 --train-iters 10 $flags || { not_ok "lr_$name" "$(grep -m1 error "$T/$name.log")"; continue; }
  # shellcheck disable=SC2086
  want=$(megatron_lr gbs=12 $keys) got=$(lrs_of "$T/$name.json")
  if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "lr_${name}_as_megatron"
  else not_ok "lr_${name}_as_megatron" "got '$got' want '$want'"; fi
done
# WSD in samples: a ramp-free run of 80 samples, annealing over the last 30.
mt_run "$T/wsd_s" 1 ./pretrain_gpt_fp64 $W --global-batch-size 8 --train-samples 80 --lr-decay-style WSD --lr-wsd-decay-style linear \
  --lr-warmup-samples 12 --lr-wsd-decay-samples 30
want=$(megatron_lr gbs=8 style=WSD wsd_style=linear warm=12 wsd=30) got=$(lrs_of "$T/wsd_s.json")
if [ $? = 0 ] && [ -n "$want" ] && [ "$got" = "$want" ]; then ok "lr_wsd_in_samples_as_megatron"
else not_ok lr_wsd_in_samples_as_megatron "got '$got' want '$want' $(grep -m1 error "$T/wsd_s.log")"; fi
wds_of() { metrics_iters "$1" | sed -n 's/.*"weight_decay": \([^,]*\),.*/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
for style in linear cosine; do
  mt_run "$T/wd_$style" 1 ./pretrain_gpt_fp64 $W --global-batch-size 12 --train-iters 10 --weight-decay-incr-style $style \
    --start-weight-decay 0 --end-weight-decay 0.1 || { not_ok "wd_${style}_as_megatron" "$(grep -m1 error "$T/wd_$style.log")"; continue; }
  want=$(megatron_lr gbs=12 wd=$style) got=$(wds_of "$T/wd_$style.json")
  if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "wd_${style}_as_megatron (0 to 0.1)"
  else not_ok "wd_${style}_as_megatron" "got '$got' want '$want'"; fi
done
# A rising decay of equal ends is the constant decay, bit for bit; another end differs.
mt_run "$T/wd_flat" 1 ./pretrain_gpt_fp64 $W --global-batch-size 12 --train-iters 10 --weight-decay-incr-style linear \
  --start-weight-decay 0.05 --end-weight-decay 0.05 && mt_run "$T/wd_const" 1 ./pretrain_gpt_fp64 $W --global-batch-size 12 --train-iters 10 --weight-decay 0.05
rc=$?
if [ $rc = 0 ] && cmp -s "$T/wd_flat.st" "$T/wd_const.st" && ! cmp -s "$T/wd_linear.st" "$T/wd_const.st"; then
  ok "wd_schedule_of_equal_ends_is_the_constant_decay (bitwise; 0 to 0.1 differs)"
else not_ok wd_schedule_of_equal_ends_is_the_constant_decay "exit $rc"; fi

# --decoupled-lr / --decoupled-min-lr: the word embeddings' and output
# layer's group, its LR every step against get_lr with that group's peak
# and floor; the same values as --lr give the plain run bit for bit (tied
# and untied); other values change it.
dlr_of() { metrics_iters "$1" | sed -n 's/.*"decoupled_lr": \([^,]*\),.*/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
mt_run "$T/dlr" 1 ./pretrain_gpt_fp64 $W --global-batch-size 12 --train-iters 10 --lr-warmup-iters 2 --decoupled-lr 3e-3 --decoupled-min-lr 2e-4
rc=$?
want=$(megatron_lr gbs=12 warm=24 lr=3e-3 min_lr=2e-4) got=$(dlr_of "$T/dlr.json")
if [ $rc = 0 ] && [ -n "$want" ] && [ "$got" = "$want" ] && [ "$(lrs_of "$T/dlr.json")" = "$(megatron_lr gbs=12 warm=24)" ] &&
   grep -q "^ iteration *3/ *10 .* | learning rate: 1.000000E-03 | decoupled learning rate: 3.000000E-03 | " "$T/dlr.log"; then
  ok "decoupled_lr_as_megatron (peak 3e-3, floor 2e-4; the other group's LR unchanged)"
else not_ok decoupled_lr_as_megatron "exit $rc; got '$got' want '$want'"; fi
for tie in tied untied; do
  ut=""; [ $tie = untied ] && ut=--untie-embeddings-and-output-weights
  mt_run "$T/dlr_same_$tie" 1 ./pretrain_gpt_fp64 $W $ut --global-batch-size 12 --train-iters 4 --decoupled-lr 1e-3 --decoupled-min-lr 1e-4 &&
    mt_run "$T/dlr_none_$tie" 1 ./pretrain_gpt_fp64 $W $ut --global-batch-size 12 --train-iters 4 &&
    mt_run "$T/dlr_other_$tie" 1 ./pretrain_gpt_fp64 $W $ut --global-batch-size 12 --train-iters 4 --decoupled-lr 5e-3
  rc=$?
  if [ $rc = 0 ] && cmp -s "$T/dlr_same_$tie.st" "$T/dlr_none_$tie.st" && ! cmp -s "$T/dlr_other_$tie.st" "$T/dlr_none_$tie.st"; then
    ok "decoupled_lr_equal_to_lr_is_the_plain_run_$tie (bitwise; another value differs)"
  else not_ok "decoupled_lr_equal_to_lr_is_the_plain_run_$tie" "exit $rc"; fi
done

# A ramp that passes --train-samples: update_train_iters (Megatron's main)
# stops stepping through the ramp there, so the run ends inside the ramp.
# Its batches against the calculator written out.
mt_run "$T/ramp_past" 1 ./pretrain_gpt_fp64 $S --global-batch-size 8 --train-samples 14 --rampup-batch-size 2 2 40
rc=$?
want=$(megatron_ramp 8 2 2 40 14)
got=$(sed -n 's/.*global batch size: *\([0-9]*\) .*/\1/p' "$T/ramp_past.log" | tr '\n' ' ' | sed 's/ $//')
if [ $rc = 0 ] && [ -n "$want" ] && [ "$got" = "$want" ]; then ok "rampup_past_train_samples_as_megatron (batches $got)"
else not_ok rampup_past_train_samples_as_megatron "exit $rc; got '$got' want '$want'"; fi

# 10. Megatron's own example launch lines, scaled down (examples/gpt3/
# train_gpt3_175b_distributed.sh and examples/llama/train_llama3_8b_h100_fp8.sh):
# the sizes shrink to a laptop's, every other flag stays. Each runs on 2
# ranks, and the same run without its noted flags is the same run, bit for
# bit. (The GPT-3 line's --rampup-batch-size with --train-iters is refused
# by Megatron itself; the Llama line's --apply-layernorm-1p is refused here
# with its reason, so both leave those out and the refusal is checked.)
GPT3="--num-layers 2 --hidden-size 48 --num-attention-heads 6 --seq-length 16 --max-position-embeddings 16
  --micro-batch-size 1 --global-batch-size 8 --train-iters 3 --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95
  --init-method-std 0.006 --clip-grad 1.0 --lr 6.0e-5 --lr-decay-style cosine --min-lr 6.0e-6 --lr-warmup-fraction .001
  --lr-decay-iters 430000 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 1 --data-path $data --split 949,50,1
  --log-interval 1 --save-interval 10000 --eval-interval 1000 --eval-iters 10 --vocab-size 200"
GPT3_NOTED="--attention-backend auto --fp16 --vocab-file $T/none.json --merge-file $T/none.txt --tensorboard-dir $T/tb"
LLAMA="--num-layers 2 --hidden-size 64 --ffn-hidden-size 224 --num-attention-heads 8 --group-query-attention --num-query-groups 2
  --kv-channels 8 --seq-length 32 --max-position-embeddings 32 --position-embedding-type rope --rotary-base 1000000
  --rotary-percent 1.0 --attention-dropout 0.0 --hidden-dropout 0.0 --swiglu --init-method-std 0.0134
  --untie-embeddings-and-output-weights --disable-bias-linear --micro-batch-size 1 --global-batch-size 8
  --train-samples 24 --lr-decay-samples 20 --lr-warmup-samples 4 --lr 0.00015 --min-lr 0.00001 --decoupled-lr 5.0e-4
  --decoupled-min-lr 4.5e-5 --lr-decay-style cosine --clip-grad 1.0 --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95
  --bf16 --exit-duration-in-mins 235 --tensor-model-parallel-size 2 --context-parallel-size 1 --sequence-parallel
  --use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather --data-path $data --split 99,1,0 --vocab-size 200
  --log-interval 1 --eval-iters 32 --eval-interval 100 --save-interval 1000"
LLAMA_NOTED="--use-mcore-models --attention-backend fused --grad-reduce-in-bf16 --cross-entropy-loss-fusion --calculate-per-token-loss
  --manual-gc --empty-unused-memory-level 1 --fp8-format hybrid --fp8-amax-history-len 1024 --fp8-amax-compute-algo max
  --fp8-param-gather --tokenizer-type HuggingFaceTokenizer --tokenizer-model $T/tok --data-cache-path $T/cache
  --no-create-attention-mask-in-dataloader --no-mmap-bin-files --num-workers 1 --log-throughput --profile
  --profile-step-start 4 --profile-step-end 6 --ckpt-format torch_dist --distributed-timeout-minutes 60 --tensorboard-dir $T/tb"
for line in gpt3_175b llama3_8b; do
  if [ $line = gpt3_175b ]; then base=$GPT3 noted=$GPT3_NOTED want=5; else base=$LLAMA noted=$LLAMA_NOTED want=24; fi
  # shellcheck disable=SC2086
  mt_run "$T/ex_$line" 2 ./pretrain_gpt $base $noted --save "$T/ex_ck_$line" --load "$T/ex_ck_$line" &&
    mt_run "$T/ex_${line}_bare" 2 ./pretrain_gpt $base --save "$T/ex_ck_${line}_bare" --load "$T/ex_ck_${line}_bare"
  rc=$?
  notes=$(grep -c '^note: --' "$T/ex_$line.log")
  if [ $rc = 0 ] && [ "$notes" = "$want" ] && cmp -s "$T/ex_$line.st" "$T/ex_${line}_bare.st" && [ -d "$T/ex_ck_$line" ]; then
    ok "megatron_example_${line}_scaled_down_runs ($notes noted flags; bitwise the run without them; a checkpoint saved)"
  else not_ok "megatron_example_${line}_scaled_down_runs" "exit $rc, $notes notes (want $want): $(grep -m1 -E 'error' "$T/ex_$line.log" "$T/ex_${line}_bare.log")"; fi
done
# shellcheck disable=SC2086
out=$(./pretrain_gpt $LLAMA --apply-layernorm-1p 2>&1 >/dev/null); rc=$?
if [ $rc = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q -- "--apply-layernorm-1p: LayerNorm weights stored as 1 + w"; then
  ok "megatron_example_llama3_8b_apply_layernorm_1p_refused_with_its_reason"
else not_ok megatron_example_llama3_8b_apply_layernorm_1p_refused_with_its_reason "exit $rc: $out"; fi

# Megatron's older spellings: --recompute-activations is selective
# recomputation, --use-rotary-position-embeddings is RoPE, --kv-channels
# at its default is the model without it; bit for bit.
for pair in "recompute:--recompute-activations:--recompute-granularity selective" \
            "rope:--use-rotary-position-embeddings:--position-embedding-type rope" \
            "kv_channels:--kv-channels 8:"; do
  IFS=: read -r name legacy modern <<< "$pair"
  # shellcheck disable=SC2086
  mt_run "$T/old_$name" 1 ./pretrain_gpt_fp64 $M $legacy && mt_run "$T/new_$name" 1 ./pretrain_gpt_fp64 $M $modern
  rc=$?
  if [ $rc = 0 ] && cmp -s "$T/old_$name.st" "$T/new_$name.st" && compare_losses "$T/old_$name.json" "$T/new_$name.json" 0 > /dev/null; then
    ok "megatron_spelling_${name} ($legacy is ${modern:-the default}, bitwise)"
  else not_ok "megatron_spelling_${name}" "exit $rc: $(grep -h -m1 error "$T/old_$name.log" "$T/new_$name.log")"; fi
done
mt_run "$T/rope_check" 1 ./pretrain_gpt_fp64 $M
if ! cmp -s "$T/rope_check.st" "$T/old_rope.st"; then ok "megatron_spelling_rope_changes_the_model (control)"
else not_ok megatron_spelling_rope_changes_the_model "the learned-position run has the same bits"; fi

# --exit-duration-in-mins: every rank leaves after the first iteration that
# ends past the limit, counted from the start, with a checkpoint; resuming
# it runs on bitwise to the uninterrupted end. A test "minute" is a
# microsecond here (MT_TEST_SECONDS_PER_MINUTE); 0 is off, as in Megatron.
D="$M --global-batch-size 8"
MT_TEST_SECONDS_PER_MINUTE=0.000001 mt_run "$T/dur0" 2 ./pretrain_gpt_fp64 $D --exit-duration-in-mins 1 --save "$T/dur_ck" &&
  mt_run "$T/dur1" 2 ./pretrain_gpt_fp64 $D --load "$T/dur_ck" && mt_run "$T/dur_all" 2 ./pretrain_gpt_fp64 $D &&
  MT_TEST_SECONDS_PER_MINUTE=0.000001 mt_run "$T/dur_off" 2 ./pretrain_gpt_fp64 $D --exit-duration-in-mins 0
rc=$?
if [ $rc = 0 ] && grep -q "^ exiting at iteration 1 after .* minutes since the start (--exit-duration-in-mins 1)" "$T/dur0.log" &&
   [ "$(metrics_iters "$T/dur0.json" | wc -l)" = 1 ] && cmp -s "$T/dur1.st" "$T/dur_all.st" && cmp -s "$T/dur_off.st" "$T/dur_all.st"; then
  ok "exit_duration_in_mins_leaves_with_a_checkpoint (after iteration 1 on 2 ranks; resumed bitwise; 0 is off)"
else not_ok exit_duration_in_mins_leaves_with_a_checkpoint "exit $rc: $(grep -h -m1 -E 'error|exiting' "$T"/dur0.log "$T"/dur1.log)"; fi

# --log-params-norm: the weights' L2 norm after each step, each tensor once:
# one rank's against numpy over the dumped parameters; TP 2 + SP x PP 2 and
# DP 2 with the distributed optimizer equal to one rank's, every step.
pnorms_of() { metrics_iters "$1" | sed -n 's/.*"params_norm": \([^,]*\),.*/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
mt_run "$T/pn1" 1 ./pretrain_gpt_fp64 $M --global-batch-size 8 --log-params-norm &&
  mt_run "$T/pn4" 4 ./pretrain_gpt_fp64 $M --global-batch-size 8 --log-params-norm --tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 &&
  mt_run "$T/pnd" 2 ./pretrain_gpt_fp64 $M --global-batch-size 8 --log-params-norm --use-distributed-optimizer
rc=$?
numpy=$($PY - "$T/pn1.st" <<'PY'
import json, struct, sys, numpy as np
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
ss = 0.0
for k, v in h.items():
    if k == "__metadata__": continue
    a = np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np.float64 if v["dtype"] == "F64" else np.float32)
    ss += float((a.astype(np.float64) ** 2).sum())
print("%.17g" % np.sqrt(ss))
PY
)
last=$(pnorms_of "$T/pn1.json" | awk '{print $NF}')
close=$(awk -v a="$numpy" -v b="$last" 'BEGIN { d = a - b; if (d < 0) d = -d; print (a > 0 && d / a < 1e-13) ? 1 : 0 }')
same=$(paste <(pnorms_of "$T/pn1.json" | tr ' ' '\n') <(pnorms_of "$T/pn4.json" | tr ' ' '\n') <(pnorms_of "$T/pnd.json" | tr ' ' '\n') |
  awk 'NF == 3 { for (i = 2; i <= 3; i++) { d = $1 - $i; if (d < 0) d = -d; if (d / $1 > 1e-12) bad++ } n++ } END { print (n == 10 && !bad) ? 1 : 0 }')
if [ $rc = 0 ] && [ "$close" = 1 ] && [ "$same" = 1 ] && grep -q "| params norm: " "$T/pn4.log"; then
  ok "log_params_norm_as_numpy_and_every_layout (last $last, numpy $numpy)"
else not_ok log_params_norm_as_numpy_and_every_layout "exit $rc; last '$last' numpy '$numpy'; layouts agree: $same"; fi

# --no-load-optim restarts the LR scheduler with AdamW (Megatron loads the
# scheduler's state with the optimizer's): iterations 6-9 after a checkpoint
# at 5 take get_lr at counts 0, 8, 16, 24 (warm-up again; the decay's end
# stays at iteration 9's 72 samples). The restarted count is saved
# (scheduler_samples, format 2): stopped at 7 and resumed, 8-9 go on at 16, 24.
NL="$S --global-batch-size 8 --lr-warmup-iters 2 --min-lr 1e-4 --lr-warmup-init 2e-4"
mt_run "$T/nl5" 1 ./pretrain_gpt_fp64 $NL --train-iters 5 --save "$T/nl_ck" &&
  mt_run "$T/nl9" 1 ./pretrain_gpt_fp64 $NL --train-iters 9 --load "$T/nl_ck" --no-load-optim &&
  mt_run "$T/nl7" 1 ./pretrain_gpt_fp64 $NL --train-iters 7 --load "$T/nl_ck" --no-load-optim --save "$T/nl_ck7" &&
  mt_run "$T/nl7b" 1 ./pretrain_gpt_fp64 $NL --train-iters 9 --load "$T/nl_ck7"
rc=$?
all=$(megatron_lr gbs=8 steps=9 warm=16 decay=72)
want=$(echo "$all" | cut -d' ' -f1-4) got=$(lrs_of "$T/nl9.json") got2="$(lrs_of "$T/nl7.json") $(lrs_of "$T/nl7b.json")"
sched=$($PY -c 'import json,struct,sys; r=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",r[:8])[0]; m=json.loads(r[8:8+n])["__metadata__"]; print(m.get("scheduler_samples"), m.get("consumed_samples"), m.get("format"))' "$T/nl_ck7/iter_0000007/model.safetensors" 2>/dev/null)
if [ $rc = 0 ] && [ -n "$want" ] && [ "$got" = "$want" ] && [ "$got2" = "$want" ] && [ "$sched" = "16 56 megatron.c checkpoint 2" ] && cmp -s "$T/nl9.st" "$T/nl7b.st"; then
  ok "no_load_optim_restarts_the_lr_schedule_as_megatron (counts 0 8 16 24; saved at 7 as scheduler_samples 16 and resumed bitwise)"
else not_ok no_load_optim_restarts_the_lr_schedule_as_megatron "exit $rc; got '$got' / '$got2' want '$want'; metadata '$sched'"; fi
