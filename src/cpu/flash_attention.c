// flash_attention.c: blocked causal attention with an online softmax
// (Dao et al. 2022), forward next to backward. Memory per (batch column,
// head) pair: a few 64 x 64 blocks, whatever the sequence length; the plain
// kernel of attention.c is its reference (tests/test_flash.c compares them).
//
// One engine serves two callers. The blocked op attends a sequence to itself
// (key j visible to query q when j <= q). The block ops of context
// parallelism attend this rank's queries to one rank's keys, each side with
// its global positions (key visible when its position <= the query's); the
// ring merges the blocks' partial results by their log-sum-exps.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "ops.h"
#include "vmath.h"

enum { BLK = 64 };

// Queries against keys: positions (NULL: 0, 1, ... and the keys are the
// queries), counts, and the negative control that drops the causal mask
// between different chunks of the sequence.
typedef struct {
    int sq, sk;
    const int *qpos, *kpos;
    int chunk;          // > 0 with no_causal: positions of one chunk
    int no_causal;
    int bf16;           // --bf16: P and dS enter their GEMMs as bf16 (FlashAttention-2's conversions)
} span;

static void row_to_bf16(real *r, int n, int on) {
    if (!on) return;
    for (int c = 0; c < n; c++) r[c] = (real)mt_bf16_round((float)r[c]);
}

typedef struct {
    const real *Q, *K, *V;  // the pair's first rows
    int ldq, ldk, ldo;      // row strides of Q, K/V (per position) and out
    size_t o;               // the head's output offset in out
    size_t l;               // offset of the pair's (sq) row in lse
    uint32_t sample, head;  // global indices for the dropout keys
} pair;

// Query head h of batch column bc; its KV head is h / (nh / nkv). q rows
// hold Q at column 0, kv rows K at column 0 and V after the nkv K heads.
static pair pair_at(const real *q, int ldq, const real *kv, int ldk, mt_attn_shape sh, int sq, int bc, int h) {
    int g = h / (sh.nh / sh.nkv);
    const real *k = kv + (size_t)bc * ldk + (size_t)g * sh.hd;
    pair f = {q + (size_t)bc * ldq + (size_t)h * sh.hd, k, k + (size_t)sh.nkv * sh.hd, sh.b * ldq, sh.b * ldk,
              sh.b * sh.nh * sh.hd, (size_t)bc * sh.nh * sh.hd + (size_t)h * sh.hd, ((size_t)bc * sh.nh + h) * sq,
              sh.sample0 + (uint32_t)bc, sh.head0 + (uint32_t)h};
    return f;
}

static int qpos_of(const span *sp, int q) { return sp->qpos ? sp->qpos[q] : q; }
static int kpos_of(const span *sp, int j) { return sp->kpos ? sp->kpos[j] : j; }

// Which keys of block [j0, j0 + bk) query q sees: vis[c]; returns how many.
// Without positions they are a prefix (causal within one sequence).
static int visibility(const span *sp, int q, int j0, int bk, unsigned char *vis) {
    if (!sp->qpos) {
        int nv = q < j0 ? 0 : MT_MIN(bk, q - j0 + 1);
        for (int c = 0; c < bk; c++) vis[c] = c < nv;
        return nv;
    }
    int qp = sp->qpos[q], n = 0;
    for (int c = 0; c < bk; c++) {
        int kp = sp->kpos[j0 + c];
        vis[c] = kp <= qp || (sp->no_causal && kp / sp->chunk != qp / sp->chunk);
        n += vis[c];
    }
    return n;
}

// Keep bits of the visible keys of block [j0, j0 + bk) for query q, drawn
// at the global (query, key) positions: one run of draws per stretch of
// consecutive key positions.
static void draw_keep(const mt_dropout_key *k, const pair *f, const span *sp, int q, int j0, int bk,
                      const unsigned char *vis, unsigned char *keep) {
    uint32_t qp = (uint32_t)qpos_of(sp, q);
    for (int c = 0; c < bk;) {
        if (!vis[c]) { c++; continue; }
        int e = c + 1;
        while (e < bk && vis[e] && kpos_of(sp, j0 + e) == kpos_of(sp, j0 + e - 1) + 1) e++;
        mt_rng_keep_attn_range(k, f->sample, f->head, qp, (uint32_t)kpos_of(sp, j0 + c), e - c, keep + c);
        c = e;
    }
}

