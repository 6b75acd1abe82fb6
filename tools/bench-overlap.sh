#!/usr/bin/env bash
# tools/bench-overlap.sh: the small shape on two cores, 2 ranks x 1 thread
# against 1 rank x 2 threads on the same batches (global batch 8), as issue
# 17's bars read them: DP 2 with --overlap-grad-reduce, TP 2 + SP (with and
# without its backward's collectives behind the GEMMs), PP 2 1F1B
# with M 8 (micro-batch 1), without and with --overlap-p2p-communication. Each ratio is the 1-rank step time over the
# layout's (above 1: the layout is faster). Runs alternate, every other
# round in reverse (the place in a round moved tools/bench-ab.sh's ratios
# by 3-4%); the median skips each run's first 2 iterations. Also prints
# DP 2's exposed-communication fraction with and without overlap (--log-comm),
# and PP 2's time waited on pipeline receives with and without early
# receives (--log-pipeline).
#   ITERS=8 ROUNDS=2     the defaults; NATIVE=1 unsets OPENBLAS_CORETYPE and
#                        OPENBLAS_L2_SIZE for the runs (the user's own kernels)
# Numbers mean something only on a quiet machine: say so when it was not.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
ITERS=${ITERS:-8} ROUNDS=${ROUNDS:-2}
W=$(mktemp -d /tmp/bench-overlap.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ -x ./pretrain_gpt ] || make -s pretrain_gpt >&2
PRE=(env)
[ "${NATIVE:-0}" = 1 ] && PRE=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
ARGS=(--config configs/small.conf --data-order sequential --global-batch-size 8 --train-iters "$ITERS" --log-interval "$ITERS" --log-comm)
ROWS=("1 rank x 2 threads|1|--micro-batch-size 2"
      "DP 2 + --overlap-grad-reduce|2|--micro-batch-size 2 --overlap-grad-reduce --ddp-bucket-size 200000"
      "DP 2, no overlap (same buckets)|2|--micro-batch-size 2 --ddp-bucket-size 200000"
      "TP 2 + SP|2|--micro-batch-size 2 --tensor-model-parallel-size 2 --sequence-parallel"
      "TP 2 + SP, --no-async-tensor-model-parallel-allreduce|2|--micro-batch-size 2 --tensor-model-parallel-size 2 --sequence-parallel --no-async-tensor-model-parallel-allreduce"
      "PP 2 1F1B M 8|2|--micro-batch-size 1 --pipeline-model-parallel-size 2 --log-pipeline"
      "PP 2 1F1B M 8 + --overlap-p2p-communication|2|--micro-batch-size 1 --pipeline-model-parallel-size 2 --log-pipeline --overlap-p2p-communication")
med() { awk -F'"ms_per_iter": ' '{ split($0, a, "\"iteration\": "); split(a[2], b, ","); sub(/}.*/, "", $2); if (b[1] + 0 > 2) print $2 }' "$1" |
        sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$ROUNDS"); do
    order=("${!ROWS[@]}")
    # shellcheck disable=SC2207
    [ $((r % 2)) = 0 ] && order=($(seq $((${#ROWS[@]} - 1)) -1 0))
    for i in "${order[@]}"; do
        IFS='|' read -r _ np flags <<< "${ROWS[$i]}"
        t=$((2 / np))
        # shellcheck disable=SC2086
        "${PRE[@]}" OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t OMP_WAIT_POLICY=PASSIVE tools/mpirun.sh "$np" ./pretrain_gpt "${ARGS[@]}" $flags \
            --metrics-file "$W/$i.$r.json" > "$W/$i.$r.log" 2>&1 || { tail -n 3 "$W/$i.$r.log" >&2; exit 1; }
    done
done
best() { local r b=""; for r in $(seq 1 "$ROUNDS"); do m=$(med "$W/$1.$r.json"); b=$(awk -v a="$m" -v b="$b" 'BEGIN { print (b == "" || a < b) ? a : b }'); done; echo "$b"; }
base=$(best 0)
echo "| layout | ms/iter (best round's median) | 1-rank time / layout's |"
echo "|---|---:|---:|"
for i in "${!ROWS[@]}"; do
    IFS='|' read -r name _ _ <<< "${ROWS[$i]}"
    m=$(best "$i")
    awk -v n="$name" -v m="$m" -v b="$base" 'BEGIN { printf "| %s | %.1f | %.2f |\n", n, m, b / m }'
done
for i in 1 2; do
    IFS='|' read -r name _ _ <<< "${ROWS[$i]}"
    f=$(grep -h 'exposed fraction' "$W/$i.$ROUNDS.log" | awk '{ s += $NF; n++ } END { if (n) printf "%.3f", s / n; else print "-" }')
    echo "$name: gradient reduction's exposed fraction (waited after backward / in flight, mean over ranks and steps) $f"
done
IFS='|' read -r name _ _ <<< "${ROWS[3]}"
h=$(grep -h '^tp overlap' "$W/3.$ROUNDS.log" | sed 's/.*: \([0-9.]*\)% hidden.*/\1/' | awk '{ s += $1; n++ } END { if (n) printf "%.1f", s / n; else print "-" }')
echo "$name: share of the column-parallel backward's TP collectives hidden behind its GEMMs (mean over ranks and steps, --log-comm) $h%"
for i in 5 6; do
    IFS='|' read -r name _ _ <<< "${ROWS[$i]}"
    # The last iteration's line (--log-interval is ITERS), both ranks, every round.
    w=$(cat "$W/$i".*.log | awk -f tools/pipeline-waited.awk)
    echo "$name: pipeline receives waited for $w ms per rank and iteration (mean, --log-pipeline)"
done
echo "load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; $(nproc --all) CPUs ($(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) usable)"
