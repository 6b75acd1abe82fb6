// layernorm.c: LayerNorm and RMSNorm over the hidden dim (mt_norm). Under
// sequence parallelism the caller passes only its s/tp rows; the op never
// knows. RMSNorm is LayerNorm with the mean taken as 0 and no bias, so both
// share every loop below.
#include "ops.h"

#include <math.h>

#include "fused.h"
#include "reduce.h"

// Rows the statistics loops walk at once. Each row's sums are one serial
// chain of double adds (4 cycles apiece), so a lone row waits on latency;
// NORM_ROWS rows interleaved keep as many independent chains in flight,
// each still summed in column order, so every value is bitwise what the
// one-row loop gives.
#define NORM_ROWS 4

// Statistics accumulate in double: in fp32 a long row's one-pass sum loses
// digits that the oracle comparison would see. Rows i0 .. i0 + R - 1.
MT_INLINE void norm_forward_rows(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b,
                                 mt_norm nm, int i0, int h, const int R) {
    const real *x[NORM_ROWS];
    double m[NORM_ROWS] = {0}, v[NORM_ROWS] = {0}, r[NORM_ROWS];
    for (int q = 0; q < R; q++) x[q] = inp + (size_t)(i0 + q) * h;
    if (!nm.rms) {
        for (int j = 0; j < h; j++)
            for (int q = 0; q < R; q++) m[q] += x[q][j];
        for (int q = 0; q < R; q++) m[q] /= h;
    }
    // Two passes: the variance of centred values cannot go negative.
    for (int j = 0; j < h; j++)
        for (int q = 0; q < R; q++) v[q] += (x[q][j] - m[q]) * (x[q][j] - m[q]);
    for (int q = 0; q < R; q++) {
        v[q] /= h;
        r[q] = 1.0 / sqrt(v[q] + nm.eps);
        real *y = out + (size_t)(i0 + q) * h;
        for (int j = 0; j < h; j++) y[j] = (real)((x[q][j] - m[q]) * r[q] * w[j] + (b ? b[j] : 0));
        if (mean) mean[i0 + q] = (real)m[q];
        rstd[i0 + q] = (real)r[q];
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
        if (n - i0 >= NORM_ROWS) norm_forward_rows(out, mean, rstd, inp, w, b, nm, i0, h, NORM_ROWS);
        else
            for (int i = i0; i < n; i++) norm_forward_rows(out, mean, rstd, inp, w, b, nm, i, h, 1);
    }
}

// The input gradient of rows i0 .. i0 + R - 1.
MT_INLINE void norm_backward_rows(real *dinp, const real *dout, const real *inp, const real *w, const real *mean,
                                  const real *rstd, mt_norm nm, int i0, int h, const int R) {
    const real *x[NORM_ROWS], *dy[NORM_ROWS];
    double m[NORM_ROWS], r[NORM_ROWS], sg[NORM_ROWS] = {0}, sgx[NORM_ROWS] = {0};
    for (int q = 0; q < R; q++) {
        x[q] = inp + (size_t)(i0 + q) * h;
        dy[q] = dout + (size_t)(i0 + q) * h;
        m[q] = mean ? mean[i0 + q] : 0;
        r[q] = rstd[i0 + q];
    }
    for (int j = 0; j < h; j++)
        for (int q = 0; q < R; q++) {
            double g = (double)w[j] * dy[q][j];
            sg[q] += g;
            sgx[q] += g * (x[q][j] - m[q]) * r[q];
        }
    for (int q = 0; q < R; q++) {
        double sgq = nm.rms ? 0 : sg[q] / h, sgxq = sgx[q] / h;
        real *dx = dinp + (size_t)(i0 + q) * h;
        for (int j = 0; j < h; j++) {
            double g = (double)w[j] * dy[q][j];
            dx[j] = (real)(r[q] * (g - sgq - (x[q][j] - m[q]) * r[q] * sgxq));
        }
    }
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
    // independent; NORM_ROWS of them at once, as in forward.
#pragma omp parallel for schedule(static)
    for (int i0 = 0; i0 < n; i0 += NORM_ROWS) {
        if (n - i0 >= NORM_ROWS) norm_backward_rows(dinp, dout, inp, w, mean, rstd, nm, i0, h, NORM_ROWS);
        else
            for (int i = i0; i < n; i++) norm_backward_rows(dinp, dout, inp, w, mean, rstd, nm, i, h, 1);
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
