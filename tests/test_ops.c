// test_ops.c: the kernels of ops.h, forward against naive loops (both
// builds) and backward against central differences (fp64 build only: in fp32
// a central difference keeps about three digits, too few to judge a gradient).
// Matmul, LayerNorm, GELU, dropout, embeddings here; attention, the
// cross-entropy and the optimizer in test_ops_attn.c.
#include "ops_helpers.h"

static const mt_dropout_key KEY_HIDDEN = {.seed = 1234, .iter = 7, .layer = 2, .site = MT_SITE_MLP_OUT, .p = 0.3};

// ---- matmul ----------------------------------------------------------------

TEST(gemm_transposes_match_naive) {
    pool P = {0};
    lcg g = {11};
    int m = 7, n = 5, k = 9;
    real *a = buf_rand(&P, &g, (size_t)m * k, 1), *b = buf_rand(&P, &g, (size_t)k * n, 1);
    real *at = buf_fill(&P, (size_t)m * k, 0), *bt = buf_fill(&P, (size_t)k * n, 0);
    for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) at[p * m + i] = a[i * k + p];
    for (int p = 0; p < k; p++) for (int j = 0; j < n; j++) bt[j * k + p] = b[p * n + j];
    real *c0 = buf_rand(&P, &g, (size_t)m * n, 1), *c = buf_fill(&P, (size_t)m * n, 0);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            memcpy(c, c0, (size_t)m * n * sizeof(real));
            mt_gemm(ta, tb, m, n, k, 0.5, ta ? at : a, ta ? m : k, tb ? bt : b, tb ? k : n, 2, c, n);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[p * n + j];
                    ASSERT_CLOSE(c[i * n + j], 0.5 * s + 2 * c0[i * n + j], FWD_TOL * 10);
                }
        }
    pool_free(&P);
}

TEST(matmul_forward_matches_triple_loop) {
    pool P = {0};
    lcg g = {1};
    int n = 6, c = 33, oc = 10;
    real *inp = buf_rand(&P, &g, (size_t)n * c, 1), *w = buf_rand(&P, &g, (size_t)oc * c, 1);
    real *bias = buf_rand(&P, &g, oc, 1), *out = buf_fill(&P, (size_t)n * oc, 777);
    mt_matmul_forward(out, inp, w, bias, n, c, oc);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++) {
            double s = bias[o];
            for (int j = 0; j < c; j++) s += (double)inp[i * c + j] * w[o * c + j];
            ASSERT_CLOSE(out[i * oc + o], s, FWD_TOL * 10);
        }
    mt_matmul_forward(out, inp, w, NULL, n, c, oc);  // NULL bias: no stale bias
    double s = 0;
    for (int j = 0; j < c; j++) s += (double)inp[j] * w[j];
    ASSERT_CLOSE(out[0], s, FWD_TOL * 10);
    pool_free(&P);
}

typedef struct { real *out; const real *inp, *w, *bias; int n, c, oc; } mm_ctx;
static void mm_fwd(void *p) {
    mm_ctx *x = p;
    mt_matmul_forward(x->out, x->inp, x->w, x->bias, x->n, x->c, x->oc);
}

TEST(matmul_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {2};
    int n = 5, c = 4, oc = 3;
    real *inp = buf_rand(&P, &g, n * c, 1), *w = buf_rand(&P, &g, oc * c, 1), *bias = buf_rand(&P, &g, oc, 1);
    real *out = buf_fill(&P, n * oc, 0), *R = buf_rand(&P, &g, n * oc, 1);
    real *dinp = buf_fill(&P, n * c, 777);  // overwritten, so garbage must vanish
    real *dw0 = buf_rand(&P, &g, oc * c, 1), *db0 = buf_rand(&P, &g, oc, 1);
    real *dw = buf_copy(&P, dw0, oc * c), *db = buf_copy(&P, db0, oc);
    mt_matmul_backward(dinp, dw, db, R, inp, w, n, c, oc);
    sub_in(dw, dw0, oc * c);  // accumulated: only the increment is the gradient
    sub_in(db, db0, oc);
    mm_ctx ctx = {out, inp, w, bias, n, c, oc};
    loss_fn f = {mm_fwd, &ctx, out, R, (size_t)n * oc};
    GRADCHECK(f, inp, n * c, dinp, "matmul dinp");
    GRADCHECK(f, w, oc * c, dw, "matmul dw");
    GRADCHECK(f, bias, oc, db, "matmul dbias");
    pool_free(&P);
}

