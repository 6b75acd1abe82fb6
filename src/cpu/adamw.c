// adamw.c: the optimizer step and the reductions the gradient clip needs.
#include "bf16.h"
#include "ops.h"

#include <math.h>
#include <stdlib.h>

#include "fused.h"
#include "vmath.h"

// Tensors below this many elements are updated by the calling thread alone:
// waking the OpenMP team costs more than it saves on a bias or a LayerNorm
// gain (256 to 3072 elements; 28 bytes each), and the optimizer ran one
// team wake per tensor, 52 of the small shape's 189 a step. Element by
// element the same arithmetic, so the same bits whichever thread runs it.
#define ADAMW_MIN_TEAM 16384

// In the build's precision, as PyTorch and apex do (fp32 arithmetic for
// fp32 weights); the bias corrections are computed once, in double. The
// clip coefficient rides along as gscale, so clipping costs no extra pass
// over the gradients (this loop is memory-bound: 28 bytes per element).
// One pass over p, g, m and v (and pbf under --bf16: its rounding of the
// updated weight, written while the value is in a register rather than in a
// second sweep over the parameters). The loop is memory-bound, so it is
// threaded in contiguous static blocks, each streamed once.
MT_INLINE void adamw_elem(real *p, real *pbf, real *g, real gscale, real *m, real *v, size_t i, real c1, real c2,
                          real lr, real b1, real b2, real eps, real wd, int bf) {
    const real one = 1;
    real gi = g[i] * gscale, pi = p[i];
    g[i] = 0;  // consumed: the next step accumulates from zero (ops.h)
    real mi = b1 * m[i] + (one - b1) * gi;
    real vi = b2 * v[i] + (one - b2) * gi * gi;
    pi -= lr * ((mi / c1) / (MT_SQRT(vi / c2) + eps) + wd * pi);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    if (bf) pbf[i] = mt_round_if(pi, 1);
}

void mt_adamw_update(real *p,       // (n)
                     real *g,       // (n) unclipped; zeroed
                     real gscale,   // clip coefficient (1: none)
                     real *m,       // (n) first moment
                     real *v,       // (n) second moment
                     size_t n, int t, real lr, real b1, real b2, real eps, real wd) {
    const real c1 = (real)(1.0 - pow((double)b1, t)), c2 = (real)(1.0 - pow((double)b2, t));
#pragma omp parallel for simd schedule(static) if (n >= ADAMW_MIN_TEAM)
    for (size_t i = 0; i < n; i++) adamw_elem(p, NULL, g, gscale, m, v, i, c1, c2, lr, b1, b2, eps, wd, 0);
}

// The same pass writing pbf, the rounding of the updated weight, while the
// value is in a register rather than in a second sweep over the parameters
// (the flag tested outside the loop, see gelu.c).
void mt_adamw_fused(real *p,       // (n) fp32 weights (the main weights under --bf16)
                    real *pbf,     // (n) their bf16 compute copy, or NULL
                    real *g,       // (n) unclipped; zeroed
                    real gscale, real *m, real *v, size_t n, int t, real lr, real b1, real b2, real eps, real wd) {
    if (!pbf) {
        mt_adamw_update(p, g, gscale, m, v, n, t, lr, b1, b2, eps, wd);
        return;
    }
    const real c1 = (real)(1.0 - pow((double)b1, t)), c2 = (real)(1.0 - pow((double)b2, t));
#pragma omp parallel for simd schedule(static) if (n >= ADAMW_MIN_TEAM)
    for (size_t i = 0; i < n; i++) adamw_elem(p, pbf, g, gscale, m, v, i, c1, c2, lr, b1, b2, eps, wd, 1);
}

// Σ g² of one block with eight independent accumulators: one serial chain
// of double adds (4 cycles each) made the gradient norm 4% of a 124M step;
// eight chains vectorise and still sum in one fixed order.
static double acc8_total(const double *acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double sumsq_block(const real *g, size_t n) {
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)g[i + k] * g[i + k];
    for (; i < n; i++) acc[i & 7] += (double)g[i] * g[i];
    return acc8_total(acc);
}

