#!/usr/bin/env bash
# suite_files.sh: files behave as users expect. --metrics-file starts afresh
# on a fresh run and appends on a resume, its first line records the whole
# configuration, and that record alone reproduces the curve. Token files
# stay 2 bytes per token in memory when the vocabulary fits, whatever their
# width on disk.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE
c=$(test_corpus)
A="--num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 16 --train-data-path ${c}_train.bin
   --micro-batch-size 2 --global-batch-size 4 --train-iters 6 --lr 1e-3"
M="$T/m.json"

# 1. A fresh run replaces what the file held; the record comes first.
echo '{"iteration": 99, "lm_loss": 1}' > "$M"
./pretrain_gpt $A --metrics-file "$M" > "$T/fresh.log" 2>&1
its=$(sed -n 's/^{"iteration": \([0-9]*\),.*/\1/p' "$M" | tr '\n' ' ')
if head -n 1 "$M" | grep -q '^{"config": {"num-layers": 2, ' && [ "$its" = "1 2 3 4 5 6 " ] && [ "$(wc -l < "$M")" = 7 ]; then
  ok "metrics_fresh_run_starts_afresh (record + iterations $its)"
else not_ok metrics_fresh_run_starts_afresh "iterations '$its', first line $(head -c 60 "$M")"; fi

# 2. Stop at 3 with a checkpoint, resume: one file, two records, 1..6 once.
rm -rf "$T/ck"
./pretrain_gpt $A --metrics-file "$M" --save "$T/ck" --exit-interval 3 > "$T/a.log" 2>&1
./pretrain_gpt $A --metrics-file "$M" --load "$T/ck" > "$T/b.log" 2>&1
its=$(sed -n 's/^{"iteration": \([0-9]*\),.*/\1/p' "$M" | tr '\n' ' ')
starts=$(grep -o '"start_iteration": [0-9]*' "$M" | awk '{print $2}' | tr '\n' ' ')
if [ "$its" = "1 2 3 4 5 6 " ] && [ "$starts" = "0 3 " ] && sed -n 5p "$M" | grep -q '^{"config"'; then
  ok "metrics_resume_appends (iterations $its; records starting at $starts)"
else not_ok metrics_resume_appends "iterations '$its', records at '$starts'"; fi
# The straight run and the resumed one agree (the tools skip the records).
./pretrain_gpt $A --metrics-file "$T/straight.json" > /dev/null 2>&1
if tools/metrics-diff "$T/straight.json" "$M" --max-rel 0 > "$T/md.out" 2>&1; then
  ok "metrics_diff_skips_records_resume_equals_straight ($(tail -n 1 "$T/md.out" | cut -c1-70))"
else not_ok metrics_diff_skips_records_resume_equals_straight "$(tail -n 1 "$T/md.out")"; fi
# A --load on a directory without a checkpoint is a fresh run.
rm -rf "$T/empty"; mkdir -p "$T/empty"
./pretrain_gpt $A --metrics-file "$M" --load "$T/empty" > "$T/e.log" 2>&1
[ "$(grep -c '^{"config"' "$M")" = 1 ] && [ "$(wc -l < "$M")" = 7 ] && ok "metrics_load_without_checkpoint_is_fresh" ||
  not_ok metrics_load_without_checkpoint_is_fresh "$(grep -c '^{"config"' "$M") records, $(wc -l < "$M") lines"

# 3. The record reproduces the curve: a 2-rank run from a --config file and
# flags; its argv and ranks, and nothing else, run again give the same losses.
printf -- '--num-layers 2\n--hidden-size 32\n--num-attention-heads 4 # heads\n--seq-length 16\n--lr-decay-style cosine\n' > "$T/run.conf"
timeout 120 $MPIRUN 2 ./pretrain_gpt_fp64 --config "$T/run.conf" --train-data-path "${c}_train.bin" --tensor-model-parallel-size 2 \
  --sequence-parallel --micro-batch-size 2 --global-batch-size 4 --train-iters 5 --lr 1e-3 --lr-warmup-iters 1 --seed 77 \
  --metrics-file "$T/orig.json" > "$T/orig.log" 2>&1