// The TP backward (layers.c, column_backward) splits the call in two with
// its communication between: input gradient only (dw and dbias NULL, inp
// unread), then the weight and bias gradients only. Bitwise the whole call.
TEST(matmul_backward_split_is_bitwise_whole) {
    pool P = {0};
    lcg g = {5};
    int n = 37, c = 50, oc = 70;
    real *inp = buf_rand(&P, &g, n * c, 1), *w = buf_rand(&P, &g, oc * c, 1), *dout = buf_rand(&P, &g, n * oc, 1);
    real *dw0 = buf_rand(&P, &g, oc * c, 1), *db0 = buf_rand(&P, &g, oc, 1);
    real *dinp = buf_fill(&P, n * c, 777), *dw = buf_copy(&P, dw0, oc * c), *db = buf_copy(&P, db0, oc);
    mt_matmul_backward(dinp, dw, db, dout, inp, w, n, c, oc);
    real *dinp2 = buf_fill(&P, n * c, 777), *dw2 = buf_copy(&P, dw0, oc * c), *db2 = buf_copy(&P, db0, oc);
    mt_matmul_backward(dinp2, NULL, NULL, dout, NULL, w, n, c, oc);
    ASSERT(!memcmp(dw2, dw0, (size_t)oc * c * sizeof(real)) && !memcmp(db2, db0, (size_t)oc * sizeof(real)),
           "the input-gradient call touched dw or dbias");
    mt_matmul_backward(NULL, dw2, db2, dout, inp, w, n, c, oc);
    ASSERT(!memcmp(dinp, dinp2, (size_t)n * c * sizeof(real)), "dinp differs");
    ASSERT(!memcmp(dw, dw2, (size_t)oc * c * sizeof(real)), "dw differs");
    ASSERT(!memcmp(db, db2, (size_t)oc * sizeof(real)), "dbias differs");
    ASSERT(memcmp(dw, dw0, (size_t)oc * c * sizeof(real)), "dw never accumulated");
    pool_free(&P);
}

// ---- layernorm -------------------------------------------------------------

static const mt_norm LN = {1e-5, 0};

TEST(layernorm_forward_normalises) {
    pool P = {0};
    lcg g = {3};
    int n = 4, h = 50;
    real *inp = buf_rand(&P, &g, n * h, 3), *w = buf_fill(&P, h, 1), *b = buf_fill(&P, h, 0);
    real *out = buf_fill(&P, n * h, 0), *mean = buf_fill(&P, n, 0), *rstd = buf_fill(&P, n, 0);
    mt_norm_forward(out, mean, rstd, inp, w, b, LN, n, h);
    for (int i = 0; i < n; i++) {
        double m = 0, v = 0, m2 = 0;
        for (int j = 0; j < h; j++) m += inp[i * h + j];
        m /= h;
        for (int j = 0; j < h; j++) v += (inp[i * h + j] - m) * (inp[i * h + j] - m);
        v /= h;
        ASSERT_CLOSE(mean[i], m, FWD_TOL);
        ASSERT_CLOSE(rstd[i], 1 / sqrt(v + 1e-5), FWD_TOL * 10);
        for (int j = 0; j < h; j++) m2 += out[i * h + j];
        ASSERT_CLOSE(m2 / h, 0, FWD_TOL * 10);
    }
    pool_free(&P);
}

typedef struct { real *out, *mean, *rstd; const real *inp, *w, *b; int n, h; } ln_ctx;
static void ln_fwd(void *p) {
    ln_ctx *x = p;
    mt_norm_forward(x->out, x->mean, x->rstd, x->inp, x->w, x->b, LN, x->n, x->h);
}

