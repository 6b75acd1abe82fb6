// test_ops_attn.c: attention, the vocab-parallel cross-entropy and the
// optimizer kernels of ops.h, checked as test_ops.c checks the others:
// forward against the definition, backward against central differences.
#include "ops_helpers.h"

// ---- attention -------------------------------------------------------------

static const mt_attn_shape ATT = {.s = 5, .b = 2, .nh = 2, .hd = 4, .nkv = 2, .head0 = 1, .sample0 = 3};
// Grouped-query: 4 query heads share 2 KV heads (heads 0, 1 read KV 0).
static const mt_attn_shape GQA = {.s = 5, .b = 2, .nh = 4, .hd = 4, .nkv = 2, .head0 = 2, .sample0 = 1};
static size_t row_w(mt_attn_shape a) { return (size_t)(a.nh + 2 * a.nkv) * a.hd; }
static const mt_dropout_key KEY_ATTN = {.seed = 99, .iter = 3, .layer = 1, .site = MT_SITE_ATTN_PROB, .p = 0.2};

// Per element, straight from the definition: one query, one head at a time.
// Returns how many probabilities dropout zeroed.
// Query head h reads KV head h / (nh / nkv), straight from the definition
// of grouped-query attention.
static int attention_naive(real *out, real *probs, const real *qkv, const mt_dropout_key *k, mt_attn_shape a) {
    int H = a.nh * a.hd, W = (int)row_w(a), dropped = 0;
    unsigned char keep[64];
    for (int bc = 0; bc < a.b; bc++)
        for (int h = 0; h < a.nh; h++)
            for (int q = 0; q < a.s; q++) {
                int kv = h / (a.nh / a.nkv);
                const real *Q = qkv + (size_t)(q * a.b + bc) * W + h * a.hd;
                double sc[64], m = -INFINITY, sum = 0;
                for (int t = 0; t <= q; t++) {
                    const real *K = qkv + (size_t)(t * a.b + bc) * W + H + kv * a.hd;
                    sc[t] = 0;
                    for (int d = 0; d < a.hd; d++) sc[t] += (double)Q[d] * K[d];
                    sc[t] /= sqrt(a.hd);
                    m = fmax(m, sc[t]);
                }
                for (int t = 0; t <= q; t++) sum += sc[t] = exp(sc[t] - m);
                real *pr = probs + (((size_t)bc * a.nh + h) * a.s + q) * a.s;
                for (int t = 0; t < a.s; t++) pr[t] = t <= q ? (real)(sc[t] / sum) : 0;
                for (int t = 0; t <= q; t++) keep[t] = 1;
                if (k) mt_rng_keep_attn_row(k, a.sample0 + bc, a.head0 + h, q, q + 1, keep);
                for (int d = 0; d < a.hd; d++) {
                    double o = 0;
                    for (int t = 0; t <= q; t++) {
                        const real *V = qkv + (size_t)(t * a.b + bc) * W + H + (a.nkv + kv) * a.hd;
                        if (keep[t]) o += sc[t] / sum / (1 - (double)(k ? k->p : 0)) * V[d];
                    }
                    out[(size_t)(q * a.b + bc) * H + h * a.hd + d] = (real)o;
                }
                for (int t = 0; t <= q; t++) dropped += !keep[t];
            }
    return dropped;
}

static int forward_vs_naive(int *mt_failed_, mt_attn_shape a, int s) {
    pool P = {0};
    lcg g = {13};
    a.s = s;
    size_t H = (size_t)a.nh * a.hd, rows = (size_t)a.s * a.b, pp = (size_t)a.b * a.nh * a.s * a.s;
    real *qkv = buf_rand(&P, &g, rows * row_w(a), 2);
    real *out = buf_fill(&P, rows * H, 777), *probs = buf_fill(&P, pp, 777);
    real *out_n = buf_fill(&P, rows * H, 0), *probs_n = buf_fill(&P, pp, 0);
    for (int drop = 0; drop < 2; drop++) {
        const mt_dropout_key *k = drop ? &KEY_ATTN : NULL;
        mt_attention_forward(out, probs, qkv, k, a);
        int dropped = attention_naive(out_n, probs_n, qkv, k, a);
        double ep = max_abs_diff(probs, probs_n, pp), eo = max_abs_diff(out, out_n, rows * H);
        if (drop && !dropped) { printf("  p = 0.2 dropped nothing\n"); *mt_failed_ = 1; }
        if (ep > FWD_TOL) { printf("  probs (dropout %d) differ by %.3g\n", drop, ep); *mt_failed_ = 1; }
        if (eo > FWD_TOL * 10) { printf("  out (dropout %d) differs by %.3g\n", drop, eo); *mt_failed_ = 1; }
    }
    pool_free(&P);
    return 0;
}