// Four whole blocks at once, each in its own order above (so the same
// bits): a block's eight chains alone leave the adds' latency exposed, and
// four streams ran 16 ms -> 13.7 ms over 124M floats here.
static void sumsq_block4(const real *g, double *part) {
    const size_t B = MT_SUMSQ_BLOCK;
    double acc[4][8] = {{0}};
    for (size_t i = 0; i < B; i += 8)
        for (int w = 0; w < 4; w++)
            for (int k = 0; k < 8; k++) acc[w][k] += (double)g[w * B + i + k] * g[w * B + i + k];
    for (int w = 0; w < 4; w++) part[w] = acc8_total(acc[w]);
}

// The work items of a pass over n elements in fixed blocks (MT_SUMSQ_BLOCK):
// groups of four whole blocks first, then the blocks left one by one.
// Whichever thread takes an item, each block is summed in its own fixed
// order: an OpenMP reduction clause promises no order, these parts have one.
typedef struct { size_t ng, items; } block_items;

static block_items items_of(size_t n) {
    size_t nc = (n + MT_SUMSQ_BLOCK - 1) / MT_SUMSQ_BLOCK, ng = n / MT_SUMSQ_BLOCK / 4;
    return (block_items){ng, ng + nc - 4 * ng};
}

// Item t: its first block, its element range [*lo, *hi) and its parts.
static size_t item_range(block_items w, size_t t, size_t n, size_t *lo, size_t *hi) {
    size_t c = t < w.ng ? 4 * t : 4 * w.ng + (t - w.ng);
    *lo = c * MT_SUMSQ_BLOCK;
    *hi = MT_MIN(*lo + (t < w.ng ? 4 : 1) * (size_t)MT_SUMSQ_BLOCK, n);
    return c;
}

static void sum_item(const real *x, block_items w, size_t t, size_t c, size_t lo, size_t hi, double *part) {
    if (t < w.ng) sumsq_block4(x + lo, part + c);
    else part[c] = sumsq_block(x + lo, hi - lo);
}

void mt_sumsq_parts(const real *g, // (n)
                    size_t n,
                    double *part) { // (ceil(n / MT_SUMSQ_BLOCK))
    block_items w = items_of(n);
#pragma omp parallel for schedule(static) if (w.items > 1)
    for (size_t t = 0; t < w.items; t++) {
        size_t lo, hi, c = item_range(w, t, n, &lo, &hi);
        sum_item(g, w, t, c, lo, hi, part);
    }
}

// The scaling and the sum one after the other on the same item while it is
// in L2 (four blocks: 256 KB): one pass over memory instead of two, and
// sumsq_parts' parts.
void mt_scale_sumsq_parts(real *x,   // (n) scaled in place
                          size_t n, real s,
                          double *part) { // (ceil(n / MT_SUMSQ_BLOCK))
    block_items w = items_of(n);
#pragma omp parallel for schedule(static) if (w.items > 1)
    for (size_t t = 0; t < w.items; t++) {
        size_t lo, hi, c = item_range(w, t, n, &lo, &hi);
        for (size_t i = lo; i < hi; i++) x[i] *= s;
        sum_item(x, w, t, c, lo, hi, part);
    }
}

double mt_sumsq(const real *g, // (n)
                size_t n) {
    size_t nc = (n + MT_SUMSQ_BLOCK - 1) / MT_SUMSQ_BLOCK;
    double *part = mt_malloc(MT_MAX(nc, 1) * sizeof(double)), s = 0;
    mt_sumsq_parts(g, n, part);
    for (size_t c = 0; c < nc; c++) s += part[c];
    free(part);
    return s;
}

void mt_scale(real *x, // (n) in place
              size_t n, real s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void mt_add(real *y,       // (n) accumulated
            const real *x, // (n)
            size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void mt_round_bf16(real *dst,       // (n)
                   const real *src, // (n), may be dst
                   size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = (real)mt_bf16_round((float)src[i]);
}
