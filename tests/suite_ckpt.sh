#!/usr/bin/env bash
# suite_ckpt.sh: checkpoints. Exact resume, resharding between layouts,
# atomic saves (a rank killed mid-save, a full disk, a read-only destination),
# a killed rank ending the job, and a non-finite loss keeping the last good
# checkpoint.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)
# Dropout on (the tiny model's 0.1) and the shuffled data order.
A="$(tiny_model) --data-order shuffle --train-iters 20"
same_losses() { diff <(metrics_iters "$1" | cut -d, -f1-2) <(metrics_iters "$2" | cut -d, -f1-2) > /dev/null; }

# 1. Exact resume: 20 iterations straight vs 10 + save + load + 10, same
# layout, must be bitwise identical: losses and every parameter.
exact() {
  local name=$1 np=$2 bin=$3 layout=$4 d="$T/$1"
  rm -rf "$d"; mkdir -p "$d"
  mt_run "$d/straight" $np $bin $A $layout || { not_ok "$name" "straight run failed"; return; }
  mt_run "$d/first" $np $bin $A $layout --exit-interval 10 --save "$d/ck" || { not_ok "$name" "first half failed"; return; }
  mt_run "$d/second" $np $bin $A $layout --load "$d/ck" || { not_ok "$name" "resume failed: $(grep -m1 error "$d/second.log")"; return; }
  cat "$d/first.json" "$d/second.json" > "$d/both.json"
  if grep -q "loaded checkpoint from $d/ck at iteration 10" "$d/second.log" && same_losses "$d/straight.json" "$d/both.json" &&
     tools/compare "$d/straight.st" "$d/second.st" --max-abs 0 > "$d/cmp" 2>&1; then
    ok "$name (20 losses and all parameters bitwise equal)"
  else not_ok "$name" "$(diff <(metrics_iters "$d/straight.json" | cut -d, -f1-2) <(metrics_iters "$d/both.json" | cut -d, -f1-2) | head -n 2 | tr '\n' ' ') $(tail -n 1 "$d/cmp")"; fi
}
exact resume_exact_1rank_fp64 1 ./pretrain_gpt_fp64 ""
exact resume_exact_1rank_fp32 1 ./pretrain_gpt ""
exact resume_exact_tp2_sp_pp2_distopt_fp64 8 ./pretrain_gpt_fp64 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 --use-distributed-optimizer"
exact resume_exact_tp2_pp2_fp32 4 ./pretrain_gpt "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2"

# 2. Resharding: save at 10 with TP 2 x PP 2 x DP 2 (SP, distributed
# optimizer), resume with TP 4 x PP 1 x DP 2 and with one rank; both must
# match the uninterrupted one-rank run within docs/design.md §1's fp64 bounds.
d="$T/reshard"; rm -rf "$d"; mkdir -p "$d"
mt_run "$d/ref" 1 ./pretrain_gpt_fp64 $A
mt_run "$d/first" 8 ./pretrain_gpt_fp64 $A --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 \
  --sequence-parallel --use-distributed-optimizer --exit-interval 10 --save "$d/ck"
for to in "8 --tensor-model-parallel-size 4" "1 "; do
  set -- $to; np=$1; shift
  name="reshard_tp2pp2dp2_to_np${np}${1:+_tp4dp2}"
  cp -r "$d/ck" "$d/ck_$np"
  if mt_run "$d/to$np" $np ./pretrain_gpt_fp64 $A "$@" --load "$d/ck_$np"; then
    cat "$d/first.json" "$d/to$np.json" > "$d/both$np.json"
    why=$(compare_losses "$d/ref.json" "$d/both$np.json" 1e-10) && tools/compare "$d/ref.st" "$d/to$np.st" --max-abs 1e-9 > "$d/cmp$np" 2>&1 &&
      ok "$name ($why)" || not_ok "$name" "$why $(tail -n 1 "$d/cmp$np")"
  else not_ok "$name" "resume failed: $(grep -m1 error "$d/to$np.log")"; fi
done

