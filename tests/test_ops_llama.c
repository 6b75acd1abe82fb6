// test_ops_llama.c: the Llama-family ops of ops.h — RMSNorm, RoPE and SwiGLU
// — forward against their definitions (Hugging Face's LlamaRMSNorm,
// apply_rotary_pos_emb with rotate_half, LlamaMLP), backward against central
// differences in the fp64 build. (Grouped-query attention: test_ops_attn.c.)
#include "ops_helpers.h"

// ---- RMSNorm ---------------------------------------------------------------

static const mt_norm RMS = {1e-5, 1};

TEST(rmsnorm_forward_matches_definition) {
    pool P = {0};
    lcg g = {21};
    int n = 3, h = 40;
    real *inp = buf_rand(&P, &g, n * h, 3), *w = buf_rand(&P, &g, h, 1);
    real *out = buf_fill(&P, n * h, 0), *rstd = buf_fill(&P, n, 0);
    mt_norm_forward(out, NULL, rstd, inp, w, NULL, RMS, n, h);
    for (int i = 0; i < n; i++) {
        double ms = 0;
        for (int j = 0; j < h; j++) ms += (double)inp[i * h + j] * inp[i * h + j];
        double r = 1 / sqrt(ms / h + 1e-5);
        ASSERT_CLOSE(rstd[i], r, FWD_TOL * 10);
        for (int j = 0; j < h; j++) ASSERT_CLOSE(out[i * h + j], inp[i * h + j] * r * w[j], FWD_TOL * 10);
    }
    pool_free(&P);
}

typedef struct { real *out, *rstd; const real *inp, *w; int n, h; } rms_ctx;
static void rms_fwd(void *p) {
    rms_ctx *x = p;
    mt_norm_forward(x->out, NULL, x->rstd, x->inp, x->w, NULL, RMS, x->n, x->h);
}

TEST(rmsnorm_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {22};
    int n = 4, h = 7;
    real *inp = buf_rand(&P, &g, n * h, 2), *w = buf_rand(&P, &g, h, 1);
    real *out = buf_fill(&P, n * h, 0), *rstd = buf_fill(&P, n, 0);
    real *R = buf_rand(&P, &g, n * h, 1), *dinp = buf_fill(&P, n * h, 777);
    real *dw0 = buf_rand(&P, &g, h, 1), *dw = buf_copy(&P, dw0, h);
    rms_ctx ctx = {out, rstd, inp, w, n, h};
    rms_fwd(&ctx);
    mt_norm_backward(dinp, dw, NULL, R, inp, w, NULL, rstd, RMS, n, h);
    sub_in(dw, dw0, h);
    loss_fn f = {rms_fwd, &ctx, out, R, (size_t)n * h};
    GRADCHECK(f, inp, n * h, dinp, "rmsnorm dinp");
    GRADCHECK(f, w, h, dw, "rmsnorm dw");
    pool_free(&P);
}

// ---- RoPE ------------------------------------------------------------------

// 3 query heads on 1 KV head, head dim 6; rot 4 rotates dims {0,2} with {1,3}
// and leaves 4, 5 alone (--rotary-percent 2/3).
static const mt_attn_shape ROPE_SH = {.s = 5, .b = 2, .nh = 3, .hd = 6, .nkv = 1, .head0 = 0, .sample0 = 0};
enum { ROT = 4 };

// cos | sin per row from positions pos0 + i, base 10000, as the model fills
// them (written out here from the formula, not from the model's code).
static void angles(real *cs, int s, int rot, int pos0) {
    for (int i = 0; i < s; i++)
        for (int j = 0; j < rot / 2; j++) {
            double a = (pos0 + i) * pow(10000.0, -2.0 * j / rot);
            cs[i * rot + j] = (real)cos(a);
            cs[i * rot + rot / 2 + j] = (real)sin(a);
        }
}