TEST(layernorm_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {4};
    int n = 4, h = 7;
    real *inp = buf_rand(&P, &g, n * h, 2), *w = buf_rand(&P, &g, h, 1), *b = buf_rand(&P, &g, h, 1);
    real *out = buf_fill(&P, n * h, 0), *mean = buf_fill(&P, n, 0), *rstd = buf_fill(&P, n, 0);
    real *R = buf_rand(&P, &g, n * h, 1), *dinp = buf_fill(&P, n * h, 777);
    real *dw0 = buf_rand(&P, &g, h, 1), *db0 = buf_rand(&P, &g, h, 1);
    real *dw = buf_copy(&P, dw0, h), *db = buf_copy(&P, db0, h);
    ln_ctx ctx = {out, mean, rstd, inp, w, b, n, h};
    ln_fwd(&ctx);
    mt_norm_backward(dinp, dw, db, R, inp, w, mean, rstd, LN, n, h);
    sub_in(dw, dw0, h);
    sub_in(db, db0, h);
    loss_fn f = {ln_fwd, &ctx, out, R, (size_t)n * h};
    GRADCHECK(f, inp, n * h, dinp, "layernorm dinp");
    GRADCHECK(f, w, h, dw, "layernorm dw");
    GRADCHECK(f, b, h, db, "layernorm db");
    pool_free(&P);
}

// ---- gelu ------------------------------------------------------------------

TEST(gelu_known_values) {
    // Reference values of 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) in double.
    real x[5] = {1.0, -1.0, 2.0, -0.5, 0.0}, y[5];
    const double want[5] = {0.8411919906082768, -0.15880800939172324, 1.954597694087775,
                            -0.15428599017485606, 0.0};
    mt_gelu_forward(y, x, 5);
    for (int i = 0; i < 5; i++) ASSERT_CLOSE(y[i], want[i], FWD_TOL / 10);
}

typedef struct { real *out; const real *inp; size_t n; } gelu_ctx;
static void gelu_fwd(void *p) {
    gelu_ctx *x = p;
    mt_gelu_forward(x->out, x->inp, x->n);
}

TEST(gelu_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {5};
    size_t n = 20;
    real *inp = buf_rand(&P, &g, n, 3), *out = buf_fill(&P, n, 0), *R = buf_rand(&P, &g, n, 1);
    real *dinp = buf_copy(&P, R, n);
    mt_gelu_backward(dinp, inp, dinp, n);  // in place: dinp may alias dout
    gelu_ctx ctx = {out, inp, n};
    loss_fn f = {gelu_fwd, &ctx, out, R, n};
    GRADCHECK(f, inp, n, dinp, "gelu dinp");
    pool_free(&P);
}

// ---- dropout ---------------------------------------------------------------

TEST(bias_dropout_add_matches_per_element_keys) {
    // Row r is (sample0 + r % b, pos0 + r / b); the per-element draw is the
    // independent definition of the mask.
    pool P = {0};
    lcg g = {6};
    int b = 3, rows = 12, h = 37;
    mt_rows r = {.rows = rows, .b = b, .pos0 = 5, .sample0 = 9};
    real *res = buf_rand(&P, &g, rows * h, 1), *inp = buf_rand(&P, &g, rows * h, 1);
    real *bias = buf_rand(&P, &g, h, 1), *out = buf_fill(&P, rows * h, 0);
    mt_bias_dropout_add_forward(out, res, inp, bias, &KEY_HIDDEN, r, h);
    int dropped = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < h; j++) {
            int keep = mt_rng_keep_hidden(&KEY_HIDDEN, 9 + i % b, 5 + i / b, j);
            double v = (double)inp[i * h + j] + bias[j];
            double want = res[i * h + j] + (keep ? v / (1 - (double)KEY_HIDDEN.p) : 0);
            ASSERT_CLOSE(out[i * h + j], want, FWD_TOL);
            dropped += !keep;
        }
    ASSERT(dropped > 0, "p = 0.3 dropped nothing");
    // No key: a plain bias add plus residual, written in place over res.
    real *res0 = buf_copy(&P, res, rows * h);
    mt_bias_dropout_add_forward(res, res, inp, bias, NULL, r, h);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < h; j++)
            ASSERT_CLOSE(res[i * h + j], (double)res0[i * h + j] + inp[i * h + j] + bias[j], FWD_TOL);
    pool_free(&P);
}