# 3a. A rank killed in the middle of a save: the previous checkpoint stays
# the latest and loads.
d="$T/diesave"; rm -rf "$d"; mkdir -p "$d"
mt_run "$d/a" 4 ./pretrain_gpt $A --tensor-model-parallel-size 2 --exit-interval 5 --save "$d/ck"
MT_INJECT_BUG=die-in-save mt_run "$d/b" 4 ./pretrain_gpt $A --tensor-model-parallel-size 2 --load "$d/ck" --save "$d/ck" --exit-interval 10; rc=$?
latest=$(cat "$d/ck/latest_checkpointed_iteration.txt" 2>/dev/null)
mt_run "$d/c" 2 ./pretrain_gpt $A --pipeline-model-parallel-size 2 --load "$d/ck" --train-iters 6
if [ $rc != 0 ] && [ "$latest" = 5 ] && [ ! -d "$d/ck/iter_0000010" ] && grep -q "loaded checkpoint from $d/ck at iteration 5" "$d/c.log"; then
  ok "save_interrupted_by_killed_rank_keeps_previous (exit $rc, latest $latest, reloads)"
else not_ok save_interrupted_by_killed_rank_keeps_previous "exit $rc, latest '$latest', reload: $(grep -m1 -E 'loaded|error' "$d/c.log")"; fi

# 3b. A full disk (a tmpfs one checkpoint large) and a read-only destination.
# Mounting needs root (CI runs as root); elsewhere /dev/full stands in.
d="$T/full"; rm -rf "$d"; mkdir -p "$d/mnt" "$d/ro"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=1200k tmpfs "$d/mnt" 2>/dev/null; then
  mt_run "$d/a" 1 ./pretrain_gpt $A --save "$d/mnt/ck" --save-interval 5 --train-iters 10; rc=$?
  latest=$(cat "$d/mnt/ck/latest_checkpointed_iteration.txt" 2>/dev/null)
  mt_run "$d/b" 1 ./pretrain_gpt $A --load "$d/mnt/ck" --train-iters 6
  if [ $rc = 1 ] && grep -q "No space left on device" "$d/a.log" && [ "$latest" = 5 ] &&
     grep -q "at iteration 5" "$d/b.log"; then
    ok "save_to_full_disk_fails_cleanly_keeps_previous ($(grep -m1 error "$d/a.log" | cut -c1-120)...)"
  else not_ok save_to_full_disk_fails_cleanly_keeps_previous "exit $rc, latest '$latest': $(grep -m1 error "$d/a.log")"; fi
  umount "$d/mnt"
  mount -t tmpfs -o ro,size=1m tmpfs "$d/ro"
  mt_run "$d/r" 1 ./pretrain_gpt $A --save "$d/ro/ck" --train-iters 2; rc=$?
  # An unwritable --save is found before any work (src/outputs.c): bad
  # input, exit 2, with the reason, and nothing trained first.
  [ $rc = 2 ] && grep -q "Read-only file system" "$d/r.log" && ! grep -q ' iteration ' "$d/r.log" && ok "save_to_read_only_destination_fails_cleanly" ||
    not_ok save_to_read_only_destination_fails_cleanly "exit $rc: $(grep -m1 error "$d/r.log")"
  umount "$d/ro"
else
  mt_run "$d/r" 1 ./pretrain_gpt $A --save /dev/full/ck --train-iters 2; rc=$?
  [ $rc = 1 ] && grep -q "error" "$d/r.log" && ok "save_to_unwritable_destination_fails_cleanly (no root: /dev/full)" ||
    not_ok save_to_unwritable_destination_fails_cleanly "exit $rc"
fi

# 4. A rank killed mid-iteration (SIGKILL, 4 ranks) ends the job within 30 s
# with a non-zero exit and a line naming the rank; the next run resumes.
d="$T/kill"; rm -rf "$d"; mkdir -p "$d"
marker=$((40000 + RANDOM))
$MPIRUN 4 ./pretrain_gpt $A --tensor-model-parallel-size 2 --train-iters 100000 --save "$d/ck" --save-interval 20 \
  --seed $marker > "$d/run.log" 2>&1 &
