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

// One row of drop_probs: dr = pr * keep / (1-p) for the query q's keys.
static void drop_row(real *dr, const real *pr, unsigned char *keep, const mt_dropout_key *k, uint32_t sample,
                     uint32_t head, int q, int s, real sc) {
    mt_rng_keep_attn_row(k, sample, head, (uint32_t)q, q + 1, keep);
    for (int j = 0; j <= q; j++) dr[j] = keep[j] ? pr[j] * sc : 0;
    for (int j = q + 1; j < s; j++) dr[j] = 0;
}

// pd = P * keep / (1-p), keys past the query zero. The mask is drawn from
// global indices each time it is needed, never stored.
static void drop_probs(real *pd,      // (s, s)
                       const real *P, // (s, s)
                       unsigned char *keep, // (s) workspace
                       const mt_dropout_key *k, uint32_t sample, uint32_t head, int s) {
    real sc = (real)(1.0 / (1.0 - (double)k->p));
    for (int q = 0; q < s; q++) drop_row(pd + (size_t)q * s, P + (size_t)q * s, keep, k, sample, head, q, s, sc);
}

// Causal softmax of query q's row in place (scores in, probabilities out):
// keys past the query get probability 0. Under --bf16 the scores are read
// as the scores GEMM's bf16 output and the probabilities written bf16.
static void softmax_row(real *row, // (s)
                        int q, int s, int bf16) {
    if (bf16)
        for (int j = 0; j <= q; j++) row[j] = (real)mt_bf16_round((float)row[j]);
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
    if (bf16)
        for (int j = 0; j <= q; j++) row[j] = (real)mt_bf16_round((float)row[j]);
    for (int j = q + 1; j < s; j++) row[j] = 0;
}

// ---- the register tile ------------------------------------------------------
// The forward runs in blocks of TR query rows: their scores (TR rows of at
// most s keys, in L1) are computed for the causal keys only, softmaxed and
// multiplied by V before the next block, instead of three (s, s) passes
// through OpenBLAS per pair (tiny GEMMs, half of whose scores are masked).
// Every product is one tile: TR rows of A (unit stride along the sum)
// against a TJ-wide panel of B (rows ldb apart), TR x TJ sums in registers.
#define TR 4
#define TJ 32
#ifdef MT_FP64
#define MT_FMA(a, b, c) fma(a, b, c)
#else
#define MT_FMA(a, b, c) fmaf(a, b, c)
#endif

