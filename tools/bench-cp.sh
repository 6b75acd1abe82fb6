#!/usr/bin/env bash
# tools/bench-cp.sh: context parallelism at a long sequence (issue 15),
# side by side in one run: T = 4096, 4 ranks x 1 thread, ring, all-to-all
# and all-gather, against TP 4 + SP
# (plain and blocked attention) and CP 2 x TP 2 + SP, with one rank as the
# reference for memory. For each layout: ms/iteration (median), bytes rank 0
# sends per iteration (every group, from --log-comm's measured counters,
# which the same run checks against the formulas, through tools/comm-wire.awk), rank 0's activation and
# workspace bytes (--log-memory), and for the ring the fraction of K/V
# transfer time hidden behind compute (mean over ranks, last iteration).
# Writes out/bench-cp.md. Four ranks on fewer cores share them, so the
# times measure oversubscription too; bytes and memory are exact.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/fortunes_train.bin ] || tools/get-data.sh > /dev/null
mkdir -p out
OUT=${OUT:-out/bench-cp.md}
ITERS=${ITERS:-6}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The long-sequence model: small.conf's widths, 8 heads (2 per rank at 4),
# 2 layers, one sequence of 4096 tokens per iteration.
MODEL="--config configs/small.conf --num-attention-heads 8 --num-layers 2 --seq-length 4096 --max-position-embeddings 4096
       --micro-batch-size 1 --global-batch-size 1 --eval-interval 0"

median_ms() {
  sed -n 's/.*"ms_per_iter": \([0-9.]*\).*/\1/p' "$1" | tail -n +3 | sort -g |
    awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# Bytes rank 0 puts on the wire in one iteration (tools/comm-wire.awk; the
# counts are the same every iteration): bytes LOG NP TP CP.
# a2a+p2p's all-to-all level size, from the layout line (1: none).
cpa_of() { sed -n 's/^layout: .*(a2a \([0-9]*\) x p2p.*/\1/p' "$1" | grep . || echo 1; }
bytes() { sed -n '/^comm rank 0 /,/^comm check rank 0/{p; /^comm check/q}' "$1" |
            awk -v tp="$3" -v cp="$4" -v cpa="$(cpa_of "$1")" -v dp=$(($2 / ($3 * $4))) -v pp=1 -f tools/comm-wire.awk | cut -f1; }
mem() { grep -m1 '^memory (rank 0,' "$1" | sed "s/.* $2 \([0-9]*\) |.*/\1/"; }
hidden() {
  awk '/^ring rank /{ for (i = 1; i <= NF; i++) if ($i ~ /%$/) { v[$3] = $i + 0 } }
       END { n = 0; s = 0; for (k in v) { s += v[k]; n++ } if (n) printf "%.0f%%", s / n; else printf "-" }' "$1"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

{
echo "# Context parallelism at T = 4096 ($(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) cores)"
echo
echo "Command: \`tools/bench-cp.sh\` (ITERS=$ITERS, medians skip 2 warm-up iterations; one thread per rank;"
echo "model: 2 layers, hidden 256, 8 heads, vocab 256, T = 4096, one sequence per iteration)."
echo
echo "| layout | ranks | ms/iteration | bytes sent/iteration (rank 0) | activations/rank (MiB) | workspace/rank (MiB) | ring hidden |"
echo "|---|---|---|---|---|---|---|"
for row in "1 rank, blocked attention:1:1:1:--use-flash-attn" \
           "CP 4 (ring, p2p):4:1:4:--context-parallel-size 4" \
           "CP 4 (all-to-all, a2a):4:1:4:--context-parallel-size 4 --cp-comm-type a2a --use-flash-attn" \
           "CP 4 (all-gather, allgather):4:1:4:--context-parallel-size 4 --cp-comm-type allgather" \
           "CP 4 (a2a+p2p, 2 x 2):4:1:4:--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2" \
           "TP 4 + SP:4:4:1:--tensor-model-parallel-size 4 --sequence-parallel" \
           "TP 4 + SP, blocked attention:4:4:1:--tensor-model-parallel-size 4 --sequence-parallel --use-flash-attn" \
           "CP 2 x TP 2 + SP:4:2:2:--context-parallel-size 2 --tensor-model-parallel-size 2 --sequence-parallel"; do
  IFS=: read -r name np tp cp flags <<< "$row"
  f="$tmp/$(echo "$name" | tr -cd 'A-Za-z0-9')"
  # shellcheck disable=SC2086
  tools/mpirun.sh "$np" ./pretrain_gpt $MODEL --train-iters "$ITERS" $flags --log-comm --log-memory \
    --metrics-file "$f.json" > "$f.log" 2>&1 || { echo "| $name | $np | failed: $(tail -n 1 "$f.log") | | | | |"; continue; }
  grep -q 'MISMATCH' "$f.log" && echo "<!-- $name: --log-comm mismatch against the formulas -->"
  h=-; [[ "$flags" == *"context-parallel-size"* && ( "$flags" != *cp-comm-type* || "$flags" == *a2a+p2p* ) ]] && h=$(hidden "$f.log")
  echo "| $name | $np | $(median_ms "$f.json") | $(bytes "$f.log" "$np" "$tp" "$cp") | $(mib "$(mem "$f.log" activations)") | $(mib "$(mem "$f.log" workspace)") | $h |"
done
echo
echo "Bytes sent: what rank 0 puts on the wire in one iteration with ring algorithms (tools/comm-wire.awk"
echo "applied to --log-comm's counts): ring hops, all-to-alls, TP and SP collectives, the gradient all-reduce."
echo "Ring hidden: the share of each K/V block's time in flight that the rank spent computing"
echo "rather than waiting for it (--log-comm's ring line; the timeline draws the same events)."
} | tee "$OUT"
