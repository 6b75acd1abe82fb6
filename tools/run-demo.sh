#!/usr/bin/env bash
# tools/run-demo.sh: what `make run` does. Prepares the default data if it is
# missing, then trains configs/demo.conf on 4 ranks as TP 2 x PP 2 with
# sequence parallelism, one thread per rank on small machines.
# The model and checkpoint go to out/ (MT_DEMO_OUT=DIR elsewhere: the test
# suite points it at its own temporary directory, so `make test` never
# replaces the model a user trained with `make run`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/fortunes_train.bin ] && [ -f data/fortunes_val.bin ] || tools/get-data.sh
o=${MT_DEMO_OUT:-out}
mkdir -p "$o"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "+ tools/mpirun.sh 4 ./pretrain_gpt --config configs/demo.conf --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel --log-layout --log-memory --export-llmc $o/demo_model.bin --save $o/demo_ckpt $*"
exec tools/mpirun.sh 4 ./pretrain_gpt --config configs/demo.conf \
  --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel \
  --log-layout --log-memory --export-llmc "$o/demo_model.bin" --save "$o/demo_ckpt" "$@"
