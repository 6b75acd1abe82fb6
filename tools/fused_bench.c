// tools/fused_bench: each fused sweep of ops.h (MT_OPS_FUSED) against the
// chain of plain ops it replaces, on a model shape's buffers, side by side:
// the two alternate ROUNDS times (so a change in the machine's load hits
// both alike) and each cell is the median of the rounds' mean times.
//
//   tools/fused_bench [--shape small|124m] [--bf16] [--rounds R]
//
// small: configs/small.conf's MLP and head (512 tokens, hidden 256, vocab
// 256, 3.2M parameters); 124m: GPT-2 124M at B 4, T 64 (256 tokens, hidden
// 768, vocab 50304; AdamW over 32M of its 124M parameters, to stay within a
// shared machine's memory). LayerNorm's "chain" is the one-row kernel the
// four-row one replaced, and attention's (heads of 64, 4 samples; dropout
// off) the OpenBLAS-per-pair kernel the cache blocks replaced, kept here as
// the comparison points.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "input.h"
#include "ops.h"
#include "../src/cpu/reduce.h"
#include "../src/cpu/vmath.h"
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

typedef struct {
    int n, h, ff, V, Vp;
    size_t nparam;
    int nh;  // attention heads (head dim h / nh, 4 samples of n / 4 positions)
} shape;

typedef struct {
    shape s;
    int bf;
    real *x, *y, *z, *w, *b, *db, *res, *logits, *logits0, *st, *p, *g, *m, *v, *pbf;
    real *qkv, *probs, *scratch, *dqkv;  // attention, (b, nh, s, s) for probs and scratch
    int *tg;
    mt_dropout_key key;
    mt_rows rows;
} bench;

static void round_if(const bench *B, real *x, size_t n) {
    if (B->bf) mt_round_bf16(x, x, n);
}

// ---- LayerNorm: the one-row kernel (before the four-row one) --------------------
static void norm_one_row(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b, int n,
                         int h) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * h;
        real *y = out + (size_t)i * h;
        double m = 0, v = 0;
        for (int j = 0; j < h; j++) m += x[j];
        m /= h;
        for (int j = 0; j < h; j++) v += (x[j] - m) * (x[j] - m);
        v /= h;
        double r = 1.0 / sqrt(v + 1e-5);
        for (int j = 0; j < h; j++) y[j] = (real)((x[j] - m) * r * w[j] + b[j]);
        mean[i] = (real)m;
        rstd[i] = (real)r;
    }
}

// ---- attention: OpenBLAS per (sample, head) pair (before the cache blocks) -------
// The plain kernel as it was before issue 17's register tiles, dropout off:
// full (s, s) products through mt_gemm, masked and softmaxed in between.
static void attn_cblas(bench *B, mt_attn_shape a) {
    int s = a.s, hd = a.hd, W = 3 * a.nh * hd, ld = a.b * W, ldo = a.b * a.nh * hd;
    real sc = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel for schedule(static)
    for (int pr = 0; pr < a.b * a.nh; pr++) {
        int bc = pr / a.nh, h = pr % a.nh;
        const real *Q = B->qkv + (size_t)bc * W + (size_t)h * hd, *K = Q + (size_t)a.nh * hd, *V = K + (size_t)a.nh * hd;
        const real *dO = B->y + (size_t)bc * a.nh * hd + (size_t)h * hd;
        real *dQ = B->dqkv + (size_t)bc * W + (size_t)h * hd, *dK = dQ + (size_t)a.nh * hd, *dV = dK + (size_t)a.nh * hd;
        real *P = B->probs + (size_t)pr * s * s, *dS = B->scratch + (size_t)pr * s * s;
        real *O = B->z + (size_t)bc * a.nh * hd + (size_t)h * hd;
        mt_gemm(0, 1, s, s, hd, sc, Q, ld, K, ld, 0, P, s);
        round_if(B, P, (size_t)s * s);
        for (int q = 0; q < s; q++) {
            real *r = P + (size_t)q * s, m = r[0];
            double sum = 0;
            for (int j = 1; j <= q; j++) m = r[j] > m ? r[j] : m;
#pragma omp simd
            for (int j = 0; j <= q; j++) r[j] = MT_EXP(r[j] - m);
            for (int j = 0; j <= q; j++) sum += r[j];
            for (int j = 0; j <= q; j++) r[j] *= (real)(1.0 / sum);
            for (int j = q + 1; j < s; j++) r[j] = 0;
        }
        round_if(B, P, (size_t)s * s);
        mt_gemm(0, 0, s, hd, s, 1, P, s, V, ld, 0, O, ldo);
        mt_gemm(1, 0, s, hd, s, 1, P, s, dO, ldo, 0, dV, ld);
        mt_gemm(0, 1, s, s, hd, 1, dO, ldo, V, ld, 0, dS, s);
        round_if(B, dS, (size_t)s * s);
        for (int q = 0; q < s; q++) {
            real *d = dS + (size_t)q * s;
            const real *p = P + (size_t)q * s;
            double dot = 0;
            for (int j = 0; j <= q; j++) dot += (double)p[j] * d[j];
            for (int j = 0; j <= q; j++) d[j] = (real)((double)p[j] * d[j] - (double)p[j] * dot);
            for (int j = q + 1; j < s; j++) d[j] = 0;
        }
        round_if(B, dS, (size_t)s * s);
        mt_gemm(0, 0, s, hd, s, sc, dS, s, K, ld, 0, dQ, ld);
        mt_gemm(1, 0, s, hd, s, sc, dS, s, Q, ld, 0, dK, ld);
    }
}

