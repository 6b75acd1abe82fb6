// layernorm.c: LayerNorm and RMSNorm over the hidden dim (mt_norm). Under
// sequence parallelism the caller passes only its s/tp rows; the op never
// knows. RMSNorm is LayerNorm with the mean taken as 0 and no bias, so both
// share every loop below.
#include "ops.h"

#include <math.h>

#include "reduce.h"

// Statistics accumulate in double: in fp32 a long row's one-pass sum loses
// digits that the oracle comparison would see.
void mt_norm_forward(real *out,       // (n, h)
                     real *mean,      // (n) saved for backward; NULL for RMSNorm
                     real *rstd,      // (n) saved for backward
                     const real *inp, // (n, h)
                     const real *w,   // (h)
                     const real *b,   // (h) or NULL
                     mt_norm nm, int n, int h) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * h;
        real *y = out + (size_t)i * h;
        double m = 0, v = 0;
        if (!nm.rms) {
            for (int j = 0; j < h; j++) m += x[j];
            m /= h;
        }
        // Two passes: the variance of centred values cannot go negative.
        for (int j = 0; j < h; j++) v += (x[j] - m) * (x[j] - m);
        v /= h;
        double r = 1.0 / sqrt(v + nm.eps);
        for (int j = 0; j < h; j++) y[j] = (real)((x[j] - m) * r * w[j] + (b ? b[j] : 0));
        if (mean) mean[i] = (real)m;
        rstd[i] = (real)r;
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
    // independent.
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * h, *dy = dout + (size_t)i * h;
        real *dx = dinp + (size_t)i * h;
        double m = mean ? mean[i] : 0, r = rstd[i], sg = 0, sgx = 0;
        for (int j = 0; j < h; j++) {
            double g = (double)w[j] * dy[j];
            sg += g;
            sgx += g * (x[j] - m) * r;
        }
        sg = nm.rms ? 0 : sg / h;
        sgx /= h;
        for (int j = 0; j < h; j++) {
            double g = (double)w[j] * dy[j];
            dx[j] = (real)(r * (g - sg - (x[j] - m) * r * sgx));
        }
    }
    if (db) mt_colsum_accumulate(db, dout, n, h);
    // dw: the column sums of dout * x̂, in the same fixed order.
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < h; j0 += MT_COLS_PER_TASK) {
        int wd = MT_MIN(MT_COLS_PER_TASK, h - j0);
        double aw[MT_COLS_PER_TASK] = {0};
        for (int i = 0; i < n; i++) {
            const real *x = inp + (size_t)i * h + j0, *dy = dout + (size_t)i * h + j0;
            double m = mean ? mean[i] : 0, r = rstd[i];
            for (int j = 0; j < wd; j++) aw[j] += dy[j] * (x[j] - m) * r;
        }
        for (int j = 0; j < wd; j++) dw[j0 + j] += (real)aw[j];
    }
}
