#!/usr/bin/env bash
# tools/bench-bf16.sh: what the bf16 emulation costs on a CPU (issue 16).
# fp32 and --bf16 side by side in one run, alternating (fp32, bf16, fp32,
# bf16, ...) so that a change in the machine's load hits both alike; one rank
# x 2 threads; median ms/iteration over ROUNDS runs of ITERS iterations, the
# first 2 iterations of each run skipped. Shapes: the small shape and GPT-2
# 124M (B 4, T 64). Writes out/bench-bf16.md (OUT=FILE to change).
#   tools/bench-bf16.sh                       the environment as set
#   NATIVE=1 tools/bench-bf16.sh              OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/fortunes_train.bin ] || tools/get-data.sh > /dev/null
[ -x ./pretrain_gpt ] || { echo "tools/bench-bf16.sh: ./pretrain_gpt is missing (run make)" >&2; exit 2; }
mkdir -p out
OUT=${OUT:-out/bench-bf16.md}
ITERS=${ITERS:-8}
ROUNDS=${ROUNDS:-3}
envcmd=(env OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2)
[ "${NATIVE:-0}" = 1 ] && envcmd=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# ms/iteration of every iteration past the first two, of every run of a kind.
times() { for f in "$tmp/$1".*.json; do sed -n 's/.*"ms_per_iter": \([0-9.]*\).*/\1/p' "$f" | tail -n +3; done; }
median() { sort -g | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
{
echo "# bf16 emulation against fp32 ($(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}$([ "${NATIVE:-0}" = 1 ] && echo ' (unset for the runs: native kernels)'))"
echo
echo "Command: \`$([ "${NATIVE:-0}" = 1 ] && echo 'NATIVE=1 ')tools/bench-bf16.sh\` (ROUNDS=$ROUNDS alternating runs of ITERS=$ITERS iterations, 1 rank x 2 threads, medians without the first 2 iterations of each run)."
echo
echo "| shape | fp32 ms/iter | bf16 ms/iter | bf16 / fp32 |"
echo "|---|---|---|---|"
for row in "small shape (4 x 256, B 4, T 128):--config configs/small.conf" \
           "GPT-2 124M (B 4, T 64):--config configs/gpt2-124m.conf --train-data-path data/fortunes_train.bin"; do
  IFS=: read -r name flags <<< "$row"
  rm -f "$tmp"/*.json
  for r in $(seq "$ROUNDS"); do
    for kind in fp32 bf16; do
      extra=(); [ $kind = bf16 ] && extra=(--bf16)
      # shellcheck disable=SC2086
      "${envcmd[@]}" ./pretrain_gpt $flags --train-iters "$ITERS" --eval-interval 0 ${extra[@]+"${extra[@]}"} \
        --metrics-file "$tmp/$kind.$r.json" > "$tmp/$kind.$r.log" 2>&1 ||
        { echo "tools/bench-bf16.sh: $name $kind failed: $(tail -n 1 "$tmp/$kind.$r.log")" >&2; exit 1; }
    done
  done
  a=$(times fp32 | median); b=$(times bf16 | median)
  echo "| $name | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }') |"
done
} | tee "$OUT"
