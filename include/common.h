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

// C11's _Noreturn; the CUDA sources (C++) include this header too.
#ifdef __cplusplus
#define MT_NORETURN [[noreturn]]
#else
#define MT_NORETURN _Noreturn
#endif

// Prints "pretrain_gpt: error: <msg>" on stderr when `loud` is set and exits.
// Callers pass loud = (rank == 0) for errors every rank detects identically,
// so the user sees one line, not one per rank.
MT_NORETURN void mt_fail(int loud, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Allocation that never returns NULL (an out-of-memory exits with a line).
void *mt_malloc(size_t bytes);
void *mt_calloc(size_t n, size_t size);

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