// One query block against one key block, forward: S = Q Kᵀ scale, online
// softmax update of (m, l), O = O * rescale + P_drop V.
static void fwd_block(const pair *f, const span *sp, int hd, const mt_dropout_key *k, int i0, int bq, int j0, int bk,
                      real *S, double *m, double *l, real *O, unsigned char *vis, unsigned char *keep, real scale) {
    mt_gemm(0, 1, bq, bk, hd, scale, f->Q + (size_t)i0 * f->ldq, f->ldq, f->K + (size_t)j0 * f->ldk, f->ldk, 0, S, BLK);
    int drop = k && k->p > 0;
    real dscale = drop ? (real)(1.0 / (1.0 - k->p)) : 1;
    for (int r = 0; r < bq; r++) {
        int q = i0 + r, nv = visibility(sp, q, j0, bk, vis);
        real *row = S + (size_t)r * BLK, *orow = O + (size_t)q * f->ldo;
        double mn = m[r];
        for (int c = 0; c < bk; c++) if (vis[c]) mn = row[c] > mn ? row[c] : mn;
        double resc = m[r] == -INFINITY ? 0 : exp(m[r] - mn), sum = 0;
        for (int c = 0; c < bk; c++) {
            if (vis[c]) { row[c] = MT_EXP(row[c] - (real)mn); sum += row[c]; }
            else row[c] = 0;
        }
        l[r] = l[r] * resc + sum;
        m[r] = mn;
        for (int d = 0; d < hd; d++) orow[d] *= (real)resc;
        if (drop && nv > 0) {
            draw_keep(k, f, sp, q, j0, bk, vis, keep);
            for (int c = 0; c < bk; c++) if (vis[c]) row[c] = keep[c] ? row[c] * dscale : 0;
        }
        // The running sum l took the fp32 exponentials; P · V reads them as bf16.
        row_to_bf16(row, bk, sp->bf16);
    }
    mt_gemm(0, 0, bq, hd, bk, 1, S, BLK, f->V + (size_t)j0 * f->ldk, f->ldk, 1, O + (size_t)i0 * f->ldo, f->ldo);
}

// Whether any key of [j0, j0 + bk) can be visible to a query of [i0, i0 + bq).
static int block_live(const span *sp, int i0, int bq, int j0, int bk) {
    if (!sp->qpos) return j0 <= i0 + bq - 1;
    if (sp->no_causal) return 1;
    int qmax = 0, kmin = 1 << 30;
    for (int r = 0; r < bq; r++) qmax = MT_MAX(qmax, sp->qpos[i0 + r]);
    for (int c = 0; c < bk; c++) kmin = MT_MIN(kmin, sp->kpos[j0 + c]);
    return kmin <= qmax;
}

