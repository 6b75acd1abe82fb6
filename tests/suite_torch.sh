#!/usr/bin/env bash
# suite_torch.sh: the independent oracle. tools/torch_reference.py (PyTorch,
# Debian's python3-torch, CPU) builds the same GPT-2 from the same llm.c model
# file and token file and trains 10 steps with the same AdamW, LR schedule,
# clipping and sequential data; the C trainer must match every step's loss
# (fp32 <= 1e-5 relative, fp64 <= 1e-10 against torch float64) and every
# parameter tensor after 10 steps (fp32: relative RMS <= 1e-4; fp64: max abs
# <= 1e-9). The C side accumulates gradients over 2 micro-batches, torch
# takes the global batch at once.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE
if ! $PY -c 'import torch' 2>/dev/null; then not_ok torch_available "python3-torch missing (tools/install-deps.sh installs it)"; exit 0; fi
c=$(test_corpus)

# shape NAME "WRITE-INIT FLAGS" DATA T NP "C FLAGS" ["REFERENCE FLAGS"]
shape() {
  local name=$1 init=$2 data=$3 T=$4 np=$5 cflags=$6 rflags=${7:-} dtype bin ref out why
  $PY tools/torch_reference.py --write-init "$T_/$name.bin" $init > /dev/null || { not_ok "torch_$name" "write-init failed"; return; }
  local common="--steps 10 --batch 4 --seq $T --lr 1e-3 --min-lr 1e-4 --warmup 2 --decay-style cosine --weight-decay 0.1 --clip-grad 1.0 --beta2 0.95"
  for dtype in float32 float64; do
    bin=./pretrain_gpt; [ $dtype = float64 ] && bin=./pretrain_gpt_fp64
    ref="$T_/${name}_torch_$dtype"; out="$T_/${name}_c_$dtype"
    $PY tools/torch_reference.py --model "$T_/$name.bin" --data "$data" $common $rflags --dtype $dtype --threads 2 --out "$ref.st" > "$ref.json" 2> "$ref.err" \
      || { not_ok "torch_${name}_$dtype" "torch reference failed: $(tail -n 2 "$ref.err")"; continue; }
    OMP_NUM_THREADS=$((2 / np)) OPENBLAS_NUM_THREADS=$((2 / np)) timeout 120 $MPIRUN $np $bin --init-from "$T_/$name.bin" --train-data-path "$data" \
      --data-order sequential --seq-length $T --micro-batch-size 2 --global-batch-size 4 --train-iters 10 \
      --lr 1e-3 --min-lr 1e-4 --lr-warmup-iters 2 --lr-decay-style cosine --weight-decay 0.1 --clip-grad 1.0 \
      --adam-beta2 0.95 --hidden-dropout 0 --attention-dropout 0 $cflags \
      --metrics-file "$out.json" --dump-params "$out.st" > "$out.log" 2>&1 \
      || { not_ok "torch_${name}_$dtype" "C trainer failed: $(grep -m1 error "$out.log")"; continue; }
    if [ $dtype = float32 ]; then
      why=$(compare_losses "$ref.json" "$out.json" 1e-5) && tools/compare "$ref.st" "$out.st" --max-rel-rms 1e-4 > "$out.cmp" 2>&1
    else
      why=$(compare_losses "$ref.json" "$out.json" 1e-10) && tools/compare "$ref.st" "$out.st" --max-abs 1e-9 > "$out.cmp" 2>&1
    fi
    if [ $? = 0 ]; then ok "torch_${name}_$dtype ($why; worst tensor: $(sed -n 3p "$out.cmp" | awk '{print $NF, "rel_rms", $1, "max_abs", $2}'))"
    else not_ok "torch_${name}_$dtype" "$why $(tail -n 3 "$out.cmp" 2>/dev/null | tr '\n' ' ')"; fi
  done
}
T_=$T
# A vocabulary that needs padding: V = 200 -> Vp = 256 (divisor 128), random
# tokens below 200, 2 layers, 2 heads.
$PY tools/torch_reference.py --write-data "$T/rand.bin" --tokens 4000 --vocab 200 --seed 7 > /dev/null
shape padded_vocab "--layers 2 --heads 2 --channels 32 --vocab 200 --padded-vocab 256 --max-seq 32 --seed 11" "$T/rand.bin" 16 1 ""
# Several heads and layers on the real text: 3 layers, 4 heads, C 48, bytes.
shape heads_layers "--layers 3 --heads 4 --channels 48 --vocab 256 --padded-vocab 256 --max-seq 64 --seed 12" "${c}_train.bin" 32 1 ""
# The same with TP 2 + SP inside the C trainer (the oracle does not care).
shape heads_layers_tp2_sp "--layers 3 --heads 4 --channels 48 --vocab 256 --padded-vocab 256 --max-seq 64 --seed 12" "${c}_train.bin" 32 2 "--tensor-model-parallel-size 2 --sequence-parallel"
# Megatron's WSD schedule (exponential annealing over the last 4 of 10
# steps) and a weight decay rising from 0 to 0.2 on a cosine, under TP 2 + SP:
# the schedules reach AdamW as PyTorch's loop applies them.
shape wsd_wd_cosine_tp2_sp "--layers 2 --heads 4 --channels 48 --vocab 256 --padded-vocab 256 --max-seq 64 --seed 13" "${c}_train.bin" 32 2 \
  "--tensor-model-parallel-size 2 --sequence-parallel --lr-decay-style WSD --lr-wsd-decay-iters 4 --weight-decay-incr-style cosine --start-weight-decay 0 --end-weight-decay 0.2" \
  "--decay-style WSD --wsd-decay-iters 4 --wd-incr-style cosine --start-wd 0 --end-wd 0.2"
# --decoupled-lr: the word embeddings (tied: both pipeline stages' copies)
# take their own peak and floor, on PP 2.
shape decoupled_lr_pp2 "--layers 2 --heads 4 --channels 48 --vocab 256 --padded-vocab 256 --max-seq 64 --seed 14" "${c}_train.bin" 32 2 \
  "--pipeline-model-parallel-size 2 --decoupled-lr 3e-3 --decoupled-min-lr 2e-4" "--decoupled-lr 3e-3 --decoupled-min-lr 2e-4"
