#!/usr/bin/env bash
# tools/gpu-check.sh: the GPU checks, as run on a GPU machine that has CUDA
# but no MPI, no OpenBLAS and no package archive (README "CUDA backend").
# tools/gpu-pack.sh prepares .dev/ on a machine with Open MPI, OpenBLAS and
# nvcc: mpi-blas.tar.xz (tools/device-bundle.sh), bins.tar.gz (the binaries,
# built with MARCH=x86-64-v3), corpus_{train,val}.bin (the test corpus).
# Runs tests/suite_backend.sh (the CUDA op table, the tiny model against the
# CPU, TP/SP/PP/DP and the blocked attention on one GPU) and
# tools/bench-cuda.sh; logs land in $OUT (default /tmp/gpu-check).
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT" /opt/mt
tar -xJf .dev/mpi-blas.tar.xz -C /opt/mt && source /opt/mt/env.sh && tar -xzf .dev/bins.tar.gz || exit 9
nv=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$(dirname "$nv")")/lib64
nvidia-smi -L
ldd ./pretrain_gpt_cuda ./pretrain_gpt | grep 'not found'
export MT_TEST_TMP=/tmp/mtt
mkdir -p $MT_TEST_TMP && cp .dev/corpus_*.bin $MT_TEST_TMP/
MT_CUDA_PREBUILT=1 timeout 300 tests/run.sh backend 2>&1 | tee "$OUT/suite.log"
nvidia-smi -L > /dev/null 2>&1 && timeout "${BENCH_TIMEOUT:-300}" tools/bench-cuda.sh 2>&1 | tee "$OUT/bench.log"
tar -czf "$OUT/logs.tgz" out $MT_TEST_TMP 2>/dev/null
true