TEST(dropout_keep_fraction_and_replay) {
    pool P = {0};
    int rows = 100, h = 1000;  // 100k draws: σ of the kept fraction ≈ 0.0015
    mt_rows r = {.rows = rows, .b = 4, .pos0 = 0, .sample0 = 0};
    real *x = buf_fill(&P, (size_t)rows * h, 1), *dx = buf_fill(&P, (size_t)rows * h, 1);
    mt_dropout_forward(x, &KEY_HIDDEN, r, h);
    mt_dropout_backward(dx, &KEY_HIDDEN, r, h);
    size_t kept = 0;
    real sc = (real)(1 / (1 - (double)KEY_HIDDEN.p));
    for (size_t i = 0; i < (size_t)rows * h; i++) {
        ASSERT(x[i] == 0 || x[i] == sc, "element %zu = %g, not 0 or 1/(1-p)", i, (double)x[i]);
        kept += x[i] != 0;
    }
    ASSERT_CLOSE((double)kept / ((double)rows * h), 1 - KEY_HIDDEN.p, 0.01);
    // Backward recomputes the mask: it must be the forward's, bit for bit.
    ASSERT(memcmp(x, dx, (size_t)rows * h * sizeof(real)) == 0, "backward mask differs from forward");
    mt_dropout_key k2 = KEY_HIDDEN;
    k2.iter++;
    for (size_t i = 0; i < (size_t)rows * h; i++) dx[i] = 1;
    mt_dropout_forward(dx, &k2, r, h);
    ASSERT(memcmp(x, dx, (size_t)rows * h * sizeof(real)) != 0, "next iteration drew the same mask");
    pool_free(&P);
}

typedef struct { real *out; const real *res, *inp, *bias; mt_rows r; int h; } bda_ctx;
static void bda_fwd(void *p) {
    bda_ctx *x = p;
    mt_bias_dropout_add_forward(x->out, x->res, x->inp, x->bias, &KEY_HIDDEN, x->r, x->h);
}

TEST(bias_dropout_add_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {7};
    int rows = 6, h = 9;
    mt_rows r = {.rows = rows, .b = 2, .pos0 = 2, .sample0 = 5};
    real *res = buf_rand(&P, &g, rows * h, 1), *inp = buf_rand(&P, &g, rows * h, 1);
    real *bias = buf_rand(&P, &g, h, 1), *out = buf_fill(&P, rows * h, 0), *R = buf_rand(&P, &g, rows * h, 1);
    real *dinp = buf_fill(&P, rows * h, 777), *db0 = buf_rand(&P, &g, h, 1), *db = buf_copy(&P, db0, h);
    mt_bias_dropout_add_backward(dinp, db, R, &KEY_HIDDEN, r, h);
    sub_in(db, db0, h);
    bda_ctx ctx = {out, res, inp, bias, r, h};
    loss_fn f = {bda_fwd, &ctx, out, R, (size_t)rows * h};
    GRADCHECK(f, inp, rows * h, dinp, "bias_dropout_add dinp");
    GRADCHECK(f, bias, h, db, "bias_dropout_add dbias");
    GRADCHECK(f, (real *)res, rows * h, R, "bias_dropout_add dres = dout");
    pool_free(&P);
}

typedef struct { real *out; const real *x; mt_rows r; int h; } drop_ctx;
static void drop_fwd(void *p) {
    drop_ctx *c = p;
    memcpy(c->out, c->x, (size_t)c->r.rows * c->h * sizeof(real));
    mt_dropout_forward(c->out, &KEY_HIDDEN, c->r, c->h);
}

TEST(dropout_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {8};
    int rows = 6, h = 8;
    mt_rows r = {.rows = rows, .b = 3, .pos0 = 1, .sample0 = 2};
    real *x = buf_rand(&P, &g, rows * h, 1), *out = buf_fill(&P, rows * h, 0), *R = buf_rand(&P, &g, rows * h, 1);
    real *dx = buf_copy(&P, R, rows * h);
    mt_dropout_backward(dx, &KEY_HIDDEN, r, h);
    drop_ctx ctx = {out, x, r, h};
    loss_fn f = {drop_fwd, &ctx, out, R, (size_t)rows * h};
    GRADCHECK(f, x, rows * h, dx, "dropout dx");
    pool_free(&P);
}

// ---- embedding -------------------------------------------------------------

