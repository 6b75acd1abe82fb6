// common.h: the real type, exit codes, allocation and error reporting shared
// by every module. No MPI here: ops include this file and must stay MPI-free.
#ifndef MT_COMMON_H
#define MT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// The same sources build twice: fp32 (the trainer) and fp64 (the oracle).
#ifdef MT_FP64
typedef double real;
#define MT_PRECISION_NAME "fp64"
#else
typedef float real;
#define MT_PRECISION_NAME "fp32"
#endif

// Exit codes. Bad input of any kind (flags, config, data, checkpoints) is 2,
// so scripts can tell a user's mistake from a crash.
enum {
    MT_EXIT_OK = 0,
    MT_EXIT_FAIL = 1,   // runtime failure: non-finite loss, I/O error mid-run
    MT_EXIT_USAGE = 2,  // bad flag, config, data file or checkpoint
};

// Functions the CUDA kernels share with the CPU code (rng.h, bf16.h).
#ifdef __CUDACC__
#define MT_HD __host__ __device__
#else
#define MT_HD
#endif

// C11's _Noreturn; the CUDA sources (C++) include this header too.
#ifdef __cplusplus
#define MT_NORETURN [[noreturn]]
#else
#define MT_NORETURN _Noreturn
#endif

// Two ways to fail, by who knows about the failure.
//
// mt_fail_all: every rank reached the same verdict (a bad flag, or a file
// rank 0 checked and whose verdict it broadcast). Prints "<program>: error:
// <msg>" on stderr when `loud` (rank 0, so the user sees one line), then
// every rank finalizes MPI and exits with `code`.
MT_NORETURN void mt_fail_all(int loud, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// mt_fail_local: this rank alone failed (a write error, an allocation, a
// GPU error, an internal check) while others may wait for it in a
// collective. Prints its line, then MPI_Abort ends the whole job with
// `code` within seconds: MPI_Finalize here would leave the others waiting
// forever.
MT_NORETURN void mt_fail_local(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The program name in error lines: "pretrain_gpt", unless the program's
// main file defines its own (MT_PROGRAM_NAME("plan");), which replaces
// common.c's weak definition when linked.
extern const char mt_program_name[];
#define MT_PROGRAM_NAME(name) const char mt_program_name[] = name
// Everything printed must have reached stdout (a full disk; a closed pipe
// only with SIGPIPE ignored, as by default the signal ends the process): else one line "PROGRAM: error: cannot write standard output (...)"
// and exit 1 (through mt_fail_all: this process's verdict, MPI finalized if
// running). close_it also closes stdout, which reports a deferred
// write-back; call it last.
void mt_stdout_done(int close_it);

// Allocation that never returns NULL (an out-of-memory ends the job with a line).
void *mt_malloc(size_t bytes);
void *mt_calloc(size_t n, size_t size);

// The index of the first non-finite element of x[0..n), or -1: checked
// before every save and export, so no file holds weights that cannot load.
long long mt_first_nonfinite(const real *x, size_t n);

// Wall-clock seconds, monotonic.
double mt_now(void);

// Resident set size of this process in bytes now (/proc/self/statm) and at
// its peak (VmHWM in /proc/self/status); 0 if unknown.
size_t mt_rss_bytes(void);
size_t mt_peak_rss_bytes(void);

// 64-bit FNV-1a of a string: parameter names become RNG keys.
uint64_t mt_hash_str(const char *s);

#define MT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MT_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
