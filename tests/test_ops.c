// test_ops.c: every kernel of ops.h, forward against naive loops (both
// builds) and backward against central differences (fp64 build only: in fp32
// a central difference keeps about three digits, too few to judge a gradient).
#include "harness.h"
#include "ops.h"

// Forward checks compare with naive loops; fp32 is allowed its round-off.
#ifdef MT_FP64
#define FWD_TOL 1e-12
#else
#define FWD_TOL 2e-5
#endif

// ---- helpers ---------------------------------------------------------------

// Inputs come from a fixed LCG (Knuth's MMIX constants), independent of the
// trainer's Philox so a bug there cannot hide one here.
typedef struct { uint64_t s; } lcg;
static double lcg_next(lcg *g) {
    g->s = g->s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g->s >> 11) * (2.0 / 9007199254740992.0) - 1.0;  // [-1, 1)
}

// A test's buffers, freed together at the end of the case.
typedef struct { void *p[32]; int n; } pool;
static void *pool_get(pool *P, size_t bytes) {
    void *x = mt_calloc(1, bytes);
    if (P->n < 32) P->p[P->n++] = x;
    return x;
}
static void pool_free(pool *P) { for (int i = 0; i < P->n; i++) free(P->p[i]); P->n = 0; }
static real *buf_rand(pool *P, lcg *g, size_t n, double amp) {
    real *x = pool_get(P, n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = (real)(amp * lcg_next(g));
    return x;
}
static real *buf_fill(pool *P, size_t n, double v) {
    real *x = pool_get(P, n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = (real)v;
    return x;
}
static real *buf_copy(pool *P, const real *y, size_t n) {
    real *x = pool_get(P, n * sizeof(real));
    memcpy(x, y, n * sizeof(real));
    return x;
}
// acc -= base: what an accumulating backward added.
static void sub_in(real *acc, const real *base, size_t n) { for (size_t i = 0; i < n; i++) acc[i] -= base[i]; }
static double max_abs_diff(const real *a, const real *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

// ---- gradient check --------------------------------------------------------

// Every gradcheck differentiates L = Σ out ⊙ R for a fixed random R, so the
// backward gets dout = R.
typedef struct {
    void (*fwd)(void *ctx);  // recomputes out from the inputs held in ctx
    void *ctx;
    const real *out, *R;
    size_t nout;
} loss_fn;

static double loss_of(loss_fn f) {
    f.fwd(f.ctx);
    double L = 0;
    for (size_t i = 0; i < f.nout; i++) L += (double)f.out[i] * f.R[i];
    return L;
}

#define GC_EPS 1e-6
#define GC_TOL 1e-7

// Error measure: max_i |a_i - n_i| / max_i |n_i| (a analytic, n numeric),
// the worst absolute error against the gradient's own scale. An elementwise
// ratio would be noise on entries that are zero in exact arithmetic.
// x is perturbed in place and restored.
static double grad_err(loss_fn f, real *x, size_t nx, const real *ga, double *nmax) {
    double emax = 0;
    *nmax = 0;
    for (size_t i = 0; i < nx; i++) {
        real x0 = x[i];
        x[i] = (real)(x0 + GC_EPS);
        double lp = loss_of(f);
        x[i] = (real)(x0 - GC_EPS);
        double lm = loss_of(f);
        x[i] = x0;
        double num = (lp - lm) / (2 * GC_EPS);
        emax = fmax(emax, fabs((double)ga[i] - num));
        *nmax = fmax(*nmax, fabs(num));
    }
    return emax / fmax(*nmax, 1e-300);
}

// Also fails a vacuous check: a numeric gradient that is all zero would
// accept any backward that returns zeros.
#define GRADCHECK(f, x, nx, ga, what)                                                  \
    do {                                                                               \
        double nm_, e_ = grad_err(f, x, nx, ga, &nm_);                                 \
        ASSERT(nm_ > 1e-3, "%s: numeric gradient vanishes (max %.3g)", what, nm_);     \
        ASSERT(e_ <= GC_TOL, "%s: rel. error %.3g > %.0e", what, e_, GC_TOL);          \
        printf("  %-28s rel. error %.2e\n", what, e_);                                 \
    } while (0)

#ifdef MT_FP64
#define GRADCHECK_BUILD_ONLY()
#else
#define GRADCHECK_BUILD_ONLY()                                                         \
    do {                                                                               \
        printf("  skipped: gradchecks run in the fp64 build only\n");                  \
        return;                                                                        \
    } while (0)
#endif

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

// ---- layernorm -------------------------------------------------------------

TEST(layernorm_forward_normalises) {
    pool P = {0};
    lcg g = {3};
    int n = 4, h = 50;
    real *inp = buf_rand(&P, &g, n * h, 3), *w = buf_fill(&P, h, 1), *b = buf_fill(&P, h, 0);
    real *out = buf_fill(&P, n * h, 0), *mean = buf_fill(&P, n, 0), *rstd = buf_fill(&P, n, 0);
    mt_layernorm_forward(out, mean, rstd, inp, w, b, n, h);
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
    mt_layernorm_forward(x->out, x->mean, x->rstd, x->inp, x->w, x->b, x->n, x->h);
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
    mt_layernorm_backward(dinp, dw, db, R, inp, w, mean, rstd, n, h);
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

// ---- attention -------------------------------------------------------------

static const mt_attn_shape ATT = {.s = 5, .b = 2, .nh = 2, .hd = 4, .head0 = 1, .sample0 = 3};
static const mt_dropout_key KEY_ATTN = {.seed = 99, .iter = 3, .layer = 1, .site = MT_SITE_ATTN_PROB, .p = 0.2};

// Per element, straight from the definition: one query, one head at a time.
// Returns how many probabilities dropout zeroed.
static int attention_naive(real *out, real *probs, const real *qkv, const mt_dropout_key *k, mt_attn_shape a) {
    int H = a.nh * a.hd, dropped = 0;
    unsigned char keep[64];
    for (int bc = 0; bc < a.b; bc++)
        for (int h = 0; h < a.nh; h++)
            for (int q = 0; q < a.s; q++) {
                const real *Q = qkv + (size_t)(q * a.b + bc) * 3 * H + h * a.hd;
                double sc[64], m = -INFINITY, sum = 0;
                for (int t = 0; t <= q; t++) {
                    const real *K = qkv + (size_t)(t * a.b + bc) * 3 * H + H + h * a.hd;
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
                        const real *V = qkv + (size_t)(t * a.b + bc) * 3 * H + 2 * H + h * a.hd;
                        if (keep[t]) o += sc[t] / sum / (1 - (double)(k ? k->p : 0)) * V[d];
                    }
                    out[(size_t)(q * a.b + bc) * H + h * a.hd + d] = (real)o;
                }
                for (int t = 0; t <= q; t++) dropped += !keep[t];
            }
    return dropped;
}

TEST(attention_forward_matches_naive) {
    pool P = {0};
    lcg g = {13};
    mt_attn_shape a = ATT;
    a.s = 9;  // longer than the gradcheck's, still cheap
    size_t H = (size_t)a.nh * a.hd, rows = (size_t)a.s * a.b, pp = (size_t)a.b * a.nh * a.s * a.s;
    real *qkv = buf_rand(&P, &g, rows * 3 * H, 2);
    real *out = buf_fill(&P, rows * H, 777), *probs = buf_fill(&P, pp, 777);
    real *out_n = buf_fill(&P, rows * H, 0), *probs_n = buf_fill(&P, pp, 0);
    for (int drop = 0; drop < 2; drop++) {
        const mt_dropout_key *k = drop ? &KEY_ATTN : NULL;
        mt_attention_forward(out, probs, qkv, k, a);
        int dropped = attention_naive(out_n, probs_n, qkv, k, a);
        ASSERT(!drop || dropped > 0, "p = 0.2 dropped nothing");
        double ep = max_abs_diff(probs, probs_n, pp), eo = max_abs_diff(out, out_n, rows * H);
        ASSERT(ep <= FWD_TOL, "probs (dropout %d) differ by %.3g", drop, ep);
        ASSERT(eo <= FWD_TOL * 10, "out (dropout %d) differs by %.3g", drop, eo);
    }
    pool_free(&P);
}

typedef struct { real *out, *probs; const real *qkv; const mt_dropout_key *k; } att_ctx;
static void att_fwd(void *p) {
    att_ctx *x = p;
    mt_attention_forward(x->out, x->probs, x->qkv, x->k, ATT);
}

TEST(attention_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {14};
    size_t H = (size_t)ATT.nh * ATT.hd, rows = (size_t)ATT.s * ATT.b, pp = (size_t)ATT.b * ATT.nh * ATT.s * ATT.s;
    real *qkv = buf_rand(&P, &g, rows * 3 * H, 1.5), *R = buf_rand(&P, &g, rows * H, 1);
    real *out = buf_fill(&P, rows * H, 0), *probs = buf_fill(&P, pp, 0), *scratch = buf_fill(&P, pp, 777);
    real *dqkv = buf_fill(&P, rows * 3 * H, 777);
    for (int drop = 0; drop < 2; drop++) {
        att_ctx ctx = {out, probs, qkv, drop ? &KEY_ATTN : NULL};
        att_fwd(&ctx);
        mt_attention_backward(dqkv, scratch, R, qkv, probs, ctx.k, ATT);
        loss_fn f = {att_fwd, &ctx, out, R, rows * H};
        GRADCHECK(f, qkv, rows * 3 * H, dqkv, drop ? "attention dqkv, p=0.2" : "attention dqkv, no dropout");
    }
    // The p = 0.2 case only tests the mask if this shape draws some drops.
    ASSERT(attention_naive(out, probs, qkv, &KEY_ATTN, ATT) > 0, "p = 0.2 dropped nothing");
    pool_free(&P);
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
    real p0[3], m0[3], v0[3];
    memcpy(p0, p, sizeof p), memcpy(m0, m, sizeof m), memcpy(v0, v, sizeof v);
    real lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    int t = 3;
    mt_adamw_update(p, gr, 1, m, v, 3, t, lr, b1, b2, eps, wd);
    for (int i = 0; i < 3; i++) {
        double mi = (double)b1 * m0[i] + (1 - (double)b1) * gr[i];
        double vi = (double)b2 * v0[i] + (1 - (double)b2) * (double)gr[i] * gr[i];
        double mh = mi / (1 - pow(b1, t)), vh = vi / (1 - pow(b2, t));
        double pi = p0[i] - (double)lr * (mh / (sqrt(vh) + eps) + (double)wd * p0[i]);
        ASSERT_CLOSE(m[i], mi, FWD_TOL);
        ASSERT_CLOSE(v[i], vi, FWD_TOL);
        ASSERT_CLOSE(p[i], pi, FWD_TOL);
        ASSERT(p[i] != p0[i], "parameter %d did not move", i);
    }
}

TEST(sumsq_and_scale) {
    pool P = {0};
    lcg g = {18};
    size_t n = 100003;  // several chunks and a ragged tail
    real *x = buf_rand(&P, &g, n, 1);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    ASSERT_CLOSE(mt_sumsq(x, n), s, 1e-12 * s);
    ASSERT_CLOSE(mt_sumsq(x, 3), (double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2], 1e-15);
    real x0 = x[n - 1];
    mt_scale(x, n, 0.5);
    ASSERT(x[n - 1] == x0 * (real)0.5, "last element not scaled");
    ASSERT_CLOSE(mt_sumsq(x, n), s / 4, 1e-12 * s);
    pool_free(&P);
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
