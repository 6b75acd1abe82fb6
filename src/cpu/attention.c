// attention.c: causal multi-head self-attention core, plain (not flash):
// the (s, s) probabilities are materialised and saved for backward. Each
// (batch column, head) pair is independent; threads take whole pairs. The
// products are this file's register tiles over the causal blocks only, not
// OpenBLAS (docs/design.md, "Plain attention in cache blocks").
#include "bf16.h"
#include "ops.h"
#include "vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

// --bf16: the first n entries of a row as the bf16 tensor a GPU run would
// hold there (the masked zeros past them stay zero).
static void bf16_row(real *x, int n, int on) {
    if (!on) return;
#pragma omp simd
    for (int j = 0; j < n; j++) x[j] = (real)mt_bf16_round((float)x[j]);
}

// dr = pr * keep / (1-p) over query q's keys, zero past them, rounded under
// --bf16. The mask is drawn from global indices each time it is needed,
// never stored.
static void drop_row(real *dr, const real *pr, unsigned char *keep, const mt_dropout_key *k, uint32_t sample,
                     uint32_t head, int q, int s, real sc, int bf16) {
    mt_rng_keep_attn_row(k, sample, head, (uint32_t)q, q + 1, keep);
    for (int j = 0; j <= q; j++) dr[j] = keep[j] ? pr[j] * sc : 0;
    for (int j = q + 1; j < s; j++) dr[j] = 0;
    bf16_row(dr, q + 1, bf16);
}

// Max and double sum of a row of tens of keys: 16 lanes, then a halving
// tree of fixed widths, which GCC turns into vector operations. (An omp simd
// reduction ended in a scalar loop over its lanes, and a loop of variable
// count is not vectorised at -O2: together ~20% of the forward at s = 64.)
#define LANES 16
static real row_max(const real *x, int n) {
    real l[LANES];
    for (int i = 0; i < LANES; i++) l[i] = x[0];
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int i = 0; i < LANES; i++) l[i] = x[j + i] > l[i] ? x[j + i] : l[i];
    for (int i = 0; j + i < n; i++) l[i] = x[j + i] > l[i] ? x[j + i] : l[i];
    for (int i = 0; i < 8; i++) l[i] = l[i + 8] > l[i] ? l[i + 8] : l[i];
    for (int i = 0; i < 4; i++) l[i] = l[i + 4] > l[i] ? l[i + 4] : l[i];
    for (int i = 0; i < 2; i++) l[i] = l[i + 2] > l[i] ? l[i + 2] : l[i];
    return l[1] > l[0] ? l[1] : l[0];
}

static double row_sum(const real *x, int n) {
    double l[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int i = 0; i < LANES; i++) l[i] += x[j + i];
    for (int i = 0; j + i < n; i++) l[i] += x[j + i];
    for (int i = 0; i < 8; i++) l[i] += l[i + 8];
    for (int i = 0; i < 4; i++) l[i] += l[i + 4];
    for (int i = 0; i < 2; i++) l[i] += l[i + 2];
    return l[0] + l[1];
}

// Causal softmax of query q's row in place (scores in, probabilities out):
// keys past the query get probability 0. Under --bf16 the scores are read
// as the scores GEMM's bf16 output and the probabilities written bf16.
static void softmax_row(real *row, // (s)
                        int q, int s, int bf16) {
    bf16_row(row, q + 1, bf16);
    real m = row_max(row, q + 1);
    // Exponentials first (a vectorised loop in fp32, vmath.h), then their
    // sum in double.
#pragma omp simd
    for (int j = 0; j <= q; j++) row[j] = MT_EXP(row[j] - m);
    real inv = (real)(1.0 / row_sum(row, q + 1));
#pragma omp simd
    for (int j = 0; j <= q; j++) row[j] *= inv;
    bf16_row(row, q + 1, bf16);
    for (int j = q + 1; j < s; j++) row[j] = 0;
}