static void attention(bench *B, int blocked) {
    mt_attn_shape a = {.s = B->s.n / 4, .b = 4, .nh = B->s.nh, .hd = B->s.h / B->s.nh, .nkv = B->s.nh, .bf16 = B->bf};
    if (!blocked) { attn_cblas(B, a); return; }
    mt_attention_forward(B->z, B->probs, B->qkv, NULL, a);
    mt_attention_backward(B->dqkv, B->scratch, B->y, B->qkv, B->probs, NULL, a);
}

// ---- the pairs: chain (0) and fused (1) ------------------------------------------
static void gelu_fwd(bench *B, int fused) {
    size_t n = (size_t)B->s.n * B->s.ff;
    if (fused) { mt_gelu_fused_forward(B->y, B->x, n, B->bf); return; }
    round_if(B, B->x, n);
    mt_gelu_forward(B->y, B->x, n);
    round_if(B, B->y, n);
}

static void gelu_bwd(bench *B, int fused) {
    int n = B->s.n, f = B->s.ff;
    size_t nf = (size_t)n * f;
    if (fused) { mt_gelu_fused_backward(B->z, B->db, B->x, B->y, n, f, B->bf); return; }
    round_if(B, B->y, nf);
    mt_gelu_backward(B->z, B->x, B->y, nf);
    round_if(B, B->z, nf);
    mt_colsum_accumulate(B->db, B->z, n, f);
}

static void bda_fwd(bench *B, int fused) {
    int h = B->s.h;
    if (fused) { mt_bias_dropout_add_fused_forward(B->z, B->res, B->x, B->b, &B->key, B->rows, h, B->bf); return; }
    mt_bias_dropout_add_forward(B->z, B->res, B->x, B->b, &B->key, B->rows, h);
    round_if(B, B->z, (size_t)B->s.n * h);
}

static void bda_bwd(bench *B, int fused) {
    int h = B->s.h;
    if (fused) { mt_bias_dropout_add_fused_backward(B->z, B->db, B->res, &B->key, B->rows, h, B->bf); return; }
    mt_bias_dropout_add_backward(B->z, B->db, B->res, &B->key, B->rows, h);
    round_if(B, B->z, (size_t)B->s.n * h);
}

static void ln_fwd(bench *B, int fused) {
    int n = B->s.n, h = B->s.h;
    mt_norm nm = {1e-5, 0};
    if (fused) mt_norm_forward(B->z, B->st, B->st + n, B->x, B->w, B->b, nm, n, h);
    else norm_one_row(B->z, B->st, B->st + n, B->x, B->w, B->b, n, h);
}

static void xent(bench *B, int fused) {
    int n = B->s.n, V = B->s.V, vl = B->s.Vp;
    size_t nv = (size_t)n * vl;
    real *l = B->logits, *rmax = B->st, *se = rmax + n, *tl = rmax + 2 * n, *loss = rmax + 3 * n;
    memcpy(l, B->logits0, nv * sizeof(real));  // both sides pay this copy: the GEMM's output in training
    if (fused) { mt_xent_fused(loss, rmax, se, l, B->tg, (real)1e-3, V, vl, n, B->bf); return; }
    round_if(B, l, nv);
    mt_xent_local_max(rmax, l, 0, vl, V, n);
    mt_xent_local_sums(se, tl, l, rmax, B->tg, 0, vl, V, n);
    mt_xent_loss(loss, rmax, se, tl, n);
    mt_xent_backward(l, l, rmax, se, B->tg, (real)1e-3, 0, vl, V, n);
    round_if(B, l, nv);
}

static void adamw(bench *B, int fused) {
    size_t n = B->s.nparam;
    real *pbf = B->bf ? B->pbf : NULL;
    if (fused) { mt_adamw_fused(B->p, pbf, B->g, 1, B->m, B->v, n, 5, (real)1e-4, (real)0.9, (real)0.95, (real)1e-8, 0); return; }
    mt_adamw_update(B->p, B->g, 1, B->m, B->v, n, 5, (real)1e-4, (real)0.9, (real)0.95, (real)1e-8, 0);
    if (pbf) mt_round_bf16(pbf, B->p, n);
}

typedef struct { const char *name; void (*fn)(bench *, int); int reps; } pair;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static real *rnd(size_t n, double amp, uint64_t seed) {
    real *x = mt_malloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (real)(amp * ((double)(seed >> 11) * (2.0 / 9007199254740992.0) - 1.0));
    }
    return x;
}