// Past one of the plain kernel's register tiles (src/cpu/attention.c: 8 query
// rows, 32 keys or head columns in fp32, 16 in fp64): s = 41 is six row
// blocks, the last partial, and two or three key tiles; hd = 36 is two or
// three column tiles, the last partial. Grouped-query, so dK and dV sum two
// heads.
static const mt_attn_shape WIDE = {.s = 41, .b = 2, .nh = 4, .hd = 36, .nkv = 2, .head0 = 1, .sample0 = 2};

// 9: longer than the gradcheck's, still cheap.
TEST(attention_forward_matches_naive) { forward_vs_naive(mt_failed_, ATT, 9); }
TEST(gqa_attention_forward_matches_naive) { forward_vs_naive(mt_failed_, GQA, 9); }
TEST(attention_forward_past_one_tile_matches_naive) { forward_vs_naive(mt_failed_, WIDE, WIDE.s); }

// The plain backward against the blocked one (its own gradcheck is below) at
// WIDE, a shape too large for a gradcheck, dropout off and on, in both
// builds. The scratch starts as garbage: the plain backward must not read
// what it did not write.
TEST(attention_backward_past_one_tile_matches_flash) {
    mt_attn_shape a = WIDE;
    pool P = {0};
    lcg g = {16};
    size_t H = (size_t)a.nh * a.hd, rows = (size_t)a.s * a.b, pp = (size_t)a.b * a.nh * a.s * a.s;
    size_t nq = rows * row_w(a);
    real *qkv = buf_rand(&P, &g, nq, 1.5), *R = buf_rand(&P, &g, rows * H, 1);
    real *out = buf_fill(&P, rows * H, 0), *probs = buf_fill(&P, pp, 0), *scratch = buf_fill(&P, pp, 777);
    real *dq = buf_fill(&P, nq, 777), *out_f = buf_fill(&P, rows * H, 0), *dq_f = buf_fill(&P, nq, 0);
    real *lse = buf_fill(&P, (size_t)a.b * a.nh * a.s, 0);
    for (int drop = 0; drop < 2; drop++) {
        const mt_dropout_key *k = drop ? &KEY_ATTN : NULL;
        mt_attention_forward(out, probs, qkv, k, a);
        mt_attention_backward(dq, scratch, R, qkv, probs, k, a);
        mt_flash_attention_forward(out_f, lse, qkv, k, a);
        mt_flash_attention_backward(dq_f, R, qkv, out_f, lse, k, a);
        double scale = 0;
        for (size_t i = 0; i < nq; i++) scale = fmax(scale, fabs((double)dq_f[i]));
        double eo = max_abs_diff(out, out_f, rows * H), ed = max_abs_diff(dq, dq_f, nq) / scale;
        ASSERT(scale > 1e-3, "dropout %d: the gradient vanishes", drop);
        ASSERT(eo <= FWD_TOL * 10, "dropout %d: out differs from flash by %.3g", drop, eo);
        ASSERT(ed <= FWD_TOL * 10, "dropout %d: dqkv differs from flash by %.3g of its scale", drop, ed);
    }
    pool_free(&P);
}

typedef struct { real *out, *probs; const real *qkv; const mt_dropout_key *k; mt_attn_shape a; } att_ctx;
static void att_fwd(void *p) {
    att_ctx *x = p;
    mt_attention_forward(x->out, x->probs, x->qkv, x->k, x->a);
}
// The blocked kernel through the same loss: its backward is checked by
// central differences too, not only against the plain kernel.
static void flash_fwd(void *p) {
    att_ctx *x = p;
    mt_flash_attention_forward(x->out, x->probs, x->qkv, x->k, x->a);
}