// ---- the register tile ------------------------------------------------------
// The forward runs in blocks of TR query rows: their scores (TR rows of at
// most s keys, in L1) are computed for the causal keys only, softmaxed and
// multiplied by V before the next block, instead of three (s, s) passes
// through OpenBLAS per pair (tiny GEMMs, half of whose scores are masked).
// Every product is one tile: TR rows of A (unit stride along the sum)
// against a TJ-wide panel of B (rows ldb apart), TR x TJ sums in registers.
// A is read one scalar per row and k, so it may as well be transposed: the
// backward's Pdᵀ·dO and dSᵀ·Q read Pd and dS down their columns.
// Sized to the register file: two vectors wide and, with AVX-512's 32
// registers, 8 rows: 16 accumulators, enough independent FMAs in flight
// (measured at GPT-2 124M's and configs/small.conf's attention: 8 rows ran
// the op 1.2-2x faster than 4; 12 or 16 rows, fewer columns, were slower).
// AVX2 has 16 registers, so 4 rows.
#if defined(__AVX512F__)
#define TR 8
#define TJ (128 / (int)sizeof(real))
#else
#define TR 4
#define TJ (64 / (int)sizeof(real))
#endif
// A fused multiply-add where the CPU has one; without it (MARCH=x86-64)
// libm's fma is a software routine many times slower than a*b + c.
#if !defined(__FMA__)
#define MT_FMA(a, b, c) ((a) * (b) + (c))
#elif defined(MT_FP64)
#define MT_FMA(a, b, c) fma(a, b, c)
#else
#define MT_FMA(a, b, c) fmaf(a, b, c)
#endif

// c[r][j] (+)= alpha Σ_k a[r][k ka] b[k][j] for r < nr, j < nc (ka = 1: A's
// rows; ka = its row stride: A's columns, i.e. Aᵀ's rows). The sums run over
// k in order, one fused multiply-add each (C11 does not contract a*b+c, so
// the fma is spelled out). Rows r >= nr point at a valid row and are
// dropped. The unroll pragmas make GCC keep acc in registers (without them
// it stayed in memory, reloaded every k).
static void tile(real *c, size_t ldc, int nr, int nc, real alpha, const real *const a[TR], size_t ka, const real *b,
                 size_t ldb, int nk, int beta) {
    real acc[TR][TJ];
#pragma GCC unroll 8
    for (int r = 0; r < TR; r++)
#pragma GCC unroll 32
        for (int j = 0; j < TJ; j++) acc[r][j] = 0;
    for (int k = 0; k < nk; k++) {
        const real *bk = b + (size_t)k * ldb;
#pragma GCC unroll 8
        for (int r = 0; r < TR; r++) {
            real x = a[r][(size_t)k * ka];
#pragma GCC unroll 32
            for (int j = 0; j < TJ; j++) acc[r][j] = MT_FMA(x, bk[j], acc[r][j]);
        }
    }
    for (int r = 0; r < nr; r++) {
        real *cr = c + (size_t)r * ldc;
        if (beta)
            for (int j = 0; j < nc; j++) cr[j] += alpha * acc[r][j];
        else if (nc == TJ)  // a fixed count, so the stores are vectors
            for (int j = 0; j < TJ; j++) cr[j] = alpha * acc[r][j];
        else
            for (int j = 0; j < nc; j++) cr[j] = alpha * acc[r][j];
    }
}

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

// Per-thread panels: Kᵀ (hd, sp) and V (s, hdp), zero-padded to whole
// tiles, so a tile never reads past them.
typedef struct {
    real *kt, *vp, *pd;
    unsigned char *keep;
    int sp, hdp;
} fwd_ws;

// Zeroed once: the padding past s and hd is never written.
static real *zalloc(size_t n) {
    real *p = mt_malloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) p[i] = 0;
    return p;
}

