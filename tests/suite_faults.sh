#!/usr/bin/env bash
# suite_faults.sh: a failure seen by one rank alone ends the whole job within
# seconds, with a non-zero exit and one error line, instead of leaving the
# other ranks waiting in a collective. The faults are planted at the second
# iteration by MT_INJECT_BUG (config.h): a real allocation failure, a write
# error on rank 0's --metrics-file, a failed internal check.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)
RUN="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 20"

# fault NAME NP SITE@RANK WANT: the job ends with exit 1 in under 10 s and
# stderr holds exactly one line besides the planted-bug warning, naming WANT.
fault() {
  local name=$1 np=$2 bug=$3 want=$4 t0 t1 rc lines
  t0=$(date +%s.%N)
  MT_INJECT_BUG=$bug timeout --kill-after=5 30 $MPIRUN "$np" ./pretrain_gpt $RUN --metrics-file "$T/$name.json" \
    > "$T/$name.out" 2> "$T/$name.err"
  rc=$?
  t1=$(date +%s.%N)
  local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  grep -v '^warning: MT_INJECT_BUG' "$T/$name.err" > "$T/$name.lines"
  lines=$(wc -l < "$T/$name.lines")
  if [ "$rc" = 1 ] && awk -v s="$secs" 'BEGIN { exit !(s < 10) }' && [ "$lines" = 1 ] && grep -q "$want" "$T/$name.lines"; then
    ok "$name (exit 1 after ${secs}s: $(cat "$T/$name.lines"))"
  else
    not_ok "$name" "exit $rc after ${secs}s, $lines lines: $(head -c 400 "$T/$name.lines" | tr '\n' '|')"
  fi
}

for np in 2 4; do
  last=$((np - 1))
  fault "alloc_on_rank${last}_np$np" $np "fail-alloc@$last" "error: out of memory allocating"
  fault "metrics_write_on_rank0_np$np" $np "fail-write@0" "error: --metrics-file .*write failed at iteration 2"
  fault "internal_check_on_rank${last}_np$np" $np "fail-check@$last" "error: internal check failed on rank $last"
done
# A rank in the middle of the world, while the ranks on either side wait.
fault "alloc_on_rank1_np4" 4 "fail-alloc@1" "error: out of memory allocating"

# Positive control: the same run without a fault trains to the end.
if timeout 60 $MPIRUN 2 ./pretrain_gpt $RUN --metrics-file "$T/clean.json" > "$T/clean.out" 2>&1 &&
   grep -q '"iteration": 20,' "$T/clean.json"; then ok "no_fault_trains_20_iterations"
else not_ok "no_fault_trains_20_iterations" "$(tail -n 2 "$T/clean.out")"; fi

# ---- a binary built for another CPU (src/isa.c, tools/flags-stamp.sh) ----
# The default build is -march=native. A probe built for a feature this CPU
# lacks stands in for a binary from another machine: its constructor guard
# must stop it with one line naming the feature and exit 1, before main runs
# (main prints "ran"; a missing guard lets it run, or die of SIGILL once the
# feature is used). Candidates: /proc/cpuinfo's flag, then GCC's -m name.
lack=""
for fm in avx512f:avx512f avx512_bf16:avx512bf16 avx512_fp16:avx512fp16 amx_tile:amx-tile; do
  grep -qw "${fm%%:*}" /proc/cpuinfo || { lack=${fm#*:}; break; }
done
if [ -z "$lack" ]; then
  echo "# isa_guard skipped: this CPU has every candidate feature (avx512f, avx512bf16, avx512fp16, amx-tile)"
else
  cat > "$T/probe.c" <<'PROBE'
#include <mpi.h>
#include <stdio.h>
#include "isa.h"
MT_ISA_GUARD_PROGRAM
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    puts("ran");
    MPI_Finalize();
    return 0;
}
PROBE
  if ! mpicc -std=c11 -D_GNU_SOURCE -O2 -march=native "-m$lack" -Iinclude "$T/probe.c" src/isa.c -o "$T/probe" 2> "$T/probe.cc"; then
    not_ok "isa_guard_builds" "$(head -c 300 "$T/probe.cc")"
  else
    "$T/probe" > "$T/probe.out" 2> "$T/probe.err"; rc=$?
    if [ "$rc" = 1 ] && [ "$(wc -l < "$T/probe.err")" = 1 ] && grep -q "CPU lacks ($lack)" "$T/probe.err" && ! grep -q ran "$T/probe.out"; then
      ok "isa_guard_stops_a_binary_built_for_$lack (exit 1: $(cat "$T/probe.err"))"
    else not_ok "isa_guard_stops_a_binary_built_for_$lack" "exit $rc, out '$(head -c 100 "$T/probe.out")', err '$(head -c 300 "$T/probe.err" | tr '\n' '|')'"; fi
    # One host of a job (rank 0 here) with the wrong binary: the other rank,
    # a healthy trainer, must not wait for it; the job ends with exit 1 and
    # the one line, as a failure on one rank does.
    t0=$(date +%s.%N)
    timeout --kill-after=5 30 $MPIRUN 1 "$T/probe" : -np 1 ./pretrain_gpt $RUN > "$T/mpmd.out" 2> "$T/mpmd.err"; rc=$?
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 1 ] && awk -v s="$secs" 'BEGIN { exit !(s < 10) }' && [ "$(wc -l < "$T/mpmd.err")" = 1 ] &&
       grep -q "CPU lacks ($lack)" "$T/mpmd.err" && ! grep -q 'iteration' "$T/mpmd.out"; then
      ok "isa_guard_on_one_rank_ends_the_job (exit 1 after ${secs}s)"
    else not_ok "isa_guard_on_one_rank_ends_the_job" "exit $rc after ${secs}s: $(head -c 400 "$T/mpmd.err" | tr '\n' '|')"; fi
  fi
