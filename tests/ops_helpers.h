// ops_helpers.h: what the op tests (test_ops.c, test_ops_attn.c) share:
// seeded inputs from an LCG independent of the trainer's Philox, a buffer
// pool, and central-difference gradient checks (fp64 build only).
#ifndef MT_TEST_OPS_HELPERS_H
#define MT_TEST_OPS_HELPERS_H

#include "harness.h"
#include "ops.h"

// Forward checks compare with naive loops; fp32 is allowed its round-off.
#ifdef MT_FP64
#define FWD_TOL 1e-12
#else
#define FWD_TOL 2e-5
#endif

// ---- helpers ---------------------------------------------------------------

// Inputs come from a fixed LCG (Knuth's MMIX constants), independent of the
// trainer's Philox so a bug there cannot hide one here.
typedef struct { uint64_t s; } lcg;
static inline double lcg_next(lcg *g) {
    g->s = g->s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g->s >> 11) * (2.0 / 9007199254740992.0) - 1.0;  // [-1, 1)
}

// A test's buffers, freed together at the end of the case.
typedef struct { void *p[32]; int n; } pool;
static inline void *pool_get(pool *P, size_t bytes) {
    void *x = mt_calloc(1, bytes);
    if (P->n < 32) P->p[P->n++] = x;
    return x;
}
static inline void pool_free(pool *P) { for (int i = 0; i < P->n; i++) free(P->p[i]); P->n = 0; }
static inline real *buf_rand(pool *P, lcg *g, size_t n, double amp) {
    real *x = pool_get(P, n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = (real)(amp * lcg_next(g));
    return x;
}
static inline real *buf_fill(pool *P, size_t n, double v) {
    real *x = pool_get(P, n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = (real)v;
    return x;
}
static inline real *buf_copy(pool *P, const real *y, size_t n) {
    real *x = pool_get(P, n * sizeof(real));
    memcpy(x, y, n * sizeof(real));
    return x;
}
// acc -= base: what an accumulating backward added.
static inline void sub_in(real *acc, const real *base, size_t n) { for (size_t i = 0; i < n; i++) acc[i] -= base[i]; }
static inline double max_abs_diff(const real *a, const real *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

// ---- gradient check --------------------------------------------------------

// Every gradcheck differentiates L = Σ out ⊙ R for a fixed random R, so the
// backward gets dout = R.
typedef struct {
    void (*fwd)(void *ctx);  // recomputes out from the inputs held in ctx
    void *ctx;
    const real *out, *R;
    size_t nout;
} loss_fn;

static inline double loss_of(loss_fn f) {
    f.fwd(f.ctx);
    double L = 0;
    for (size_t i = 0; i < f.nout; i++) L += (double)f.out[i] * f.R[i];
    return L;
}

#define GC_EPS 1e-6
#define GC_TOL 1e-7

// Error measure: max_i |a_i - n_i| / max_i |n_i| (a analytic, n numeric),
// the worst absolute error against the gradient's own scale. An elementwise
// ratio would be noise on entries that are zero in exact arithmetic.
// x is perturbed in place and restored.
static inline double grad_err(loss_fn f, real *x, size_t nx, const real *ga, double *nmax) {
    double emax = 0;
    *nmax = 0;
    for (size_t i = 0; i < nx; i++) {
        real x0 = x[i];
        x[i] = (real)(x0 + GC_EPS);
        double lp = loss_of(f);
        x[i] = (real)(x0 - GC_EPS);
        double lm = loss_of(f);
        x[i] = x0;
        double num = (lp - lm) / (2 * GC_EPS);
        emax = fmax(emax, fabs((double)ga[i] - num));
        *nmax = fmax(*nmax, fabs(num));
    }
    return emax / fmax(*nmax, 1e-300);
}

// Also fails a vacuous check: a numeric gradient that is all zero would
// accept any backward that returns zeros.
#define GRADCHECK(f, x, nx, ga, what)                                                  \
    do {                                                                               \
        double nm_, e_ = grad_err(f, x, nx, ga, &nm_);                                 \
        ASSERT(nm_ > 1e-3, "%s: numeric gradient vanishes (max %.3g)", what, nm_);     \
        ASSERT(e_ <= GC_TOL, "%s: rel. error %.3g > %.0e", what, e_, GC_TOL);          \
        printf("  %-28s rel. error %.2e\n", what, e_);                                 \
    } while (0)

#ifdef MT_FP64
#define GRADCHECK_BUILD_ONLY()
#else
#define GRADCHECK_BUILD_ONLY()                                                         \
    do {                                                                               \
        printf("  skipped: gradchecks run in the fp64 build only\n");                  \
        return;                                                                        \
    } while (0)
#endif


#endif