static fwd_ws fwd_ws_new(mt_attn_shape sh, int drop) {
    fwd_ws w = {.sp = round_up(sh.s, TJ), .hdp = round_up(sh.hd, TJ)};
    w.kt = zalloc((size_t)sh.hd * w.sp);
    w.vp = zalloc((size_t)sh.s * w.hdp);
    w.pd = drop ? mt_malloc((size_t)TR * sh.s * sizeof(real)) : NULL;
    w.keep = drop ? mt_malloc((size_t)sh.s) : NULL;
    return w;
}

static void fwd_ws_free(fwd_ws *w) {
    free(w->kt);
    free(w->vp);
    free(w->pd);
    free(w->keep);
}

// Kᵀ (hd, sp) from K's rows, ld apart. The rows of one pair are ld apart,
// often a multiple of 4 KiB, so they would share one L1 set: the tiles read
// packed copies. Eight rows at a time: eight loads in flight, stores in runs.
static void pack_t(real *kt, int sp, const real *K, size_t ld, int s, int hd) {
    for (int j0 = 0; j0 < s; j0 += 8) {
        int nj = s - j0 < 8 ? s - j0 : 8;
        for (int d = 0; d < hd; d++)
            for (int jj = 0; jj < nj; jj++) kt[(size_t)d * sp + j0 + jj] = K[(size_t)(j0 + jj) * ld + d];
    }
}

// (s, hdp) rows from rows ld apart (the padding columns stay zero).
static void pack_rows(real *p, int hdp, const real *X, size_t ld, int s, int hd) {
    for (int j = 0; j < s; j++) memcpy(p + (size_t)j * hdp, X + (size_t)j * ld, (size_t)hd * sizeof(real));
}

