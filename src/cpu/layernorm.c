// layernorm.c: LayerNorm over the hidden dim. Under sequence parallelism the
// caller passes only its s/tp rows; the op never knows.
#include "ops.h"

#include <math.h>

#include "reduce.h"

// Mean and variance accumulate in double: in fp32 a long row's one-pass sum
// loses digits that the oracle comparison would see.
void mt_norm_forward(real *out,       // (n, h)
                          real *mean,      // (n) saved for backward
                          real *rstd,      // (n) saved for backward
                          const real *inp, // (n, h)
                          const real *w,   // (h)
                          const real *b,   // (h)
                          mt_norm nm, int n, int h) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * h;
        real *y = out + (size_t)i * h;
        double m = 0, v = 0;
        for (int j = 0; j < h; j++) m += x[j];
        m /= h;
        // Two passes: the variance of centred values cannot go negative.
        for (int j = 0; j < h; j++) v += (x[j] - m) * (x[j] - m);
        v /= h;
        double r = 1.0 / sqrt(v + nm.eps);
        for (int j = 0; j < h; j++) y[j] = (real)((x[j] - m) * r * w[j] + b[j]);
        mean[i] = (real)m;
        rstd[i] = (real)r;
    }
}

void mt_norm_backward(real *dinp,       // (n, h)
                           real *dw,         // (h) accumulated
                           real *db,         // (h) accumulated
                           const real *dout, // (n, h)
                           const real *inp,  // (n, h)
                           const real *w,    // (h)
                           const real *mean, // (n)
                           const real *rstd, // (n)
                           mt_norm nm, int n, int h) {
    // dinp = rstd * (g - mean(g) - x̂ * mean(g * x̂)) with g = w * dout, x̂ the
    // normalised input; rows are independent.
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * h, *dy = dout + (size_t)i * h;
        real *dx = dinp + (size_t)i * h;
        double m = mean[i], r = rstd[i], sg = 0, sgx = 0;
        for (int j = 0; j < h; j++) {
            double g = (double)w[j] * dy[j];
            sg += g;
            sgx += g * (x[j] - m) * r;
        }
        sg /= h;
        sgx /= h;
        for (int j = 0; j < h; j++) {
            double g = (double)w[j] * dy[j];
            dx[j] = (real)(r * (g - sg - (x[j] - m) * r * sgx));
        }
    }
    mt_colsum_accumulate(db, dout, n, h);
    // dw: the column sums of dout * x̂, in the same fixed order.
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < h; j0 += MT_COLS_PER_TASK) {
        int wd = MT_MIN(MT_COLS_PER_TASK, h - j0);
        double aw[MT_COLS_PER_TASK] = {0};
        for (int i = 0; i < n; i++) {
            const real *x = inp + (size_t)i * h + j0, *dy = dout + (size_t)i * h + j0;
            double m = mean[i], r = rstd[i];
            for (int j = 0; j < wd; j++) aw[j] += dy[j] * (x[j] - m) * r;
        }
        for (int j = 0; j < wd; j++) dw[j0 + j] += (real)aw[j];
    }
}
