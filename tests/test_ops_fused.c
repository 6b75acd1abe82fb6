// test_ops_fused.c: the fused sweeps of ops.h (MT_OPS_FUSED) and the
// multi-row LayerNorm. Each fused op must give bitwise what the chain of
// plain ops gives (both builds, --bf16 rounding on and off: the trainer's
// results may not move when the fusion is switched on), and its backward
// must match central differences (fp64 build).
#include "bf16.h"
#include "ops_helpers.h"

static const mt_dropout_key KEY = {.seed = 99, .iter = 3, .layer = 1, .site = MT_SITE_ATTN_OUT, .p = 0.25};

// Widths past one column block (64) with a ragged last block, and row
// counts that leave a remainder for the four-row LayerNorm.
#define ROWS 7
#define COLS 150

static void round_all(real *x, size_t n) { mt_round_bf16(x, x, n); }

// Bitwise equality, with the first differing element in the message.
#define ASSERT_SAME(a, b, n, what)                                                                  \
    do {                                                                                           \
        size_t i_ = 0;                                                                             \
        while (i_ < (size_t)(n) && !memcmp(&(a)[i_], &(b)[i_], sizeof(real))) i_++;                \
        ASSERT(i_ == (size_t)(n), "%s: element %zu differs: %.17g vs %.17g", what, i_,             \
               (double)(a)[i_ < (size_t)(n) ? i_ : 0], (double)(b)[i_ < (size_t)(n) ? i_ : 0]);    \
    } while (0)

// ---- bitwise: fused against the chain ----------------------------------------

TEST(gelu_fused_equals_chain) {
    for (int bf = 0; bf < 2; bf++) {
        pool P = {0};
        lcg g = {21};
        size_t n = (size_t)ROWS * COLS;
        real *fc1 = buf_rand(&P, &g, n, 4), *fc1b = buf_copy(&P, fc1, n);
        real *a = buf_fill(&P, n, 7), *b = buf_fill(&P, n, 8);
        // Chain: round fc1, GELU, round act.
        if (bf) round_all(fc1, n);
        mt_gelu_forward(a, fc1, n);
        if (bf) round_all(a, n);
        mt_gelu_fused_forward(b, fc1b, n, bf);
        ASSERT_SAME(a, b, n, bf ? "gelu forward (bf16)" : "gelu forward");
        ASSERT_SAME(fc1, fc1b, n, "fc1 after the forward");
        // Backward: round dout, GELU', round, then the bias column sum.
        real *dout = buf_rand(&P, &g, n, 1), *d1 = buf_copy(&P, dout, n), *d2 = buf_copy(&P, dout, n);
        real *db1 = buf_rand(&P, &g, COLS, 1), *db2 = buf_copy(&P, db1, COLS);
        if (bf) round_all(d1, n);
        mt_gelu_backward(d1, fc1, d1, n);
        if (bf) round_all(d1, n);
        // fc1's bias gradient as the chain sums it: matmul_backward's (here
        // with an input one column wide).
        mt_matmul_backward(NULL, buf_fill(&P, COLS, 0), db1, d1, buf_fill(&P, ROWS, 1), buf_fill(&P, COLS, 0), ROWS, 1,
                           COLS);
        mt_gelu_fused_backward(d2, db2, fc1, d2, ROWS, COLS, bf);  // in place, as the trainer calls it
        ASSERT_SAME(d1, d2, n, bf ? "gelu backward (bf16)" : "gelu backward");
        ASSERT_SAME(db1, db2, COLS, "fc1 bias gradient");
        pool_free(&P);
    }
}

TEST(bias_dropout_add_fused_equals_chain) {
    for (int bf = 0; bf < 2; bf++)
        for (int drop = 0; drop < 2; drop++) {
            pool P = {0};
            lcg g = {22};
            int h = COLS, n = ROWS * 2;
            size_t nh = (size_t)n * h;
            mt_rows r = {.rows = n, .b = 2, .pos0 = 3, .sample0 = 4};
            const mt_dropout_key *k = drop ? &KEY : NULL;
            real *res = buf_rand(&P, &g, nh, 1), *inp = buf_rand(&P, &g, nh, 1), *bias = buf_rand(&P, &g, h, 1);
            real *a = buf_fill(&P, nh, 0), *b = buf_fill(&P, nh, 0);
            mt_bias_dropout_add_forward(a, res, inp, bias, k, r, h);
            if (bf) round_all(a, nh);
            mt_bias_dropout_add_fused_forward(b, res, inp, bias, k, r, h, bf);
            ASSERT_SAME(a, b, nh, "bias-dropout-add forward");
            real *dout = buf_rand(&P, &g, nh, 1), *d1 = buf_fill(&P, nh, 0), *d2 = buf_fill(&P, nh, 0);
            real *db1 = buf_rand(&P, &g, h, 1), *db2 = buf_copy(&P, db1, h);
            mt_bias_dropout_add_backward(d1, db1, dout, k, r, h);
            if (bf) round_all(d1, nh);
            mt_bias_dropout_add_fused_backward(d2, db2, dout, k, r, h, bf);
            ASSERT_SAME(d1, d2, nh, "bias-dropout-add backward");
            ASSERT_SAME(db1, db2, h, "bias-dropout-add dbias");
            pool_free(&P);
        }
}

