#!/usr/bin/env bash
# tools/gpu-pack.sh: everything tools/gpu-check.sh needs on a GPU machine
# that has CUDA but no MPI, no OpenBLAS and no package archive, packed into
# .dev/ (add `/.dev/` to .git/info/exclude; carry .dev along):
#   .dev/mpi-blas.tar.xz          this machine's Open MPI + OpenBLAS (tools/device-bundle.sh)
#   .dev/bins.tar.gz              the trainers, op tests and tools, built from a
#                                 copy of the working tree with MARCH=x86-64-v3
#                                 (any x86-64 with AVX2) and CUDA_ARCH (default 90)
#   .dev/corpus_{train,val}.bin   the test corpus (tests/lib.sh's)
# Then, on the GPU machine, in the repository root: `OUT=DIR tools/gpu-check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${CUDA_ARCH:-90}
mkdir -p .dev
tools/device-bundle.sh .dev
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$src"
targets=(pretrain_gpt pretrain_gpt_cuda build/fp64/tests/backend_ops build/fp32/tests/backend_ops
         build/cuda/tests/backend_ops tools/compare tools/prepare_data)
make -C "$src" -s -j"$(nproc --all)" MARCH=x86-64-v3 CUDA=1 CUDA_ARCH="$arch" "${targets[@]}"
tar -C "$src" -czf .dev/bins.tar.gz "${targets[@]}"
# The corpus tests/lib.sh would prepare (64 KiB of the default dataset).
[ -f data/fortunes.txt ] || tools/get-data.sh > /dev/null
head -c 65536 data/fortunes.txt > "$src/corpus.txt"
tools/prepare_data "$src/corpus.txt" "$src/corpus" > /dev/null
cp "$src/corpus_train.bin" "$src/corpus_val.bin" .dev/
echo "gpu-pack: .dev/ ready ($(du -sh .dev | cut -f1)); on the GPU machine: OUT=DIR tools/gpu-check.sh"
