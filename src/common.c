// common.c: error exits, allocation, clock, string hash.
#include "common.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

// The trainer's name; a tool's main file defines its own (a strong
// definition wins over this weak one at link time), so the name is fixed
// when the program is built and nothing sets it at run time.
__attribute__((weak)) const char mt_program_name[] = "pretrain_gpt";

// One line, written with a single write so lines of several ranks never mix.
static void say(const char *fmt, va_list ap) {
    char line[2048];
    int o = snprintf(line, sizeof line, "%s: error: ", mt_program_name);
    vsnprintf(line + o, sizeof line - (size_t)o, fmt, ap);
    // One line whatever a file name or a file's bytes held.
    for (char *q = line; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    size_t n = strlen(line);
    if (n + 1 < sizeof line) line[n++] = '\n';
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}

static int mpi_running(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

void mt_fail_all(int loud, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (loud) say(fmt, ap);
    va_end(ap);
    // Every rank reaches this point for errors all ranks detect; finalizing
    // lets mpirun report the exit code instead of an abort banner.
    if (mpi_running()) MPI_Finalize();
    exit(code);
}

void mt_fail_local(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    // Alone, there is no one to abort: finalize and exit with the code, so a
    // one-rank run ends with its line and no MPI_Abort banner.
    int world = 1;
    if (mpi_running()) MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (mpi_running() && world > 1) MPI_Abort(MPI_COMM_WORLD, code);
    if (mpi_running()) MPI_Finalize();
    exit(code);
}

void mt_stdout_done(int close_it) {
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout), e = errno;
    if (close_it && fclose(stdout) != 0 && !bad) bad = 1, e = errno;
    // (ferror after an earlier failed write leaves no errno behind.)
    if (bad) mt_fail_all(1, MT_EXIT_FAIL, "cannot write standard output (%s)", e ? strerror(e) : "an earlier write failed");
}

void *mt_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) mt_fail_local(MT_EXIT_FAIL, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *mt_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) mt_fail_local(MT_EXIT_FAIL, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

long long mt_first_nonfinite(const real *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long long)i;
    return -1;
}

double mt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t mt_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

size_t mt_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int ok = fscanf(f, "%lu %lu", &size, &resident) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (size_t)resident * (size_t)page : 0;
}

size_t mt_peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = (size_t)strtoull(line + 6, NULL, 10);
    fclose(f);
    return kib * 1024;
}