mpid=$!
for _ in $(seq 100); do grep -q "saved checkpoint at iteration 20" "$d/run.log" && break; sleep 0.1; done
# A rank, not mpirun nor the wrapper: the process whose command starts with
# the binary and carries this run's marker.
victim=$(pgrep -f -- "^./pretrain_gpt .*--seed $marker" | tail -n 1)
t0=$(date +%s.%N); kill -9 "$victim" 2>/dev/null
for _ in $(seq 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mpid" 2>/dev/null; then kill -9 "$mpid"; not_ok killed_rank_ends_job_within_30s "mpirun still running after 30 s"
else
  wait "$mpid"; rc=$?; secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  [ $rc != 0 ] && grep -qi "rank" "$d/run.log" && ok "killed_rank_ends_job_within_30s (exit $rc after ${secs}s: $(grep -m1 -i 'noticed that process rank' "$d/run.log" | cut -c1-90))" ||
    not_ok killed_rank_ends_job_within_30s "exit $rc"
fi
mt_run "$d/again" 4 ./pretrain_gpt $A --tensor-model-parallel-size 2 --load "$d/ck" --train-iters 21
latest=$(cat "$d/ck/latest_checkpointed_iteration.txt" 2>/dev/null)
grep -q "loaded checkpoint from $d/ck at iteration" "$d/again.log" && ok "resume_after_killed_rank (from iteration $latest)" ||
  not_ok resume_after_killed_rank "$(grep -m1 error "$d/again.log")"

# 5. A non-finite loss stops the run with a line naming the iteration and
# keeps the last good checkpoint (lr 1e30 diverges at iteration 2).
d="$T/nan"; rm -rf "$d"; mkdir -p "$d"
mt_run "$d/a" 1 ./pretrain_gpt $A --lr 1e30 --lr-warmup-iters 0 --clip-grad 0 --save "$d/ck" --save-interval 1; rc=$?
latest=$(cat "$d/ck/latest_checkpointed_iteration.txt" 2>/dev/null)
if [ $rc = 1 ] && grep -q "error: iteration 2: non-finite loss" "$d/a.log" && [ "$latest" = 1 ]; then
  ok "nan_loss_stops_and_keeps_last_good_checkpoint ($(grep -m1 error "$d/a.log" | cut -c1-90))"
else not_ok nan_loss_stops_and_keeps_last_good_checkpoint "exit $rc, latest '$latest': $(grep -m1 error "$d/a.log")"; fi

# 6. --load on an empty directory starts fresh; a found checkpoint wins over
# --init-from; a checkpoint of another shape is refused naming the mismatch.
d="$T/misc"; rm -rf "$d"; mkdir -p "$d/empty"
mt_run "$d/fresh" 1 ./pretrain_gpt $A --load "$d/empty" --train-iters 2 && grep -q "starting fresh" "$d/fresh.log" &&
  ok load_empty_dir_starts_fresh || not_ok load_empty_dir_starts_fresh "$(tail -n 1 "$d/fresh.log")"
mt_run "$d/mk" 1 ./pretrain_gpt $A --train-iters 3 --save "$d/ck" --export-llmc "$d/init.bin"
mt_run "$d/both" 1 ./pretrain_gpt $A --train-iters 4 --load "$d/ck" --init-from "$d/init.bin" &&
  grep -q "loaded checkpoint from $d/ck at iteration 3" "$d/both.log" && ok checkpoint_wins_over_init_from ||
  not_ok checkpoint_wins_over_init_from "$(grep -m1 -E 'error|loaded' "$d/both.log")"
mt_run "$d/shape" 1 ./pretrain_gpt $A --num-layers 2 --load "$d/ck"; rc=$?
[ $rc = 2 ] && grep -q "checkpoint has num_layers 4 but --num-layers is 2" "$d/shape.log" && ok load_refuses_other_shape ||
  not_ok load_refuses_other_shape "exit $rc: $(grep -m1 error "$d/shape.log")"

# 7. Tensor dumps (--dump-step/--dump-dir): the gradients of iteration 2
# summed over a TP 2 x PP 2 x DP 2 layout (SP, distributed optimizer) equal
# the one-rank gradients (fp64; round-off ~1e-16 of gradients below 1, bound
# 1e-12), and the README's numpy snippet reads the dump.
d="$T/dump"; rm -rf "$d"; mkdir -p "$d"
D="$A --train-iters 3 --dump-step 2"
mt_run "$d/one" 1 ./pretrain_gpt_fp64 $D --dump-dir "$d/one"
mt_run "$d/par" 8 ./pretrain_gpt_fp64 $D --dump-dir "$d/par" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 \
  --sequence-parallel --use-distributed-optimizer
if tools/compare "$d/one/step_2.safetensors" "$d/par/step_2.safetensors" --max-abs 1e-12 > "$d/cmp" 2>&1 &&
   grep -q "104 compared" "$d/cmp"; then ok "dump_step_gradients_of_3d_layout_equal_one_rank ($(sed -n 3p "$d/cmp" | awk '{print "worst", $NF, "max_abs", $2}'))"
else not_ok dump_step_gradients_of_3d_layout_equal_one_rank "$(tail -n 2 "$d/cmp" | tr '\n' ' ')"; fi
if /usr/bin/python3 - "$d/one/step_2.safetensors" > "$d/py" 2>&1 <<'PY'
import json, struct, sys, numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]; hdr = json.loads(raw[8:8 + n])
t = hdr["h.0.attn.qkv.weight.grad"]; b, e = t["data_offsets"]
g = np.frombuffer(raw[8 + n + b:8 + n + e], dtype={"F32": "<f4", "F64": "<f8"}[t["dtype"]]).reshape(t["shape"])
assert g.shape == (96, 32) and np.isfinite(g).all() and np.abs(g).max() > 0, g.shape
print("numpy read", g.shape, t["dtype"])
PY
then ok "dump_readable_with_numpy ($(cat "$d/py"))"; else not_ok dump_readable_with_numpy "$(tail -n 2 "$d/py")"; fi