TEST(xent_fused_equals_three_steps) {
    // A small vocabulary with ten padding columns, and GPT-2's (50257 in 50304).
    static const int VL[2] = {300, 50304}, VV[2] = {290, 50257};
    for (int c = 0; c < 4; c++) {
        int bf = c & 1;
        pool P = {0};
        lcg g = {23};
        int n = ROWS, vl = VL[c >> 1], V = VV[c >> 1];
        size_t nv = (size_t)n * vl;
        int tg[ROWS] = {0, V - 1, 5, 100, V - 2, 17, 250};
        real *l1 = buf_rand(&P, &g, nv, 6), *l2 = buf_copy(&P, l1, nv);
        real *st = buf_fill(&P, 4 * (size_t)n, 0), *rmax = st, *se = st + n, *tl = st + 2 * n, *loss = st + 3 * n;
        real *f = buf_fill(&P, 3 * (size_t)n, 0);
        real scale = (real)0.125;
        if (bf) round_all(l1, nv);
        mt_xent_local_max(rmax, l1, 0, vl, V, n);
        mt_xent_local_sums(se, tl, l1, rmax, tg, 0, vl, V, n);
        mt_xent_loss(loss, rmax, se, tl, n);
        mt_xent_backward(l1, l1, rmax, se, tg, scale, 0, vl, V, n);
        if (bf) round_all(l1, nv);
        mt_xent_fused(f, f + n, f + 2 * n, l2, tg, scale, V, vl, n, bf);
        ASSERT_SAME(loss, f, n, "loss");
        ASSERT_SAME(rmax, f + n, n, "row max");
        ASSERT_SAME(se, f + 2 * n, n, "sum of exponentials");
        ASSERT_SAME(l1, l2, nv, bf ? "logits' gradient (bf16)" : "logits' gradient");
        pool_free(&P);
    }
}

TEST(adamw_fused_equals_update_then_round) {
    for (int bf = 0; bf < 2; bf++) {
        pool P = {0};
        lcg g = {24};
        size_t n = 40000;  // more than one thread's block
        real *p1 = buf_rand(&P, &g, n, 1), *gr = buf_rand(&P, &g, n, 1);
        real *m1 = buf_rand(&P, &g, n, 0.1), *v1 = buf_rand(&P, &g, n, 0.1);
        for (size_t i = 0; i < n; i++) v1[i] = v1[i] * v1[i];
        real *p2 = buf_copy(&P, p1, n), *m2 = buf_copy(&P, m1, n), *v2 = buf_copy(&P, v1, n);
        real *c1 = buf_fill(&P, n, 0), *c2 = buf_fill(&P, n, 0), *gr2 = buf_copy(&P, gr, n);
        mt_adamw_update(p1, gr, (real)0.7, m1, v1, n, 3, (real)1e-3, (real)0.9, (real)0.95, (real)1e-8, (real)0.1);
        if (bf) mt_round_bf16(c1, p1, n);
        mt_adamw_fused(p2, bf ? c2 : NULL, gr2, (real)0.7, m2, v2, n, 3, (real)1e-3, (real)0.9, (real)0.95, (real)1e-8,
                       (real)0.1);
        real *zero = buf_fill(&P, n, 0);
        ASSERT_SAME(gr, zero, n, "gradient after the update (consumed)");
        ASSERT_SAME(gr2, zero, n, "gradient after the fused update (consumed)");
        ASSERT_SAME(p1, p2, n, "weights");
        ASSERT_SAME(m1, m2, n, "first moment");
        ASSERT_SAME(v1, v2, n, "second moment");
        ASSERT_SAME(c1, c2, n, "bf16 copy");
        pool_free(&P);
    }
}

