// adamw.c: the optimizer step and the reductions the gradient clip needs.
#include "ops.h"

#include <math.h>
#include <stdlib.h>

// In the build's precision, as PyTorch and apex do (fp32 arithmetic for
// fp32 weights); the bias corrections are computed once, in double.
void mt_adamw_update(real *p,       // (n)
                     const real *g, // (n) already clipped
                     real *m,       // (n) first moment
                     real *v,       // (n) second moment
                     size_t n, int t, real lr, real b1, real b2, real eps, real wd) {
    const real c1 = (real)(1.0 - pow((double)b1, t)), c2 = (real)(1.0 - pow((double)b2, t));
    const real one = 1;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        real gi = g[i], pi = p[i];
        real mi = b1 * m[i] + (one - b1) * gi;
        real vi = b2 * v[i] + (one - b2) * gi * gi;
        pi -= lr * ((mi / c1) / (sqrt(vi / c2) + eps) + wd * pi);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
    }
}

// Elements per partial sum. Fixed chunks summed in chunk order make the
// result independent of the thread count and bit-identical between runs,
// which an OpenMP reduction clause does not promise.
#define SUMSQ_CHUNK 16384

double mt_sumsq(const real *g, // (n)
                size_t n) {
    size_t nc = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    if (nc <= 1) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
        return s;
    }
    double *part = mt_malloc(nc * sizeof(double));
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        size_t lo = c * SUMSQ_CHUNK, hi = MT_MIN(lo + SUMSQ_CHUNK, n);
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nc; c++) s += part[c];
    free(part);
    return s;
}

void mt_scale(real *x, // (n) in place
              size_t n, real s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
