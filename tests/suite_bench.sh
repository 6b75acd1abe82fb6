#!/usr/bin/env bash
# suite_bench.sh: make bench's machinery (tools/bench.sh --smoke) and
# tools/sgemm_bench's shapes and core. No timing asserts: the kernels the
# report runs, its rows, and that out/ is left alone.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
[ -x tools/sgemm_bench ] || make -s tools/sgemm_bench > /dev/null
# ---- make bench's machinery (tools/bench.sh --smoke): no timing asserts ----------
# One thread, PASSIVE waiting (a shared machine), the test corpus, a
# temporary output directory; out/bench.md must stay as it was.
bw="$T/bench"; mkdir -p "$bw"
before=$(stat -c %Y out/bench.md 2>/dev/null || echo none)
OMP_WAIT_POLICY=PASSIVE BENCH_THREADS=1 BENCH_ROUNDS=2 BENCH_OUT="$bw" BENCH_DATA="$(test_corpus)_train.bin" \
  timeout 600 tools/bench.sh --smoke > "$bw/out.md" 2> "$bw/err.txt"; rc=$?
pin=$(tools/sgemm_bench --core | awk '{ print $2 }')
nat=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE tools/sgemm_bench --core | awk '{ print $2 }')
why=""
[ $rc = 0 ] || why="exit $rc: $(tail -n 1 "$bw/err.txt")"
grep -q "^- CPU features: [a-z]" "$bw/out.md" || why="$why; no CPU features line"
grep -q "^| sgemm ceiling, small ([0-9]*x[0-9]*x[0-9]* [nt][nt]) " "$bw/out.md" || why="$why; no ceiling row from the model's shapes"
# The headline kernel's files and row label: native when a pin makes two
# kernels, else the one kernel OpenBLAS picks ("default", its core's name).
tag=default; klab="$nat"
if [ -n "${OPENBLAS_CORETYPE:-}" ] && [ "$pin" != "$nat" ]; then
  tag=native; klab="native $nat"
  # Both kernels, the native one first (the headline), each sgemm run on its own core.
  first=$(grep -m1 -oE 'native [A-Za-z0-9]+ \(headline\)|pinned [A-Za-z0-9]+' "$bw/out.md" | head -n 1)
  [ "$first" = "native $nat (headline)" ] || why="$why; headline is '$first', not native $nat"
  [ "$(grep -c "megatron.c, pinned $pin" "$bw/out.md")" -ge 3 ] || why="$why; pinned rows missing"
  grep -q "core $nat)" "$bw/sgemm_small_native.txt" && grep -q "core $pin)" "$bw/sgemm_small_pinned.txt" || why="$why; sgemm ran the wrong core"
  grep -q 'env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE' "$bw/out.md" || why="$why; native command not listed"
  env | grep -q "^OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE$" || why="$why; the test's environment changed"
else
  [ "$(grep -c '| sgemm ceiling, small' "$bw/out.md")" = 1 ] || why="$why; two kernels although none is pinned"
fi
grep -q "DP 2 + overlap" "$bw/out.md" || why="$why; no DP 2 + overlap row"
# Two rounds of the layouts (--smoke's two: 1 rank, DP 2 + overlap), the
# second in reverse, so the 1-rank run is not always first.
order=$(grep -oE "^bench: par_${tag}_[0-9]+_[0-9]+:" "$bw/err.txt" | sed "s/^bench: par_${tag}_//; s/:$//" | tr '\n' ' ')
[ "$order" = "0_1 1_1 1_2 0_2 " ] || why="$why; layout runs in the order '$order', not '0_1 1_1 1_2 0_2 '"
grep -q "best of 2 round(s), every layout once per round, in reverse every other round" "$bw/out.md" || why="$why; the layouts' line does not say the order"
grep -qE "^1 rank 1\.00; DP 2 \+ overlap [0-9]+\.[0-9]{2} \(round by round: [0-9]+\.[0-9]{2} [0-9]+\.[0-9]{2}\); $" "$bw/out.md" ||
  why="$why; layout ratios without each round's: '$(grep -m1 '^1 rank 1' "$bw/out.md")'"

# The GEMM-only bounds, recomputed here from the sgemm lines: the 12
# per-layer GEMMs x 4 layers plus the LM head's 3, in milliseconds, each
# pair's third (the weight gradient) at its beta-1 time; at the best
# repetitions (column 6) and at the median ones on cold operands (column 8
# of the --cold runs).
for w in best::6 median:_cold:8; do
  IFS=: read -r which sfx col <<< "$w"
  want=$(awk -v c=$col '$1 != "sgemm" { next } FNR == NR { tn[++j] = $c; next } { i++; ms += (i <= 12 ? 4 : 1) * (i % 3 == 0 ? tn[i / 3] : $c) } END { printf "%.1f", ms }' \
    "$bw/sgemm_small_$tag${sfx}_beta1.txt" "$bw/sgemm_small_$tag$sfx.txt" 2>/dev/null)
  got=$(grep -m1 "^| small: .* | GEMMs only, at the $which rates .* | bound: sgemm_bench, $klab " "$bw/out.md" | awk -F' [|] ' '{ print $4 }')
  [ -n "$want" ] && [ "$got" = "$want" ] || why="$why; GEMM-only bound row ($which) '$got' ms, recomputed '$want'"
