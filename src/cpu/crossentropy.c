// crossentropy.c: vocab-parallel softmax cross-entropy over a padded
// vocabulary (Megatron's VocabParallelCrossEntropy), padding masked out so
// the loss never depends on it (Megatron issue #1754).
#include "ops.h"
#include "fused.h"
#include "vmath.h"

#include <math.h>

// Columns [0, valid) of this rank's shard are real tokens; the rest, if any,
// is padding past V.
static int valid_cols(int v0, int vl, int V) { return MT_MAX(0, MT_MIN(vl, V - v0)); }

// The three steps' per-row work, shared with the fused sweep so that both
// give the same bits (the sum's vector order included).
MT_INLINE real row_max(const real *l, int nv) {
    // -inf is the identity of the MAX all-reduce: a rank of pure padding
    // does not move the global max.
    real m = -INFINITY;
    for (int j = 0; j < nv; j++) m = l[j] > m ? l[j] : m;
    return m;
}

MT_INLINE double row_sumexp(const real *l, real m, int nv) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < nv; j++) s += (double)MT_EXP(l[j] - m);
    return s;
}

MT_INLINE real row_loss(real m, real sumexp, real tlogit) {
    return (real)(log((double)sumexp) + (double)m - (double)tlogit);
}

MT_INLINE void row_grad(real *d, const real *l, real m, real sumexp, int t, real scale, int nv, int vl) {
    real sinv = (real)(scale / (double)sumexp);
#pragma omp simd
    for (int j = 0; j < nv; j++) d[j] = MT_EXP(l[j] - m) * sinv;
    if (t >= 0 && t < nv) d[t] -= scale;
    for (int j = nv; j < vl; j++) d[j] = 0;
}

void mt_xent_local_max(real *rmax,         // (n)
                       const real *logits, // (n, vl)
                       int v0, int vl, int V, int n) {
    int nv = valid_cols(v0, vl, V);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *l = logits + (size_t)i * vl;
        rmax[i] = row_max(l, nv);
    }
}

void mt_xent_local_sums(real *sumexp,       // (n)
                        real *tlogit,       // (n)
                        const real *logits, // (n, vl)
                        const real *rmax,   // (n) global max
                        const int *targets, // (n) global ids < V
                        int v0, int vl, int V, int n) {
    int nv = valid_cols(v0, vl, V);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *l = logits + (size_t)i * vl;
        sumexp[i] = (real)row_sumexp(l, rmax[i], nv);
        int t = targets[i] - v0;
        // Zero from the ranks that lack the target, so a SUM all-reduce
        // delivers the one real value.
        tlogit[i] = t >= 0 && t < nv ? l[t] : 0;
    }
}

void mt_xent_loss(real *loss,         // (n)
                  const real *rmax,   // (n)
                  const real *sumexp, // (n)
                  const real *tlogit, // (n)
                  int n) {
    for (int i = 0; i < n; i++) loss[i] = row_loss(rmax[i], sumexp[i], tlogit[i]);
}

void mt_xent_backward(real *dlogits,       // (n, vl) may alias logits
                      const real *logits,  // (n, vl)
                      const real *rmax,    // (n) global
                      const real *sumexp,  // (n) global
                      const int *targets,  // (n)
                      real scale, int v0, int vl, int V, int n) {
    int nv = valid_cols(v0, vl, V);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *l = logits + (size_t)i * vl;
        real *d = dlogits + (size_t)i * vl;
        row_grad(d, l, rmax[i], sumexp[i], targets[i] - v0, scale, nv, vl);
    }
}

// ---- fused (ops.h, MT_OPS_FUSED) ---------------------------------------------
// One row at a time (a GPT-2 row, 50304 logits, is 200 KB: it stays in L2
// across the row's passes), so the (n, vl) logits stream from memory once
// and the gradient goes back once, where the three steps, the backward and
// --bf16's two roundings each swept all of them.
MT_INLINE void xent_fused_row(real *loss, real *rmax, real *sumexp, real *l, int t, real dscale, int nv, int vl,
                              int bf) {
    if (bf)
        for (int j = 0; j < vl; j++) l[j] = mt_round_if(l[j], 1);
    real m = row_max(l, nv);
    real tl = t >= 0 && t < nv ? l[t] : 0;
    real se;
    if (dscale == 0) {
        se = (real)row_sumexp(l, m, nv);
    } else {
        // The exponentials are kept in place of the logits and scaled
        // below: the same values row_grad would compute again (the
        // exponential was two thirds of this op's time).
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < nv; j++) {
            real e = MT_EXP(l[j] - m);
            l[j] = e;
            s += (double)e;
        }
        se = (real)s;
    }
    *rmax = m;
    *sumexp = se;
    *loss = row_loss(m, se, tl);
    if (dscale == 0) return;
    real sinv = (real)(dscale / (double)se);
#pragma omp simd
    for (int j = 0; j < nv; j++) l[j] = l[j] * sinv;
    if (t >= 0 && t < nv) l[t] -= dscale;
    for (int j = nv; j < vl; j++) l[j] = 0;
    if (bf)
        for (int j = 0; j < vl; j++) l[j] = mt_round_if(l[j], 1);
}

void mt_xent_fused(real *loss,         // (n)
                   real *rmax,         // (n)
                   real *sumexp,       // (n)
                   real *logits,       // (n, vl) in; the gradient out when dscale != 0
                   const int *targets, // (n) ids < V
                   real dscale, int V, int vl, int n, int bf16) {
    int nv = valid_cols(0, vl, V);
    // The flag is tested outside the inlined row (see gelu.c).
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        real *l = logits + (size_t)i * vl;
        if (bf16) xent_fused_row(loss + i, rmax + i, sumexp + i, l, targets[i], dscale, nv, vl, 1);
        else xent_fused_row(loss + i, rmax + i, sumexp + i, l, targets[i], dscale, nv, vl, 0);
    }
}
