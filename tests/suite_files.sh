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