int main(int argc, char **argv) {
    shape sh = {512, 256, 1024, 256, 256, 3200000, 4};
    const char *sname = "small";
    int bf = 0, rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bf16")) bf = 1;
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            if (mt_parse_int(argv[++i], 1, 1000000, &rounds)) {
                fprintf(stderr, "fused_bench: error: --rounds needs a whole number from 1, got '%s'\n", argv[i]);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc && !strcmp(argv[i + 1], "124m")) {
            sh = (shape){256, 768, 3072, 50257, 50304, 32u << 20, 12};
            sname = argv[++i];
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc && !strcmp(argv[i + 1], "small")) {
            i++;
        } else {
            fprintf(stderr, "usage: tools/fused_bench [--shape small|124m] [--bf16] [--rounds R]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 1000) {
        fprintf(stderr, "tools/fused_bench: --rounds must be 1..1000\n");
        return 2;
    }
    size_t big = (size_t)sh.n * (sh.ff > sh.h ? sh.ff : sh.h);
    bench B = {.s = sh, .bf = bf, .key = {7, 1, 0, MT_SITE_MLP_OUT, 0.1}, .rows = {.rows = sh.n, .b = 4}};
    B.x = rnd(big, 3, 1);
    B.y = rnd(big, 1, 2);
    B.z = rnd(big, 1, 3);
    B.res = rnd(big, 1, 4);
    B.w = rnd((size_t)sh.h, 1, 5);
    B.b = rnd((size_t)sh.h, 1, 6);
    B.db = rnd((size_t)sh.ff, 1, 7);
    B.st = rnd(4 * (size_t)sh.n, 1, 8);
    B.logits0 = rnd((size_t)sh.n * sh.Vp, 5, 9);
    B.logits = mt_malloc((size_t)sh.n * sh.Vp * sizeof(real));
    B.tg = mt_malloc((size_t)sh.n * sizeof(int));
    for (int i = 0; i < sh.n; i++) B.tg[i] = (i * 7919) % sh.V;
    B.p = rnd(sh.nparam, 1, 10);
    B.g = rnd(sh.nparam, 0.1, 11);
    B.m = rnd(sh.nparam, 0.01, 12);
    B.v = rnd(sh.nparam, 0.001, 13);
    for (size_t i = 0; i < sh.nparam; i++) B.v[i] *= B.v[i];
    B.pbf = mt_malloc(sh.nparam * sizeof(real));
    size_t npp = (size_t)sh.n / 4 * sh.n * sh.nh;  // b nh s s with b = 4, s = n / 4
    B.qkv = rnd(3 * (size_t)sh.n * sh.h, 2, 14);
    B.dqkv = rnd(3 * (size_t)sh.n * sh.h, 1, 15);
    B.probs = rnd(npp, 1, 16);
    B.scratch = rnd(npp, 1, 17);

    const pair pairs[] = {{"GELU forward (+ bf16 roundings)", gelu_fwd, 20},
                          {"GELU backward + fc1 bias gradient", gelu_bwd, 20},
                          {"bias-dropout-add forward", bda_fwd, 20},
                          {"bias-dropout-add backward + bias gradient", bda_bwd, 20},
                          {"LayerNorm forward (one row / four rows)", ln_fwd, 20},
                          {"cross-entropy + softmax + backward", xent, 5},
                          {"AdamW (+ bf16 copy)", adamw, 3},
                          {"attention forward + backward (OpenBLAS per pair / cache blocks)", attention, 5}};
    int np = (int)(sizeof pairs / sizeof pairs[0]);
    printf("shape %s (%d tokens, hidden %d, ffn %d, vocab %d, AdamW over %zu parameters)%s, %d rounds\n\n", sname,
           sh.n, sh.h, sh.ff, sh.Vp, sh.nparam, bf ? ", --bf16" : "", rounds);
    printf("| sweep | chain ms | fused ms | fused / chain |\n|---|---|---|---|\n");
    double *t = mt_malloc(2 * (size_t)rounds * sizeof(double));
    for (int k = 0; k < np; k++) {
        for (int side = 0; side < 2; side++) pairs[k].fn(&B, side);  // warm: first touch, caches
        for (int r = 0; r < rounds; r++)
            for (int side = 0; side < 2; side++) {
                double t0 = mt_now();
                for (int q = 0; q < pairs[k].reps; q++) pairs[k].fn(&B, side);
                t[side * rounds + r] = (mt_now() - t0) * 1e3 / pairs[k].reps;
            }
        qsort(t, (size_t)rounds, sizeof(double), cmp_double);
        qsort(t + rounds, (size_t)rounds, sizeof(double), cmp_double);
        double a = t[rounds / 2], b = t[rounds + rounds / 2];
        printf("| %s | %.3f | %.3f | %.2f |\n", pairs[k].name, a, b, b / a);
    }
    return 0;
}
