#!/usr/bin/env bash
# suite_llama.sh: Llama-family blocks and Hugging Face directories.
#  - the PyTorch oracle (tools/torch_reference.py --hf, written from Hugging
#    Face's modeling code) trains a Llama directory 10 steps; the C trainer,
#    started from the same directory, must match every loss (fp64 1e-10, fp32
#    1e-5 relative) and every parameter (fp64 1e-9 absolute, fp32 relative
#    RMS 1e-4), as docs/design.md §1;
#  - round trips: an llm.c file converted to a GPT-2 directory (by the
#    oracle's independent converter) trains bitwise like the llm.c file;
#    --export-hf then --init-from is bitwise; shards + index read as one file;
#  - bad directories: exit 2 and one line.
# (The layout rows of the Llama model are in suite_layouts.sh.)
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE
if ! $PY -c 'import torch' 2>/dev/null; then not_ok torch_available "python3-torch missing (tools/install-deps.sh installs it)"; exit 0; fi
c=$(test_corpus)
$PY tools/torch_reference.py --write-data "$T/rand.bin" --tokens 4000 --vocab 200 --seed 7 > /dev/null

TRAIN="--data-order sequential --seq-length 16 --micro-batch-size 2 --global-batch-size 4 --train-iters 10 --lr 1e-3 --min-lr 1e-4 --lr-warmup-iters 2 --lr-decay-style cosine --weight-decay 0.1 --clip-grad 1.0 --adam-beta2 0.95 --hidden-dropout 0 --attention-dropout 0"
REF="--steps 10 --batch 4 --seq 16 --lr 1e-3 --min-lr 1e-4 --warmup 2 --decay-style cosine --weight-decay 0.1 --clip-grad 1.0 --beta2 0.95"

# oracle NAME DIR NP "C FLAGS": both builds against torch in the same dtype.
oracle() {
  local name=$1 dir=$2 np=$3 cflags=$4 dtype bin ref out why
  for dtype in float64 float32; do
    bin=./pretrain_gpt; [ $dtype = float64 ] && bin=./pretrain_gpt_fp64
    ref="$T/${name}_torch_$dtype"; out="$T/${name}_c_$dtype"
    $PY tools/torch_reference.py --hf "$dir" --data "$T/rand.bin" $REF --dtype $dtype --threads 2 --padded-vocab 256 \
      --out "$ref.st" > "$ref.json" 2> "$ref.err" || { not_ok "${name}_$dtype" "torch reference failed: $(tail -n 2 "$ref.err")"; continue; }
    OMP_NUM_THREADS=$((2 / np)) OPENBLAS_NUM_THREADS=$((2 / np)) timeout 120 $MPIRUN "$np" $bin --init-from "$dir" \
      --train-data-path "$T/rand.bin" --make-vocab-size-divisible-by 128 $TRAIN $cflags \
      --metrics-file "$out.json" --dump-params "$out.st" > "$out.log" 2>&1 \
      || { not_ok "${name}_$dtype" "C trainer failed: $(grep -m1 error "$out.log")"; continue; }
    if [ $dtype = float32 ]; then
      why=$(compare_losses "$ref.json" "$out.json" 1e-5) && tools/compare "$ref.st" "$out.st" --max-rel-rms 1e-4 > "$out.cmp" 2>&1
    else
      why=$(compare_losses "$ref.json" "$out.json" 1e-10) && tools/compare "$ref.st" "$out.st" --max-abs 1e-9 > "$out.cmp" 2>&1
    fi
    if [ $? = 0 ]; then ok "${name}_$dtype ($why)"
    else not_ok "${name}_$dtype" "$why $(tail -n 3 "$out.cmp" 2>/dev/null | tr '\n' ' ')"; fi
  done
}

# RMSNorm + RoPE + SwiGLU + GQA (4 heads, 2 KV groups) + untied + no bias,
# vocabulary 200 padded to 256.
$PY tools/torch_reference.py --write-llama "$T/llama" --layers 2 --heads 4 --kv-heads 2 --channels 32 --ffn 64 \
  --vocab 200 --max-seq 32 --seed 11 --std 0.05