# Megatron's --finetune and --no-load-optim: the checkpoint's weights alone.
# Oracles from other loaders: the same weights exported as an llm.c file and
# read by --init-from (a fresh AdamW at iteration 0), and, for
# --no-load-optim, the data position replayed by a token file whose first
# samples are cut off (constant LR, no dropout: nothing else depends on the
# iteration). fp32 build, where both files hold the same float32 values.
F="$(tiny_model) --hidden-dropout 0 --attention-dropout 0 --lr-decay-style constant --lr-warmup-iters 0"
d="$T/ft"; rm -rf "$d"; mkdir -p "$d"
mt_run "$d/a" 1 ./pretrain_gpt $F --train-iters 5 --save "$d/ck" --export-llmc "$d/a.bin" || not_ok finetune_setup "$(tail -n 1 "$d/a.log")"
# --finetune: iteration 0, sample 0, fresh AdamW, fresh metrics file = --init-from the exported weights.
cp "$d/a.json" "$d/b.json"  # a fresh run must truncate it
mt_run "$d/b" 1 ./pretrain_gpt $F --train-iters 4 --load "$d/ck" --finetune &&
  mt_run "$d/c" 1 ./pretrain_gpt $F --train-iters 4 --init-from "$d/a.bin"
rc=$?
if [ $rc = 0 ] && grep -q "loaded the weights of iteration 5 from $d/ck for fine-tuning" "$d/b.log" &&
   [ "$(metrics_iters "$d/b.json" | wc -l)" = 4 ] && same_losses "$d/b.json" "$d/c.json" && cmp -s "$d/b.st" "$d/c.st"; then
  ok "finetune_equals_init_from_the_same_weights (4 losses and every parameter bitwise)"