static void gradcheck_attention(int *mt_failed_, mt_attn_shape a, int flash) {
    pool P = {0};
    lcg g = {14};
    size_t H = (size_t)a.nh * a.hd, rows = (size_t)a.s * a.b, pp = (size_t)a.b * a.nh * a.s * a.s;
    real *qkv = buf_rand(&P, &g, rows * row_w(a), 1.5), *R = buf_rand(&P, &g, rows * H, 1);
    real *out = buf_fill(&P, rows * H, 0), *probs = buf_fill(&P, pp, 0), *scratch = buf_fill(&P, pp, 777);
    real *dqkv = buf_fill(&P, rows * row_w(a), 777);
    for (int drop = 0; drop < 2; drop++) {
        att_ctx ctx = {out, probs, qkv, drop ? &KEY_ATTN : NULL, a};
        (flash ? flash_fwd : att_fwd)(&ctx);
        if (flash) mt_flash_attention_backward(dqkv, R, qkv, out, probs, ctx.k, a);
        else mt_attention_backward(dqkv, scratch, R, qkv, probs, ctx.k, a);
        loss_fn f = {flash ? flash_fwd : att_fwd, &ctx, out, R, rows * H};
        GRADCHECK(f, qkv, rows * row_w(a), dqkv, drop ? "attention dqkv, p=0.2" : "attention dqkv, no dropout");
    }
    // The p = 0.2 case only tests the mask if this shape draws some drops.
    ASSERT(attention_naive(out, probs, qkv, &KEY_ATTN, a) > 0, "p = 0.2 dropped nothing");
    pool_free(&P);
}

TEST(attention_gradcheck) { GRADCHECK_BUILD_ONLY(); gradcheck_attention(mt_failed_, ATT, 0); }
TEST(gqa_attention_gradcheck) { GRADCHECK_BUILD_ONLY(); gradcheck_attention(mt_failed_, GQA, 0); }
TEST(gqa_flash_attention_gradcheck) { GRADCHECK_BUILD_ONLY(); gradcheck_attention(mt_failed_, GQA, 1); }
// fp64's tiles are 16 wide: s = 37 is three key tiles and five row blocks,
// hd = 20 two column tiles, each with a partial one.
TEST(attention_gradcheck_past_one_tile) {
    GRADCHECK_BUILD_ONLY();
    gradcheck_attention(mt_failed_, (mt_attn_shape){.s = 37, .b = 1, .nh = 2, .hd = 20, .nkv = 1, .head0 = 1, .sample0 = 3},
                        0);
}

// ---- cross-entropy ---------------------------------------------------------

// V = 11 real tokens padded to 16 columns: 11..15 must never matter.
enum { XE_N = 4, XE_V = 11, XE_VP = 16 };
static const int XE_TGT[XE_N] = {0, 10, 8, 3};

static void xent_full(real *loss, real *rmax, real *sumexp, const real *logits) {
    real tl[XE_N];
    mt_xent_local_max(rmax, logits, 0, XE_VP, XE_V, XE_N);
    mt_xent_local_sums(sumexp, tl, logits, rmax, XE_TGT, 0, XE_VP, XE_V, XE_N);
    mt_xent_loss(loss, rmax, sumexp, tl, XE_N);
}

TEST(xent_matches_logsumexp_and_ignores_padding) {
    pool P = {0};
    lcg g = {15};
    real *logits = buf_rand(&P, &g, XE_N * XE_VP, 4), loss[XE_N], rmax[XE_N], se[XE_N], loss2[XE_N];
    xent_full(loss, rmax, se, logits);
    for (int i = 0; i < XE_N; i++) {
        double s = 0;
        for (int j = 0; j < XE_V; j++) s += exp((double)logits[i * XE_VP + j]);
        ASSERT_CLOSE(loss[i], log(s) - logits[i * XE_VP + XE_TGT[i]], FWD_TOL * 10);
    }
    for (int i = 0; i < XE_N; i++)
        for (int j = XE_V; j < XE_VP; j++) logits[i * XE_VP + j] = 1000;  // would dominate if counted
    xent_full(loss2, rmax, se, logits);
    for (int i = 0; i < XE_N; i++) ASSERT(loss2[i] == loss[i], "row %d: padding changed the loss", i);
    pool_free(&P);
}

