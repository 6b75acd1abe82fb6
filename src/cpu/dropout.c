// dropout.c: hidden dropout (Megatron's bias-dropout-add and the embedding
// dropout). Masks are never stored: they are pure functions of global indices
// (docs/design.md §1), so backward draws them again.
#include "ops.h"

#include <stdlib.h>

#include "reduce.h"

static int dropout_on(const mt_dropout_key *k) { return k && k->p > 0; }

// Scale applied to kept values so the expectation is unchanged.
static real keep_scale(const mt_dropout_key *k) { return (real)(1.0 / (1.0 - (double)k->p)); }

// Row i's mask. Hidden rows are never split by TP, so feature f0 is 0 and the
// column index is already the global feature index.
static void row_mask(const mt_dropout_key *k, mt_rows r, int i, int h, unsigned char *keep) {
    mt_rng_keep_row(k, r.sample0 + (uint32_t)(i % r.b), mt_rows_pos(r, i / r.b), 0, h, keep);
}

void mt_bias_dropout_add_forward(real *out,        // (rows, h) may alias res
                                 const real *res,  // (rows, h)
                                 const real *inp,  // (rows, h)
                                 const real *bias, // (h) or NULL
                                 const mt_dropout_key *k, mt_rows r, int h) {
    int on = dropout_on(k);
    real sc = on ? keep_scale(k) : 1;
#pragma omp parallel
    {
        unsigned char *keep = on ? mt_malloc((size_t)h) : NULL;
#pragma omp for schedule(static)
        for (int i = 0; i < r.rows; i++) {
            const real *x = inp + (size_t)i * h, *y0 = res + (size_t)i * h;
            real *y = out + (size_t)i * h;
            if (on) row_mask(k, r, i, h, keep);
            for (int j = 0; j < h; j++) {
                real v = x[j] + (bias ? bias[j] : 0);
                // Select rather than multiply, so p = 1 gives zeros, not NaN.
                y[j] = y0[j] + (!on ? v : keep[j] ? v * sc : 0);
            }
        }
        free(keep);
    }
}

void mt_bias_dropout_add_backward(real *dinp,       // (rows, h)
                                  real *dbias,      // (h) accumulated, or NULL
                                  const real *dout, // (rows, h)
                                  const mt_dropout_key *k, mt_rows r, int h) {
    if (dinp != dout) {
#pragma omp parallel for schedule(static)
        for (size_t e = 0; e < (size_t)r.rows * h; e++) dinp[e] = dout[e];
    }
    mt_dropout_backward(dinp, k, r, h);
    if (!dbias) return;
    // The bias sits before the dropout, so its gradient is the column sum of dinp.
    mt_colsum_accumulate(dbias, dinp, r.rows, h);
}

// x = mask * x / (1-p), in place. Forward and backward are the same map:
// dropout is linear, and its own adjoint.
static void dropout_apply(real *x, const mt_dropout_key *k, mt_rows r, int h) {
    if (!dropout_on(k)) return;
    real sc = keep_scale(k);
#pragma omp parallel
    {
        unsigned char *keep = mt_malloc((size_t)h);
#pragma omp for schedule(static)
        for (int i = 0; i < r.rows; i++) {
            real *row = x + (size_t)i * h;
            row_mask(k, r, i, h, keep);
            for (int j = 0; j < h; j++) row[j] = keep[j] ? row[j] * sc : 0;
        }
        free(keep);
    }
}

void mt_dropout_forward(real *x, // (rows, h) in place
                        const mt_dropout_key *k, mt_rows r, int h) {
    dropout_apply(x, k, r, h);
}

void mt_dropout_backward(real *dx, // (rows, h) in place
                         const mt_dropout_key *k, mt_rows r, int h) {
    dropout_apply(dx, k, r, h);
}
