// layernorm.c: LayerNorm and RMSNorm over the hidden dim (mt_norm). Under
// sequence parallelism the caller passes only its s/tp rows; the op never
// knows. RMSNorm is LayerNorm with the mean taken as 0 and no bias, so both
// share every loop below.
#include "ops.h"

#include <math.h>

#include "reduce.h"

// Rows the statistics loops walk at once. Each row's sums are one serial
// chain of double adds (4 cycles apiece), so a lone row waits on latency;
// four rows interleaved keep four independent chains in flight, each still
// summed in column order, so every value is bitwise what the one-row loop
// gives. Written out with four scalars: GCC -O2 keeps an array of four
// accumulators in memory, which made the interleaved loop slower.
#define NORM_ROWS 4

// One row's statistics: mean (0 for RMSNorm) and 1/sqrt(var + eps), in
// double: in fp32 a long row's one-pass sum loses digits that the oracle
// comparison would see. Two passes: the variance of centred values cannot
// go negative.
static void norm_stats1(const real *x, mt_norm nm, int h, double *mo, double *ro) {
    double m = 0, v = 0;
    if (!nm.rms) {
        for (int j = 0; j < h; j++) m += x[j];
        m /= h;
    }
    for (int j = 0; j < h; j++) v += (x[j] - m) * (x[j] - m);
    v /= h;
    *mo = m;
    *ro = 1.0 / sqrt(v + nm.eps);
}

// The same for four rows of stride h at once.
static void norm_stats4(const real *x, mt_norm nm, int h, double *mo, double *ro) {
    const real *x0 = x, *x1 = x + h, *x2 = x + 2 * (size_t)h, *x3 = x + 3 * (size_t)h;
    double m0 = 0, m1 = 0, m2 = 0, m3 = 0, v0 = 0, v1 = 0, v2 = 0, v3 = 0;
    if (!nm.rms) {
        for (int j = 0; j < h; j++) {
            m0 += x0[j];
            m1 += x1[j];
            m2 += x2[j];
            m3 += x3[j];
        }
        m0 /= h, m1 /= h, m2 /= h, m3 /= h;
    }
    for (int j = 0; j < h; j++) {
        v0 += (x0[j] - m0) * (x0[j] - m0);
        v1 += (x1[j] - m1) * (x1[j] - m1);
        v2 += (x2[j] - m2) * (x2[j] - m2);
        v3 += (x3[j] - m3) * (x3[j] - m3);
    }
    double v[4] = {v0 / h, v1 / h, v2 / h, v3 / h}, m[4] = {m0, m1, m2, m3};
    for (int q = 0; q < 4; q++) {
        mo[q] = m[q];
        ro[q] = 1.0 / sqrt(v[q] + nm.eps);
    }
}

void mt_norm_forward(real *out,       // (n, h)
                     real *mean,      // (n) saved for backward; NULL for RMSNorm
                     real *rstd,      // (n) saved for backward
                     const real *inp, // (n, h)
                     const real *w,   // (h)
                     const real *b,   // (h) or NULL
                     mt_norm nm, int n, int h) {
#pragma omp parallel for schedule(static)
    for (int i0 = 0; i0 < n; i0 += NORM_ROWS) {
        int R = MT_MIN(NORM_ROWS, n - i0);
        double m[NORM_ROWS], r[NORM_ROWS];
        if (R == NORM_ROWS) norm_stats4(inp + (size_t)i0 * h, nm, h, m, r);
        else
            for (int q = 0; q < R; q++) norm_stats1(inp + (size_t)(i0 + q) * h, nm, h, &m[q], &r[q]);
        for (int q = 0; q < R; q++) {
            const real *x = inp + (size_t)(i0 + q) * h;
            real *y = out + (size_t)(i0 + q) * h;
            for (int j = 0; j < h; j++) y[j] = (real)((x[j] - m[q]) * r[q] * w[j] + (b ? b[j] : 0));
            if (mean) mean[i0 + q] = (real)m[q];
            rstd[i0 + q] = (real)r[q];
        }
    }
}

