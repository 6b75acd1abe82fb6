#!/usr/bin/env bash
# suite_tables.sh: the parameter table drives everything. A copy of the
# sources gets one more per-layer tensor by adding one row to
# MT_LAYER_PARAMS (include/params.h) and nothing else; that build must
# allocate, initialise, shard (TP 2 x PP 2), train, checkpoint and reload it
# like any other tensor. The copy is deleted afterwards (the tensor removed).
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)
TREE="$T/tree"
rm -rf "$TREE"
mkdir -p "$TREE"
cp -r Makefile src include tools "$TREE"/

# The row: a (2h, h) matrix in two row blocks, column-parallel (each TP rank
# holds matching halves of both blocks), initialised N(0, std), with decay.
row='    X(dummy, "dummy.weight", H, H, NONE, H, ROWS, NORMAL, 1, ALWAYS, 0, "", 0, "") \'
# The new row goes first in the table (a macro continuation line).
awk -v row="$row" '/^ *X\(ln1w, / && !done { print row; done = 1 } { print }' include/params.h > "$TREE/include/params.h"
if [ "$(diff include/params.h "$TREE/include/params.h" | grep -c '^[<>]')" != 1 ]; then
  not_ok "table_edit_is_one_row" "the edit to params.h is not one added row: $(diff include/params.h "$TREE/include/params.h" | head -c 300)"
  exit 0
fi
ok "table_edit_is_one_row"
if ! make -C "$TREE" -j2 pretrain_gpt_fp64 > "$T/build.log" 2>&1; then
  not_ok "build_with_extra_tensor" "$(grep -m3 error "$T/build.log")"; exit 0
fi
ok "build_with_extra_tensor"
BIN="$TREE/pretrain_gpt_fp64"

# Dependencies come from the compiler: touching a header rebuilds exactly the
# sources that include it (found here by grep, independently of make).
for hdr in src/cpu/vmath.h include/params.h; do
  touch "$TREE/$hdr"
  want=$(cd "$TREE" && grep -rl --include='*.c' "$(basename "$hdr")" src | sort | tr '\n' ' ')
  [ "$hdr" = include/params.h ] && want=$(cd "$TREE" && for f in $(find src -name '*.c' | grep -v src/cuda); do
      gcc -MM -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-openmp $(mpicc --showme:compile) "$f" 2>/dev/null |
        grep -q 'include/params.h' && echo "$f"; done | sort | tr '\n' ' ')
  got=$(make -C "$TREE" -n pretrain_gpt_fp64 2>/dev/null | grep -o ' -c src/[a-z_/]*\.c' | sed 's/ -c //' | sort -u | tr '\n' ' ')
  if [ -n "$got" ] && [ "$got" = "$want" ]; then ok "touching_${hdr//\//_}_rebuilds_its_includers ($got)"
  else not_ok "touching_${hdr//\//_}_rebuilds_its_includers" "make would compile '$got', includers are '$want'"; fi
  make -C "$TREE" -j2 pretrain_gpt_fp64 > /dev/null 2>&1
done

BASE="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 10"
L4="--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2"
# The reference: one rank, 10 iterations straight. The layout: TP 2 x PP 2,
# 6 iterations, saved, then resumed for 4 more.
mt_run "$T/one" 1 "$BIN" $BASE --train-iters 0 > /dev/null 2>&1; cp "$T/one.st" "$T/init.st"
ok_runs=1
mt_run "$T/one" 1 "$BIN" $BASE || ok_runs=0
mt_run "$T/a" 4 "$BIN" $BASE $L4 --exit-interval 6 --save "$T/ckpt" || ok_runs=0
mt_run "$T/b" 4 "$BIN" $BASE $L4 --load "$T/ckpt" --save "$T/ckpt" || ok_runs=0
if [ $ok_runs = 0 ]; then not_ok "train_save_resume" "a run failed: $(tail -n 2 "$T/b.log")"; exit 0; fi

# A safetensors file read by numpy (an independent reader): st NAME FILE
# prints the tensor names, or with EXPR evaluates EXPR over tensors t[name].
PY=/usr/bin/python3
st() {
  $PY - "$@" <<'PYEOF'
import json, struct, sys
import numpy as np
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        dt = {"F64": np.float64, "F32": np.float32}[v["dtype"]]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).reshape(v["shape"])
    return out
if sys.argv[1] == "names":
    print("\n".join(sorted(load(sys.argv[2]))))
else:  # ratio NAME A B: final / initial, which must be one number for all elements
    a, b = load(sys.argv[3])[sys.argv[2]], load(sys.argv[4])[sys.argv[2]]
    r = b / a
    print("%.17g %.3g" % (r.mean(), r.max() - r.min()))
PYEOF
}

# The tensor is in the checkpoint, with its moments, for every layer.
names=$(st names "$T/ckpt/iter_0000010/model.safetensors" | grep -c '^h\.[0-3]\.dummy\.weight$')
moments=$(st names "$T/ckpt/iter_0000010/optimizer.safetensors" | grep -c '^h\.[0-3]\.dummy\.weight\.exp_avg')
if [ "$names" = 4 ] && [ "$moments" = 8 ]; then ok "checkpoint_holds_the_tensor (4 layers, 8 moments)"
else not_ok "checkpoint_holds_the_tensor" "found $names tensors and $moments moments, want 4 and 8"; fi

# TP 2 x PP 2 with a save and a reload trained the same model as one rank
# (fp64 bounds of the layout suite), the new tensor included.
why=$(compare_losses "$T/one.json" <(cat "$T/a.json" "$T/b.json") 1e-10) &&
  tools/compare "$T/one.st" "$T/b.st" --max-abs 1e-9 > "$T/cmp.log" 2>&1
if [ $? = 0 ]; then ok "tp2_pp2_resumed_equals_one_rank ($why)"
else not_ok "tp2_pp2_resumed_equals_one_rank" "$why $(tail -n 3 "$T/cmp.log" | tr '\n' ' ')"; fi

# It was trained: with no gradient (nothing reads it), AdamW's update is
# lr_t * wd * p, so every element shrank by the same factor prod(1 - lr_t wd)
# (tiny.conf: lr 1e-3, 2 warm-up iterations, cosine to 0 over 10; wd 0.01).
want=$(awk 'BEGIN { pi = atan2(0, -1); f = 1
  for (it = 1; it <= 10; it++) { n = it - 1
    if (n <= 2) lr = 1e-3 * n / 2; else lr = 0.5 * (cos(pi * (n - 2) / 8) + 1) * 1e-3
    f *= 1 - lr * 0.01 }
  printf "%.17g", f }')
read -r got spread < <(st ratio h.2.dummy.weight "$T/init.st" "$T/b.st")
if awk -v g="$got" -v s="$spread" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d < 1e-12 && s < 1e-12) }'; then
  ok "decayed_by_the_optimizer (final/initial $got for every element, formula $want)"
else not_ok "decayed_by_the_optimizer" "final/initial '$got' (spread $spread), formula $want"; fi

rm -rf "$TREE"
[ ! -e "$TREE" ] && ok "extra_tensor_removed"