// Two shards [0, 8) and [8, 16), combined by hand as the all-reduces would:
// max of maxes, then sum of sums.
TEST(xent_two_shards_equal_unsplit) {
    pool P = {0};
    lcg g = {16};
    real *logits = buf_rand(&P, &g, XE_N * XE_VP, 4), loss[XE_N], rmax[XE_N], se[XE_N];
    real *dl = buf_fill(&P, XE_N * XE_VP, 0), *sh[2], *dsh[2];
    real m[2][XE_N], s[2][XE_N], t[2][XE_N], gm[XE_N], gs[XE_N], gt[XE_N], gl[XE_N];
    xent_full(loss, rmax, se, logits);
    mt_xent_backward(dl, logits, rmax, se, XE_TGT, 0.25, 0, XE_VP, XE_V, XE_N);
    for (int r = 0; r < 2; r++) {
        sh[r] = buf_fill(&P, XE_N * 8, 0);
        dsh[r] = buf_fill(&P, XE_N * 8, 777);
        for (int i = 0; i < XE_N; i++) memcpy(sh[r] + i * 8, logits + i * XE_VP + r * 8, 8 * sizeof(real));
        mt_xent_local_max(m[r], sh[r], r * 8, 8, XE_V, XE_N);
    }
    for (int i = 0; i < XE_N; i++) gm[i] = fmax(m[0][i], m[1][i]);
    for (int r = 0; r < 2; r++) mt_xent_local_sums(s[r], t[r], sh[r], gm, XE_TGT, r * 8, 8, XE_V, XE_N);
    for (int i = 0; i < XE_N; i++) gs[i] = s[0][i] + s[1][i], gt[i] = t[0][i] + t[1][i];
    mt_xent_loss(gl, gm, gs, gt, XE_N);
    for (int i = 0; i < XE_N; i++) {
        ASSERT_CLOSE(gm[i], rmax[i], 0);
        ASSERT_CLOSE(gl[i], loss[i], FWD_TOL);
    }
    for (int r = 0; r < 2; r++) {
        mt_xent_backward(dsh[r], sh[r], gm, gs, XE_TGT, 0.25, r * 8, 8, XE_V, XE_N);
        for (int i = 0; i < XE_N; i++)
            for (int j = 0; j < 8; j++) ASSERT_CLOSE(dsh[r][i * 8 + j], dl[i * XE_VP + r * 8 + j], FWD_TOL);
    }
    // A shard of pure padding: -inf max, zero sum, no target, zero gradient.
    real pm[XE_N], ps[XE_N], pt[XE_N];
    mt_xent_local_max(pm, sh[1], 12, 4, XE_V, XE_N);
    mt_xent_local_sums(ps, pt, sh[1], gm, XE_TGT, 12, 4, XE_V, XE_N);
    for (int i = 0; i < XE_N; i++) ASSERT(isinf(pm[i]) && pm[i] < 0 && ps[i] == 0 && pt[i] == 0, "row %d", i);
    pool_free(&P);
}

typedef struct { real *loss; const real *logits; } xe_ctx;
static void xe_fwd(void *p) {
    xe_ctx *x = p;
    real rmax[XE_N], se[XE_N];
    xent_full(x->loss, rmax, se, x->logits);
}

TEST(xent_gradcheck_padded) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {17};
    real *logits = buf_rand(&P, &g, XE_N * XE_VP, 3), loss[XE_N], rmax[XE_N], se[XE_N];
    real *dl = buf_fill(&P, XE_N * XE_VP, 777), *R = buf_fill(&P, XE_N, 0.37);
    xent_full(loss, rmax, se, logits);
    // The backward's one scale is the loss weight, the same for every row.
    mt_xent_backward(dl, logits, rmax, se, XE_TGT, 0.37, 0, XE_VP, XE_V, XE_N);
    for (int i = 0; i < XE_N; i++)
        for (int j = XE_V; j < XE_VP; j++) ASSERT(dl[i * XE_VP + j] == 0, "padding gradient (%d, %d)", i, j);
    xe_ctx ctx = {loss, logits};
    loss_fn f = {xe_fwd, &ctx, loss, R, XE_N};
    GRADCHECK(f, logits, XE_N * XE_VP, dl, "xent dlogits (padded)");
    pool_free(&P);
}

// ---- optimizer -------------------------------------------------------------

