// attention.c: causal multi-head self-attention core, plain (not flash):
// the (s, s) probabilities are materialised and saved for backward. Each
// (batch column, head) pair is independent; threads take whole pairs, and the
// OpenBLAS calls inside run single-threaded.
#include "bf16.h"
#include "ops.h"
#include "vmath.h"

#include <math.h>
#include <stdlib.h>

// Where one (batch column, query head) pair's operands sit. Rows are (s, b)
// ordered, so consecutive positions of one sample are b rows apart; a row is
// [Q (nh hd) | K (nkv hd) | V (nkv hd)] and query head h reads KV head
// h / (nh / nkv).
typedef struct {
    size_t q, k, v, o;  // offsets of Q, K, V in qkv and of the head's output in out
    int ld, ldo;        // row strides of qkv and out
    size_t p;           // offset of the (s, s) block in probs and scratch
} pair_at;

static pair_at locate(mt_attn_shape sh, int bc, int h) {
    int W = (sh.nh + 2 * sh.nkv) * sh.hd, g = h / (sh.nh / sh.nkv);
    size_t row = (size_t)bc * W;
    pair_at a = {
        .q = row + (size_t)h * sh.hd,
        .k = row + ((size_t)sh.nh + g) * sh.hd,
        .v = row + ((size_t)sh.nh + sh.nkv + g) * sh.hd,
        .o = (size_t)bc * sh.nh * sh.hd + (size_t)h * sh.hd,
        .ld = sh.b * W,
        .ldo = sh.b * sh.nh * sh.hd,
        .p = ((size_t)bc * sh.nh + h) * sh.s * sh.s,
    };
    return a;
}

static int attn_dropout_on(const mt_dropout_key *k) { return k && k->p > 0; }

// --bf16: an (s, s) block as the bf16 tensor a GPU run would hold there
// (the masked zeros stay zero).
static void to_bf16(real *a, int s, int on) {
    if (!on) return;
    for (size_t i = 0; i < (size_t)s * s; i++) a[i] = (real)mt_bf16_round((float)a[i]);
}

// pd = P * keep / (1-p), keys past the query zero. The mask is drawn from
// global indices each time it is needed, never stored.
static void drop_probs(real *pd,      // (s, s)
                       const real *P, // (s, s)
                       unsigned char *keep, // (s) workspace
                       const mt_dropout_key *k, uint32_t sample, uint32_t head, int s) {
    real sc = (real)(1.0 / (1.0 - (double)k->p));
    for (int q = 0; q < s; q++) {
        mt_rng_keep_attn_row(k, sample, head, (uint32_t)q, q + 1, keep);
        const real *pr = P + (size_t)q * s;
        real *dr = pd + (size_t)q * s;
        for (int j = 0; j <= q; j++) dr[j] = keep[j] ? pr[j] * sc : 0;
        for (int j = q + 1; j < s; j++) dr[j] = 0;
    }
}

// Row-wise causal softmax in place: keys past the query get probability 0.
static void causal_softmax(real *P, // (s, s) scores in, probabilities out
                           int s) {
    for (int q = 0; q < s; q++) {
        real *row = P + (size_t)q * s;
        real m = row[0];
        double sum = 0;
        for (int j = 1; j <= q; j++) m = row[j] > m ? row[j] : m;
        // Exponentials first (a vectorised loop in fp32, vmath.h), then
        // their sum in double.
#pragma omp simd
        for (int j = 0; j <= q; j++) row[j] = MT_EXP(row[j] - m);
        for (int j = 0; j <= q; j++) sum += row[j];
        real inv = (real)(1.0 / sum);
        for (int j = 0; j <= q; j++) row[j] *= inv;
        for (int j = q + 1; j < s; j++) row[j] = 0;
    }
}