oracle llama_gqa "$T/llama" 1 ""
oracle llama_gqa_tp2_sp "$T/llama" 2 "--tensor-model-parallel-size 2 --sequence-parallel"
# --decoupled-lr on the untied embeddings and output layer, TP 2 + SP.
REF_BASE=$REF; REF="$REF --decoupled-lr 4e-3 --decoupled-min-lr 3e-4"
oracle llama_decoupled_lr_tp2_sp "$T/llama" 2 "--tensor-model-parallel-size 2 --sequence-parallel --decoupled-lr 4e-3 --decoupled-min-lr 3e-4"
REF=$REF_BASE
# Tied embeddings, linear biases, one KV head for all (multi-query), 3 layers.
$PY tools/torch_reference.py --write-llama "$T/llama_mqa" --layers 3 --heads 4 --kv-heads 1 --channels 32 --ffn 48 \
  --vocab 200 --max-seq 32 --seed 12 --std 0.05 --tied --bias
oracle llama_mqa_tied_bias "$T/llama_mqa" 1 ""

# TP 4 with 2 KV groups: refused with the rule (Megatron's constraint).
if $MPIRUN 4 ./pretrain_gpt --init-from "$T/llama" --train-data-path "$T/rand.bin" $TRAIN --tensor-model-parallel-size 4 \
     > "$T/tp4.out" 2> "$T/tp4.err"; then not_ok llama_tp4_two_groups_refused "it ran"
elif grep -q "num-query-groups (2) must be divisible by --tensor-model-parallel-size (4)" "$T/tp4.err" &&
     [ "$(grep -vc '^note:' "$T/tp4.err")" = 1 ]; then ok "llama_tp4_two_groups_refused ($(cat "$T/tp4.err"))"
else not_ok llama_tp4_two_groups_refused "$(head -c 300 "$T/tp4.err")"; fi

# ---- round trips -----------------------------------------------------------
# same_run NAME A.json A.st B.json B.st: bitwise equal losses and parameters.
same_run() {
  if cmp -s <(metrics_iters "$2" | sed 's/, "tokens_per_s.*//') <(metrics_iters "$4" | sed 's/, "tokens_per_s.*//') && tools/compare "$3" "$5" --max-abs 0 > "$T/$1.cmp" 2>&1; then
    ok "$1 (losses and parameters bitwise equal)"
  else not_ok "$1" "$(diff <(metrics_iters "$2" | sed 's/, "tokens_per_s.*//') <(metrics_iters "$4" | sed 's/, "tokens_per_s.*//') | head -n 2 | tr '\n' ' ') $(tail -n 1 "$T/$1.cmp")"; fi
}
G="--train-data-path ${c}_train.bin $TRAIN"
$PY tools/torch_reference.py --write-init "$T/gpt2.bin" --layers 2 --heads 2 --channels 32 --vocab 256 --padded-vocab 256 --max-seq 32 --seed 13 > /dev/null
$PY tools/torch_reference.py --write-gpt2-hf "$T/gpt2_hf" --model "$T/gpt2.bin"
for bin in pretrain_gpt pretrain_gpt_fp64; do
  ./$bin --init-from "$T/gpt2.bin" $G --metrics-file "$T/llmc_$bin.json" --dump-params "$T/llmc_$bin.st" > "$T/llmc.log" 2>&1
  ./$bin --init-from "$T/gpt2_hf" $G --metrics-file "$T/hf_$bin.json" --dump-params "$T/hf_$bin.st" > "$T/hf.log" 2>&1
  same_run "llmc_file_equals_its_gpt2_directory_$bin" "$T/llmc_$bin.json" "$T/llmc_$bin.st" "$T/hf_$bin.json" "$T/hf_$bin.st"
done
# Rank 0 decides what --init-from names and the other ranks follow (they
# may not see the path: another host's file system). A relative path from
# two working directories, only rank 0's holding the directory: ranks that
# decided apart entered different collectives. Same losses as one rank
# reading it (DP 2 sums the loss in another order: 1e-6).
mkdir -p "$T/wd0" "$T/wd1"; cp -r "$T/gpt2_hf" "$T/wd0/m"
if ( timeout --kill-after=5 60 $MPIRUN 1 -wdir "$T/wd0" "$PWD/pretrain_gpt" --init-from m $G --metrics-file "$T/wd.json" : \
       -np 1 -wdir "$T/wd1" "$PWD/pretrain_gpt" --init-from m $G --metrics-file "$T/wd.json" > "$T/wd.log" 2>&1 ) &&
   why=$(compare_losses "$T/hf_pretrain_gpt.json" "$T/wd.json" 1e-6); then ok "init_from_kind_decided_by_rank0 ($why)"
