#!/usr/bin/env bash
# tests/suite_fuzz.sh: a smoke run of the seven libFuzzer harnesses
# (tests/fuzz, docs/fuzzing.md): builds build/fuzz/fuzz_{config,tokens,llmc,safetensors,
# ckpt_meta,generate,bpe} (make fuzz-build) and runs each for MT_FUZZ_SMOKE_SECONDS
# (default 20), two at a time, from its seed corpus in a fresh directory.
# One "ok fuzz_NAME" per harness; a crash, leak, UB report, broken invariant
# or timeout is "not ok" with the saved input. A missing clang or libFuzzer
# runtime is "not ok" too (tools/install-deps.sh installs both), never a skip.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
secs=${MT_FUZZ_SMOKE_SECONDS:-20}
if ! command -v clang > /dev/null; then
  not_ok fuzz_build "clang not found (tools/install-deps.sh installs clang and libclang-rt-dev)"; exit 1
fi
rt=$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null)
if [ ! -f "$rt" ] && ! ls "$(clang -print-resource-dir 2>/dev/null)"/lib/linux/libclang_rt.fuzzer*.a > /dev/null 2>&1; then
  not_ok fuzz_build "clang's libFuzzer runtime (libclang_rt.fuzzer) is missing (tools/install-deps.sh installs libclang-rt-dev)"; exit 1
fi
if ! make -s fuzz-build > "$T/build.log" 2>&1; then
  not_ok fuzz_build "make fuzz-build failed: $(grep -m1 -E 'error' "$T/build.log" | cut -c1-200) (log $T/build.log)"; exit 1
fi
ok fuzz_build
rm -rf "$T/work"; mkdir -p "$T/work"
FUZZ_WORK=$T/work tests/fuzz/run.sh "$secs" 2