else not_ok finetune_equals_init_from_the_same_weights "exit $rc; $(metrics_iters "$d/b.json" | wc -l) iterations logged; $(grep -m1 -E 'error|loaded' "$d/b.log")"; fi
# --no-load-optim: iterations 6-9 on samples 40-71 with AdamW from t = 1 =
# --init-from on a token file starting at sample 40 (8 samples x 5 iterations x 16 tokens).
/usr/bin/python3 - "${c}_train.bin" "$d/shifted.bin" 640 <<'PY'
import struct, sys
raw = open(sys.argv[1], "rb").read(); hd = list(struct.unpack("<256i", raw[:1024])); k = int(sys.argv[3])
width = 2 if hd[1] == 1 else 4
tok = raw[1024 + k * width:1024 + hd[2] * width]; hd[2] -= k
open(sys.argv[2], "wb").write(struct.pack("<256i", *hd) + tok)
PY
mt_run "$d/e" 1 ./pretrain_gpt $F --train-iters 9 --load "$d/ck" --no-load-optim &&
  mt_run "$d/f" 1 ./pretrain_gpt ${F/${c}_train.bin/$d/shifted.bin} --train-iters 4 --init-from "$d/a.bin" &&
  mt_run "$d/g" 1 ./pretrain_gpt $F --train-iters 9 --load "$d/ck"
rc=$?
if [ $rc = 0 ] && grep -q "at iteration 5 (40 samples consumed); AdamW and the LR schedule restart (--no-load-optim)" "$d/e.log" &&
   diff <(metrics_iters "$d/e.json" | sed 's/"iteration": [0-9]*//' | cut -d, -f1-2) <(metrics_iters "$d/f.json" | sed 's/"iteration": [0-9]*//' | cut -d, -f1-2) > /dev/null &&
   cmp -s "$d/e.st" "$d/f.st" && ! cmp -s "$d/g.st" "$d/f.st"; then
  ok "no_load_optim_restarts_adamw_at_the_run_s_place (iterations 6-9 bitwise the fresh run on samples 40-71; with the optimizer loaded they differ)"
else not_ok no_load_optim_restarts_adamw_at_the_run_s_place "exit $rc; $(grep -m1 -E 'error|loaded' "$d/e.log")"; fi
# The restarted step count is saved: 6-7 saved, then 8-9 resumed = 6-9 straight.
mt_run "$d/h" 1 ./pretrain_gpt $F --train-iters 7 --load "$d/ck" --no-load-optim --save "$d/ck2" &&
  mt_run "$d/i" 1 ./pretrain_gpt $F --train-iters 9 --load "$d/ck2"
rc=$?
meta() { /usr/bin/python3 -c 'import json,struct,sys; r=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",r[:8])[0]; m=json.loads(r[8:8+n])["__metadata__"]; print(m.get("optimizer_steps"), m.get("format"))' "$1" 2>/dev/null; }
# A step count apart from the iteration is format 2, which a reader of
# format 1 refuses instead of resuming with t = the iteration; others stay 1.
m7=$(meta "$d/ck2/iter_0000007/optimizer.safetensors"); m5=$(meta "$d/ck/iter_0000005/model.safetensors")
if [ $rc = 0 ] && [ "$m7" = "2 megatron.c checkpoint 2" ] && [ "$m5" = "5 megatron.c checkpoint 1" ] && cmp -s "$d/i.st" "$d/e.st"; then
  ok "no_load_optim_step_count_survives_a_save (iteration 7 saved with optimizer_steps 2, format 2; resumed to 9 bitwise)"
else not_ok no_load_optim_step_count_survives_a_save "exit $rc, iteration 7: '$m7', iteration 5: '$m5'"; fi
# Weights alone: a checkpoint without its optimizer file loads; without either flag it is refused.
rm "$d/ck2/iter_0000007/optimizer.safetensors"
mt_run "$d/j" 1 ./pretrain_gpt $F --train-iters 8 --load "$d/ck2" --no-load-optim; rc1=$?
mt_run "$d/k" 1 ./pretrain_gpt $F --train-iters 8 --load "$d/ck2"; rc2=$?
timeout 30 ./pretrain_gpt $F --finetune > "$d/l.out" 2> "$d/l.err"; rc3=$?
if [ $rc1 = 0 ] && [ $rc2 = 2 ] && grep -q "optimizer.safetensors" "$d/k.log" && [ $rc3 = 2 ] &&
   [ "$(cat "$d/l.err")" = "pretrain_gpt: error: --finetune needs --load DIR: the checkpoint whose weights it starts from" ]; then
  ok "weights_only_load_needs_no_optimizer_file (the plain --load refuses it; --finetune without --load refused)"