// The one-row LayerNorm the four-row kernel replaced, kept as the reference
// the kernel must reproduce bit for bit.
static void norm_forward_one_row(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b,
                                 mt_norm nm, int n, int h) {
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * h;
        real *y = out + (size_t)i * h;
        double m = 0, v = 0;
        if (!nm.rms) {
            for (int j = 0; j < h; j++) m += x[j];
            m /= h;
        }
        for (int j = 0; j < h; j++) v += (x[j] - m) * (x[j] - m);
        v /= h;
        double r = 1.0 / sqrt(v + nm.eps);
        for (int j = 0; j < h; j++) y[j] = (real)((x[j] - m) * r * w[j] + (b ? b[j] : 0));
        if (mean) mean[i] = (real)m;
        rstd[i] = (real)r;
    }
}

static void norm_backward_one_row(real *dinp, real *dw, real *db, const real *dout, const real *inp, const real *w,
                                  const real *mean, const real *rstd, mt_norm nm, int n, int h) {
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * h, *dy = dout + (size_t)i * h;
        real *dx = dinp + (size_t)i * h;
        double m = mean ? mean[i] : 0, r = rstd[i], sg = 0, sgx = 0;
        for (int j = 0; j < h; j++) {
            double g = (double)w[j] * dy[j];
            sg += g;
            sgx += g * (x[j] - m) * r;
        }
        sg = nm.rms ? 0 : sg / h;
        sgx /= h;
        for (int j = 0; j < h; j++) {
            double g = (double)w[j] * dy[j];
            dx[j] = (real)(r * (g - sg - (x[j] - m) * r * sgx));
        }
    }
    for (int j = 0; j < h; j++) {
        double aw = 0, ab = 0;
        for (int i = 0; i < n; i++) {
            double m = mean ? mean[i] : 0, r = rstd[i];
            aw += dout[(size_t)i * h + j] * (inp[(size_t)i * h + j] - m) * r;
            ab += dout[(size_t)i * h + j];
        }
        dw[j] += (real)aw;
        if (db) db[j] += (real)ab;
    }
}

TEST(layernorm_rows_at_once_equal_one_row) {
    for (int rms = 0; rms < 2; rms++) {
        pool P = {0};
        lcg g = {25};
        int n = 4 * 3 + 3, h = COLS;  // full groups of four and a remainder
        size_t nh = (size_t)n * h;
        mt_norm nm = {1e-5, rms};
        real *x = buf_rand(&P, &g, nh, 2), *w = buf_rand(&P, &g, h, 1), *b = rms ? NULL : buf_rand(&P, &g, h, 1);
        real *y1 = buf_fill(&P, nh, 0), *y2 = buf_fill(&P, nh, 0);
        real *m1 = buf_fill(&P, n, 0), *m2 = buf_fill(&P, n, 0), *r1 = buf_fill(&P, n, 0), *r2 = buf_fill(&P, n, 0);
        norm_forward_one_row(y1, rms ? NULL : m1, r1, x, w, b, nm, n, h);
        mt_norm_forward(y2, rms ? NULL : m2, r2, x, w, b, nm, n, h);
        ASSERT_SAME(y1, y2, nh, "norm output");
        ASSERT_SAME(m1, m2, n, "mean");
        ASSERT_SAME(r1, r2, n, "rstd");
        real *dy = buf_rand(&P, &g, nh, 1), *dx1 = buf_fill(&P, nh, 0), *dx2 = buf_fill(&P, nh, 0);
        real *dw1 = buf_rand(&P, &g, h, 1), *dw2 = buf_copy(&P, dw1, h);
        real *db1 = rms ? NULL : buf_rand(&P, &g, h, 1), *db2 = rms ? NULL : buf_copy(&P, db1, h);
        norm_backward_one_row(dx1, dw1, db1, dy, x, w, rms ? NULL : m1, r1, nm, n, h);
        mt_norm_backward(dx2, dw2, db2, dy, x, w, rms ? NULL : m2, r2, nm, n, h);
        ASSERT_SAME(dx1, dx2, nh, "norm dinp");
        ASSERT_SAME(dw1, dw2, h, "norm dw");
        if (!rms) ASSERT_SAME(db1, db2, h, "norm db");
        pool_free(&P);
    }
}

// ---- gradient checks (fp64) -------------------------------------------------

// GELU after a bias: out = gelu(x + b), the fc1 output's activation.
typedef struct { real *out, *pre; const real *x, *b; int n, f; } gb_ctx;
static void gb_fwd(void *p) {
    gb_ctx *c = p;
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->f; j++) c->pre[i * c->f + j] = c->x[i * c->f + j] + c->b[j];
    mt_gelu_fused_forward(c->out, c->pre, (size_t)c->n * c->f, 0);
}