// c[r][j] = alpha Σ_k a[r][k] b[k][j] for r < nr, j < nc: the sums run over
// k in order, one fused multiply-add each (C11 does not contract a*b+c, so
// the fma is spelled out). Rows r >= nr point at a valid row and are
// dropped. The unroll pragmas make GCC keep acc in registers (without them
// it stayed in memory, reloaded every k).
static void tile(real *c, size_t ldc, int nr, int nc, real alpha, const real *const a[TR], const real *b, size_t ldb,
                 int nk) {
    real acc[TR][TJ];
#pragma GCC unroll 4
    for (int r = 0; r < TR; r++)
#pragma GCC unroll 32
        for (int j = 0; j < TJ; j++) acc[r][j] = 0;
    for (int k = 0; k < nk; k++) {
        const real *bk = b + (size_t)k * ldb;
#pragma GCC unroll 4
        for (int r = 0; r < TR; r++) {
            real x = a[r][k];
#pragma GCC unroll 32
            for (int j = 0; j < TJ; j++) acc[r][j] = MT_FMA(x, bk[j], acc[r][j]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nc; j++) c[(size_t)r * ldc + j] = alpha * acc[r][j];
}

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

// Per-thread panels: Kᵀ (hd, sp) and V (s, hdp), zero-padded to whole
// tiles, so a tile never reads past them.
typedef struct {
    real *kt, *vp, *pd;
    unsigned char *keep;
    int sp, hdp;
} fwd_ws;

static fwd_ws fwd_ws_new(mt_attn_shape sh, int drop) {
    fwd_ws w = {.sp = round_up(sh.s, TJ), .hdp = round_up(sh.hd, TJ)};
    w.kt = mt_malloc((size_t)sh.hd * w.sp * sizeof(real));
    w.vp = mt_malloc((size_t)sh.s * w.hdp * sizeof(real));
    w.pd = drop ? mt_malloc((size_t)TR * sh.s * sizeof(real)) : NULL;
    w.keep = drop ? mt_malloc((size_t)sh.s) : NULL;
    for (size_t i = 0; i < (size_t)sh.hd * w.sp; i++) w.kt[i] = 0;
    for (size_t i = 0; i < (size_t)sh.s * w.hdp; i++) w.vp[i] = 0;
    return w;
}

static void fwd_ws_free(fwd_ws *w) {
    free(w->kt);
    free(w->vp);
    free(w->pd);
    free(w->keep);
}

// One (batch column, head) pair: P's rows written to probs, O to out.
static void forward_pair(real *out, real *P, const real *Q, const real *K, const real *V, pair_at a, fwd_ws *w,
                         const mt_dropout_key *k, uint32_t sample, uint32_t head, mt_attn_shape sh, real scale) {
    int s = sh.s, hd = sh.hd;
    for (int j = 0; j < s; j++)
        for (int d = 0; d < hd; d++) {
            w->kt[(size_t)d * w->sp + j] = K[(size_t)j * a.ld + d];
            w->vp[(size_t)j * w->hdp + d] = V[(size_t)j * a.ld + d];
        }
    real sc = w->pd ? (real)(1.0 / (1.0 - (double)k->p)) : 0;
    for (int i = 0; i < s; i += TR) {
        int nr = s - i < TR ? s - i : TR, nk = i + nr;  // keys 0 .. i+nr-1 are visible to some row
        real *Pi = P + (size_t)i * s;
        const real *qr[TR], *pr[TR];
        for (int r = 0; r < TR; r++) qr[r] = Q + (size_t)(i + (r < nr ? r : 0)) * a.ld;
        for (int j0 = 0; j0 < nk; j0 += TJ)  // the scores, scaled (as the scores GEMM's alpha)
            tile(Pi + j0, s, nr, nk - j0 < TJ ? nk - j0 : TJ, scale, qr, w->kt + j0, w->sp, hd);
        for (int r = 0; r < nr; r++) softmax_row(Pi + (size_t)r * s, i + r, s, sh.bf16);
        const real *Pv = Pi;  // what multiplies V: P, or its dropped copy
        if (w->pd) {
            for (int r = 0; r < nr; r++) {
                real *dr = w->pd + (size_t)r * s;
                drop_row(dr, Pi + (size_t)r * s, w->keep, k, sample, head, i + r, s, sc);
                if (sh.bf16)
                    for (int j = 0; j <= i + r; j++) dr[j] = (real)mt_bf16_round((float)dr[j]);
            }
            Pv = w->pd;
        }
        for (int r = 0; r < TR; r++) pr[r] = Pv + (size_t)(r < nr ? r : 0) * s;
        for (int d0 = 0; d0 < hd; d0 += TJ)  // O = P·V over the visible keys (P is 0 past each row's query)
            tile(out + (size_t)i * a.ldo + d0, a.ldo, nr, hd - d0 < TJ ? hd - d0 : TJ, 1, pr, w->vp + d0, w->hdp, nk);
    }
}

void mt_attention_forward(real *out,       // (s, b, nh*hd)
                          real *probs,     // (b, nh, s, s) softmax, before dropout; saved
                          const real *qkv, // (s, b, 3*nh*hd)
                          const mt_dropout_key *k, mt_attn_shape sh) {
    int hd = sh.hd, npair = sh.b * sh.nh, drop = attn_dropout_on(k);
    real scale = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel
    {
        fwd_ws w = fwd_ws_new(sh, drop);
#pragma omp for schedule(static)
        for (int pr = 0; pr < npair; pr++) {
            int bc = pr / sh.nh, h = pr % sh.nh;
            pair_at a = locate(sh, bc, h);
            forward_pair(out + a.o, probs + a.p, qkv + a.q, qkv + a.k, qkv + a.v, a, &w, k,
                         sh.sample0 + (uint32_t)bc, sh.head0 + (uint32_t)h, sh, scale);
        }
        fwd_ws_free(&w);
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