else not_ok weights_only_load_needs_no_optimizer_file "exits $rc1 $rc2 $rc3: $(grep -m1 error "$d/k.log") $(cat "$d/l.err")"; fi
# Weights-only loads that a relaunch would repeat are refused up front:
# --save into --load's directory with --finetune or --no-load-optim (the
# checkpoint left as it was), and --finetune with nothing to start from.
sum_ck() { find "$1" -type f -exec md5sum {} + | sort; }
before=$(sum_ck "$d/ck")
timeout 30 ./pretrain_gpt $F --train-iters 8 --load "$d/ck" --save "$d/ck" --finetune > /dev/null 2> "$d/m.err"; rc1=$?
timeout 30 ./pretrain_gpt $F --train-iters 8 --load "$d/ck" --save "$d/ck" --no-load-optim > /dev/null 2> "$d/n.err"; rc2=$?
mkdir -p "$d/empty"
timeout 30 ./pretrain_gpt $F --train-iters 8 --load "$d/empty" --finetune > /dev/null 2> "$d/o.err"; rc3=$?
timeout 30 ./pretrain_gpt $F --train-iters 8 --pretrained-checkpoint "$d/empty" > /dev/null 2> "$d/p.err"; rc4=$?
if [ $rc1 = 2 ] && [ $rc2 = 2 ] && [ $rc3 = 2 ] && [ $rc4 = 2 ] && [ "$(cat "$d"/[mnop].err | wc -l)" = 4 ] &&
   grep -q "is --load's directory: with --finetune a relaunch" "$d/m.err" && grep -q "with --no-load-optim a relaunch" "$d/n.err" &&
   grep -q -- "--finetune: --load $d/empty holds no checkpoint to fine-tune from" "$d/o.err" &&
   grep -q -- "--pretrained-checkpoint $d/empty holds no checkpoint" "$d/p.err" && [ "$(sum_ck "$d/ck")" = "$before" ]; then
  ok "weights_only_loads_a_relaunch_would_repeat_refused (exit 2, one line each, the checkpoint unchanged)"
else not_ok weights_only_loads_a_relaunch_would_repeat_refused "exits $rc1 $rc2 $rc3 $rc4: $(cat "$d"/[mnop].err | tr '\n' ' ')"; fi
# --pretrained-checkpoint (Megatron's): fine-tune from it while --load holds
# none; relaunched, the same command resumes --load. Stopped at 2 and
# relaunched to 4 = --finetune straight to 4, bitwise.
R=(--train-iters 4 --load "$d/run" --save "$d/run" --pretrained-checkpoint "$d/ck")
mt_run "$d/q1" 1 ./pretrain_gpt $F "${R[@]}" --exit-interval 2 && mt_run "$d/q2" 1 ./pretrain_gpt $F "${R[@]}" --exit-interval 2
rc=$?
if [ $rc = 0 ] && grep -q "loaded the weights of iteration 5 from $d/ck for fine-tuning (--pretrained-checkpoint" "$d/q1.log" &&
   grep -q "loaded checkpoint from $d/run at iteration 2" "$d/q2.log" && cmp -s "$d/q2.st" "$d/b.st"; then
  ok "pretrained_checkpoint_fine_tunes_then_resumes (stopped at 2, relaunched: bitwise --finetune to 4)"
else not_ok pretrained_checkpoint_fine_tunes_then_resumes "exit $rc: $(grep -h -m1 -E 'error|loaded' "$d/q1.log" "$d/q2.log" | tr '\n' ' ')"; fi
