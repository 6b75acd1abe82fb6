// flash_attention.c: blocked causal attention with an online softmax
// (Dao et al. 2022), forward next to backward. Memory per (batch column,
// head) pair: a few 64 x 64 blocks, whatever the sequence length; the plain
// kernel of attention.c is its reference (tests/test_ops.c compares them).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "vmath.h"

enum { BLK = 64 };

typedef struct {
    const real *Q, *K, *V;  // rows ld apart
    int ld, ldo;            // row strides of qkv and out
    size_t o;               // the head's output offset in out
    size_t l;               // offset of the pair's (s) row in lse
    uint32_t sample, head;  // global indices for the dropout keys
} flash_pair;

// Query head h of batch column bc, with its KV head h / (nh / nkv) (rows
// [Q | K | V] of W = (nh + 2 nkv) hd).
static flash_pair pair_of(const real *qkv, mt_attn_shape sh, int bc, int h) {
    int W = (sh.nh + 2 * sh.nkv) * sh.hd, g = h / (sh.nh / sh.nkv);
    const real *row = qkv + (size_t)bc * W;
    flash_pair f = {row + (size_t)h * sh.hd, row + ((size_t)sh.nh + g) * sh.hd, row + ((size_t)sh.nh + sh.nkv + g) * sh.hd,
                    sh.b * W, sh.b * sh.nh * sh.hd, (size_t)bc * sh.nh * sh.hd + (size_t)h * sh.hd,
                    ((size_t)bc * sh.nh + h) * sh.s, sh.sample0 + (uint32_t)bc, sh.head0 + (uint32_t)h};
    return f;
}

// Keys of block [j0, j0 + bk) that query q may see: the first n of them.
static int visible(int q, int j0, int bk) { return q < j0 ? 0 : MT_MIN(bk, q - j0 + 1); }

// One query block against one key block, forward: S = Q Kᵀ scale, online
// softmax update of (m, l), O = O * rescale + P_drop V.
static void fwd_block(const flash_pair *f, mt_attn_shape sh, const mt_dropout_key *k, int i0, int bq, int j0, int bk,
                      real *S, double *m, double *l, real *O, unsigned char *keep, real scale) {
    mt_gemm(0, 1, bq, bk, sh.hd, scale, f->Q + (size_t)i0 * f->ld, f->ld, f->K + (size_t)j0 * f->ld, f->ld, 0, S, BLK);
    int drop = k && k->p > 0;
    real dscale = drop ? (real)(1.0 / (1.0 - k->p)) : 1;
    for (int r = 0; r < bq; r++) {
        int q = i0 + r, nv = visible(q, j0, bk);
        real *row = S + (size_t)r * BLK, *orow = O + (size_t)q * f->ldo;
        double mn = m[r];
        for (int c = 0; c < nv; c++) mn = row[c] > mn ? row[c] : mn;
        double resc = m[r] == -INFINITY ? 0 : exp(m[r] - mn), sum = 0;
        for (int c = 0; c < nv; c++) { row[c] = MT_EXP(row[c] - (real)mn); sum += row[c]; }
        for (int c = nv; c < bk; c++) row[c] = 0;
        l[r] = l[r] * resc + sum;
        m[r] = mn;
        for (int d = 0; d < sh.hd; d++) orow[d] *= (real)resc;
        if (drop && nv > 0) {
            mt_rng_keep_attn_range(k, f->sample, f->head, (uint32_t)q, (uint32_t)j0, nv, keep);
            for (int c = 0; c < nv; c++) row[c] = keep[c] ? row[c] * dscale : 0;
        }
    }
    mt_gemm(0, 0, bq, sh.hd, bk, 1, S, BLK, f->V + (size_t)j0 * f->ld, f->ld, 1, O + (size_t)i0 * f->ldo, f->ldo);
}

void mt_flash_attention_forward(real *out, real *lse, const real *qkv, const mt_dropout_key *k, mt_attn_shape sh) {
    int s = sh.s, npair = sh.b * sh.nh;
    real scale = (real)(1.0 / sqrt((double)sh.hd));
#pragma omp parallel
    {
        real *S = mt_malloc(sizeof(real) * BLK * BLK);
        double m[BLK], l[BLK];
        unsigned char keep[BLK];
#pragma omp for schedule(dynamic, 1)
        for (int pr = 0; pr < npair; pr++) {
            flash_pair f = pair_of(qkv, sh, pr / sh.nh, pr % sh.nh);
            real *O = out + f.o;
            for (int i0 = 0; i0 < s; i0 += BLK) {
                int bq = MT_MIN(BLK, s - i0);
                for (int r = 0; r < bq; r++) {
                    m[r] = -INFINITY;
                    l[r] = 0;
                    memset(O + (size_t)(i0 + r) * f.ldo, 0, sizeof(real) * (size_t)sh.hd);
                }
                for (int j0 = 0; j0 < i0 + bq; j0 += BLK)
                    fwd_block(&f, sh, k, i0, bq, j0, MT_MIN(BLK, s - j0), S, m, l, O, keep, scale);
                for (int r = 0; r < bq; r++) {
                    real inv = (real)(1.0 / l[r]), *orow = O + (size_t)(i0 + r) * f.ldo;
                    for (int d = 0; d < sh.hd; d++) orow[d] *= inv;
                    lse[f.l + (size_t)(i0 + r)] = (real)(m[r] + log(l[r]));
                }
            }
        }
        free(S);
    }
}

