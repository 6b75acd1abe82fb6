#!/usr/bin/env bash
# tests/fuzz/coverage.sh [CORPUS_ROOT]: line and branch coverage of the code
# under test reached by the fuzz corpora (docs/fuzzing.md). Builds each
# harness with clang's source-based coverage (no sanitizers) under
# build/fuzz/cov, runs every input of CORPUS_ROOT/corpus_NAME (default
# build/fuzz, what `make fuzz` grew) plus the seeds once, and prints
# llvm-cov's report for the file each harness targets.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-build/fuzz}
out=build/fuzz/cov
mkdir -p "$out"
mpi_c=$(mpicc --showme:compile); mpi_l=$(mpicc --showme:link)
blas_inc=/usr/include/$(gcc -print-multiarch)/openblas-openmp
flags=(-std=c11 -D_GNU_SOURCE -O0 -g -Wno-unknown-pragmas -Iinclude -I"$blas_inc" $mpi_c
       -fprofile-instr-generate -fcoverage-mapping)
srcs=$(ls src/*.c src/cpu/*.c | grep -v src/main.c)
declare -A target=([config]=src/config.c [tokens]=src/data.c [llmc]=src/shard.c [safetensors]=src/safetensors.c)
for n in config tokens llmc safetensors; do
  clang "${flags[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$n.c" $srcs -o "$out/fuzz_$n" $mpi_l -lopenblas -lm 2> "$out/build_$n.log"
  rm -f "$out/$n".profraw
  dirs=("tests/fuzz/corpus_$n"); [ -d "$root/corpus_$n" ] && dirs=("$root/corpus_$n" "${dirs[@]}")
  LLVM_PROFILE_FILE="$out/$n.profraw" "$out/fuzz_$n" -runs=0 -close_fd_mask=3 "${dirs[@]}" > /dev/null 2>&1
  llvm-profdata-14 merge -sparse "$out/$n.profraw" -o "$out/$n.profdata"
  echo "== fuzz_$n ($(ls "${dirs[@]}" | wc -l) inputs) -> ${target[$n]}"
  llvm-cov-14 report "$out/fuzz_$n" -instr-profile="$out/$n.profdata" "${target[$n]}" | sed -n '3p;$p'
done
