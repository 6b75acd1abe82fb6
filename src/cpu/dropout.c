// dropout.c: hidden dropout (Megatron's bias-dropout-add and the embedding
// dropout). Masks are never stored: they are pure functions of global indices
// (docs/design.md §1), so backward draws them again.
#include "ops.h"

#include <stdlib.h>

#include "fused.h"
#include "reduce.h"

static int dropout_on(const mt_dropout_key *k) { return k && k->p > 0; }

// Scale applied to kept values so the expectation is unchanged.
static real keep_scale(const mt_dropout_key *k) { return (real)(1.0 / (1.0 - (double)k->p)); }

// Row i's mask. Hidden rows are never split by TP, so feature f0 is 0 and the
// column index is already the global feature index.
static void row_mask(const mt_dropout_key *k, mt_rows r, int i, int h, unsigned char *keep) {
    mt_rng_keep_row(k, r.sample0 + (uint32_t)(i % r.b), mt_rows_pos(r, i / r.b), 0, h, keep);
}

// One output value of bias-dropout-add; the plain and fused sweeps share it.
MT_INLINE real bda_value(real res, real x, real bias, int on, unsigned char keep, real sc) {
    real v = x + bias;
    // Select rather than multiply, so p = 1 gives zeros, not NaN.
    return res + (!on ? v : keep ? v * sc : 0);
}

void mt_bias_dropout_add_forward(real *out,        // (rows, h) may alias res
                                 const real *res,  // (rows, h)
                                 const real *inp,  // (rows, h)
                                 const real *bias, // (h) or NULL
                                 const mt_dropout_key *k, mt_rows r, int h) {
    // The fused sweep without its bf16 rounding is this op exactly.
    mt_bias_dropout_add_fused_forward(out, res, inp, bias, k, r, h, 0);
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

// ---- fused (ops.h, MT_OPS_FUSED) ---------------------------------------------
// As in gelu.c, the bf16 flag is tested outside the always-inlined loops:
// inside an OpenMP region it would stay a run-time test.

MT_INLINE void bda_fwd_row(real *y, const real *y0, const real *x, const real *bias, int on, const unsigned char *keep,
                           real sc, int h, int bf) {
    for (int j = 0; j < h; j++)
        y[j] = mt_round_if(bda_value(y0[j], x[j], bias ? bias[j] : 0, on, keep ? keep[j] : 1, sc), bf);
}

// Forward: the plain sweep with the --bf16 rounding of out folded in.
void mt_bias_dropout_add_fused_forward(real *out,        // (rows, h) may alias res
                                       const real *res,  // (rows, h)
                                       const real *inp,  // (rows, h)
                                       const real *bias, // (h) or NULL
                                       const mt_dropout_key *k, mt_rows r, int h, int bf16) {
    int on = dropout_on(k);
    real sc = on ? keep_scale(k) : 1;
#pragma omp parallel
    {
        unsigned char *keep = on ? mt_malloc((size_t)h) : NULL;
#pragma omp for schedule(static)
        for (int i = 0; i < r.rows; i++) {
            size_t o = (size_t)i * h;
            if (on) row_mask(k, r, i, h, keep);
            if (bf16) bda_fwd_row(out + o, res + o, inp + o, bias, on, keep, sc, h, 1);
            else bda_fwd_row(out + o, res + o, inp + o, bias, on, keep, sc, h, 0);
        }
        free(keep);
    }
}

// One column block down the rows: dinp = mask * dout / (1-p), acc[j] += it.
MT_INLINE void bda_bwd_cols(real *dinp, double *acc, const real *dout, const mt_dropout_key *k, mt_rows r, int h,
                            int j0, int w, int on, real sc, int bf) {
    unsigned char keep[MT_COLS_PER_TASK];
    for (int i = 0; i < r.rows; i++) {
        size_t o = (size_t)i * h + j0;
        if (on) mt_rng_keep_row(k, r.sample0 + (uint32_t)(i % r.b), mt_rows_pos(r, i / r.b), (uint32_t)j0, w, keep);
        for (int j = 0; j < w; j++) {
            real d = !on ? dout[o + j] : keep[j] ? dout[o + j] * sc : 0;
            acc[j] += d;
            dinp[o + j] = mt_round_if(d, bf);
        }
    }
}

// Backward in one sweep instead of four (copy, mask, column sum, rounding):
// threads own column blocks and walk the rows in order, drawing only their
// columns' mask (the draws are keyed by global feature index), so dbias is
// summed in mt_colsum_accumulate's order from the unrounded values.
void mt_bias_dropout_add_fused_backward(real *dinp,       // (rows, h) may alias dout
                                        real *dbias,      // (h) accumulated, or NULL
                                        const real *dout, // (rows, h)
                                        const mt_dropout_key *k, mt_rows r, int h, int bf16) {
    int on = dropout_on(k);
    real sc = on ? keep_scale(k) : 1;
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < h; j0 += MT_COLS_PER_TASK) {
        int w = MT_MIN(MT_COLS_PER_TASK, h - j0);
        double acc[MT_COLS_PER_TASK] = {0};
        if (bf16) bda_bwd_cols(dinp, acc, dout, k, r, h, j0, w, on, sc, 1);
        else bda_bwd_cols(dinp, acc, dout, k, r, h, j0, w, on, sc, 0);
        if (dbias)
            for (int j = 0; j < w; j++) dbias[j0 + j] += (real)acc[j];
    }
}
