// crossentropy.c: vocab-parallel softmax cross-entropy over a padded
// vocabulary (Megatron's VocabParallelCrossEntropy), padding masked out so
// the loss never depends on it (Megatron issue #1754).
#include "ops.h"
#include "vmath.h"

#include <math.h>

// Columns [0, valid) of this rank's shard are real tokens; the rest, if any,
// is padding past V.
static int valid_cols(int v0, int vl, int V) { return MT_MAX(0, MT_MIN(vl, V - v0)); }

void mt_xent_local_max(real *rmax,         // (n)
                       const real *logits, // (n, vl)
                       int v0, int vl, int V, int n) {
    int nv = valid_cols(v0, vl, V);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *l = logits + (size_t)i * vl;
        // -inf is the identity of the MAX all-reduce: a rank of pure padding
        // does not move the global max.
        real m = -INFINITY;
        for (int j = 0; j < nv; j++) m = l[j] > m ? l[j] : m;
        rmax[i] = m;
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
        double s = 0;
        real m = rmax[i];
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < nv; j++) s += (double)MT_EXP(l[j] - m);
        sumexp[i] = (real)s;
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
    for (int i = 0; i < n; i++) loss[i] = (real)(log((double)sumexp[i]) + (double)rmax[i] - (double)tlogit[i]);
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
        real m = rmax[i], sinv = (real)(scale / (double)sumexp[i]);
        int t = targets[i] - v0;
#pragma omp simd
        for (int j = 0; j < nv; j++) d[j] = MT_EXP(l[j] - m) * sinv;
        if (t >= 0 && t < nv) d[t] -= scale;
        for (int j = nv; j < vl; j++) d[j] = 0;
    }
}