TEST(gelu_fused_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {26};
    int n = 5, f = 70;
    size_t nf = (size_t)n * f;
    real *x = buf_rand(&P, &g, nf, 2), *b = buf_rand(&P, &g, f, 1), *pre = buf_fill(&P, nf, 0);
    real *out = buf_fill(&P, nf, 0), *R = buf_rand(&P, &g, nf, 1);
    gb_ctx ctx = {out, pre, x, b, n, f};
    gb_fwd(&ctx);
    real *dx = buf_copy(&P, R, nf), *db0 = buf_rand(&P, &g, f, 1), *db = buf_copy(&P, db0, f);
    mt_gelu_fused_backward(dx, db, pre, dx, n, f, 0);
    sub_in(db, db0, f);
    loss_fn L = {gb_fwd, &ctx, out, R, nf};
    GRADCHECK(L, x, nf, dx, "gelu_fused dinp");
    GRADCHECK(L, (real *)b, f, db, "gelu_fused dbias");
    pool_free(&P);
}

typedef struct { real *out; const real *res, *inp, *bias; mt_rows r; int h; } bda_ctx;
static void bda_fwd(void *p) {
    bda_ctx *c = p;
    mt_bias_dropout_add_fused_forward(c->out, c->res, c->inp, c->bias, &KEY, c->r, c->h, 0);
}

TEST(bias_dropout_add_fused_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {27};
    int rows = 6, h = 70;
    size_t nh = (size_t)rows * h;
    mt_rows r = {.rows = rows, .b = 3, .pos0 = 1, .sample0 = 2};
    real *res = buf_rand(&P, &g, nh, 1), *inp = buf_rand(&P, &g, nh, 1), *bias = buf_rand(&P, &g, h, 1);
    real *out = buf_fill(&P, nh, 0), *R = buf_rand(&P, &g, nh, 1);
    real *dinp = buf_fill(&P, nh, 777), *db0 = buf_rand(&P, &g, h, 1), *db = buf_copy(&P, db0, h);
    mt_bias_dropout_add_fused_backward(dinp, db, R, &KEY, r, h, 0);
    sub_in(db, db0, h);
    bda_ctx ctx = {out, res, inp, bias, r, h};
    loss_fn L = {bda_fwd, &ctx, out, R, nh};
    GRADCHECK(L, inp, nh, dinp, "bda_fused dinp");
    GRADCHECK(L, (real *)bias, h, db, "bda_fused dbias");
    GRADCHECK(L, (real *)res, nh, R, "bda_fused dres = dout");
    pool_free(&P);
}

// L = Σ_i loss_i, the forward of the fused cross-entropy on a copy of the logits.
typedef struct { real *loss, *work; const real *logits; const int *tg; int n, vl, V; } xe_ctx;
static void xe_fwd(void *p) {
    xe_ctx *c = p;
    memcpy(c->work, c->logits, (size_t)c->n * c->vl * sizeof(real));
    mt_xent_fused(c->loss, c->loss + c->n, c->loss + 2 * c->n, c->work, c->tg, 0, c->V, c->vl, c->n, 0);
}

TEST(xent_fused_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {28};
    int n = 4, vl = 24, V = 21;  // three padding columns: their gradient must be 0
    size_t nv = (size_t)n * vl;
    static const int tg[4] = {0, 20, 7, 13};
    real *logits = buf_rand(&P, &g, nv, 3), *work = buf_fill(&P, nv, 0), *loss = buf_fill(&P, 3 * (size_t)n, 0);
    real *d = buf_copy(&P, logits, nv), *st = buf_fill(&P, 3 * (size_t)n, 0);
    mt_xent_fused(st, st + n, st + 2 * n, d, tg, 1, V, vl, n, 0);  // dscale 1: d = dL/dlogits
    for (int i = 0; i < n; i++)
        for (int j = V; j < vl; j++) ASSERT(d[i * vl + j] == 0, "padding column %d has gradient %g", j, (double)d[i * vl + j]);
    real *R = buf_fill(&P, (size_t)n, 1);  // L = Σ loss_i
    xe_ctx ctx = {loss, work, logits, tg, n, vl, V};
    loss_fn L = {xe_fwd, &ctx, loss, R, (size_t)n};
    GRADCHECK(L, logits, nv, d, "xent_fused dlogits");
    pool_free(&P);
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
