#!/usr/bin/env bash
# tools/run-demo.sh: what `make run` does. Prepares the default data if it is
# missing, then trains configs/demo.conf on 4 ranks as TP 2 x PP 2 with
# sequence parallelism, one thread per rank on small machines.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/fortunes_train.bin ] && [ -f data/fortunes_val.bin ] || tools/get-data.sh
mkdir -p out
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "+ tools/mpirun.sh 4 ./pretrain_gpt --config configs/demo.conf --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel --log-layout --log-memory --export-llmc out/demo_model.bin --save out/demo_ckpt $*"
exec tools/mpirun.sh 4 ./pretrain_gpt --config configs/demo.conf \
  --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel \
  --log-layout --log-memory --export-llmc out/demo_model.bin --save out/demo_ckpt "$@"
