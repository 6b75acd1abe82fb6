#!/usr/bin/env bash
# tools/bench-parallel.sh: the parallel measurements of issues 3 and 4, side by
# side in one run, one thread per rank, on the small model (configs/small.conf:
# 4 layers, hidden 256, 4 heads, T=128, B=4):
#   1. TP 1, 2, 4 with and without SP: ms/iteration and bytes per iteration;
#   2. pipeline bubble (idle time from timestamps) for p = 2 and 4 next to the
#      formula, 1F1B vs interleaved, and stage 0's activation memory under
#      1F1B vs all-forward-all-backward.
# Writes out/bench-parallel.md. Ranks beyond the core count share cores, so
# TP 4 and PP 4 on 2 cores measure oversubscription as much as parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/fortunes_train.bin ] || tools/get-data.sh > /dev/null
mkdir -p out
OUT=out/bench-parallel.md
ITERS=${ITERS:-8}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# median_ms METRICS: median ms_per_iter, skipping the first two iterations.
median_ms() {
  sed -n 's/.*"ms_per_iter": \([0-9.]*\).*/\1/p' "$1" | tail -n +3 | sort -g |
    awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# bytes LOG GROUP: bytes per iteration rank 0 moved in GROUP (all collectives).
bytes() { awk -v g="$2" '/^comm rank 0 /{r=1} /^comm check rank 0/{exit} r && $1 == g {s += $(NF-2)} END {print s + 0}' "$1"; }

{
echo "# Parallel measurements ($(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) cores)"
echo
echo "Command: \`tools/bench-parallel.sh\` (ITERS=$ITERS, medians skip 2 warm-up iterations; one thread per rank)."
echo
echo "## Two cores, two ways: 1 rank x 2 threads against 2 ranks x 1 thread (small model, global batch 8)"
echo
echo "| layout | ranks x threads | ms/iteration | tokens/s | vs 1 rank x 2 threads |"
echo "|---|---|---|---|---|"
base=""
for row in "1 rank:1:2:" "TP 2:2:1:--tensor-model-parallel-size 2" "TP 2 + SP:2:1:--tensor-model-parallel-size 2 --sequence-parallel" \
           "PP 2:2:1:--pipeline-model-parallel-size 2" "DP 2:2:1:"; do
  IFS=: read -r name np th flags <<< "$row"
  f="$tmp/two$(echo "$name" | tr -d ' +')"
  OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th tools/mpirun.sh $np ./pretrain_gpt --config configs/small.conf --global-batch-size 8 \
    --train-iters $ITERS $flags --metrics-file "$f.json" > "$f.log" 2>&1
  ms=$(median_ms "$f.json"); [ -z "$base" ] && base=$ms
  echo "| $name | $np x $th | $ms | $(awk -v m="$ms" 'BEGIN { printf "%.0f", 8 * 128 / (m / 1000) }') | $(awk -v a="$base" -v b="$ms" 'BEGIN { printf "%.2f", a / b }') |"
done
echo
echo "## Tensor and sequence parallelism (small model, global batch 4)"
echo
echo "| layout | ranks | ms/iteration | TP bytes/iteration (rank 0) | SP overhead vs TP |"
echo "|---|---|---|---|---|"
for tp in 1 2 4; do
  prev=""
  for sp in "" "--sequence-parallel"; do
    [ $tp = 1 ] && [ -n "$sp" ] && continue
    f="$tmp/tp$tp$sp"
    tools/mpirun.sh $tp ./pretrain_gpt --config configs/small.conf --train-iters $ITERS --tensor-model-parallel-size $tp \
      $sp --log-comm --metrics-file "$f.json" > "$f.log" 2>&1
    ms=$(median_ms "$f.json"); b=$(bytes "$f.log" tp)
    ovh=""; [ -n "$prev" ] && ovh=$(awk -v a="$ms" -v b="$prev" 'BEGIN { printf "%.3f", a / b }')
    echo "| TP $tp${sp:+ + SP} | $tp | $ms | $b | $ovh |"
    prev=$ms
  done
done
echo
echo "## Activation memory and time: TP 2/4, +- SP, +- selective recomputation (small model)"
echo
echo "| layout | activation bytes of rank 0's layers (measured = formula) | Table 2 per layer at 2 bytes | ms/iteration |"
echo "|---|---|---|---|"
for tp in 2 4; do
  for extra in "" "--sequence-parallel" "--recompute-granularity selective" "--sequence-parallel --recompute-granularity selective"; do
    f="$tmp/act$tp$(echo "$extra" | tr -d ' -')"
    tools/mpirun.sh $tp ./pretrain_gpt --config configs/small.conf --train-iters $ITERS --tensor-model-parallel-size $tp \
      $extra --log-memory --metrics-file "$f.json" > "$f.log" 2>&1
    act=$(sed -n 's/^activations of rank 0.s transformer layers: measured \([0-9]*\) bytes, formula \([0-9]*\) bytes.*Table 2 for this mode at 2-byte activations: \([0-9]*\) bytes.*/\1 = \2 | \3/p' "$f.log")
    echo "| TP $tp ${extra:+$extra} | $act | $(median_ms "$f.json") |"
  done
done
echo
echo "## Pipeline bubble (small model, 8 layers, global batch 32 = M 8 micro-batches of 4)"
echo
echo "| schedule | p | v | ms/iteration | measured idle fraction (mean over ranks) | formula (p-1)/(vM+p-1) |"
echo "|---|---|---|---|---|---|"
for p in 2 4; do
  for sched in "1f1b" "interleaved"; do
    flags="--pipeline-model-parallel-size $p"; v=1
    [ $sched = interleaved ] && { flags="$flags --num-layers-per-virtual-pipeline-stage 1"; v=$((8 / p)); }
    f="$tmp/pp$p$sched"
    tools/mpirun.sh $p ./pretrain_gpt --config configs/small.conf --num-layers 8 --global-batch-size 32 \
      --train-iters $ITERS $flags --log-pipeline --metrics-file "$f.json" > "$f.log" 2>&1
    ms=$(median_ms "$f.json")
    idle=$(awk '/^pipeline iteration/ {it++} it > 2 && /idle fraction/ {s += $NF; n++} END { printf "%.3f", s / n }' "$f.log")
    formula=$(awk -v p=$p -v v=$v 'BEGIN { printf "%.3f", (p - 1) / (v * 8 + p - 1) }')
    echo "| $sched | $p | $v | $ms | $idle | $formula |"
  done
done
echo
echo "## Stage 0 activation memory, PP 2, M 8 (measured from the allocator)"
echo
for sched in 1f1b afab; do
  f="$tmp/mem$sched"
  tools/mpirun.sh 2 ./pretrain_gpt --config configs/small.conf --num-layers 8 --global-batch-size 32 --train-iters 1 \
    --pipeline-model-parallel-size 2 --pipeline-schedule $sched --log-memory > "$f.log" 2>&1
  echo "- $sched: $(grep '^memory (rank 0,' "$f.log" | sed 's/.* activations \([0-9]*\) |.*slots \([0-9]*\) per.*/\1 bytes of activations (\2 micro-batches in flight)/')"
done
} | tee "$OUT"