else not_ok init_from_kind_decided_by_rank0 "$(grep -m2 -i 'error' "$T/wd.log" | tr '\n' ' ') ${why:-}"; fi

# --export-hf then --init-from (fp32: the directory holds fp32 weights).
for m in gpt2 llama; do
  src="$T/gpt2.bin"; [ $m = llama ] && src="$T/llama"
  data="${c}_train.bin"; [ $m = llama ] && data="$T/rand.bin"
  ./pretrain_gpt --init-from "$src" --train-data-path "$data" $TRAIN --train-iters 3 --export-hf "$T/exp_$m" \
    --dump-params "$T/exp_$m.st" > "$T/exp.log" 2>&1 || { not_ok "export_hf_$m" "$(grep -m1 error "$T/exp.log")"; continue; }
  ./pretrain_gpt --init-from "$T/exp_$m" --train-data-path "$data" $TRAIN --train-iters 0 --dump-params "$T/back_$m.st" > "$T/back.log" 2>&1
  if tools/compare "$T/exp_$m.st" "$T/back_$m.st" --max-abs 0 > "$T/back.cmp" 2>&1; then ok "export_hf_then_init_from_bitwise_$m"
  else not_ok "export_hf_then_init_from_bitwise_$m" "$(tail -n 2 "$T/back.cmp" | tr '\n' ' ') $(grep -m1 error "$T/back.log")"; fi
done
# The oracle reads our export: its first loss equals ours from the same directory.
if grep -q '"architectures": \["LlamaForCausalLM"\]' "$T/exp_llama/config.json" &&
   $PY tools/torch_reference.py --hf "$T/exp_llama" --data "$T/rand.bin" $REF --steps 1 --dtype float32 > "$T/exp_ref.json" 2>&1 &&
   ./pretrain_gpt --init-from "$T/exp_llama" --train-data-path "$T/rand.bin" $TRAIN --train-iters 1 --metrics-file "$T/exp_c.json" > /dev/null 2>&1 &&
   why=$(compare_losses "$T/exp_ref.json" "$T/exp_c.json" 1e-5); then ok "exported_llama_read_by_the_oracle ($why)"
else not_ok "exported_llama_read_by_the_oracle" "$(tail -n 2 "$T/exp_ref.json")"; fi

