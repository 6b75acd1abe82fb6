// adamw.c: the optimizer step and the reductions the gradient clip needs.
#include "ops.h"

#include <math.h>
#include <stdlib.h>

// Every element in double, whatever the build: fp32 then rounds once per
// stored value instead of at each of the dozen operations.
void mt_adamw_update(real *p,       // (n)
                     const real *g, // (n) already clipped
                     real *m,       // (n) first moment
                     real *v,       // (n) second moment
                     size_t n, int t, real lr, real b1, real b2, real eps, real wd) {
    double B1 = b1, B2 = b2, LR = lr, EPS = eps, WD = wd;
    double c1 = 1.0 - pow(B1, t), c2 = 1.0 - pow(B2, t);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double gi = g[i], pi = p[i];
        double mi = B1 * m[i] + (1.0 - B1) * gi;
        double vi = B2 * v[i] + (1.0 - B2) * gi * gi;
        pi -= LR * ((mi / c1) / (sqrt(vi / c2) + EPS) + WD * pi);
        m[i] = (real)mi;
        v[i] = (real)vi;
        p[i] = (real)pi;
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