TEST(adamw_one_step_by_hand) {
    real p[3] = {0.5, -1.25, 2}, gr[3] = {0.1, -0.3, 0.02}, m[3] = {0.01, 0.02, -0.03}, v[3] = {1e-3, 2e-3, 4e-4};
    real p0[3], g0[3], m0[3], v0[3];
    memcpy(p0, p, sizeof p), memcpy(g0, gr, sizeof gr), memcpy(m0, m, sizeof m), memcpy(v0, v, sizeof v);
    real lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    int t = 3;
    mt_adamw_update(p, gr, 1, m, v, 3, t, lr, b1, b2, eps, wd);
    for (int i = 0; i < 3; i++) {
        double mi = (double)b1 * m0[i] + (1 - (double)b1) * g0[i];
        double vi = (double)b2 * v0[i] + (1 - (double)b2) * (double)g0[i] * g0[i];
        double mh = mi / (1 - pow(b1, t)), vh = vi / (1 - pow(b2, t));
        double pi = p0[i] - (double)lr * (mh / (sqrt(vh) + eps) + (double)wd * p0[i]);
        ASSERT_CLOSE(m[i], mi, FWD_TOL);
        ASSERT_CLOSE(v[i], vi, FWD_TOL);
        ASSERT_CLOSE(p[i], pi, FWD_TOL);
        ASSERT(p[i] != p0[i], "parameter %d did not move", i);
        // Consumed: the next step accumulates into a zeroed gradient.
        ASSERT(gr[i] == 0 && !signbit(gr[i]), "gradient %d left at %g, not +0", i, (double)gr[i]);
    }
}

TEST(sumsq_and_scale) {
    pool P = {0};
    lcg g = {18};
    size_t n = 100003;  // several blocks and a ragged tail
    real *x = buf_rand(&P, &g, n, 1);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    ASSERT_CLOSE(mt_sumsq(x, n), s, 1e-12 * s);
    ASSERT_CLOSE(mt_sumsq(x, 3), (double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2], 1e-15);
    // The parts' order is part of the contract (the norm's bits must not
    // depend on how they are computed, ops.h): each block's eight strided
    // accumulators, added pairwise. 100003 elements: a group of four whole
    // blocks, two more whole blocks and a ragged one.
    double part[7];
    mt_sumsq_parts(x, n, part);
    for (size_t c = 0; c < 7; c++) {
        double acc[8] = {0};
        for (size_t i = c * MT_SUMSQ_BLOCK; i < MT_MIN((c + 1) * MT_SUMSQ_BLOCK, n); i++)
            acc[(i - c * MT_SUMSQ_BLOCK) & 7] += (double)x[i] * x[i];
        double want = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        ASSERT(memcmp(&want, &part[c], sizeof want) == 0, "block %zu: part %.17g, its fixed order gives %.17g", c, part[c], want);
    }
    // scale_sumsq_parts: the same bits as mt_scale then mt_sumsq_parts, for
    // sizes around the block and the four-block groups.
    const size_t B = MT_SUMSQ_BLOCK, sizes[] = {0, 1, 9, B - 1, B, 4 * B - 1, 4 * B, 4 * B + 1, 5 * B + 3, n};
    real *y = buf_rand(&P, &g, n, 1), *z = buf_rand(&P, &g, n, 1);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t m = sizes[k];
        double pa[7] = {0}, pb[7] = {0};
        memcpy(y, x, n * sizeof(real));
        memcpy(z, x, n * sizeof(real));
        mt_scale(y, m, (real)0.37);
        mt_sumsq_parts(y, m, pa);
        mt_scale_sumsq_parts(z, m, (real)0.37, pb);
        ASSERT(memcmp(y, z, n * sizeof(real)) == 0, "n %zu: scale_sumsq_parts scaled differently from scale", m);
        ASSERT(memcmp(pa, pb, sizeof pa) == 0, "n %zu: scale_sumsq_parts' parts differ from sumsq_parts'", m);
    }
    real x0 = x[n - 1];
    mt_scale(x, n, 0.5);
    ASSERT(x[n - 1] == x0 * (real)0.5, "last element not scaled");
    ASSERT_CLOSE(mt_sumsq(x, n), s / 4, 1e-12 * s);
    pool_free(&P);
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