# Shards: the Llama directory split in two files with an index.
mkdir -p "$T/sharded"
cp "$T/llama/config.json" "$T/sharded/"
$PY - "$T/llama/model.safetensors" "$T/sharded" <<'EOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n])
names = sorted(k for k in head if k != "__metadata__"); parts = [names[::2], names[1::2]]; wm = {}
for i, part in enumerate(parts):
    h, off, blobs = {}, 0, []
    for k in part:
        a, b = head[k]["data_offsets"]; blob = raw[8 + n + a:8 + n + b]
        h[k] = {"dtype": head[k]["dtype"], "shape": head[k]["shape"], "data_offsets": [off, off + len(blob)]}
        off += len(blob); blobs.append(blob); wm[k] = f"model-{i + 1:05d}-of-00002.safetensors"
    hj = json.dumps(h).encode(); hj += b" " * (-len(hj) % 8)
    with open(f"{sys.argv[2]}/model-{i + 1:05d}-of-00002.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
json.dump({"metadata": {}, "weight_map": wm}, open(f"{sys.argv[2]}/model.safetensors.index.json", "w"))
EOF
./pretrain_gpt --init-from "$T/llama" --train-data-path "$T/rand.bin" $TRAIN --train-iters 0 --dump-params "$T/one.st" > /dev/null 2>&1
./pretrain_gpt --init-from "$T/sharded" --train-data-path "$T/rand.bin" $TRAIN --train-iters 0 --dump-params "$T/two.st" > "$T/sh.log" 2>&1
if tools/compare "$T/one.st" "$T/two.st" --max-abs 0 > /dev/null 2>&1; then ok "sharded_directory_equals_one_file"
else not_ok "sharded_directory_equals_one_file" "$(grep -m1 error "$T/sh.log")"; fi

# ---- bad directories: exit 2, one line naming the problem -------------------
# bad NAME EXPECT DIR: --init-from DIR must exit 2 with one line holding EXPECT.
bad() {
  local name=$1 expect=$2 dir=$3 rc
  timeout 20 ./pretrain_gpt --init-from "$dir" --train-data-path "$T/rand.bin" $TRAIN > "$T/$name.out" 2> "$T/$name.err"; rc=$?
  local lines; lines=$(grep -vc '^note:' "$T/$name.err")
  if [ $rc = 2 ] && [ "$lines" = 1 ] && grep -qF -- "$expect" "$T/$name.err"; then ok "bad_hf_$name ($(cat "$T/$name.err"))"
  else not_ok "bad_hf_$name" "exit $rc, $lines lines: $(head -c 300 "$T/$name.err")"; fi
}
mk() { rm -rf "$T/bad_$1"; cp -r "$T/llama" "$T/bad_$1"; echo "$T/bad_$1"; }
d=$(mk noconfig); rm "$d/config.json"; bad missing_config "a directory without config.json" "$d"
d=$(mk arch); sed -i 's/LlamaForCausalLM/MistralForCausalLM/' "$d/config.json"; bad unknown_architecture "\"architectures\" must be" "$d"
d=$(mk heads); sed -i 's/"num_attention_heads": 4/"num_attention_heads": 5/' "$d/config.json"; bad heads_not_dividing "not divisible by the 5 attention heads" "$d"
d=$(mk json); echo '{"architectures": [' > "$d/config.json"; bad broken_json "not valid JSON" "$d"
d=$(mk act); sed -i 's/"silu"/"gelu"/' "$d/config.json"; bad other_activation "\"hidden_act\" is 'gelu'" "$d"
# A rotation wider than the head wrote past each row (heap corruption,
# exit 134) before the factor was range-checked; 1.25 trained wrong math.
for f in 10 1.25; do
  d=$(mk rot_$f); $PY -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['partial_rotary_factor']=float(sys.argv[2]); json.dump(c,open(p,'w'))" "$d/config.json" $f
  bad partial_rotary_factor_$f "\"partial_rotary_factor\" $f must be in (0, 1]" "$d"
done
# Tensors: rewrite the file with one tensor changed.
edit() {  # edit DIR PYTHON-EXPR-ON-(head, name): rewrites model.safetensors
  $PY - "$1/model.safetensors" "$2" <<'EOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n]); data = raw[8 + n:]
exec(sys.argv[2])
hj = json.dumps(head).encode(); hj += b" " * (-len(hj) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(hj)) + hj + data)
EOF
}
d=$(mk shape); edit "$d" 'k="model.layers.0.self_attn.k_proj.weight"; head[k]["shape"] = [head[k]["shape"][1], head[k]["shape"][0]]'
bad wrong_shape "model.layers.0.self_attn.k_proj.weight has shape (32 x 16), want (16 x 32)" "$d"
d=$(mk dtype); edit "$d" 'head["model.norm.weight"]["dtype"] = "I32"'; bad wrong_dtype "model.norm.weight is I32" "$d"
d=$(mk missing); edit "$d" 'k="model.layers.1.mlp.up_proj.weight"; a, b = head[k]["data_offsets"]; head["model.layers.1.mlp.up_proj.extra"] = head.pop(k)'
bad missing_tensor "tensor model.layers.1.mlp.up_proj.weight is missing" "$d"
d=$(mk index); rm "$d/model.safetensors"; echo '{"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}}' > "$d/model.safetensors.index.json"
bad index_names_missing_file "model-00001-of-00002.safetensors" "$d"
d=$(mk escape); rm "$d/model.safetensors"; echo '{"weight_map": {"model.norm.weight": "../llama/model.safetensors"}}' > "$d/model.safetensors.index.json"
bad index_leaves_directory "maps to an invalid file name" "$d"
# A flag that contradicts config.json.
timeout 20 ./pretrain_gpt --init-from "$T/llama" --train-data-path "$T/rand.bin" $TRAIN --hidden-size 64 > /dev/null 2> "$T/contra.err"; rc=$?
if [ $rc = 2 ] && grep -q "hidden-size (64) disagrees with --init-from" "$T/contra.err"; then ok "flag_contradicting_config_refused"
else not_ok flag_contradicting_config_refused "exit $rc: $(cat "$T/contra.err")"; fi