// Backward's two row sums, Σ g and Σ g x̂ with g = w dout (one row).
static void norm_bsums1(const real *x, const real *dy, const real *w, double m, double r, int h, double *sg,
                        double *sgx) {
    double a = 0, c = 0;
    for (int j = 0; j < h; j++) {
        double g = (double)w[j] * dy[j];
        a += g;
        c += g * (x[j] - m) * r;
    }
    *sg = a;
    *sgx = c;
}

// The same for two rows at once (two rows already give four chains).
static void norm_bsums2(const real *x, const real *dy, const real *w, const double *m, const double *r, int h,
                        double *sg, double *sgx) {
    const real *xa = x, *xb = x + h, *da = dy, *db = dy + h;
    double a0 = 0, c0 = 0, a1 = 0, c1 = 0;
    for (int j = 0; j < h; j++) {
        double g0 = (double)w[j] * da[j], g1 = (double)w[j] * db[j];
        a0 += g0;
        c0 += g0 * (xa[j] - m[0]) * r[0];
        a1 += g1;
        c1 += g1 * (xb[j] - m[1]) * r[1];
    }
    sg[0] = a0, sgx[0] = c0, sg[1] = a1, sgx[1] = c1;
}

void mt_norm_backward(real *dinp,       // (n, h)
                      real *dw,         // (h) accumulated
                      real *db,         // (h) accumulated, or NULL
                      const real *dout, // (n, h)
                      const real *inp,  // (n, h)
                      const real *w,    // (h)
                      const real *mean, // (n), NULL for RMSNorm
                      const real *rstd, // (n)
                      mt_norm nm, int n, int h) {
    // dinp = rstd * (g - mean(g) - x̂ * mean(g * x̂)) with g = w * dout, x̂ the
    // normalised input; RMSNorm has no mean, so no mean(g) term. Rows are
    // independent; two at a time, as forward interleaves its rows.
#pragma omp parallel for schedule(static)
    for (int i0 = 0; i0 < n; i0 += 2) {
        int R = MT_MIN(2, n - i0);
        double m[2] = {0, 0}, r[2] = {0, 0}, sg[2], sgx[2];
        for (int q = 0; q < R; q++) {
            m[q] = mean ? mean[i0 + q] : 0;
            r[q] = rstd[i0 + q];
        }
        size_t o = (size_t)i0 * h;
        if (R == 2) norm_bsums2(inp + o, dout + o, w, m, r, h, sg, sgx);
        else norm_bsums1(inp + o, dout + o, w, m[0], r[0], h, &sg[0], &sgx[0]);
        for (int q = 0; q < R; q++) {
            const real *x = inp + o + (size_t)q * h, *dy = dout + o + (size_t)q * h;
            real *dx = dinp + o + (size_t)q * h;
            double sgq = nm.rms ? 0 : sg[q] / h, sgxq = sgx[q] / h;
            for (int j = 0; j < h; j++) {
                double g = (double)w[j] * dy[j];
                dx[j] = (real)(r[q] * (g - sgq - (x[j] - m[q]) * r[q] * sgxq));
            }
        }
    }
    // dw: the column sums of dout * x̂; db: those of dout (mt_colsum_accumulate's
    // order), both in one sweep over the rows, each in its fixed order.
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < h; j0 += MT_COLS_PER_TASK) {
        int wd = MT_MIN(MT_COLS_PER_TASK, h - j0);
        double aw[MT_COLS_PER_TASK] = {0}, ab[MT_COLS_PER_TASK] = {0};
        for (int i = 0; i < n; i++) {
            const real *x = inp + (size_t)i * h + j0, *dy = dout + (size_t)i * h + j0;
            double m = mean ? mean[i] : 0, r = rstd[i];
            for (int j = 0; j < wd; j++) aw[j] += dy[j] * (x[j] - m) * r;
            if (db)
                for (int j = 0; j < wd; j++) ab[j] += dy[j];
        }
        for (int j = 0; j < wd; j++) dw[j0 + j] += (real)aw[j];
        if (db)
            for (int j = 0; j < wd; j++) db[j0 + j] += (real)ab[j];
    }
}