// Forward over every (batch column, query head): out normalised over the
// visible keys, lse their log-sum-exp (-inf and out 0 when none is visible).
static void forward(real *out, real *lse, const real *q, int ldq, const real *kv, int ldk, const span *sp,
                    const mt_dropout_key *k, mt_attn_shape sh) {
    int npair = sh.b * sh.nh;
    real scale = (real)(1.0 / sqrt((double)sh.hd));
#pragma omp parallel
    {
        real *S = mt_malloc(sizeof(real) * BLK * BLK);
        double m[BLK], l[BLK];
        unsigned char vis[BLK], keep[BLK];
#pragma omp for schedule(dynamic, 1)
        for (int pr = 0; pr < npair; pr++) {
            pair f = pair_at(q, ldq, kv, ldk, sh, sp->sq, pr / sh.nh, pr % sh.nh);
            real *O = out + f.o;
            for (int i0 = 0; i0 < sp->sq; i0 += BLK) {
                int bq = MT_MIN(BLK, sp->sq - i0);
                for (int r = 0; r < bq; r++) {
                    m[r] = -INFINITY;
                    l[r] = 0;
                    memset(O + (size_t)(i0 + r) * f.ldo, 0, sizeof(real) * (size_t)sh.hd);
                }
                for (int j0 = 0; j0 < sp->sk; j0 += BLK) {
                    int bk = MT_MIN(BLK, sp->sk - j0);
                    if (block_live(sp, i0, bq, j0, bk)) fwd_block(&f, sp, sh.hd, k, i0, bq, j0, bk, S, m, l, O, vis, keep, scale);
                }
                for (int r = 0; r < bq; r++) {
                    real *orow = O + (size_t)(i0 + r) * f.ldo;
                    if (l[r] == 0) { lse[f.l + (size_t)(i0 + r)] = (real)-INFINITY; continue; }  // nothing visible: out stays 0
                    real inv = (real)(1.0 / l[r]);
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
typedef struct { real *dQ, *dK, *dV; const real *dO; const real *lse, *D; } grads;

static void bwd_block(const pair *f, const span *sp, const grads *g, int hd, const mt_dropout_key *k, int i0, int bq,
                      int j0, int bk, real *P, real *dP, unsigned char *vis, unsigned char *keep, real scale) {
    int drop = k && k->p > 0;
    real dscale = drop ? (real)(1.0 / (1.0 - k->p)) : 1;
    mt_gemm(0, 1, bq, bk, hd, scale, f->Q + (size_t)i0 * f->ldq, f->ldq, f->K + (size_t)j0 * f->ldk, f->ldk, 0, P, BLK);
    mt_gemm(0, 1, bq, bk, hd, 1, g->dO + (size_t)i0 * f->ldo, f->ldo, f->V + (size_t)j0 * f->ldk, f->ldk, 0, dP, BLK);
    for (int r = 0; r < bq; r++) {
        int q = i0 + r, nv = visibility(sp, q, j0, bk, vis);
        real *pr = P + (size_t)r * BLK, *dr = dP + (size_t)r * BLK, L = g->lse[q], D = g->D[q];
        for (int c = 0; c < bk; c++) if (vis[c]) pr[c] = MT_EXP(pr[c] - L);
        if (drop && nv > 0) draw_keep(k, f, sp, q, j0, bk, vis, keep);
        for (int c = 0; c < bk; c++) {
            if (!vis[c]) { pr[c] = dr[c] = 0; continue; }
            real kd = drop ? (keep[c] ? dscale : 0) : 1;
            dr[c] = pr[c] * (dr[c] * kd - D);  // dS
            pr[c] *= kd;                        // P_drop, for dV
        }
        row_to_bf16(pr, bk, sp->bf16);  // both enter bf16 GEMMs
        row_to_bf16(dr, bk, sp->bf16);
    }
    mt_gemm(1, 0, bk, hd, bq, 1, P, BLK, g->dO + (size_t)i0 * f->ldo, f->ldo, 1, g->dV + (size_t)j0 * f->ldk, f->ldk);
    mt_gemm(0, 0, bq, hd, bk, scale, dP, BLK, f->K + (size_t)j0 * f->ldk, f->ldk, 1, g->dQ + (size_t)i0 * f->ldq, f->ldq);
    mt_gemm(1, 0, bk, hd, bq, scale, dP, BLK, f->Q + (size_t)i0 * f->ldq, f->ldq, 1, g->dK + (size_t)j0 * f->ldk, f->ldk);
}

// Backward over every (batch column, KV head): its query heads add into the
// shared dK and dV in head order (race-free, a fixed order). With `fresh`
// dQ, dK and dV start at zero; otherwise everything accumulates (the ring).
static void backward(real *dq, real *dkv, const real *dout, const real *q, int ldq, const real *kv, int ldk,
                     const real *out, const real *lse, const span *sp, const mt_dropout_key *k, mt_attn_shape sh,
                     int fresh) {
    int hd = sh.hd, per = sh.nh / sh.nkv, ngroups = sh.b * sh.nkv;
    real scale = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel
    {
        real *P = mt_malloc(sizeof(real) * BLK * BLK), *dP = mt_malloc(sizeof(real) * BLK * BLK);
        real *D = mt_malloc(sizeof(real) * (size_t)sp->sq);
        unsigned char vis[BLK], keep[BLK];
#pragma omp for schedule(dynamic, 1)
        for (int gi = 0; gi < ngroups; gi++) {
            for (int j = 0; j < per; j++) {
                pair f = pair_at(q, ldq, kv, ldk, sh, sp->sq, gi / sh.nkv, (gi % sh.nkv) * per + j);
                grads g = {dq + (f.Q - q), dkv + (f.K - kv), dkv + (f.V - kv), dout + f.o, lse + f.l, D};
                // D = rowsum(dO ∘ O) = rowsum(P ∘ dP) of the softmax backward,
                // dropout included (O is P_drop V).
                for (int i = 0; i < sp->sq; i++) {
                    const real *o = out + f.o + (size_t)i * f.ldo, *d = g.dO + (size_t)i * f.ldo;
                    double acc = 0;
                    for (int c = 0; c < hd; c++) acc += (double)o[c] * d[c];
                    D[i] = (real)acc;
                    if (fresh) memset(g.dQ + (size_t)i * f.ldq, 0, sizeof(real) * (size_t)hd);
                }
                // The group's first head starts dK and dV at zero.
                for (int i = 0; fresh && j == 0 && i < sp->sk; i++) {
                    memset(g.dK + (size_t)i * f.ldk, 0, sizeof(real) * (size_t)hd);
                    memset(g.dV + (size_t)i * f.ldk, 0, sizeof(real) * (size_t)hd);
                }
                for (int j0 = 0; j0 < sp->sk; j0 += BLK)
                    for (int i0 = sp->qpos ? 0 : j0 / BLK * BLK; i0 < sp->sq; i0 += BLK) {
                        int bq = MT_MIN(BLK, sp->sq - i0), bk = MT_MIN(BLK, sp->sk - j0);
                        if (block_live(sp, i0, bq, j0, bk))
                            bwd_block(&f, sp, &g, hd, k, i0, bq, j0, bk, P, dP, vis, keep, scale);
                    }
            }
        }
        free(P); free(dP); free(D);
    }
}

// ---- the blocked attention of one sequence -------------------------------------

void mt_flash_attention_forward(real *out, real *lse, const real *qkv, const mt_dropout_key *k, mt_attn_shape sh) {
    int W = (sh.nh + 2 * sh.nkv) * sh.hd;
    span sp = {sh.s, sh.s, NULL, NULL, 0, 0, sh.bf16};
    forward(out, lse, qkv, W, qkv + (size_t)sh.nh * sh.hd, W, &sp, k, sh);
}

void mt_flash_attention_backward(real *dqkv, const real *dout, const real *qkv, const real *out, const real *lse,
                                 const mt_dropout_key *k, mt_attn_shape sh) {
    int W = (sh.nh + 2 * sh.nkv) * sh.hd;
    span sp = {sh.s, sh.s, NULL, NULL, 0, 0, sh.bf16};
    size_t kq = (size_t)sh.nh * sh.hd;
    backward(dqkv, dqkv + kq, dout, qkv, W, qkv + kq, W, out, lse, &sp, k, sh, 1);
}

// ---- context parallelism's blocks ---------------------------------------------------

static span block_span(const int *qpos, const int *kpos, mt_attn_block ab) {
    span sp = {ab.sq, ab.sk, qpos, kpos, ab.chunk, ab.no_causal, ab.bf16};
    return sp;
}

static mt_attn_shape block_shape(mt_attn_block ab) {
    mt_attn_shape sh = {.s = ab.sq, .b = ab.b, .nh = ab.nh, .hd = ab.hd, .nkv = ab.nkv, .head0 = ab.head0, .sample0 = ab.sample0,
                        .bf16 = ab.bf16};
    return sh;
}

void mt_attention_block_forward(real *out, real *lse, const real *q, const real *kv, const int *qpos, const int *kpos,
                                const mt_dropout_key *k, mt_attn_block ab) {
    span sp = block_span(qpos, kpos, ab);
    forward(out, lse, q, ab.ldq, kv, 2 * ab.nkv * ab.hd, &sp, k, block_shape(ab));
}

// out, lse (the running result) absorb out_b, lse_b: both are softmaxes
// over disjoint key sets, weighted by exp(lse) (Milakov & Gimelshein 2018).
void mt_attention_block_merge(real *out, real *lse, const real *out_b, const real *lse_b, mt_attn_block ab) {
    int rows = ab.b * ab.nh * ab.sq, hd = ab.hd;
#pragma omp parallel for schedule(static)
    for (int e = 0; e < rows; e++) {
        // lse is (b, nh, sq); out is (sq, b, nh hd).
        int bc = e / (ab.nh * ab.sq), h = e / ab.sq % ab.nh, i = e % ab.sq;
        double a = lse[e], bb = lse_b[e], mx = a > bb ? a : bb;
        if (mx == -INFINITY) continue;  // neither sees a key yet
        double wa = exp(a - mx), wb = exp(bb - mx), s = wa + wb;
        real *o = out + ((size_t)i * ab.b + bc) * ab.nh * hd + (size_t)h * hd;
        const real *ob = out_b + ((size_t)i * ab.b + bc) * ab.nh * hd + (size_t)h * hd;
        for (int d = 0; d < hd; d++) o[d] = (real)((o[d] * wa + ob[d] * wb) / s);
        lse[e] = (real)(mx + log(s));
    }
}

void mt_attention_block_backward(real *dq, real *dkv, const real *dout, const real *q, const real *kv, const real *out,
                                 const real *lse, const int *qpos, const int *kpos, const mt_dropout_key *k,
                                 mt_attn_block ab) {
    span sp = block_span(qpos, kpos, ab);
    backward(dq, dkv, dout, q, ab.ldq, kv, 2 * ab.nkv * ab.hd, out, lse, &sp, k, block_shape(ab), 0);
}
