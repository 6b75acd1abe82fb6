// gelu.c: GELU with GPT-2's tanh approximation, and its fused sweeps.
#include "ops.h"

#include <math.h>

#include "fused.h"
#include "reduce.h"
#include "vmath.h"

// √(2/π): the tanh approximation's slope at 0.
#define GELU_K 0.7978845608028654
#define GELU_C 0.044715

// Both directions compute in the build's precision with MT_TANH (libm in
// fp64; a vectorised tanh in fp32, see vmath.h). The plain and the fused
// kernels share these two expressions, so they agree bit for bit.
MT_INLINE real gelu_value(real x) {
    const real k = (real)GELU_K, c = (real)GELU_C;
    return (real)0.5 * x * ((real)1 + MT_TANH(k * (x + c * x * x * x)));
}

// gelu'(x), which backward multiplies by the output gradient.
MT_INLINE real gelu_slope(real x) {
    const real k = (real)GELU_K, c = (real)GELU_C;
    real t = MT_TANH(k * (x + c * x * x * x));
    real du = k * ((real)1 + (real)3 * c * x * x);
    return (real)0.5 * ((real)1 + t) + (real)0.5 * x * ((real)1 - t * t) * du;
}

void mt_gelu_forward(real *out,       // (n)
                     const real *inp, // (n)
                     size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gelu_value(inp[i]);
}

void mt_gelu_backward(real *dinp,       // (n) may alias dout
                      const real *inp,  // (n)
                      const real *dout, // (n)
                      size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] = gelu_slope(inp[i]) * dout[i];
}

// ---- fused (ops.h, MT_OPS_FUSED) ---------------------------------------------
// GCC outlines an OpenMP region before it inlines, so a flag tested inside
// the region stays a run-time test in the loop (and blocks its
// vectorisation). The flag is therefore tested outside the loops below, and
// the always-inlined bodies see a literal 0 or 1.

// One pass instead of three under --bf16 (round fc1, GELU, round act); in
// fp32 it is GELU's own loop.
void mt_gelu_fused_forward(real *out, // (n)
                           real *inp, // (n) rounded in place under bf16
                           size_t n, int bf16) {
    if (!bf16) {
        mt_gelu_forward(out, inp, n);
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        real x = mt_round_if(inp[i], 1);
        inp[i] = x;
        out[i] = mt_round_if(gelu_value(x), 1);
    }
}

// One column block [j0, j0 + w) walked down the rows: the gradient of each
// element, and acc[j] += it in row order.
MT_INLINE void gelu_bwd_cols(real *dinp, double *acc, const real *inp, const real *dout, int n, int f, int j0, int w,
                             int bf) {
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * f + j0;
#pragma omp simd
        for (int j = 0; j < w; j++) {
            real d = mt_round_if(gelu_slope(inp[o + j]) * mt_round_if(dout[o + j], bf), bf);
            dinp[o + j] = d;
            acc[j] += d;
        }
    }
}

// Threads own column blocks and walk the rows in order, as
// mt_colsum_accumulate does, so the bias gradient is summed in the same
// order (row 0 first, in double) while each gradient value is still in a
// register: one pass instead of GELU's, the rounding's and the column sum's.
void mt_gelu_fused_backward(real *dinp,       // (n, f) may alias dout
                            real *dbias,      // (f) accumulated, or NULL
                            const real *inp,  // (n, f)
                            const real *dout, // (n, f)
                            int n, int f, int bf16) {
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < f; j0 += MT_COLS_PER_TASK) {
        int w = MT_MIN(MT_COLS_PER_TASK, f - j0);
        double acc[MT_COLS_PER_TASK] = {0};
        if (bf16) gelu_bwd_cols(dinp, acc, inp, dout, n, f, j0, w, 1);
        else gelu_bwd_cols(dinp, acc, inp, dout, n, f, j0, w, 0);
        if (dbias)
            for (int j = 0; j < w; j++) dbias[j0 + j] += (real)acc[j];
    }
}
