# tests/lib.sh: shared helpers of the script suites (sourced, not run).
# Each check prints "ok NAME" or "not ok NAME: reason" (tests/run.sh counts).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
T=${MT_TEST_TMP:-/tmp/mt-test}/$(basename "$0" .sh)
mkdir -p "$T"
MPIRUN=tools/mpirun.sh
# Runs of several ranks share the two cores: one thread per rank.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

ok() { echo "ok $1"; }
not_ok() { echo "not ok $1: $2"; }

# The test corpus: 64 KiB of the default dataset's text (Debian's fortunes),
# prepared once per test run into $MT_TEST_TMP/corpus_{train,val}.bin.
test_corpus() {
  local dir=${MT_TEST_TMP:-/tmp/mt-test}
  if [ ! -f "$dir/corpus_train.bin" ]; then
    [ -f data/fortunes.txt ] || tools/get-data.sh > /dev/null
    head -c 65536 data/fortunes.txt > "$dir/corpus.txt"
    tools/prepare_data "$dir/corpus.txt" "$dir/corpus" > /dev/null
  fi
  echo "$dir/corpus"
}

# The tiny model of the layout tests: 4 layers (PP up to 4, interleaving),
# 4 heads (TP up to 4), seq 16 (SP up to 4), vocabulary 256 padded to 288 (divisor 96) so
# the last TP shard holds padding columns.
tiny_model() {
  local c; c=$(test_corpus)
  echo "--num-layers 4 --hidden-size 32 --num-attention-heads 4 --seq-length 16 --vocab-size 256 --make-vocab-size-divisible-by 96" \
       "--train-data-path ${c}_train.bin --data-order sequential --train-iters 10 --lr 1e-3" \
       "--lr-warmup-iters 2 --lr-decay-style cosine --micro-batch-size 2 --global-batch-size 8"
}

# mt_run OUT NP BIN ARGS...: trains, writing OUT.json (metrics), OUT.st
# (final parameters, this build's precision) and OUT.log; returns the exit code.
mt_run() {
  local out=$1 np=$2 bin=$3; shift 3
  rm -f "$out.json" "$out.st"
  timeout --kill-after=5 300 $MPIRUN "$np" "$bin" "$@" --metrics-file "$out.json" --dump-params "$out.st" > "$out.log" 2>&1
}

# metrics_iters FILE: a --metrics-file's iteration lines, without the
# configuration records (one per start, first line of a fresh run).
metrics_iters() { grep '^{"iteration"' "$1"; }

# compare_losses A.json B.json RELTOL: every iteration's lm_loss agrees.
compare_losses() {
  awk -v tol="$3" '
    FNR == NR { if (match($0, /"lm_loss": [^,]*/)) a[++na] = substr($0, RSTART + 11, RLENGTH - 11); next }
    { if (match($0, /"lm_loss": [^,]*/)) b[++nb] = substr($0, RSTART + 11, RLENGTH - 11) }
    END {
      if (na == 0 || na != nb) { printf "iteration count %d vs %d\n", na, nb; exit 1 }
      worst = 0; wi = 0
      for (i = 1; i <= na; i++) {
        d = a[i] - b[i]; if (d < 0) d = -d; r = d / (a[i] < 0 ? -a[i] : a[i])
        if (r != r || r > worst) { worst = r; wi = i }
        if (!(r <= tol)) { printf "iteration %d: loss %s vs %s, rel diff %.3g > %g\n", i, a[i], b[i], r, tol; exit 1 }
      }
      printf "worst loss rel diff %.3g (iteration %d)\n", worst, wi
    }' "$1" "$2"
}