done
grep -q '^# sgemm_bench: .*, cold operands' "$bw/sgemm_small_${tag}_cold.txt" || why="$why; the cold bound's runs were not --cold"
grep -q '^- weight-gradient GEMMs (tn) with beta 1, .*: best [0-9.]* (' "$bw/out.md" || why="$why; no beta-1 line"
# The headline run's GEMMs, timed inside it after the warm-up: --smoke times
# one step (3 steps, 2 warm-up), i.e. exactly the small model's 12 x 4 + 3.
grep -q '^| small: .* | GEMMs inside those steps (tools/gemm_profile.so: 51 calls; a step [0-9.]\+ ms on average, -\?[0-9.]\+ of them outside the GEMMs; .*) | .* | [0-9.]\+ | | [0-9.]\+ | [0-9]\+% |' "$bw/out.md" ||
  why="$why; in-step GEMM row: '$(grep -m1 'GEMMs inside' "$bw/out.md")'"
[ "$(stat -c %Y out/bench.md 2>/dev/null || echo none)" = "$before" ] || why="$why; out/bench.md was rewritten"
[ -z "$why" ] && ok "bench_smoke (kernels: ${OPENBLAS_CORETYPE:+pinned $pin, }native $nat)" || not_ok bench_smoke "$why"

# sgemm_bench's shape syntax: MxNxK:LAYOUT runs that layout only; bad input exits 2.
out=$(OPENBLAS_NUM_THREADS=1 tools/sgemm_bench --reps 1 16x24x8:tn 8x8x8 | awk '$1 == "sgemm" { print $2 "x" $3 "x" $4 ":" $5 }' | tr '\n' ' ')
tools/sgemm_bench 3x3x3:zz > /dev/null 2>&1; rc1=$?
tools/sgemm_bench 3x3 > /dev/null 2>&1; rc2=$?
tools/sgemm_bench --beta 2 3x3x3 > /dev/null 2>&1; rc3=$?
b1=$(OPENBLAS_NUM_THREADS=1 tools/sgemm_bench --reps 1 --beta 1 8x8x8:tn | grep -c '^# sgemm_bench: .*, beta 1$')
# Best and median: the median time (column 8) is never below the best (6);
# --cold says so in its header and times the same products.
med=$(OPENBLAS_NUM_THREADS=1 tools/sgemm_bench --reps 3 --cold 64x48x32:nt 32x32x32:tn |
  awk '/^# sgemm_bench: .*, cold operands/ { h = 1 } $1 == "sgemm" { n++; if ($8 < $6) bad++ } END { print h + 0, n + 0, bad + 0 }')
[ "$out" = "16x24x8:tn 8x8x8:nt 8x8x8:nn 8x8x8:tn " ] && [ $rc1 = 2 ] && [ $rc2 = 2 ] && [ $rc3 = 2 ] && [ "$b1" = 1 ] && [ "$med" = "1 2 0" ] && ok "sgemm_bench_shapes" ||
  not_ok sgemm_bench_shapes "got '$out', bad layout exit $rc1, bad shape exit $rc2, bad beta exit $rc3, beta-1 header $b1, --cold header/products/median under best '$med'"

# tools/bench-opts.sh and tools/bench-ab.sh refuse what they cannot run
# (exit 2, before any build or run): an unknown shape, an ENV word that is
# not VAR=VALUE.
tools/bench-opts.sh bogus > /dev/null 2>&1; rc1=$?
tools/bench-ab.sh 'a|--help' 'b|--help||notanassignment' > /dev/null 2> "$T/ab.err"; rc2=$?
[ $rc1 = 2 ] && [ $rc2 = 2 ] && grep -q "is not VAR=VALUE" "$T/ab.err" && ok bench_scripts_refuse_bad_rows ||
  not_ok bench_scripts_refuse_bad_rows "bench-opts exit $rc1, bench-ab exit $rc2: $(cat "$T/ab.err")"

