#!/usr/bin/env bash
# suite_cp.sh: context parallelism's checkpoints and its refusals. (Its
# layout rows and negative controls are in suite_layouts.sh, its exchanges in
# test_comm.c, its attention blocks in test_flash.c.)
#  - a checkpoint saved under CP 2 x TP 2 loads into one rank and into CP 4
#    with every parameter and moment bitwise as saved (the files are
#    unsharded), and training resumed there equals training straight
#    through (fp64 bounds of docs/design.md §1);
#  - a sequence length that is not a multiple of 2C is refused with the rule.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)
BASE="--config configs/tiny.conf --data-path ${c}_train.bin --hidden-dropout 0.1"
B=./pretrain_gpt_fp64
mt_run "$T/straight" 4 $B $BASE --context-parallel-size 2 --tensor-model-parallel-size 2 --sequence-parallel \
  || not_ok cp_straight_run "$(tail -n 2 "$T/straight.log")"
mt_run "$T/saved" 4 $B $BASE --context-parallel-size 2 --tensor-model-parallel-size 2 --sequence-parallel \
  --exit-interval 5 --save "$T/ckpt" || not_ok cp_save_run "$(tail -n 2 "$T/saved.log")"
# The parameters of a --dump-step file (its .grad tensors aside) against a dump.
same_params() {
  /usr/bin/python3 - "$1" "$2" <<'PYEOF'
import json, struct, sys
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), {k: v for k, v in load(sys.argv[2]).items() if not k.endswith(".grad")}
bad = [k for k in a if a[k] != b.get(k)] + [k for k in b if k not in a]
print("%d tensors, %d differ%s" % (len(a), len(bad), (": " + ", ".join(bad[:3])) if bad else ""))
sys.exit(1 if bad or not a else 0)
PYEOF
}
for lay in "1" "4 --context-parallel-size 4"; do
  set -- $lay; np=$1; shift; name=cp2_tp2_into_np${np}${1:+_cp4}
  # Loaded and resumed for 5 more; the parameters dumped before iteration
  # 6's update are the saved ones, bitwise.
  mt_run "$T/$name" $np $B $BASE "$@" --load "$T/ckpt" --dump-step 6 --dump-dir "$T/$name.dump" > /dev/null 2>&1
  if why=$(same_params "$T/saved.st" "$T/$name.dump/step_6.safetensors"); then ok "${name}_loads_bitwise ($why)"
  else not_ok "${name}_loads_bitwise" "$why $(grep -m1 error "$T/$name.log")"; fi
  # ... and the resumed run equals the straight CP 2 x TP 2 run.
  why=$(compare_losses <(tail -n 5 "$T/straight.json") "$T/$name.json" 1e-10) &&
    tools/compare "$T/straight.st" "$T/$name.st" --max-abs 1e-9 > "$T/$name.cmp" 2>&1
  if [ $? = 0 ]; then ok "${name}_resumes_as_straight ($why)"
  else not_ok "${name}_resumes_as_straight" "$why $(tail -n 2 "$T/$name.cmp" | tr '\n' ' ')"; fi
done

# seq 16 with CP 3: 16 is not a multiple of 6.
timeout 30 $MPIRUN 3 ./pretrain_gpt $BASE --context-parallel-size 3 > "$T/bad.out" 2> "$T/bad.err"; rc=$?
if [ $rc = 2 ] && [ "$(grep -vc '^note:' "$T/bad.err")" = 1 ] &&
   grep -q "seq-length (16) must be a multiple of 2 x --context-parallel-size (6)" "$T/bad.err"; then
  ok "seq_not_multiple_of_2C_refused ($(cat "$T/bad.err"))"
else not_ok seq_not_multiple_of_2C_refused "exit $rc: $(head -c 300 "$T/bad.err")"; fi
# a2a needs the heads per TP rank divisible by C: 4 heads / TP 2 = 2, C 4.
timeout 30 $MPIRUN 8 ./pretrain_gpt $BASE --context-parallel-size 4 --cp-comm-type a2a --tensor-model-parallel-size 2 \
  --seq-length 16 > "$T/bad2.out" 2> "$T/bad2.err"; rc=$?
if [ $rc = 2 ] && grep -q "cp-comm-type a2a needs the heads (2)" "$T/bad2.err"; then ok "a2a_heads_not_divisible_refused"
else not_ok a2a_heads_not_divisible_refused "exit $rc: $(head -c 300 "$T/bad2.err")"; fi

# --cp-comm-type allgather attends to the gathered blocks with the ring's
# kernels in the ring's order: its forward is the ring's bit for bit (the
# first loss, before any update, at CP 4), while the backward sums each
# block's dK|dV by reduce-scatter instead of along the ring (equal to one
# rank within the layout bounds: suite_layouts).
first_loss() { grep -m1 -o '"lm_loss": [^,]*' "$1"; }
mt_run "$T/ring4" 4 $B $BASE --context-parallel-size 4 --train-iters 1 &&
  mt_run "$T/ag4" 4 $B $BASE --context-parallel-size 4 --cp-comm-type allgather --train-iters 1
rc=$?
a=$(first_loss "$T/ring4.json"); g=$(first_loss "$T/ag4.json")
if [ $rc = 0 ] && [ -n "$a" ] && [ "$a" = "$g" ] && grep -q 'CP 4 (allgather)' "$T/ag4.log"; then
  ok "allgather_forward_is_the_ring_bitwise ($g)"
else not_ok allgather_forward_is_the_ring_bitwise "exit $rc: ring '$a', allgather '$g'"; fi