TEST(rope_forward_is_rotate_half) {
    pool P = {0};
    lcg g = {23};
    mt_attn_shape a = ROPE_SH;
    int W = (a.nh + 2 * a.nkv) * a.hd, rows = a.s * a.b;
    real *qkv = buf_rand(&P, &g, (size_t)rows * W, 2), *x = buf_copy(&P, qkv, (size_t)rows * W);
    real *cs = buf_fill(&P, (size_t)a.s * ROT, 0);
    angles(cs, a.s, ROT, 7);
    mt_rope_forward(x, cs, ROT, a);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < W; c++) {
            int head = c / a.hd, d = c % a.hd, pos = 7 + r / a.b;
            double want = qkv[(size_t)r * W + c];
            // Q and K heads rotate their first ROT dims; V is untouched.
            if (head < a.nh + a.nkv && d < ROT) {
                // Hugging Face: q * cos + rotate_half(q) * sin, cos = cat(freqs, freqs).
                int i = d % (ROT / 2);
                double th = pos * pow(10000.0, -2.0 * i / ROT);
                double other = qkv[(size_t)r * W + head * a.hd + (d < ROT / 2 ? d + ROT / 2 : d - ROT / 2)];
                double rh = d < ROT / 2 ? -other : other;
                want = want * cos(th) + rh * sin(th);
            }
            ASSERT_CLOSE(x[(size_t)r * W + c], want, FWD_TOL * 10);
        }
    pool_free(&P);
}

typedef struct { real *out; const real *inp, *cs; size_t n; } rope_ctx;
static void rope_fwd(void *p) {
    rope_ctx *x = p;
    for (size_t i = 0; i < x->n; i++) x->out[i] = x->inp[i];
    mt_rope_forward(x->out, x->cs, ROT, ROPE_SH);
}

TEST(rope_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {24};
    mt_attn_shape a = ROPE_SH;
    size_t n = (size_t)a.s * a.b * (a.nh + 2 * a.nkv) * a.hd;
    real *inp = buf_rand(&P, &g, n, 2), *out = buf_fill(&P, n, 0), *R = buf_rand(&P, &g, n, 1);
    real *cs = buf_fill(&P, (size_t)a.s * ROT, 0), *d = buf_copy(&P, R, n);
    angles(cs, a.s, ROT, 3);
    rope_ctx ctx = {out, inp, cs, n};
    rope_fwd(&ctx);
    mt_rope_backward(d, cs, ROT, a);
    loss_fn f = {rope_fwd, &ctx, out, R, n};
    GRADCHECK(f, inp, n, d, "rope dqkv");
    pool_free(&P);
}

// ---- SwiGLU ----------------------------------------------------------------

TEST(swiglu_forward_matches_definition) {
    pool P = {0};
    lcg g = {25};
    int n = 3, f = 9;
    real *inp = buf_rand(&P, &g, (size_t)n * 2 * f, 3), *out = buf_fill(&P, (size_t)n * f, 0);
    mt_swiglu_forward(out, inp, n, f);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < f; j++) {
            double gt = inp[i * 2 * f + j], up = inp[i * 2 * f + f + j];
            ASSERT_CLOSE(out[i * f + j], gt / (1 + exp(-gt)) * up, FWD_TOL * 10);  // silu(gate) * up
        }
    pool_free(&P);
}

typedef struct { real *out; const real *inp; int n, f; } glu_ctx;
static void glu_fwd(void *p) {
    glu_ctx *x = p;
    mt_swiglu_forward(x->out, x->inp, x->n, x->f);
}

TEST(swiglu_gradcheck) {
    GRADCHECK_BUILD_ONLY();
    pool P = {0};
    lcg g = {26};
    int n = 3, f = 5;
    real *inp = buf_rand(&P, &g, (size_t)n * 2 * f, 2.5), *out = buf_fill(&P, (size_t)n * f, 0);
    real *R = buf_rand(&P, &g, (size_t)n * f, 1), *dinp = buf_fill(&P, (size_t)n * 2 * f, 777);
    glu_ctx ctx = {out, inp, n, f};
    glu_fwd(&ctx);
    mt_swiglu_backward(dinp, inp, R, n, f);
    loss_fn lf = {glu_fwd, &ctx, out, R, (size_t)n * f};
    GRADCHECK(lf, inp, (size_t)n * 2 * f, dinp, "swiglu dinp");
    pool_free(&P);
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
