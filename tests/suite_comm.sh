#!/usr/bin/env bash
# suite_comm.sh: exact collective tests (tests/test_comm.c) at TP 2, 3 and 4,
# both builds.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
for prec in fp64 fp32; do
  for np in 2 3 4; do
    out=$(timeout 60 $MPIRUN $np build/$prec/tests/test_comm 2>&1); rc=$?
    echo "$out" | grep -E '^(ok|not ok) ' | sed "s|^\(not \)\{0,1\}ok |&tp${np}/$prec/|"
    [ $rc = 0 ] || not_ok "comm_tp${np}_$prec" "exit code $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
  done
done

# Counters against the formulas for the tiny model (TP 2, one stage, fp64, so
# 8-byte elements): L=4 layers, M=4 micro-batches of b=2, s=16, h=32, n=s*b.
# The expected numbers are worked out here from the paper's per-layer counts
# (Korthikanti et al. 2022, §4.2.2), independently of src/account.c.
L=4; M=4; n=32; h=32; e=8
c=$(test_corpus)
run_comm() { timeout 60 $MPIRUN 2 ./pretrain_gpt_fp64 --config configs/tiny.conf --data-path ${c}_train.bin \
  --train-iters 1 --log-comm --tensor-model-parallel-size 2 "$@" 2>&1; }
# expect_row OUT NAME GROUP COLL CALLS BYTES
expect_row() {
  local got; got=$(echo "$1" | awk -v g="$3" -v c="$4" '/^comm rank 0 /{r=1} /^comm check rank 0/{r=0} r && $1==g && $2" "$3==c {print $3" "$4; exit} r && $1==g && $2==c {print $3" "$4; exit}')
  if [ "$got" = "$5 $6" ]; then ok "$2"; else not_ok "$2" "$3 $4: measured '$got', formula says '$5 $6'"; fi
}
out=$(run_comm)
# No SP: 4 all-reduces of n*h per layer and micro-batch, + embedding f̄ and
# head f backward (n*h each), + the MAX (n) and SUM (2n) of cross-entropy.
expect_row "$out" counters_tp2_allreduce_formula tp all-reduce $((M * (4 * L + 2) + 2 * M)) $(( (M * (4 * L + 2) * n * h + M * 3 * n) * e ))
echo "$out" | grep -q "comm check rank 1: measured == predicted" && ok counters_tp2_rank1_match || not_ok counters_tp2_rank1_match "rank 1 differs"
out=$(run_comm --sequence-parallel)
# SP: per layer 2 all-gathers + 2 reduce-scatters forward, 2 reduce-scatters +
# 2 all-gathers backward, + 2 all-gathers re-gathering LN outputs; embedding
# and head one of each; the SP-partial gradients (LN w/b x2, 2 row-parallel
# biases per layer, ln_f w/b, wpe 16x32) summed by one all-reduce.
sp_elems=$(( L * 6 * h + 2 * h + 16 * h ))
expect_row "$out" counters_tp2_sp_allgather_formula tp all-gather $((M * (6 * L + 2))) $((M * (6 * L + 2) * n * h * e))
expect_row "$out" counters_tp2_sp_reducescatter_formula tp reduce-scatter $((M * (4 * L + 2))) $((M * (4 * L + 2) * n * h * e))
expect_row "$out" counters_tp2_sp_allreduce_formula tp all-reduce $((1 + 2 * M)) $(( (sp_elems + M * 3 * n) * e ))

# CP 2 with --cp-comm-type allgather (no TP): each rank holds n/2 = 16 rows,
# its K|V block 16 x 2h; the gathered tensor is 2 blocks. Every layer
# forward and backward gathers (M * 2L calls), every backward
# reduce-scatters the blocks' gradients (M * L calls).
out=$(timeout 60 $MPIRUN 2 ./pretrain_gpt_fp64 --config configs/tiny.conf --data-path ${c}_train.bin \
  --train-iters 1 --log-comm --context-parallel-size 2 --cp-comm-type allgather 2>&1)
kv=$(( 2 * (n / 2) * 2 * h ))
expect_row "$out" counters_cp2_allgather_gather_formula cp all-gather $((M * 2 * L)) $((M * 2 * L * kv * e))
expect_row "$out" counters_cp2_allgather_reduce_scatter_formula cp reduce-scatter $((M * L)) $((M * L * kv * e))
[ "$(echo "$out" | grep -c '^comm check rank [01]: measured == predicted')" = 2 ] && ok counters_cp2_allgather_both_ranks_match ||
  not_ok counters_cp2_allgather_both_ranks_match "$(echo "$out" | grep -m2 '^comm check')"

# CP 4 as a2a+p2p 2 x 2 (no TP): each rank holds n/4 = 8 rows. The
# all-to-all level (2 ranks) moves QKV (3h a row) to heads and the output
# (h) back per forward, and in backward the output's gradient, QKV and the
# output to heads and QKV's gradient back: 3L of each a micro-batch, each
# call the rank's whole buffer. The ring level (2 ranks) hops K|V blocks of
# 2 ranks' rows for half the heads (8 x 2h values): (P-1)L forward,
# (P-1)L + PL backward.
out=$(timeout 60 $MPIRUN 4 ./pretrain_gpt_fp64 --config configs/tiny.conf --data-path ${c}_train.bin \
  --train-iters 1 --log-comm --context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2 2>&1)
r=$(( n / 4 ))
expect_row "$out" counters_cp4_a2a_p2p_all_to_all_formula cpa2a all-to-all $((M * 3 * L * 2)) $(( (M * 3 * L * r * 3 * h + M * 3 * L * r * h) * e ))
expect_row "$out" counters_cp4_a2a_p2p_ring_formula cpp2p send $((M * (L + 3 * L))) $((M * 4 * L * r * 2 * h * e))
[ "$(echo "$out" | grep -c '^comm check rank [0-3]: measured == predicted')" = 4 ] && ok counters_cp4_a2a_p2p_all_ranks_match ||
  not_ok counters_cp4_a2a_p2p_all_ranks_match "$(echo "$out" | grep -m4 '^comm check')"