// One (batch column, head) pair: P's rows written to probs, O to out.
static void forward_pair(real *out, real *P, const real *Q, const real *K, const real *V, pair_at a, fwd_ws *w,
                         const mt_dropout_key *k, uint32_t sample, uint32_t head, mt_attn_shape sh, real scale) {
    int s = sh.s, hd = sh.hd;
    pack_t(w->kt, w->sp, K, a.ld, s, hd);
    pack_rows(w->vp, w->hdp, V, a.ld, s, hd);
    real sc = w->pd ? (real)(1.0 / (1.0 - (double)k->p)) : 0;
    for (int i = 0; i < s; i += TR) {
        int nr = s - i < TR ? s - i : TR, nk = i + nr;  // keys 0 .. i+nr-1 are visible to some row
        real *Pi = P + (size_t)i * s;
        const real *qr[TR], *pr[TR];
        for (int r = 0; r < TR; r++) qr[r] = Q + (size_t)(i + (r < nr ? r : 0)) * a.ld;
        for (int j0 = 0; j0 < nk; j0 += TJ)  // the scores, scaled (as the scores GEMM's alpha)
            tile(Pi + j0, s, nr, nk - j0 < TJ ? nk - j0 : TJ, scale, qr, 1, w->kt + j0, w->sp, hd, 0);
        for (int r = 0; r < nr; r++) softmax_row(Pi + (size_t)r * s, i + r, s, sh.bf16);
        const real *Pv = Pi;  // what multiplies V: P, or its dropped copy
        if (w->pd) {
            for (int r = 0; r < nr; r++)
                drop_row(w->pd + (size_t)r * s, Pi + (size_t)r * s, w->keep, k, sample, head, i + r, s, sc, sh.bf16);
            Pv = w->pd;
        }
        for (int r = 0; r < TR; r++) pr[r] = Pv + (size_t)(r < nr ? r : 0) * s;
        for (int d0 = 0; d0 < hd; d0 += TJ)  // O = P·V over the visible keys (P is 0 past each row's query)
            tile(out + (size_t)i * a.ldo + d0, a.ldo, nr, hd - d0 < TJ ? hd - d0 : TJ, 1, pr, 1, w->vp + d0, w->hdp, nk, 0);
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

// dS = Pd ⊙ dPd - P ⊙ rowsum(Pd ⊙ dPd), in place over dPd, for query q's
// row. This is P ⊙ (dP - rowsum(dP ⊙ P)) with dP = dPd ⊙ keep / (1-p),
// rewritten through Pd = P ⊙ keep / (1-p) so the mask is not needed a
// second time. Under --bf16 dPd is read as its GEMM's bf16 output and dS
// written bf16.
static void softmax_backward_row(real *d,        // (s) dPd in, dS out
                                 const real *pd, // (s) probabilities after dropout
                                 const real *p,  // (s) probabilities before dropout
                                 int q, int s, int bf16) {
    bf16_row(d, q + 1, bf16);
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j <= q; j++) dot += (double)pd[j] * d[j];
#pragma omp simd
    for (int j = 0; j <= q; j++) d[j] = (real)((double)pd[j] * d[j] - (double)p[j] * dot);
    bf16_row(d, q + 1, bf16);
    for (int j = q + 1; j < s; j++) d[j] = 0;
}

// Per-thread panels of the backward: Vᵀ (hd, sp); K, Q and dO as (s, hdp)
// rows; under dropout the pair's dropped probabilities (s, s).
typedef struct {
    real *vt, *kp, *qp, *dop, *pd;
    unsigned char *keep;
    int sp, hdp;
} bwd_ws;

static bwd_ws bwd_ws_new(mt_attn_shape sh, int drop) {
    bwd_ws w = {.sp = round_up(sh.s, TJ), .hdp = round_up(sh.hd, TJ)};
    size_t s = (size_t)sh.s;
    w.vt = zalloc((size_t)sh.hd * w.sp);
    w.kp = zalloc(s * w.hdp);
    w.qp = zalloc(s * w.hdp);
    w.dop = zalloc(s * w.hdp);
    w.pd = drop ? mt_malloc(s * s * sizeof(real)) : NULL;
    w.keep = drop ? mt_malloc(s) : NULL;
    return w;
}

static void bwd_ws_free(bwd_ws *w) {
    free(w->vt);
    free(w->kp);
    free(w->qp);
    free(w->dop);
    free(w->pd);
    free(w->keep);
}

// One (batch column, query head) pair, in blocks of TR query rows: dPd =
// dO·Vᵀ over the causal keys, dS (into dS, the pair's (s, s) scratch) and
// dQ = dS·K/√hd while the rows are in cache. Then, key block by key block
// over the queries at or after it, dV (+)= Pdᵀ·dO and dK (+)= dSᵀ·Q/√hd,
// reading Pd and dS down their columns. beta: the group's first head writes
// dK and dV, the others add.
static void backward_pair(real *dQ, real *dK, real *dV, real *dS, const real *Q, const real *K, const real *V,
                          const real *dO, const real *P, pair_at a, bwd_ws *w, const mt_dropout_key *k,
                          uint32_t sample, uint32_t head, mt_attn_shape sh, real scale, int beta) {
    int s = sh.s, hd = sh.hd;
    pack_t(w->vt, w->sp, V, a.ld, s, hd);
    pack_rows(w->kp, w->hdp, K, a.ld, s, hd);
    pack_rows(w->qp, w->hdp, Q, a.ld, s, hd);
    pack_rows(w->dop, w->hdp, dO, a.ldo, s, hd);
    real sc = w->pd ? (real)(1.0 / (1.0 - (double)k->p)) : 0;
    const real *Pd = w->pd ? w->pd : P;  // the probabilities that multiplied V
    const real *ar[TR];
    for (int i = 0; i < s; i += TR) {
        int nr = s - i < TR ? s - i : TR, nk = i + nr;
        const real *Pi = P + (size_t)i * s, *Pdi = Pd + (size_t)i * s;
        real *dSi = dS + (size_t)i * s;
        if (w->pd)
            for (int r = 0; r < nr; r++)
                drop_row(w->pd + (size_t)(i + r) * s, Pi + (size_t)r * s, w->keep, k, sample, head, i + r, s, sc,
                         sh.bf16);
        for (int r = 0; r < TR; r++) ar[r] = w->dop + (size_t)(i + (r < nr ? r : 0)) * w->hdp;
        for (int j0 = 0; j0 < nk; j0 += TJ)  // dPd = dO·Vᵀ
            tile(dSi + j0, s, nr, nk - j0 < TJ ? nk - j0 : TJ, 1, ar, 1, w->vt + j0, w->sp, hd, 0);
        for (int r = 0; r < nr; r++)
            softmax_backward_row(dSi + (size_t)r * s, Pdi + (size_t)r * s, Pi + (size_t)r * s, i + r, s, sh.bf16);
        for (int r = 0; r < TR; r++) ar[r] = dSi + (size_t)(r < nr ? r : 0) * s;
        for (int d0 = 0; d0 < hd; d0 += TJ)  // dQ = dS·K/√hd
            tile(dQ + (size_t)i * a.ld + d0, a.ld, nr, hd - d0 < TJ ? hd - d0 : TJ, scale, ar, 1, w->kp + d0, w->hdp, nk,
                 0);
    }
    for (int j0 = 0; j0 < s; j0 += TR) {
        // Queries j0 .. s-1 see some key of the block; Pd and dS are 0 where
        // the query is before the key.
        int nr = s - j0 < TR ? s - j0 : TR, nq = s - j0;
        for (int r = 0; r < TR; r++) ar[r] = Pd + (size_t)j0 * s + j0 + (r < nr ? r : 0);
        for (int d0 = 0; d0 < hd; d0 += TJ)  // dV (+)= Pdᵀ·dO
            tile(dV + (size_t)j0 * a.ld + d0, a.ld, nr, hd - d0 < TJ ? hd - d0 : TJ, 1, ar, (size_t)s,
                 w->dop + (size_t)j0 * w->hdp + d0, w->hdp, nq, beta);
        for (int r = 0; r < TR; r++) ar[r] = dS + (size_t)j0 * s + j0 + (r < nr ? r : 0);
        for (int d0 = 0; d0 < hd; d0 += TJ)  // dK (+)= dSᵀ·Q/√hd
            tile(dK + (size_t)j0 * a.ld + d0, a.ld, nr, hd - d0 < TJ ? hd - d0 : TJ, scale, ar, (size_t)s,
                 w->qp + (size_t)j0 * w->hdp + d0, w->hdp, nq, beta);
    }
}
void mt_attention_backward(real *dqkv,        // (s, b, W) overwritten
                           real *scratch,     // (b, nh, s, s) workspace
                           const real *dout,  // (s, b, nh*hd)
                           const real *qkv,   // (s, b, W)
                           const real *probs, // (b, nh, s, s) from forward
                           const mt_dropout_key *k, mt_attn_shape sh) {
    int per = sh.nh / sh.nkv, ngroups = sh.b * sh.nkv, drop = attn_dropout_on(k);
    real scale = (real)(1.0 / sqrt((double)sh.hd));
#pragma omp parallel
    {
        bwd_ws w = bwd_ws_new(sh, drop);
        // A thread owns a (batch column, KV head) pair: the query heads that
        // share K and V add their dK and dV in head order, so the sums are
        // race-free and their order fixed.
#pragma omp for schedule(static)
        for (int gi = 0; gi < ngroups; gi++) {
            int bc = gi / sh.nkv, g = gi % sh.nkv;
            for (int j = 0; j < per; j++) {
                int h = g * per + j;
                pair_at a = locate(sh, bc, h);
                backward_pair(dqkv + a.q, dqkv + a.k, dqkv + a.v, scratch + a.p, qkv + a.q, qkv + a.k, qkv + a.v,
                              dout + a.o, probs + a.p, a, &w, k, sh.sample0 + (uint32_t)bc, sh.head0 + (uint32_t)h, sh,
                              scale, j > 0);
            }
        }
        bwd_ws_free(&w);
    }
}