$PY - "$T/orig.json" "$T/replay.json" > "$T/replay.args" <<'EOF'
import json, sys
rec = json.loads(open(sys.argv[1]).readline())
argv = rec["argv"]
i = argv.index("--metrics-file"); argv[i + 1] = sys.argv[2]
assert rec["precision"] == "fp64" and rec["config"]["seed"] == 77 and rec["config"]["lr-decay-style"] == "cosine"
print(rec["ranks"]); print("\n".join(argv))
EOF
np=$(head -n 1 "$T/replay.args"); mapfile -t args < <(tail -n +2 "$T/replay.args")
if [ "$np" = 2 ] && timeout 120 $MPIRUN "$np" ./pretrain_gpt_fp64 "${args[@]}" > "$T/replay.log" 2>&1 &&
   why=$(compare_losses "$T/orig.json" "$T/replay.json" 0); then
  ok "metrics_record_reproduces_curve (${#args[@]} argv words, $np ranks; $why)"
else not_ok metrics_record_reproduces_curve "ranks '$np': $(grep -m1 error "$T/replay.log") $why"; fi

# 4. Token width: the same tokens as uint16 (version 1) and uint32 (version
# 2) train identically; a vocabulary past 65536 keeps 4-byte ids; and 10 M
# tokens cost 2 bytes each in RSS, not 4.
$PY - "$T" <<'EOF'
import sys
import numpy as np
t = sys.argv[1]
def w(path, toks, version):
    h = np.zeros(256, np.int32); h[:3] = [20240520, version, toks.size]
    with open(path, "wb") as f:
        f.write(h.tobytes()); f.write(toks.astype(np.uint16 if version == 1 else np.uint32).tobytes())
g = np.random.default_rng(3)
small = g.integers(0, 256, 3000)
w(t + "/v1.bin", small, 1); w(t + "/v2.bin", small, 2)
w(t + "/wide.bin", g.integers(0, 70000, 3000), 2)
w(t + "/big.bin", g.integers(0, 256, 10_000_000), 1)
w(t + "/tiny.bin", g.integers(0, 256, 1000), 1)
EOF
B="--num-layers 1 --hidden-size 16 --num-attention-heads 2 --seq-length 16 --micro-batch-size 2 --global-batch-size 2 --train-iters 4"
./pretrain_gpt $B --train-data-path "$T/v1.bin" --metrics-file "$T/v1.json" > /dev/null 2>&1
./pretrain_gpt $B --train-data-path "$T/v2.bin" --metrics-file "$T/v2.json" > /dev/null 2>&1
why=$(compare_losses "$T/v1.json" "$T/v2.json" 0) && ok "tokens_uint32_file_narrowed_same_losses ($why)" || not_ok tokens_uint32_file_narrowed_same_losses "$why"
./pretrain_gpt $B --vocab-size 70000 --train-data-path "$T/wide.bin" --train-iters 2 > "$T/wide.log" 2>&1 &&
  grep -q "lm loss" "$T/wide.log" && ok "tokens_vocab_past_65536_keeps_4_bytes" || not_ok tokens_vocab_past_65536_keeps_4_bytes "$(grep -m1 error "$T/wide.log")"
rss() { ./pretrain_gpt $B --train-data-path "$1" --train-iters 1 --log-memory 2>&1 | sed -n 's/.*RSS before the model \([0-9]*\).*/\1/p' | head -n 1; }
r0=$(rss "$T/tiny.bin"); r1=$(rss "$T/big.bin")
per=$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", (b - a) / 1e7 }')
if [ -n "$r0" ] && [ -n "$r1" ] && awk -v p="$per" 'BEGIN { exit !(p >= 1.8 && p <= 2.6) }'; then
  ok "tokens_two_bytes_each_in_memory (10 M tokens: RSS +$(( (r1 - r0) / 1000000 )) MB, $per bytes per token)"
else not_ok tokens_two_bytes_each_in_memory "RSS $r0 -> $r1: $per bytes per token"; fi

