#!/usr/bin/env bash
# tools/bench-opts.sh: each single-rank optimisation of issue 17, before and
# after, in one side-by-side run (tools/bench-ab.sh: the rows alternate, so
# the machine's load hits them alike). One rank x 2 threads, the user's own
# OpenBLAS kernels (NATIVE=1), OMP_WAIT_POLICY=PASSIVE unless the caller set
# one. Rows, each against the first (everything on):
#   --no-bias-gelu-fusion       GELU and its bias gradient as the op chain
#   --no-bias-dropout-fusion    bias + dropout + residual as the op chain
#   --no-grad-norm-fusion       the gradient norm in one pass after backward,
#                               not as gradients become final (DP: in the
#                               average's pass)
#   MT_INJECT_BUG=unfused       every fused sweep off (GELU's, bias-dropout-
#                               add's, LayerNorm's four-row statistics, the
#                               cross-entropy, AdamW with its bf16 copy; not
#                               the norm's): the test hook, same bits
#   no -fvect-cost-model=dynamic  the build GCC's -O2 alone vectorises
#                               (built here into build/novect, once)
#   no huge pages               large buffers madvised MADV_NOHUGEPAGE instead
#                               (build/nothp: EXTRA_CFLAGS=-DMT_NO_HUGE_PAGES)
# Every row computes the same bits; only time differs.
#   tools/bench-opts.sh [small|124m ...]   default: both shapes
#   ITERS, ROUNDS as for tools/bench-ab.sh (default 8 and 4 for small,
#   6 and 2 for 124m); 124m needs out/bench_gpt2_124m.bin and
#   out/bench_gpt2_tokens.bin (make bench creates them).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
shapes=("$@"); [ ${#shapes[@]} -gt 0 ] || shapes=(small 124m)
for s in "${shapes[@]}"; do
  case $s in small|124m) ;; *) echo "tools/bench-opts.sh: unknown shape '$s' (small or 124m)" >&2; exit 2 ;; esac
done
[ -x ./pretrain_gpt ] || make -s pretrain_gpt
# The build without the flag, from the same sources (its own objects).
make -s VECT= BUILD=build/novect BIN=build/novect/ build/novect/pretrain_gpt > /dev/null
make -s EXTRA_CFLAGS=-DMT_NO_HUGE_PAGES BUILD=build/nothp BIN=build/nothp/ build/nothp/pretrain_gpt > /dev/null
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
echo "# tools/bench-opts.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), megatron.c $(git rev-parse --short HEAD 2>/dev/null || echo '?'), OMP_WAIT_POLICY=$OMP_WAIT_POLICY, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for s in "${shapes[@]}"; do
  if [ "$s" = small ]; then
    flags="--config configs/small.conf --data-order sequential"; it=${ITERS:-8}; rd=${ROUNDS:-4}
  else
    for f in out/bench_gpt2_124m.bin out/bench_gpt2_tokens.bin; do
      [ -f "$f" ] || { echo "tools/bench-opts.sh: $f is missing (make bench creates it)" >&2; exit 2; }
    done
    flags="--init-from out/bench_gpt2_124m.bin --train-data-path out/bench_gpt2_tokens.bin --seq-length 64 --micro-batch-size 4 --global-batch-size 4 --hidden-dropout 0 --attention-dropout 0 --data-order sequential"
    it=${ITERS:-6}; rd=${ROUNDS:-2}
  fi
  echo
  echo "## $s: 1 rank x 2 threads, native kernels, $it iterations x $rd rounds"
  echo
  NATIVE=1 ITERS=$it ROUNDS=$rd tools/bench-ab.sh \
    "everything on|$flags" \
    "--no-bias-gelu-fusion|$flags --no-bias-gelu-fusion" \
    "--no-bias-dropout-fusion|$flags --no-bias-dropout-fusion" \
    "--no-grad-norm-fusion|$flags --no-grad-norm-fusion" \
    "every fused sweep off (MT_INJECT_BUG=unfused)|$flags||MT_INJECT_BUG=unfused" \
    "without -fvect-cost-model=dynamic|$flags|build/novect/pretrain_gpt" \
    "without huge pages|$flags|build/nothp/pretrain_gpt"
done