// Shard [4, 9) of a vocabulary of 13: tokens 2 and 12 live elsewhere, 4 repeats.
static const int EMB_TOK[7] = {4, 7, 2, 8, 4, 12, 5};
enum { EMB_V0 = 4, EMB_VL = 5, EMB_N = 7, EMB_H = 6 };

TEST(embedding_forward_zeroes_foreign_tokens) {
    pool P = {0};
    lcg g = {9};
    real *wte = buf_rand(&P, &g, EMB_VL * EMB_H, 1), *out = buf_fill(&P, EMB_N * EMB_H, 777);
    mt_embedding_forward(out, EMB_TOK, wte, EMB_V0, EMB_VL, EMB_N, EMB_H);
    for (int i = 0; i < EMB_N; i++) {
        int t = EMB_TOK[i] - EMB_V0, mine = t >= 0 && t < EMB_VL;
        for (int j = 0; j < EMB_H; j++) ASSERT(out[i * EMB_H + j] == (mine ? wte[t * EMB_H + j] : 0), "row %d col %d", i, j);
    }
    pool_free(&P);
}

typedef struct { real *out; const real *wte; } emb_ctx;
static void emb_fwd(void *p) {
    emb_ctx *x = p;
    mt_embedding_forward(x->out, EMB_TOK, x->wte, EMB_V0, EMB_VL, EMB_N, EMB_H);
}

TEST(embedding_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {10};
    real *wte = buf_rand(&P, &g, EMB_VL * EMB_H, 1), *out = buf_fill(&P, EMB_N * EMB_H, 0);
    real *R = buf_rand(&P, &g, EMB_N * EMB_H, 1);
    real *d0 = buf_rand(&P, &g, EMB_VL * EMB_H, 1), *d = buf_copy(&P, d0, EMB_VL * EMB_H);
    mt_embedding_backward(d, R, EMB_TOK, EMB_V0, EMB_VL, EMB_N, EMB_H);
    sub_in(d, d0, EMB_VL * EMB_H);
    emb_ctx ctx = {out, wte};
    loss_fn f = {emb_fwd, &ctx, out, R, EMB_N * EMB_H};
    GRADCHECK(f, wte, EMB_VL * EMB_H, d, "embedding dwte (shard v0=4)");
    pool_free(&P);
}

typedef struct { real *out; const real *x, *wpe; mt_rows r; int h; } pos_ctx;
static void pos_fwd(void *p) {
    pos_ctx *c = p;
    memcpy(c->out, c->x, (size_t)c->r.rows * c->h * sizeof(real));
    mt_position_forward(c->out, c->wpe, c->r, c->h);
}

static const mt_rows POS_ROWS = {.rows = 6, .b = 2, .pos0 = 2, .sample0 = 0};  // positions 2, 3, 4

TEST(position_forward_adds_row_position) {
    pool P = {0};
    lcg g = {12};
    int h = 5, npos = 6;
    mt_rows r = POS_ROWS;
    real *x = buf_rand(&P, &g, r.rows * h, 1), *wpe = buf_rand(&P, &g, npos * h, 1);
    real *out = buf_fill(&P, r.rows * h, 0);
    pos_ctx ctx = {out, x, wpe, r, h};
    pos_fwd(&ctx);
    for (int i = 0; i < r.rows; i++)
        for (int j = 0; j < h; j++) ASSERT_CLOSE(out[i * h + j], x[i * h + j] + wpe[(2 + i / 2) * h + j], FWD_TOL);
    pool_free(&P);
}

TEST(position_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {19};
    int h = 5, npos = 6;
    mt_rows r = POS_ROWS;
    real *x = buf_rand(&P, &g, r.rows * h, 1), *wpe = buf_rand(&P, &g, npos * h, 1);
    real *out = buf_fill(&P, r.rows * h, 0), *R = buf_rand(&P, &g, r.rows * h, 1);
    pos_ctx ctx = {out, x, wpe, r, h};
    real *d0 = buf_rand(&P, &g, npos * h, 1), *d = buf_copy(&P, d0, npos * h);
    mt_position_backward(d, R, r, h);
    sub_in(d, d0, npos * h);
    loss_fn f = {pos_fwd, &ctx, out, R, (size_t)r.rows * h};
    GRADCHECK(f, wpe, npos * h, d, "position dwpe");
    pool_free(&P);
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
