// gemm_profile.c: where a trainer's GEMM time goes, shape by shape.
// An LD_PRELOAD library that times every cblas_sgemm / cblas_dgemm call of
// the process it is loaded into and, at exit, prints one line per distinct
// call (shape, transposes, beta) to stderr: calls, total milliseconds,
// GFLOP/s, and the total. Built by `make` as tools/gemm_profile.so.
//
//   LD_PRELOAD=tools/gemm_profile.so ./pretrain_gpt ...
//   GEMM_PROFILE_SKIP_S=S   ignore calls that start within S seconds of the
//                           first one (warm-up: first-touch page faults)
//   GEMM_PROFILE_SKIP_CALLS=N  ignore the first N calls (tools/bench.sh: a
//                           model's warm-up steps, at 12 L + 3 calls a step)
//
// Output lines start with "gemm_profile[PID]:" so several ranks' reports
// can be told apart:
//   gemm_profile[PID]: M N K LAYOUT beta B calls C ms T GFLOP/s G
//   gemm_profile[PID]: total calls C ms T GFLOP G GFLOP/s R
// LAYOUT is op(A) op(B) as 'n' or 't' in row-major terms (the trainer's
// nt = forward, nn = input gradient, tn = weight gradient; a conjugate
// transpose counts as 'n'); "beta 1" means beta != 0 (C accumulated).
// Calls made inside an OpenMP parallel region (a kernel calling one GEMM
// per thread) are timed per thread, so their milliseconds add up thread
// time, not wall time. An interposer keeps its tallies in static state by nature: there
// is no caller to hand a context to.
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_SHAPES 256

typedef struct {
    int m, n, k, ta, tb, beta1, fp64;
    long calls;
    double sec, flops;
} shape_tally;

static struct {
    pthread_mutex_t lock;
    shape_tally shape[MAX_SHAPES];
    int nshape;
    long dropped;  // calls of shapes past MAX_SHAPES (counted in the total only)
    long calls;
    double sec, flops, first, skip_s;
    long seen, skip_calls;
    int started;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void report(void) {
    pid_t pid = getpid();
    for (int i = 0; i < g.nshape; i++) {
        const shape_tally *s = &g.shape[i];
        fprintf(stderr, "gemm_profile[%d]: %s %d %d %d %c%c beta %d calls %ld ms %.3f GFLOP/s %.1f\n", (int)pid,
                s->fp64 ? "dgemm" : "sgemm", s->m, s->n, s->k, s->ta ? 't' : 'n', s->tb ? 't' : 'n', s->beta1, s->calls,
                1e3 * s->sec, s->sec > 0 ? s->flops / s->sec / 1e9 : 0.0);
    }
    fprintf(stderr, "gemm_profile[%d]: total calls %ld ms %.3f GFLOP %.3f GFLOP/s %.1f%s\n", (int)pid, g.calls,
            1e3 * g.sec, g.flops / 1e9, g.sec > 0 ? g.flops / g.sec / 1e9 : 0.0,
            g.dropped ? " (some shapes past the table: in the total only)" : "");
}

// Starts the clock of the skip window at the first call and registers the
// report; returns 0 when this call falls inside the skip window (by time or
// by count).
static int counted(double t0) {
    if (!g.started) {
        g.started = 1;
        g.first = t0;
        const char *s = getenv("GEMM_PROFILE_SKIP_S");
        g.skip_s = s ? atof(s) : 0;
        const char *c = getenv("GEMM_PROFILE_SKIP_CALLS");
        g.skip_calls = c ? atol(c) : 0;
        atexit(report);
    }
    return ++g.seen > g.skip_calls && t0 - g.first >= g.skip_s;
}

static void tally(int fp64, int m, int n, int k, int ta, int tb, int beta1, double t0, double dt) {
    pthread_mutex_lock(&g.lock);
    if (counted(t0)) {
        double f = 2.0 * m * n * k;
        g.calls++, g.sec += dt, g.flops += f;
        int i = 0;
        while (i < g.nshape && !(g.shape[i].m == m && g.shape[i].n == n && g.shape[i].k == k && g.shape[i].ta == ta &&
                                 g.shape[i].tb == tb && g.shape[i].beta1 == beta1 && g.shape[i].fp64 == fp64))
            i++;
        if (i == g.nshape && g.nshape < MAX_SHAPES)
            g.shape[g.nshape++] = (shape_tally){.m = m, .n = n, .k = k, .ta = ta, .tb = tb, .beta1 = beta1, .fp64 = fp64};
        if (i < g.nshape) g.shape[i].calls++, g.shape[i].sec += dt, g.shape[i].flops += f;
        else g.dropped++;
    }
    pthread_mutex_unlock(&g.lock);
}

// Row-major transposes as the trainer writes them; a column-major call is
// the transposed product, so its own flags are reported as given.
#define WRAP(NAME, T, FP64)                                                                                         \
    void NAME(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb, const blasint m, \
              const blasint n, const blasint k, const T alpha, const T *a, const blasint lda, const T *b,              \
              const blasint ldb, const T beta, T *c, const blasint ldc) {                                             \
        typedef void (*fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,            \
                           const blasint, const blasint, const blasint, const T, const T *, const blasint, const T *, \
                           const blasint, const T, T *, const blasint);                                               \
        static fn real;                                                                                               \
        if (!real) real = (fn)dlsym(RTLD_NEXT, #NAME);                                                                \
        if (!real) {                                                                                                  \
            fprintf(stderr, "gemm_profile: %s not found after this library\n", #NAME);                               \
            abort();                                                                                                  \
        }                                                                                                             \
        double t0 = now();                                                                                            \
        real(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);                                                \
        tally(FP64, m, n, k, ta == CblasTrans, tb == CblasTrans, beta != 0, t0, now() - t0);                          \
    }

WRAP(cblas_sgemm, float, 0)
WRAP(cblas_dgemm, double, 1)