fi

# The guard passes the binaries this build made: they all ran above.
# And the build rebuilds when its flags change (another MARCH here; another
# CPU changes -march=native's expansion the same way): a copy of the tree
# builds one object, finds it up to date, then out of date under MARCH=
# x86-64-v3, then rebuilt with it (the stamp's line names x86-64-v3).
mkdir -p "$T/tree/tools"
cp -r Makefile src include "$T/tree/" && cp tools/flags-stamp.sh "$T/tree/tools/"
obj=build/fp32/src/isa.o
mk() { make -C "$T/tree" --no-print-directory -s "$@" > /dev/null 2>> "$T/tree.err"; }
mk "$obj"; a=$?
mk -q "$obj"; b=$?
mk -q MARCH=x86-64-v3 "$obj"; c=$?
mk MARCH=x86-64-v3 "$obj"; d=$?
mk -q MARCH=x86-64-v3 "$obj"; e=$?
if [ "$a$b$c$d$e" = 00100 ] && grep -q 'march=x86-64-v3' "$T/tree/build/cflags"; then
  ok "build_flags_stamp_rebuilds_on_new_march (make: built, up to date, stale under MARCH=x86-64-v3, rebuilt)"
else not_ok "build_flags_stamp_rebuilds_on_new_march" "make rcs $a$b$c$d$e (want 00100): $(head -c 300 "$T/tree.err")"; fi

# ---- one host with less memory (a verdict every rank must share) ----------
# The memory check used each rank's own host; a rank on a small host failed
# alone through the collective exit while the others went on: a hang (found
# by a hostile-input review). A sysconf shim gives rank 1 a 64 KiB machine:
# every rank must judge by the smallest host, exit 2, one line, no hang.
cat > "$T/smallmem.c" <<'SHIM'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
long sysconf(int name) {
    static long (*real)(int);
    if (!real) real = (long (*)(int))dlsym(RTLD_NEXT, "sysconf");
    const char *r = getenv("OMPI_COMM_WORLD_RANK"), *small = getenv("SMALL_RANK");
    if (name == _SC_PHYS_PAGES && r && small && !strcmp(r, small)) return 16;
    return real(name);
}
SHIM
if cc -shared -fPIC -O1 "$T/smallmem.c" -o "$T/smallmem.so" -ldl 2> "$T/smallmem.cc"; then
  for small in 0 1; do
    t0=$(date +%s.%N)
    timeout --kill-after=5 40 $MPIRUN 2 -x LD_PRELOAD="$T/smallmem.so" -x SMALL_RANK=$small ./pretrain_gpt $RUN > "$T/small$small.out" 2> "$T/small$small.err"; rc=$?
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 2 ] && [ "$(wc -l < "$T/small$small.err")" = 1 ] && grep -q "GiB of the job's smallest machine" "$T/small$small.err"; then
      ok "memory_check_small_host_rank${small}_all_ranks_exit_2 (${secs}s)"
    else not_ok "memory_check_small_host_rank${small}_all_ranks_exit_2" "exit $rc after ${secs}s: $(head -c 300 "$T/small$small.err" | tr '\n' '|')"; fi
  done
else not_ok memory_check_shim_builds "$(head -c 300 "$T/smallmem.cc")"; fi

# ---- the log itself cannot be written ---------------------------------------
# stdout on a full disk: the run (and --help) used to end 0 with the log
# lost; now exit 1 with one line once the rest is done. (Under mpirun the
# ranks write into mpirun's pipes, and mpirun does not report a full disk.)
for what in run help; do
  if [ $what = run ]; then timeout 60 ./pretrain_gpt $RUN --train-iters 2 > /dev/full 2> "$T/full_$what.err"; rc=$?
  else timeout 60 ./pretrain_gpt --help > /dev/full 2> "$T/full_$what.err"; rc=$?; fi
  if [ $rc = 1 ] && [ "$(wc -l < "$T/full_$what.err")" = 1 ] && grep -q 'pretrain_gpt: error: cannot write standard output' "$T/full_$what.err"; then
    ok "stdout_full_disk_${what}_exit_1"
  else not_ok "stdout_full_disk_${what}_exit_1" "exit $rc: $(head -c 200 "$T/full_$what.err")"; fi
done