# tools/bench-ab.sh runs its rows in reverse every other round (the place
# in a round moved ratios by 3-4%), and takes each row's median of its own
# runs. A stand-in trainer, in a copy of the tool's tree under $T, logs the
# order and reports rows a, b and c at 10, 30 and 20 ms per iteration.
ab="$T/abtree"; mkdir -p "$ab/tools" "$ab/data"
cp tools/bench-ab.sh "$ab/tools/"; : > "$ab/data/fortunes_train.bin"
cat > "$ab/pretrain_gpt" <<'FAKE'
#!/usr/bin/env bash
while [ $# -gt 0 ]; do [ "$1" = --metrics-file ] && out=$2; shift; done
echo "$ROW" >> "$ORDER_LOG"
for i in 1 2 3 4; do echo "{\"iteration\": $i, \"ms_per_iter\": $MS}" >> "$out"; done
FAKE
chmod +x "$ab/pretrain_gpt"
: > "$T/ab.order"
table=$(TMPDIR="$T" ORDER_LOG="$T/ab.order" ITERS=4 ROUNDS=4 "$ab/tools/bench-ab.sh" 'a|-x||ROW=a MS=10' 'b|-x||ROW=b MS=30' \
  'c|-x||ROW=c MS=20' 2> "$T/ab2.err")
order=$(tr '\n' ' ' < "$T/ab.order" 2>/dev/null)
if [ "$order" = "a b c c b a a b c c b a " ] && echo "$table" | grep -q '^| a | 10 | 1.00 |$' && echo "$table" | grep -q '^| b | 30 | 3.00 |$' &&
   echo "$table" | grep -q '^| c | 20 | 2.00 |$'; then
  ok "bench_ab_reverses_every_other_round ($order)"
else not_ok bench_ab_reverses_every_other_round "order '$order', table: $(echo "$table" | tail -n 2 | tr '\n' ' ') $(cat "$T/ab2.err")"; fi

# tools/gemm_profile.so (LD_PRELOAD) tallies a run's GEMMs by shape. Checked
# against the FLOP count of the model's linear layers, worked out here: per
# micro-batch of n tokens, forward, input gradient and weight gradient each
# cost 2 n x (every linear weight), i.e. 6 n (L (3h h + h h + 4h h + 4h h) +
# Vp h). The tiny model: L 4, h 32, vocab 256 (padded 256), n = 2 x 16, 4
# micro-batches per step, 2 steps. Attention's (s, hd)-sized products are
# left out (any dimension under 32), so its kernel may change freely.
[ -f tools/gemm_profile.so ] || make -s tools/gemm_profile.so > /dev/null
LD_PRELOAD=tools/gemm_profile.so OMP_WAIT_POLICY=PASSIVE ./pretrain_gpt --config configs/tiny.conf \
  --data-path "$(test_corpus)_train.bin" --train-iters 2 > /dev/null 2> "$T/gp.err"; rc=$?
# linear_flops FILE: the FLOPs of a report's products with every dimension
# 32 or more; total_calls FILE: its call count.
linear_flops() { awk '$2 ~ /gemm$/ && $3 >= 32 && $4 >= 32 && $5 >= 32 { split($0, a, " calls "); split(a[2], b, " "); f += 2 * $3 * $4 * $5 * b[1] } END { printf "%.0f", f }' "$1"; }
total_calls() { sed -n 's/^gemm_profile\[[0-9]*\]: total calls \([0-9]*\) .*/\1/p' "$1"; }
got=$(linear_flops "$T/gp.err")
want=$(awk 'BEGIN { L = 4; h = 32; Vp = 256; n = 32; printf "%.0f", 2 * 4 * 6 * n * (L * 12 * h * h + Vp * h) }')
total=$(grep -c 'gemm_profile\[[0-9]*\]: total calls [1-9]' "$T/gp.err")
[ $rc = 0 ] && [ "$got" = "$want" ] && [ "$total" = 1 ] && ok "gemm_profile_counts_the_linear_layers ($got FLOPs)" ||
  not_ok gemm_profile_counts_the_linear_layers "exit $rc, linear-layer FLOPs $got, want $want, total lines $total: $(tail -n 2 "$T/gp.err")"
# GEMM_PROFILE_SKIP_CALLS=N leaves the first N calls out (make bench: the
# warm-up steps): skipping the first of the two steps' calls leaves half of
# the calls and half of the linear layers' FLOPs.
calls=$(total_calls "$T/gp.err")
LD_PRELOAD=tools/gemm_profile.so GEMM_PROFILE_SKIP_CALLS=$((calls / 2)) OMP_WAIT_POLICY=PASSIVE ./pretrain_gpt --config configs/tiny.conf \
  --data-path "$(test_corpus)_train.bin" --train-iters 2 > /dev/null 2> "$T/gp2.err"; rc=$?
got2=$(linear_flops "$T/gp2.err")
calls2=$(total_calls "$T/gp2.err")
[ $rc = 0 ] && [ -n "$calls" ] && [ $((calls % 2)) = 0 ] && [ "$calls2" = $((calls / 2)) ] && [ "$got2" = $((want / 2)) ] &&
  ok "gemm_profile_skips_the_first_calls ($calls2 of $calls)" ||
  not_ok gemm_profile_skips_the_first_calls "exit $rc, calls $calls2 of '$calls', linear-layer FLOPs $got2, want $((want / 2))"
