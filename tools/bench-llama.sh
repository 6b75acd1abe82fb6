#!/usr/bin/env bash
# tools/bench-llama.sh: GPT-2's blocks against Llama's at the same width
# (issue 14): configs/small.conf and configs/llama-small.conf (4 layers,
# hidden 256, B 4, T 128; RMSNorm, RoPE, SwiGLU, GQA 4 heads / 2 groups,
# untied, no bias) side by side (tools/bench-ab.sh), then each one's
# parameters and memory from --log-memory. Writes out/bench-llama.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
OUT=${OUT:-out/bench-llama.md}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
{
echo "# GPT-2 and Llama blocks at the same width ($(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) cores)"
echo
echo "Command: \`tools/bench-llama.sh\` (tools/bench-ab.sh: ROUNDS=${ROUNDS:-3} alternating runs of ITERS=${ITERS:-8} iterations, 1 rank x 2 threads)."
echo
tools/bench-ab.sh "GPT-2 small shape|--config configs/small.conf" "Llama small shape|--config configs/llama-small.conf"
echo
# The parameter count by formula, from the configs' shapes (h 256, L 4, a 4
# heads, G 2 groups, T 128, Vp 256; SwiGLU's f = int(8h/3 / 64) * 64 = 640).
formula() {
  case $1 in
    small) awk 'BEGIN { h = 256; L = 4; V = 256; T = 128; p = L * (12 * h * h + 13 * h) + V * h + T * h + 2 * h
                  printf "GPT-2: L (12 h^2 + 13 h) + Vp h + T h + 2 h = %d elements = %d bytes in fp32", p, 4 * p }' ;;
    llama-small) awk 'BEGIN { h = 256; L = 4; V = 256; a = 4; G = 2; f = int(8 * h / 3 / 64) * 64
                  p = L * (2 * h + 2 * h * h + 2 * G * (h / a) * h + 3 * h * f) + 2 * V * h + h
                  printf "Llama: L (2 h + 2 h^2 + 2 G (h/a) h + 3 h f) + 2 Vp h + h = %d elements = %d bytes in fp32", p, 4 * p }' ;;
  esac
}
for c in small llama-small; do
  ./pretrain_gpt --config "configs/$c.conf" --train-iters 1 --eval-interval 0 --log-memory > "$tmp/$c.log" 2>&1
  echo "configs/$c.conf: $(formula "$c")"
  echo
  grep -E '^(memory|params|parameters)' "$tmp/$c.log" | sed 's/^/    /'
  echo
done
} | tee "$OUT"