// Backward of one (query block, key block): P from the saved log-sum-exp,
// dV += P_dropᵀ dO, dP = dO Vᵀ (through the mask), dS = P (dP - D),
// dQ += dS K scale, dK += dSᵀ Q scale.
typedef struct { real *dQ, *dK, *dV; const real *dO; const real *lse, *D; } flash_grads;

static void bwd_block(const flash_pair *f, const flash_grads *g, mt_attn_shape sh, const mt_dropout_key *k, int i0,
                      int bq, int j0, int bk, real *P, real *dP, unsigned char *keep, real scale) {
    int drop = k && k->p > 0, hd = sh.hd;
    real dscale = drop ? (real)(1.0 / (1.0 - k->p)) : 1;
    mt_gemm(0, 1, bq, bk, hd, scale, f->Q + (size_t)i0 * f->ld, f->ld, f->K + (size_t)j0 * f->ld, f->ld, 0, P, BLK);
    mt_gemm(0, 1, bq, bk, hd, 1, g->dO + (size_t)i0 * f->ldo, f->ldo, f->V + (size_t)j0 * f->ld, f->ld, 0, dP, BLK);
    for (int r = 0; r < bq; r++) {
        int q = i0 + r, nv = visible(q, j0, bk);
        real *pr = P + (size_t)r * BLK, *dr = dP + (size_t)r * BLK, L = g->lse[q], D = g->D[q];
        for (int c = 0; c < nv; c++) pr[c] = MT_EXP(pr[c] - L);
        if (drop && nv > 0) mt_rng_keep_attn_range(k, f->sample, f->head, (uint32_t)q, (uint32_t)j0, nv, keep);
        for (int c = 0; c < nv; c++) {
            real kd = drop ? (keep[c] ? dscale : 0) : 1;
            dr[c] = pr[c] * (dr[c] * kd - D);  // dS
            pr[c] *= kd;                        // P_drop, for dV
        }
        for (int c = nv; c < bk; c++) pr[c] = dr[c] = 0;
    }
    mt_gemm(1, 0, bk, hd, bq, 1, P, BLK, g->dO + (size_t)i0 * f->ldo, f->ldo, 1, g->dV + (size_t)j0 * f->ld, f->ld);
    mt_gemm(0, 0, bq, hd, bk, scale, dP, BLK, f->K + (size_t)j0 * f->ld, f->ld, 1, g->dQ + (size_t)i0 * f->ld, f->ld);
    mt_gemm(1, 0, bk, hd, bq, scale, dP, BLK, f->Q + (size_t)i0 * f->ld, f->ld, 1, g->dK + (size_t)j0 * f->ld, f->ld);
}

void mt_flash_attention_backward(real *dqkv, const real *dout, const real *qkv, const real *out, const real *lse,
                                 const mt_dropout_key *k, mt_attn_shape sh) {
    int s = sh.s, hd = sh.hd, per = sh.nh / sh.nkv, ngroups = sh.b * sh.nkv;
    real scale = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel
    {
        real *P = mt_malloc(sizeof(real) * BLK * BLK), *dP = mt_malloc(sizeof(real) * BLK * BLK);
        real *D = mt_malloc(sizeof(real) * (size_t)s);
        unsigned char keep[BLK];
        // A thread owns a (batch column, KV head): its query heads add into
        // the shared dK and dV in head order (race-free, a fixed order).
#pragma omp for schedule(dynamic, 1)
        for (int gi = 0; gi < ngroups; gi++) {
            for (int j = 0; j < per; j++) {
                flash_pair f = pair_of(qkv, sh, gi / sh.nkv, (gi % sh.nkv) * per + j);
                flash_grads g = {dqkv + (f.Q - qkv), dqkv + (f.K - qkv), dqkv + (f.V - qkv), dout + f.o, lse + f.l, D};
                // D = rowsum(dO ∘ O) = rowsum(P ∘ dP) of the softmax backward,
                // dropout included (O is P_drop V).
                for (int q = 0; q < s; q++) {
                    const real *o = out + f.o + (size_t)q * f.ldo, *d = g.dO + (size_t)q * f.ldo;
                    double acc = 0;
                    for (int c = 0; c < hd; c++) acc += (double)o[c] * d[c];
                    D[q] = (real)acc;
                    memset(g.dQ + (size_t)q * f.ld, 0, sizeof(real) * (size_t)hd);
                    if (j) continue;  // the group's first head starts dK and dV at zero
                    memset(g.dK + (size_t)q * f.ld, 0, sizeof(real) * (size_t)hd);
                    memset(g.dV + (size_t)q * f.ld, 0, sizeof(real) * (size_t)hd);
                }
                for (int j0 = 0; j0 < s; j0 += BLK)
                    for (int i0 = j0 / BLK * BLK; i0 < s; i0 += BLK)
                        bwd_block(&f, &g, sh, k, i0, MT_MIN(BLK, s - i0), j0, MT_MIN(BLK, s - j0), P, dP, keep, scale);
            }
        }
        free(P); free(dP); free(D);
    }
}