void mt_attention_forward(real *out,       // (s, b, nh*hd)
                          real *probs,     // (b, nh, s, s) softmax, before dropout; saved
                          const real *qkv, // (s, b, 3*nh*hd)
                          const mt_dropout_key *k, mt_attn_shape sh) {
    int s = sh.s, hd = sh.hd, npair = sh.b * sh.nh, drop = attn_dropout_on(k);
    real scale = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel
    {
        // probs must keep the pre-dropout values, so P·V reads a private copy.
        real *pd = drop ? mt_malloc((size_t)s * s * sizeof(real)) : NULL;
        unsigned char *keep = drop ? mt_malloc((size_t)s) : NULL;
#pragma omp for schedule(static)
        for (int pr = 0; pr < npair; pr++) {
            int bc = pr / sh.nh, h = pr % sh.nh;
            pair_at a = locate(sh, bc, h);
            const real *Q = qkv + a.q, *K = qkv + a.k, *V = qkv + a.v;
            real *P = probs + a.p;
            mt_gemm(0, 1, s, s, hd, scale, Q, a.ld, K, a.ld, 0, P, s);
            to_bf16(P, s, sh.bf16);  // the scores GEMM's bf16 output
            causal_softmax(P, s);    // read bf16, computed in fp32,
            to_bf16(P, s, sh.bf16);  // written bf16
            if (drop) drop_probs(pd, P, keep, k, sh.sample0 + (uint32_t)bc, sh.head0 + (uint32_t)h, s);
            if (drop) to_bf16(pd, s, sh.bf16);
            mt_gemm(0, 0, s, hd, s, 1, drop ? pd : P, s, V, a.ld, 0, out + a.o, a.ldo);
        }
        free(pd);
        free(keep);
    }
}

// dS = Pd ⊙ dPd - P ⊙ rowsum(Pd ⊙ dPd), in place over dPd. This is
// P ⊙ (dP - rowsum(dP ⊙ P)) with dP = dPd ⊙ keep / (1-p), rewritten through
// Pd = P ⊙ keep / (1-p) so the mask is not needed a second time.
static void softmax_backward(real *dS,       // (s, s) dPd in, dS out
                             const real *Pd, // (s, s) probabilities after dropout
                             const real *P,  // (s, s) probabilities before dropout
                             int s) {
    for (int q = 0; q < s; q++) {
        real *d = dS + (size_t)q * s;
        const real *pd = Pd + (size_t)q * s, *p = P + (size_t)q * s;
        double dot = 0;
        for (int j = 0; j <= q; j++) dot += (double)pd[j] * d[j];
        for (int j = 0; j <= q; j++) d[j] = (real)((double)pd[j] * d[j] - (double)p[j] * dot);
        for (int j = q + 1; j < s; j++) d[j] = 0;
    }
}

void mt_attention_backward(real *dqkv,        // (s, b, W) overwritten
                           real *scratch,     // (b, nh, s, s) workspace
                           const real *dout,  // (s, b, nh*hd)
                           const real *qkv,   // (s, b, W)
                           const real *probs, // (b, nh, s, s) from forward
                           const mt_dropout_key *k, mt_attn_shape sh) {
    int s = sh.s, hd = sh.hd, per = sh.nh / sh.nkv, ngroups = sh.b * sh.nkv, drop = attn_dropout_on(k);
    real scale = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel
    {
        real *pd = drop ? mt_malloc((size_t)s * s * sizeof(real)) : NULL;
        unsigned char *keep = drop ? mt_malloc((size_t)s) : NULL;
        // A thread owns a (batch column, KV head) pair: the query heads that
        // share K and V add their dK and dV in head order, so the sums are
        // race-free and their order fixed.
#pragma omp for schedule(static)
        for (int gi = 0; gi < ngroups; gi++) {
            int bc = gi / sh.nkv, g = gi % sh.nkv;
            for (int j = 0; j < per; j++) {
                int h = g * per + j;
                pair_at a = locate(sh, bc, h);
                const real *Q = qkv + a.q, *K = qkv + a.k, *V = qkv + a.v, *dO = dout + a.o;
                real *dQ = dqkv + a.q, *dK = dqkv + a.k, *dV = dqkv + a.v;
                real beta = j ? 1 : 0;  // the group's first head writes dK and dV, the others add
                const real *P = probs + a.p;
                real *dS = scratch + a.p;
                if (drop) drop_probs(pd, P, keep, k, sh.sample0 + (uint32_t)bc, sh.head0 + (uint32_t)h, s);
                if (drop) to_bf16(pd, s, sh.bf16);
                const real *Pd = drop ? pd : P;
                mt_gemm(1, 0, s, hd, s, 1, Pd, s, dO, a.ldo, beta, dV, a.ld);      // dV (+)= Pdᵀ·dO
                mt_gemm(0, 1, s, s, hd, 1, dO, a.ldo, V, a.ld, 0, dS, s);         // dPd = dO·Vᵀ
                to_bf16(dS, s, sh.bf16);
                softmax_backward(dS, Pd, P, s);
                to_bf16(dS, s, sh.bf16);
                mt_gemm(0, 0, s, hd, s, scale, dS, s, K, a.ld, 0, dQ, a.ld);      // dQ = dS·K/√hd
                mt_gemm(1, 0, s, hd, s, scale, dS, s, Q, a.ld, beta, dK, a.ld);   // dK (+)= dSᵀ·Q/√hd
            }
        }
        free(pd);
        free(keep);
    }
}