# ---- outputs against the files that directories own (a hostile-input review)
# Each case must exit 2 before any work with one line holding EXPECT, and
# leave every file under $T/own byte for byte and link for link as it was.
O=$T/own
rm -rf "$O"; mkdir -p "$O"
BASE="$A --train-iters 2"
./pretrain_gpt $BASE --save "$O/ck" > "$T/own_ck.log" 2>&1 || not_ok own_setup_checkpoint "$(tail -n 1 "$T/own_ck.log")"
./pretrain_gpt $BASE --seed 99 --save "$O/ck99" > /dev/null 2>&1
./pretrain_gpt $BASE --train-iters 0 --export-hf "$O/hf" > "$T/own_hf.log" 2>&1 || not_ok own_setup_hf "$(tail -n 1 "$T/own_hf.log")"
# The same model as two shards named by an index.
mkdir -p "$O/hfs" && cp "$O/hf/config.json" "$O/hfs/" && cp "$O/hf/model.safetensors" "$O/hfs/model-00001-of-00001.safetensors"
$PY - "$O/hfs" <<'PYEOF'
import json, struct, sys
d = sys.argv[1]; f = d + "/model-00001-of-00001.safetensors"
raw = open(f, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n])
json.dump({"metadata": {}, "weight_map": {k: "model-00001-of-00001.safetensors" for k in head if k != "__metadata__"}},
          open(d + "/model.safetensors.index.json", "w"))
PYEOF
cp "${c}_train.bin" "$O/tokens.bin"
mkdir -p "$O/e_tok" && cp "${c}_train.bin" "$O/e_tok/model.safetensors"
mkdir -p "$O/e_stale" && cp "$O/hfs/model.safetensors.index.json" "$O/e_stale/"
ln -s /proc/self/fd/1 "$O/to_stdout"; ln -s "$O/absent" "$O/dangling"; ln -s "$O/ck" "$O/ck_link"
mkfifo "$O/fifo"; ln -s fifo "$O/to_fifo"; echo '{}' > "$O/target.json"; ln -s target.json "$O/to_target"
snap() { (cd "$O" && find . -printf '%y %p %l\n' | sort && find . -type f -exec md5sum {} + | sort); }
snap > "$T/own_before"
refused() {
  local name=$1 expect=$2 rc n; shift 2
  timeout 60 ./pretrain_gpt "$@" > "$T/own_$name.out" 2> "$T/own_$name.err"; rc=$?
  n=$(grep -vc '^note:' "$T/own_$name.err")
  snap > "$T/own_after"
  if [ $rc = 2 ] && [ "$n" = 1 ] && grep -qF -- "$expect" "$T/own_$name.err" && cmp -s "$T/own_before" "$T/own_after" &&
     ! grep -q '^ iteration' "$T/own_$name.out"; then ok "output_refused_$name ($(cut -c1-160 "$T/own_$name.err"))"
  else not_ok "output_refused_$name" "exit $rc, $n lines: $(head -c 300 "$T/own_$name.err"); files changed: $(diff "$T/own_before" "$T/own_after" | head -n 3 | tr '\n' ' ')"; fi
}
I2=iter_0000002
refused metrics_into_checkpoint_latest "is inside --load $O/ck, among the files it reads" \
  $BASE --train-iters 3 --load "$O/ck" --metrics-file "$O/ck/latest_checkpointed_iteration.txt"
refused export_over_loaded_model "is inside --load $O/ck" $BASE --train-iters 3 --load "$O/ck" --export-llmc "$O/ck/$I2/model.safetensors"
refused dump_over_loaded_optimizer "is inside --load $O/ck" $BASE --train-iters 3 --load "$O/ck" --dump-params "$O/ck/$I2/optimizer.safetensors"
refused timeline_over_checkpoint_json "is inside --load $O/ck" $BASE --train-iters 3 --load "$O/ck" --timeline "$O/ck/$I2/checkpoint.svg"
mkdir -p "$O/fresh_save"; snap > "$T/own_before"
refused export_over_the_saves_latest "is inside --save $O/fresh_save, among the files it writes" \
  $BASE --save "$O/fresh_save" --export-llmc "$O/fresh_save/latest_checkpointed_iteration.txt"
refused export_hf_into_a_checkpoint_iteration "--export-hf $O/ck/$I2 is inside --load $O/ck" $BASE --train-iters 3 --load "$O/ck" --export-hf "$O/ck/$I2"
refused through_a_link_to_the_checkpoint "is inside --load $O/ck" $BASE --train-iters 3 --load "$O/ck" --metrics-file "$O/ck_link/latest_checkpointed_iteration.txt"
refused dump_over_an_hf_shard "is inside --init-from $O/hfs, among the files it reads" \
  $BASE --init-from "$O/hfs" --dump-params "$O/hfs/model-00001-of-00001.safetensors"
