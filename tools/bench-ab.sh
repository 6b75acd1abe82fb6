#!/usr/bin/env bash
# tools/bench-ab.sh 'LABEL|FLAGS[|BINARY[|ENV]]' ...: step times of two or
# more trainer runs side by side, as a Markdown table. BINARY (default
# ./pretrain_gpt) compares builds, e.g. a copy of the one before a change;
# ENV is VAR=VALUE words for that row alone (e.g. MT_INJECT_BUG=unfused). The rows' runs
# alternate for ROUNDS rounds, so that a change in the machine's load hits
# every row alike, and every other round runs them in reverse (A, B, C, then
# C, B, A): the place in a round mattered by 3-4% here (docs/design.md,
# "The gradient norm as each gradient becomes final"), so use an even
# ROUNDS. Each run trains ITERS iterations on
# one rank x THREADS threads and the median skips each run's first 2
# iterations. The ratio column is each row against the first.
#   ITERS=8 ROUNDS=4 THREADS=2    the defaults
#   NATIVE=1                      OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
#                                 for the runs (the user's own kernels)
# e.g. tools/bench-ab.sh 'fp32|--config configs/small.conf' 'bf16|--config configs/small.conf --bf16'
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -ge 2 ] || { echo "usage: tools/bench-ab.sh 'LABEL|FLAGS' 'LABEL|FLAGS' ..." >&2; exit 2; }
[ -x ./pretrain_gpt ] || { echo "tools/bench-ab.sh: ./pretrain_gpt is missing (run make)" >&2; exit 2; }
for row in "$@"; do
  [[ "$row" == *"|"* ]] || { echo "tools/bench-ab.sh: '$row' is not LABEL|FLAGS" >&2; exit 2; }
  IFS='|' read -r _ _ bin rowenv <<< "$row"
  [ -z "$bin" ] || [ -x "$bin" ] || { echo "tools/bench-ab.sh: '$bin' is not an executable" >&2; exit 2; }
  for w in $rowenv; do [[ "$w" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "tools/bench-ab.sh: '$w' in '${row%%|*}' is not VAR=VALUE" >&2; exit 2; }; done
done
[ -f data/fortunes_train.bin ] || tools/get-data.sh > /dev/null
ITERS=${ITERS:-8}; ROUNDS=${ROUNDS:-4}; THREADS=${THREADS:-2}
[ $((ROUNDS % 2)) = 0 ] || echo "tools/bench-ab.sh: warning: ROUNDS=$ROUNDS is odd, so the first row takes the first place once more than the others" >&2
envcmd=(env OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS")
[ "${NATIVE:-0}" = 1 ] && envcmd=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rows=("$@")
for r in $(seq "$ROUNDS"); do
  order=$(seq "$#"); [ $((r % 2)) = 0 ] && order=$(seq "$#" -1 1)
  for i in $order; do
    row=${rows[$((i - 1))]}
    IFS='|' read -r _ flags bin rowenv <<< "$row"
    # shellcheck disable=SC2086
    "${envcmd[@]}" $rowenv "${bin:-./pretrain_gpt}" $flags --train-iters "$ITERS" --eval-interval 0 \
      --metrics-file "$tmp/$i.$r.json" > "$tmp/$i.$r.log" 2>&1 ||
      { echo "tools/bench-ab.sh: '${row%%|*}' failed: $(tail -n 1 "$tmp/$i.$r.log")" >&2; exit 1; }
  done
done
median() {
  for f in "$tmp/$1".*.json; do sed -n 's/.*"ms_per_iter": \([0-9.]*\).*/\1/p' "$f" | tail -n +3; done |
    sort -g | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
echo "| run | ms/iteration (median) | against the first |"
echo "|---|---|---|"
i=0; first=
for row in "$@"; do
  i=$((i + 1)); m=$(median "$i"); first=${first:-$m}
  echo "| ${row%%|*} | $m | $(awk -v a="$first" -v b="$m" 'BEGIN { printf "%.2f", b / a }') |"
done
