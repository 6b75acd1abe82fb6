#!/usr/bin/env bash
# tools/bench-bf16.sh: what the bf16 emulation costs on a CPU (issue 16):
# fp32 and --bf16 side by side (tools/bench-ab.sh: alternating runs, 1 rank x
# 2 threads, medians) on the small shape and on GPT-2 124M (B 4, T 64).
# Writes out/bench-bf16.md (OUT=FILE to change); NATIVE=1 unsets the
# OpenBLAS core pinning for the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
OUT=${OUT:-out/bench-bf16.md}
small="--config configs/small.conf"
big="--config configs/gpt2-124m.conf --train-data-path data/fortunes_train.bin"
{
echo "# bf16 emulation against fp32 ($(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}$([ "${NATIVE:-0}" = 1 ] && echo ', unset for the runs (NATIVE=1)'))"
echo
echo "Command: \`$([ "${NATIVE:-0}" = 1 ] && echo 'NATIVE=1 ')tools/bench-bf16.sh\` (tools/bench-ab.sh: ROUNDS=${ROUNDS:-3} alternating runs of ITERS=${ITERS:-8} iterations, 1 rank x 2 threads)."
echo
tools/bench-ab.sh "small shape, fp32|$small" "small shape, bf16|$small --bf16"
echo
tools/bench-ab.sh "GPT-2 124M (B 4, T 64), fp32|$big" "GPT-2 124M (B 4, T 64), bf16|$big --bf16"
} | tee "$OUT"