refused timeline_json_over_the_hf_index "is inside --init-from $O/hfs" $BASE --init-from "$O/hfs" --timeline "$O/hfs/model.safetensors.index.svg"
refused token_input_inside_the_export "--train-data-path $O/e_tok/model.safetensors is inside --export-hf $O/e_tok, among the files it writes" \
  $BASE --train-data-path "$O/e_tok/model.safetensors" --export-hf "$O/e_tok"
refused two_outputs_in_one_export "--dump-params $O/e_tok/model.safetensors is inside --export-hf $O/e_tok" \
  $BASE --export-hf "$O/e_tok" --dump-params "$O/e_tok/model.safetensors"
refused export_hf_beside_a_stale_index "holds a sharded model (model.safetensors.index.json)" $BASE --export-hf "$O/e_stale"
# A link to /proc/self/fd/1 with stdout on a regular file: the writer would
# have replaced the link (as it did /dev/stdout itself).
timeout 60 ./pretrain_gpt $BASE --export-llmc "$O/to_stdout" > "$T/own_stdout_file.out" 2> "$T/own_stdout_file.err"; rc=$?
if [ $rc = 2 ] && grep -q 'a system link to a file descriptor or device' "$T/own_stdout_file.err" && [ -L "$O/to_stdout" ]; then
  ok "output_refused_link_to_proc_fd_with_stdout_a_file"
else not_ok "output_refused_link_to_proc_fd_with_stdout_a_file" "exit $rc: $(head -c 300 "$T/own_stdout_file.err")"; fi
refused link_to_a_fifo "--export-llmc $O/to_fifo: a symbolic link to a device, FIFO or socket" $BASE --export-llmc "$O/to_fifo"
refused metrics_through_a_link "--metrics-file $O/to_target: a symbolic link; a resumed run appends in place" $BASE --metrics-file "$O/to_target"
refused metrics_through_a_dangling_link "--metrics-file $O/dangling: a symbolic link to nothing" $BASE --metrics-file "$O/dangling"
refused save_to_a_dangling_link "--save $O/dangling: a symbolic link to nothing" $BASE --save "$O/dangling"
refused save_to_a_dangling_link_with_a_slash "--save $O/dangling/: a symbolic link to nothing" $BASE --save "$O/dangling/"
# A checkpoint whose file is a link (deduplicated storage): the writer would
# replace the name inside the checkpoint, so the name is what is judged.
cp -r "$O/ck" "$O/ck_sl" && mkdir -p "$O/store" && mv "$O/ck_sl/$I2/model.safetensors" "$O/store/m.st" &&
  ln -s ../../store/m.st "$O/ck_sl/$I2/model.safetensors"; snap > "$T/own_before"
refused export_over_a_linked_checkpoint_file "is inside --load $O/ck_sl" $BASE --train-iters 3 --load "$O/ck_sl" --export-llmc "$O/ck_sl/$I2/model.safetensors"
# Past 32 --config files the rest went unchecked (a fixed table).
cfgs=(); for i in $(seq 1 33); do echo "--lr 1e-3" > "$O/conf$i.conf"; cfgs+=(--config "$O/conf$i.conf"); done
snap > "$T/own_before"
refused metrics_over_the_33rd_config "is the input --config $O/conf33.conf" "${cfgs[@]}" $BASE --metrics-file "$O/conf33.conf"
# An optimizer file from another save (seed 99) beside this model file.
cp "$O/ck99/$I2/optimizer.safetensors" "$O/ck/$I2/optimizer.safetensors"; snap > "$T/own_before"
refused optimizer_from_another_save "seed 99 differs from" $BASE --train-iters 3 --load "$O/ck"
# What stays allowed: a metrics file beside the checkpoint, a save through a
# link to a directory.
if ./pretrain_gpt $BASE --save "$O/ck_link" --metrics-file "$O/ck_link/metrics.json" > "$T/own_ok.log" 2>&1 &&
   [ -L "$O/ck_link" ] && grep -q '"iteration": 2,' "$O/ck/metrics.json" &&
   ./pretrain_gpt $BASE --load "$O/ck" --save "$O/ck" --train-iters 3 --metrics-file "$O/ck/iter_metrics.json" >> "$T/own_ok.log" 2>&1 &&
   grep -q '"iteration": 3,' "$O/ck/iter_metrics.json"; then ok "output_allowed_beside_a_checkpoint_and_through_a_dir_link"
else not_ok "output_allowed_beside_a_checkpoint_and_through_a_dir_link" "$(tail -n 1 "$T/own_ok.log")"; fi
