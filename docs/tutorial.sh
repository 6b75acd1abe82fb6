#!/usr/bin/env bash
# docs/tutorial.sh: regenerates every number docs/tutorial.md quotes, by
# running the commands it shows. Each output line that does not start with
# '#' appears verbatim as a line of the tutorial (tables rows, log excerpts,
# planner lines); `docs/tutorial.sh --check` runs it and lists any line the
# text lacks (tests/suite_tools.sh does that, so the text cannot drift from
# the program). Byte counts and planner figures are exact and machine-
# independent; no timing is quoted. Writes only under a temporary directory.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --check ]; then
  out=$(mktemp /tmp/tutorial-check.XXXXXX)
  docs/tutorial.sh > "$out" || { echo "tutorial.sh failed"; rm -f "$out"; exit 1; }
  missing=0
  while IFS= read -r line; do
    [[ -z "$line" || "$line" == \#* ]] && continue
    grep -qxF -- "$line" docs/tutorial.md || { echo "missing from docs/tutorial.md: $line"; missing=$((missing + 1)); }
  done < "$out"
  n=$(grep -vc '^#' "$out")
  rm -f "$out"
  echo "tutorial check: $((n - missing)) of $n generated lines are in docs/tutorial.md"
  [ "$missing" = 0 ]
  exit
fi
[ -f data/fortunes_train.bin ] || tools/get-data.sh > /dev/null
W=$(mktemp -d /tmp/tutorial.XXXXXX)
trap 'rm -rf "$W"' EXIT
export OMP_NUM_THREADS=1
D="--config configs/demo.conf --train-iters 2 --eval-interval 0"
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\b/,&/;ta'; }

echo "# §0 one rank against TP 4 x PP 2 + SP, 30 iterations (tools/metrics-diff; the exact value depends on the CPU's kernels)"
./pretrain_gpt --config configs/tiny.conf --train-iters 30 --metrics-file "$W/one.json" > /dev/null 2>&1
tools/mpirun.sh 8 ./pretrain_gpt --config configs/tiny.conf --train-iters 30 --tensor-model-parallel-size 4 \
  --pipeline-model-parallel-size 2 --sequence-parallel --metrics-file "$W/tp4pp2.json" > /dev/null 2>&1
md=$(tools/metrics-diff "$W/one.json" "$W/tp4pp2.json" --quiet | head -n 1)
echo "# $md"
echo "$md" | awk '{ for (i = 1; i <= NF; i++) if ($i == "diff") v = $(i + 1) } END {
  e = 0; while (v > 0 && v < 10 ^ -e) e++; printf "fp32, one rank against TP 4 x PP 2 + SP: worst relative loss difference over 30 iterations below 1e-%02d\n", e - 1 }'

echo "# §1 tensor parallelism: tools/mpirun.sh 2 ./pretrain_gpt \$D --tensor-model-parallel-size 2 --log-comm"
tools/mpirun.sh 2 ./pretrain_gpt $D --tensor-model-parallel-size 2 --log-comm > "$W/tp.log" 2>&1
sed -n '/^comm rank 0 (tp 0, cp 0, dp 0, pp 0), iteration 2:/,/^comm check rank 0/p' "$W/tp.log"

echo "# §2 sequence parallelism: + --sequence-parallel"
tools/mpirun.sh 2 ./pretrain_gpt $D --tensor-model-parallel-size 2 --sequence-parallel --log-comm > "$W/sp.log" 2>&1
sed -n '/^comm rank 0 (tp 0, cp 0, dp 0, pp 0), iteration 2:/,/^comm check rank 0/p' "$W/sp.log" | grep '^  tp '

echo "# §2 activation memory: --log-memory --verbose, 1 iteration"
row() {  # row NAME NP FLAGS...
  local name=$1 np=$2; shift 2
  tools/mpirun.sh "$np" ./pretrain_gpt $D --train-iters 1 --log-memory --verbose "$@" > "$W/mem.log" 2>&1
  local line m f l k p
  line=$(grep '^activations of rank 0' "$W/mem.log")
  m=$(echo "$line" | sed 's/.*measured \([0-9]*\) bytes.*/\1/'); f=$(echo "$line" | sed 's/.*formula \([0-9]*\) bytes.*/\1/')
  l=$(echo "$line" | sed 's/.*(\([0-9]*\) layers x.*/\1/'); k=$(echo "$line" | sed 's/.* layers x \([0-9]*\) micro-batches.*/\1/')
  p=$(echo "$line" | sed 's/.*2-byte activations: \([0-9]*\) bytes per layer.*/\1/')
  [ "$name" = TP ] && echo "| mode | measured, $l layers × $k micro-batch in flight | this build's formula | paper's Table 2 per layer (2-byte) |"
  echo "| $name | $(commas "$m") B | $(commas "$f") B | $(commas "$p") B |"
}
row TP 2 --tensor-model-parallel-size 2
row "TP + SP" 2 --tensor-model-parallel-size 2 --sequence-parallel
cp "$W/mem.log" "$W/tpsp.log"
row "TP + SP + selective" 2 --tensor-model-parallel-size 2 --sequence-parallel --recompute-granularity selective
row "full recomputation (1 rank)" 1 --recompute-granularity full
echo "# §2 the TP + SP breakdown (--log-memory --verbose)"
sed -n '/^activation breakdown/,/all layers:/p' "$W/tpsp.log"

echo "# §2 the guide at full size: tools/plan"
grep -v use-flash-attn configs/megatron-sp-guide.conf > "$W/guide-plain.conf"
gib() { awk -v b="$1" 'BEGIN { printf "%.1f GiB", b / 1073741824 }'; }
plan_row() {  # plan_row NAME CONF FLAGS...
  local name=$1 conf=$2; shift 2
  tools/plan --config "$conf" "$@" > "$W/plan.log" 2>&1
  local mem act tot
  mem=$(grep '^memory (stage 0, bytes)' "$W/plan.log")
  act=$(echo "$mem" | sed 's/.* activations \([0-9]*\) .*/\1/'); tot=$(echo "$mem" | sed 's/.* total \([0-9]*\)$/\1/')
  echo "| $name | $(gib "$act") | $(gib "$tot") |"
}
plan_row "TP 4 + SP" "$W/guide-plain.conf"
grep '^  per layer:' "$W/plan.log"
cp "$W/plan.log" "$W/plan_plain.log"
plan_row "TP 4 + SP + selective recomputation" "$W/guide-plain.conf" --recompute-granularity selective
grep '^  per layer:' "$W/plan.log"
plan_row "TP 4 + SP + \`--use-flash-attn\` (blocked attention keeps row log-sum-exps only)" configs/megatron-sp-guide.conf
plan_row "full recomputation" "$W/guide-plain.conf" --recompute-granularity full
mem=$(grep '^memory (stage 0, bytes)' "$W/plan_plain.log")
echo "Parameters $(gib "$(echo "$mem" | sed 's/.* parameters \([0-9]*\) .*/\1/')"), fp32 gradients $(gib "$(echo "$mem" | sed 's/.* gradients \([0-9]*\) .*/\1/')") and optimizer state $(gib "$(echo "$mem" | sed 's/.* optimizer \([0-9]*\) .*/\1/')")"

echo "# §2 the sweep: tools/plan --sweep"
grep -vE -- '--(tensor-model|pipeline-model)-parallel-size|--sequence-parallel' "$W/guide-plain.conf" > "$W/guide-model.conf"
tools/plan --sweep --world-size 8 --memory-gb 80 --machine configs/machines/8gpu-node.txt --config "$W/guide-model.conf" 2>&1 |
  grep -v '^note' > "$W/sweep8.log"
grep '^sweep:' "$W/sweep8.log"
sed -n '3,5p' "$W/sweep8.log"
grep 'TP 4 PP 2 DP 1 CP 1 SP selective$' "$W/sweep8.log"
tools/plan --sweep --world-size 64 --memory-gb 80 --machine configs/machines/8gpu-node.txt --config "$W/guide-model.conf" \
  --use-distributed-optimizer 2>&1 | grep -v '^note' > "$W/sweep64.log"
grep '^sweep:' "$W/sweep64.log"
sed -n '3,9p' "$W/sweep64.log"
grep 'TP 4 PP 2 DP 8 CP 1 SP selective$' "$W/sweep64.log"

echo "# §4b context parallelism at T = 4096 on 4 ranks, 1 iteration (--log-comm, --log-memory)"
L="--config configs/small.conf --num-attention-heads 8 --num-layers 2 --seq-length 4096 --max-position-embeddings 4096
   --micro-batch-size 1 --global-batch-size 1 --eval-interval 0 --train-iters 1 --log-comm --log-memory"
cprow() {  # cprow NAME NP TP CP FLAGS...: rank 0's activations and the bytes it puts on the wire
  local name=$1 np=$2 tp=$3 cp=$4; shift 4
  # shellcheck disable=SC2086
  tools/mpirun.sh "$np" ./pretrain_gpt $L "$@" > "$W/cp.log" 2>&1
  local a w
  a=$(grep -m1 '^memory (rank 0,' "$W/cp.log" | sed 's/.* activations \([0-9]*\) |.*/\1/')
  w=$(sed -n '/^comm rank 0 /,/^comm check rank 0/p' "$W/cp.log" |
      awk -v tp="$tp" -v cp="$cp" -v cpa="$(sed -n 's/^layout: .*(a2a \([0-9]*\) x p2p.*/\1/p' "$W/cp.log" | grep . || echo 1)" \
          -v dp=$((np / (tp * cp))) -v pp=1 -f tools/comm-wire.awk)
  echo "| $name | $(commas "$a") B | $(commas "${w%%$'\t'*}") B | ${w#*$'\t'} |"
}
echo "| layout (4 ranks unless noted) | activations, rank 0 | bytes rank 0 sends | by group and collective |"
cprow "1 rank, blocked attention" 1 1 1 --use-flash-attn
cprow "CP 4, ring (p2p)" 4 1 4 --context-parallel-size 4
cp "$W/cp.log" "$W/cp4.log"
cprow "CP 4, all-to-all (a2a)" 4 1 4 --context-parallel-size 4 --cp-comm-type a2a --use-flash-attn
cp "$W/cp.log" "$W/a2a.log"
cprow "CP 4, all-gather (allgather)" 4 1 4 --context-parallel-size 4 --cp-comm-type allgather
cprow "CP 4, a2a+p2p (2 × 2)" 4 1 4 --context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2
cprow "TP 4 + SP" 4 4 1 --tensor-model-parallel-size 4 --sequence-parallel
cprow "TP 4 + SP, blocked attention" 4 4 1 --tensor-model-parallel-size 4 --sequence-parallel --use-flash-attn
cprow "CP 2 × TP 2 + SP" 4 2 2 --context-parallel-size 2 --tensor-model-parallel-size 2 --sequence-parallel
echo "# §4b the ring's table (CP 4) and the all-to-all's"
sed -n '/^comm rank 0 /,/^comm check rank 0/p' "$W/cp4.log"
sed -n '/^comm rank 0 /,/^comm check rank 0/p' "$W/a2a.log" | grep '^  cp '
echo "# §5b Megatron's Llama 3 8B example, scaled down: its notes and both LR groups' schedule (exact values)"
tools/mpirun.sh 2 ./pretrain_gpt --config configs/megatron-llama3-8b-laptop.conf --metrics-file "$W/l3.json" > "$W/l3.log" 2>&1
echo "notes printed: $(grep -c '^note: ' "$W/l3.log"), iterations: $(grep -c '^{"iteration"' "$W/l3.json")"
grep '^{"iteration"' "$W/l3.json" | sed 's/.*"iteration": \([0-9]*\),.*"lr": \([^,]*\), "decoupled_lr": \([^,]*\),.*/\1 \2 \3/' |
  awk '$1 <= 4 || $1 >= 11 { printf "| %d | %d | %.6e | %.6e |\n", $1, ($1 - 1) * 8, $2, $3 }'
