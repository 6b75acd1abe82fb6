// backend_ops.c: every op of a backend, forward and backward, against the CPU
// fp64 build, the way ggml's test-backend-ops checks its backends.
//
//   build/fp64/tests/backend_ops write FILE   the oracle: the CPU fp64 results
//   build/fp32/tests/backend_ops check FILE   the fp32 CPU backend against them
//   build/cuda/tests/backend_ops check FILE   the CUDA backend against them
//
// Inputs are Philox draws rounded to float, so every build starts from the
// same values, and the oracle's results are exact to fp64 round-off. Each
// output's normalised mean-square error NMSE = Σ (x - ref)² / Σ ref² must be
// at most MAX_NMSE: fp32 round-off gives 1e-14 to 1e-11 on these sizes,
// while one dropout mask element drawn differently, a missed row or a wrong
// scale gives 1e-4 or more. Odd sizes (37 rows, 19 positions) catch edge
// handling; shapes include a TP-style vocabulary shard with padding.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "rng.h"

#define MAX_NMSE 1e-9

typedef struct {
    const mt_backend *B;
    FILE *f;
    FILE *dump;  // check's optional copy of the outputs, for bitwise comparisons
    int writing;
    int passed, failed;
    uint64_t draw;  // one stream per input tensor
} ctx;

// ---- inputs and outputs ---------------------------------------------------

// A backend buffer of n normal draws times `scale` plus `shift`, rounded to float.
static real *input(ctx *t, size_t n, double scale, double shift) {
    real *h = mt_malloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) h[i] = (real)(float)(shift + scale * mt_rng_normal(1234, t->draw, i, 0));
    t->draw++;
    real *d = t->B->alloc(n * sizeof(real));
    t->B->to_device(d, h, n * sizeof(real));
    free(h);
    return d;
}

static real *zeros(ctx *t, size_t n) { return t->B->alloc(n * sizeof(real)); }

// n ids in [0, range).
static int *ids(ctx *t, size_t n, int range) {
    int *h = mt_malloc(n * sizeof(int));
    mt_philox_key key = {{0xB0A7u, (uint32_t)t->draw++}};
    for (size_t i = 0; i < n; i++) {
        mt_philox_ctr c = {{(uint32_t)i, 0, 0, 0}};
        h[i] = (int)(mt_philox(key, c).v[0] % (uint32_t)range);
    }
    int *d = t->B->alloc(n * sizeof(int));
    t->B->to_device(d, h, n * sizeof(int));
    free(h);
    return d;
}

// Writes (oracle) or checks (backend) one output.
static void output(ctx *t, const char *name, const real *d, size_t n) {
    real *h = mt_malloc(n * sizeof(real));
    t->B->sync();
    t->B->to_host(h, d, n * sizeof(real));
    double *x = mt_malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = (double)h[i];
    free(h);
    char tag[64] = {0};
    snprintf(tag, sizeof tag, "%s", name);
    uint64_t len = n;
    if (t->writing) {
        if (fwrite(tag, sizeof tag, 1, t->f) != 1 || fwrite(&len, sizeof len, 1, t->f) != 1 ||
            fwrite(x, sizeof(double), n, t->f) != n) {
            printf("not ok %s: cannot write the oracle file\n", name);
            t->failed++;
        } else {
            t->passed++;
        }
        free(x);
        return;
    }
    if (t->dump && (fwrite(tag, sizeof tag, 1, t->dump) != 1 || fwrite(&len, sizeof len, 1, t->dump) != 1 ||
                    fwrite(x, sizeof(double), n, t->dump) != n)) {
        printf("not ok %s: cannot write the dump file\n", name);
        t->failed++;
    }
    char rtag[64];
    uint64_t rlen = 0;
    double *ref = mt_malloc(n * sizeof(double));
    if (fread(rtag, sizeof rtag, 1, t->f) != 1 || fread(&rlen, sizeof rlen, 1, t->f) != 1 ||
        strncmp(rtag, tag, sizeof tag) || rlen != len || fread(ref, sizeof(double), n, t->f) != n) {
        printf("not ok %s: the oracle file does not hold this output next (rebuild and rewrite it)\n", name);
        t->failed++;
        free(ref);
        free(x);
        return;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = x[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
    }
    // An all-zero reference (a gradient that must vanish) is checked absolutely.
    double nmse = den > 0 ? num / den : num;
    if (nmse <= MAX_NMSE && isfinite(nmse)) {
        printf("ok %s (nmse %.2e, %zu values)\n", name, nmse, n);
        t->passed++;
    } else {
        printf("not ok %s: nmse %.3e > %.0e over %zu values\n", name, nmse, MAX_NMSE, n);
        t->failed++;
    }
    free(ref);
    free(x);
}

// output() under the name base + tag (the same case with and without dropout).
static void output_tag(ctx *t, const char *base, const char *tag, const real *d, size_t n) {
    char name[64];
    snprintf(name, sizeof name, "%s%s", base, tag);
    output(t, name, d, n);
}

static void output_scalar(ctx *t, const char *name, double v) {
    // Through a one-element host buffer: outputs are always backend buffers.
    real one = (real)v;
    real *d = t->B->alloc(sizeof(real));
    t->B->to_device(d, &one, sizeof(real));
    output(t, name, d, 1);
    t->B->free(d);
}

#define FREE(t, ...)                                                            \
    do {                                                                        \
        void *ps_[] = {__VA_ARGS__};                                            \
        for (size_t i_ = 0; i_ < sizeof ps_ / sizeof ps_[0]; i_++) (t)->B->free(ps_[i_]); \
    } while (0)

// ---- the ops ------------------------------------------------------------------

static void case_matmul(ctx *t) {
    int n = 37, c = 50, oc = 70;
    real *inp = input(t, (size_t)n * c, 1, 0), *w = input(t, (size_t)oc * c, 0.2, 0), *bias = input(t, oc, 1, 0);
    real *out = zeros(t, (size_t)n * oc);
    t->B->matmul_forward(out, inp, w, bias, n, c, oc);
    output(t, "matmul_forward", out, (size_t)n * oc);
    t->B->matmul_forward(out, inp, w, NULL, n, c, oc);
    output(t, "matmul_forward_nobias", out, (size_t)n * oc);
    real *dout = input(t, (size_t)n * oc, 1, 0), *dinp = zeros(t, (size_t)n * c);
    real *dw = input(t, (size_t)oc * c, 1, 0), *db = input(t, oc, 1, 0);  // accumulated into
    t->B->matmul_backward(dinp, dw, db, dout, inp, w, n, c, oc);
    output(t, "matmul_backward_dinp", dinp, (size_t)n * c);
    output(t, "matmul_backward_dw", dw, (size_t)oc * c);
    output(t, "matmul_backward_dbias", db, oc);
    // Split as the TP backward calls it: input gradient, then dw and dbias.
    t->B->matmul_backward(dinp, NULL, NULL, dout, NULL, w, n, c, oc);
    output(t, "matmul_backward_split_dinp", dinp, (size_t)n * c);
    t->B->matmul_backward(NULL, dw, db, dout, inp, w, n, c, oc);
    output(t, "matmul_backward_split_dw", dw, (size_t)oc * c);  // accumulated twice now
    output(t, "matmul_backward_split_dbias", db, oc);
    FREE(t, inp, w, bias, out, dout, dinp, dw, db);
}

static void case_layernorm(ctx *t) {
    int n = 33, h = 100;
    real *x = input(t, (size_t)n * h, 2, 0.5), *w = input(t, h, 0.3, 1), *b = input(t, h, 0.3, 0);
    real *out = zeros(t, (size_t)n * h), *mean = zeros(t, n), *rstd = zeros(t, n);
    t->B->norm_forward(out, mean, rstd, x, w, b, (mt_norm){1e-5, 0}, n, h);
    output(t, "layernorm_forward", out, (size_t)n * h);
    output(t, "layernorm_forward_mean", mean, n);
    output(t, "layernorm_forward_rstd", rstd, n);
    real *dout = input(t, (size_t)n * h, 1, 0), *dinp = zeros(t, (size_t)n * h);
    real *dw = input(t, h, 1, 0), *db = input(t, h, 1, 0);
    t->B->norm_backward(dinp, dw, db, dout, x, w, mean, rstd, (mt_norm){1e-5, 0}, n, h);
    output(t, "layernorm_backward_dinp", dinp, (size_t)n * h);
    output(t, "layernorm_backward_dw", dw, h);
    output(t, "layernorm_backward_db", db, h);
    FREE(t, x, w, b, out, mean, rstd, dout, dinp, dw, db);
}

// RMSNorm: the norm op's second mode (no mean, no bias).
static void case_rmsnorm(ctx *t) {
    int n = 33, h = 100;
    real *x = input(t, (size_t)n * h, 2, 0.5), *w = input(t, h, 0.3, 1);
    real *out = zeros(t, (size_t)n * h), *rstd = zeros(t, n);
    t->B->norm_forward(out, NULL, rstd, x, w, NULL, (mt_norm){1e-6, 1}, n, h);
    output(t, "rmsnorm_forward", out, (size_t)n * h);
    output(t, "rmsnorm_forward_rstd", rstd, n);
    real *dout = input(t, (size_t)n * h, 1, 0), *dinp = zeros(t, (size_t)n * h), *dw = input(t, h, 1, 0);
    t->B->norm_backward(dinp, dw, NULL, dout, x, w, NULL, rstd, (mt_norm){1e-6, 1}, n, h);
    output(t, "rmsnorm_backward_dinp", dinp, (size_t)n * h);
    output(t, "rmsnorm_backward_dw", dw, h);
    FREE(t, x, w, out, rstd, dout, dinp, dw);
}

static void case_swiglu(ctx *t) {
    int n = 17, f = 41;
    real *x = input(t, (size_t)n * 2 * f, 2, 0), *y = zeros(t, (size_t)n * f);
    t->B->swiglu_forward(y, x, n, f);
    output(t, "swiglu_forward", y, (size_t)n * f);
    real *dy = input(t, (size_t)n * f, 1, 0), *dx = zeros(t, (size_t)n * 2 * f);
    t->B->swiglu_backward(dx, x, dy, n, f);
    output(t, "swiglu_backward", dx, (size_t)n * 2 * f);
    FREE(t, x, y, dy, dx);
}

// RoPE on 3 query heads and 1 KV head of dim 10, 6 of them rotated; the
// angles of positions 5.. as the model would pass them.
static void case_rope(ctx *t) {
    mt_attn_shape sh = {.s = 13, .b = 2, .nh = 3, .hd = 10, .nkv = 1, .head0 = 0, .sample0 = 0};
    int rot = 6;
    size_t n = (size_t)sh.s * sh.b * (sh.nh + 2 * sh.nkv) * sh.hd;
    real *h = mt_malloc(sizeof(real) * (size_t)sh.s * rot);
    for (int i = 0; i < sh.s; i++)
        for (int j = 0; j < rot / 2; j++) {
            double a = (5 + i) * pow(10000.0, -2.0 * j / rot);
            h[i * rot + j] = (real)cos(a);
            h[i * rot + rot / 2 + j] = (real)sin(a);
        }
    real *cs = zeros(t, (size_t)sh.s * rot);
    t->B->to_device(cs, h, sizeof(real) * (size_t)sh.s * rot);
    free(h);
    real *x = input(t, n, 1, 0), *d = input(t, n, 1, 0);
    t->B->rope_forward(x, cs, rot, sh);
    output(t, "rope_forward", x, n);
    t->B->rope_backward(d, cs, rot, sh);
    output(t, "rope_backward", d, n);
    FREE(t, cs, x, d);
}

static void case_gelu(ctx *t) {
    size_t n = 1000;
    real *x = input(t, n, 3, 0), *y = zeros(t, n), *dy = input(t, n, 1, 0), *dx = zeros(t, n);
    t->B->gelu_forward(y, x, n);
    output(t, "gelu_forward", y, n);
    t->B->gelu_backward(dx, x, dy, n);
    output(t, "gelu_backward", dx, n);
    t->B->gelu_backward(dy, x, dy, n);  // in place, as the trainer calls it
    output(t, "gelu_backward_inplace", dy, n);
    FREE(t, x, y, dy, dx);
}

// split > 0: the positions jump after `split` of them (context parallelism's
// two chunks), to 41.
static void case_dropout(ctx *t, double p, int split, const char *tag) {
    int h = 40;
    mt_rows r = {24, 3, 5, 7, split, 41};  // 8 positions from 5, samples 7..9
    mt_dropout_key key = {42, 3, 2, MT_SITE_MLP_OUT, p};
    size_t n = (size_t)r.rows * h;
    real *res = input(t, n, 1, 0), *inp = input(t, n, 1, 0), *bias = input(t, h, 1, 0), *out = zeros(t, n);
    t->B->bias_dropout_add_forward(out, res, inp, bias, &key, r, h);
    output_tag(t, "bias_dropout_add_forward", tag, out, n);
    real *dout = input(t, n, 1, 0), *dinp = zeros(t, n), *dbias = input(t, h, 1, 0);
    t->B->bias_dropout_add_backward(dinp, dbias, dout, &key, r, h);
    output_tag(t, "bias_dropout_add_backward_dinp", tag, dinp, n);
    output_tag(t, "bias_dropout_add_backward_dbias", tag, dbias, h);
    // The embedding's in-place dropout, on another site's mask.
    key.site = MT_SITE_EMBED;
    t->B->dropout_forward(inp, &key, r, h);
    output_tag(t, "dropout_forward", tag, inp, n);
    t->B->dropout_backward(dout, &key, r, h);
    output_tag(t, "dropout_backward", tag, dout, n);
    FREE(t, res, inp, bias, out, dout, dinp, dbias);
}

static void case_embedding(ctx *t) {
    int n = 30, h = 24, v0 = 10, vl = 50, npos = 64;
    int *tok = ids(t, n, 80);  // ids below v0 and past v0 + vl: zero rows
    real *wte = input(t, (size_t)vl * h, 1, 0), *out = zeros(t, (size_t)n * h);
    t->B->embedding_forward(out, tok, wte, v0, vl, n, h);
    output(t, "embedding_forward", out, (size_t)n * h);
    real *dout = input(t, (size_t)n * h, 1, 0), *dwte = input(t, (size_t)vl * h, 1, 0);
    t->B->embedding_backward(dwte, dout, tok, v0, vl, n, h);
    output(t, "embedding_backward", dwte, (size_t)vl * h);
    mt_rows r = {n, 3, 4, 0, 0, 0};
    real *wpe = input(t, (size_t)npos * h, 1, 0), *dwpe = input(t, (size_t)npos * h, 1, 0);
    t->B->position_forward(out, wpe, r, h);
    output(t, "position_forward", out, (size_t)n * h);
    t->B->position_backward(dwpe, dout, r, h);
    output(t, "position_backward", dwpe, (size_t)npos * h);
    r = (mt_rows){n, 3, 4, 0, 6, 50};  // positions 4..9, then 50..53
    t->B->position_forward(out, wpe, r, h);
    output(t, "position_forward_split", out, (size_t)n * h);
    t->B->position_backward(dwpe, dout, r, h);
    output(t, "position_backward_split", dwpe, (size_t)npos * h);
    FREE(t, tok, wte, out, dout, dwte, wpe, dwpe);
}

// nh query heads on nkv KV heads (grouped-query when nkv < nh); rows W wide.
static void case_attention(ctx *t, double p, int nh, int nkv, const char *tag) {
    mt_attn_shape sh = {.s = 19, .b = 2, .nh = nh, .hd = 8, .nkv = nkv, .head0 = 1, .sample0 = 4};
    mt_dropout_key key = {42, 5, 1, MT_SITE_ATTN_PROB, p};
    size_t n = (size_t)sh.s * sh.b, H = (size_t)sh.nh * sh.hd, np = (size_t)sh.b * sh.nh * sh.s * sh.s;
    size_t W = (size_t)(nh + 2 * nkv) * sh.hd;
    real *qkv = input(t, n * W, 1, 0), *out = zeros(t, n * H), *probs = zeros(t, np);
    t->B->attention_forward(out, probs, qkv, &key, sh);
    output_tag(t, "attention_forward", tag, out, n * H);
    output_tag(t, "attention_forward_probs", tag, probs, np);
    real *dout = input(t, n * H, 1, 0), *dqkv = zeros(t, n * W), *scratch = zeros(t, np);
    t->B->attention_backward(dqkv, scratch, dout, qkv, probs, &key, sh);
    output_tag(t, "attention_backward", tag, dqkv, n * W);
    FREE(t, qkv, out, probs, dout, dqkv, scratch);
}

// The blocked kernel; its lse is (b, nh, s), the pair's row log-sum-exp.
// s 37 is longer than one 32-key chunk; s 70 and hd 64 cross the CUDA
// tiles' 64 queries and give each lane two head dims.
static void case_flash(ctx *t, double p, int nh, int nkv, int s, int hd, const char *tag) {
    mt_attn_shape sh = {.s = s, .b = 2, .nh = nh, .hd = hd, .nkv = nkv, .head0 = 1, .sample0 = 4};
    mt_dropout_key key = {42, 5, 1, MT_SITE_ATTN_PROB, p};
    size_t n = (size_t)sh.s * sh.b, H = (size_t)sh.nh * sh.hd, nl = (size_t)sh.b * sh.nh * sh.s;
    size_t W = (size_t)(nh + 2 * nkv) * sh.hd;
    real *qkv = input(t, n * W, 1, 0), *out = zeros(t, n * H), *lse = zeros(t, nl);
    t->B->flash_attention_forward(out, lse, qkv, &key, sh);
    output_tag(t, "flash_attention_forward", tag, out, n * H);
    output_tag(t, "flash_attention_forward_lse", tag, lse, nl);
    real *dout = input(t, n * H, 1, 0), *dqkv = zeros(t, n * W);
    t->B->flash_attention_backward(dqkv, dout, qkv, out, lse, &key, sh);
    output_tag(t, "flash_attention_backward", tag, dqkv, n * W);
    FREE(t, qkv, out, lse, dout, dqkv);
}

// n ints from host values into a backend buffer.
static int *ints_of(ctx *t, const int *h, size_t n) {
    int *d = t->B->alloc(n * sizeof(int));
    t->B->to_device(d, h, n * sizeof(int));
    return d;
}

// Context parallelism's blocks (ops.h MT_OPS_CP): queries at odd global
// positions against a block of keys at even ones (every query sees some),
// then a block at positions 20-38 that the first ten queries cannot see
// (lse -inf there), merged into the first; the backward adds both blocks'
// shares to dq and to each block's dK | dV. Rows wider than Q (ldq), as in
// the layer's qkv buffer.
static void case_block(ctx *t, double p, int nh, int nkv, const char *tag) {
    enum { SQ = 19, SK = 19, B = 2, HD = 8 };
    int ldq = (nh + 2 * nkv) * HD, ldkv = 2 * nkv * HD;
    mt_attn_block ab = {.sq = SQ, .sk = SK, .b = B, .nh = nh, .nkv = nkv, .hd = HD, .ldq = ldq, .head0 = 1, .sample0 = 4};
    mt_dropout_key key = {42, 5, 1, MT_SITE_ATTN_PROB, p};
    int hq[SQ], ha[SK], hb[SK];
    for (int i = 0; i < SQ; i++) hq[i] = 2 * i + 1;
    for (int j = 0; j < SK; j++) ha[j] = 2 * j, hb[j] = 20 + j;
    int *qpos = ints_of(t, hq, SQ), *kpa = ints_of(t, ha, SK), *kpb = ints_of(t, hb, SK);
    size_t no = (size_t)SQ * B * nh * HD, nl = (size_t)B * nh * SQ, nkvv = (size_t)SK * B * ldkv;
    real *q = input(t, (size_t)SQ * B * ldq, 1, 0), *kva = input(t, nkvv, 1, 0), *kvb = input(t, nkvv, 1, 0);
    real *out = zeros(t, no), *lse = zeros(t, nl), *out_b = zeros(t, no), *lse_b = zeros(t, nl);
    t->B->attention_block_forward(out, lse, q, kva, qpos, kpa, &key, ab);
    output_tag(t, "attention_block_forward", tag, out, no);
    output_tag(t, "attention_block_forward_lse", tag, lse, nl);
    t->B->attention_block_forward(out_b, lse_b, q, kvb, qpos, kpb, &key, ab);
    t->B->attention_block_merge(out, lse, out_b, lse_b, ab);
    output_tag(t, "attention_block_merge", tag, out, no);
    output_tag(t, "attention_block_merge_lse", tag, lse, nl);
    real *dout = input(t, no, 1, 0), *dq = zeros(t, (size_t)SQ * B * ldq), *dkva = zeros(t, nkvv), *dkvb = zeros(t, nkvv);
    t->B->zero(dq, (size_t)SQ * B * ldq * sizeof(real));
    t->B->zero(dkva, nkvv * sizeof(real));
    t->B->zero(dkvb, nkvv * sizeof(real));
    t->B->attention_block_backward(dq, dkva, dout, q, kva, out, lse, qpos, kpa, &key, ab);
    t->B->attention_block_backward(dq, dkvb, dout, q, kvb, out, lse, qpos, kpb, &key, ab);
    output_tag(t, "attention_block_backward_dq", tag, dq, (size_t)SQ * B * ldq);
    output_tag(t, "attention_block_backward_dkv", tag, dkva, nkvv);
    output_tag(t, "attention_block_backward_dkv_b", tag, dkvb, nkvv);
    FREE(t, q, kva, kvb, out, lse, out_b, lse_b, dout, dq, dkva, dkvb);
    FREE(t, qpos, kpa, kpb);
}

static void case_xent(ctx *t) {
    // A TP shard [40, 85) of a vocabulary of 70: 30 padding columns.
    int n = 21, vl = 45, v0 = 40, V = 70;
    real *logits = input(t, (size_t)n * vl, 3, 0);
    int *tgt = ids(t, n, V);
    real *rmax = zeros(t, n), *sumexp = zeros(t, n), *tlogit = zeros(t, n), *loss = zeros(t, n);
    real *dl = zeros(t, (size_t)n * vl);
    t->B->xent_local_max(rmax, logits, v0, vl, V, n);
    output(t, "xent_local_max", rmax, n);
    t->B->xent_local_sums(sumexp, tlogit, logits, rmax, tgt, v0, vl, V, n);
    output(t, "xent_local_sums_sumexp", sumexp, n);
    output(t, "xent_local_sums_tlogit", tlogit, n);
    t->B->xent_loss(loss, rmax, sumexp, tlogit, n);
    output(t, "xent_loss", loss, n);
    t->B->xent_backward(dl, logits, rmax, sumexp, tgt, (real)0.3, v0, vl, V, n);
    output(t, "xent_backward", dl, (size_t)n * vl);
    t->B->xent_backward(logits, logits, rmax, sumexp, tgt, (real)0.3, v0, vl, V, n);
    output(t, "xent_backward_inplace", logits, (size_t)n * vl);
    FREE(t, logits, tgt, rmax, sumexp, tlogit, loss, dl);
}

static void case_optimizer(ctx *t) {
    size_t n = 40000;  // more than one of the norm's 16384-element chunks
    real *p = input(t, n, 1, 0), *g = input(t, n, 0.1, 0), *m = input(t, n, 0.01, 0);
    real *v = input(t, n, 1e-4, 2e-3);  // second moments: positive (20 standard deviations)
    double parts[3], ss = 0;  // 40000 elements: chunks of 16384, 16384 and 7232
    t->B->sumsq_parts(g, n, parts);
    for (int c = 0; c < 3; c++) ss += parts[c];
    output_scalar(t, "sumsq", ss);
    output_scalar(t, "sumsq_part_last", parts[2]);
    real *gs = input(t, n, 0.1, 0);
    t->B->scale_sumsq_parts(gs, n, (real)0.37, parts);
    output(t, "scale_sumsq_parts_scaled", gs, n);
    output_scalar(t, "scale_sumsq_parts_part0", parts[0]);
    output_scalar(t, "scale_sumsq_parts_part_last", parts[2]);
    t->B->scale(g, n, (real)0.37);
    output(t, "scale", g, n);
    t->B->add(p, g, n);
    output(t, "add", p, n);
    t->B->adamw_update(p, g, (real)0.75, m, v, n, 3, (real)1e-3, (real)0.9, (real)0.95, (real)1e-8, (real)0.1);
    output(t, "adamw_param", p, n);
    output(t, "adamw_m", m, n);
    output(t, "adamw_v", v, n);
    output(t, "adamw_grad_zeroed", g, n);  // consumed: all zero (an absolute check)
    t->B->copy(m, p, n);
    output(t, "copy", m, n);
    t->B->zero(v, n * sizeof(real));
    output(t, "zero", v, n);
    FREE(t, p, g, m, v, gs);
}

// The fused sweeps (ops.h MT_OPS_FUSED), rounding off: bf16 rounding of
// fp64 and fp32 values may land on different sides of a tie, which no NMSE
// bound separates from a bug; tests/test_ops_fused.c checks the rounding
// path bitwise against the CPU's chains.
static void case_fused(ctx *t) {
    int n = 37, f = 150;  // ragged column blocks
    size_t nf = (size_t)n * f;
    real *x = input(t, nf, 3, 0), *y = zeros(t, nf), *dy = input(t, nf, 1, 0), *db = input(t, f, 1, 0);
    t->B->gelu_fused_forward(y, x, nf, 0);
    output(t, "gelu_fused_forward", y, nf);
    t->B->gelu_fused_backward(dy, db, x, dy, n, f, 0);
    output(t, "gelu_fused_backward_dinp", dy, nf);
    output(t, "gelu_fused_backward_dbias", db, f);
    int h = 40;
    mt_rows r = {24, 3, 5, 7, 0, 0};
    mt_dropout_key key = {42, 3, 2, MT_SITE_ATTN_OUT, 0.25};
    size_t nh = (size_t)r.rows * h;
    real *res = input(t, nh, 1, 0), *inp = input(t, nh, 1, 0), *bias = input(t, h, 1, 0), *out = zeros(t, nh);
    t->B->bias_dropout_add_fused_forward(out, res, inp, bias, &key, r, h, 0);
    output(t, "bias_dropout_add_fused_forward", out, nh);
    real *dinp = zeros(t, nh), *dbias = input(t, h, 1, 0);
    t->B->bias_dropout_add_fused_backward(dinp, dbias, res, &key, r, h, 0);
    output(t, "bias_dropout_add_fused_backward_dinp", dinp, nh);
    output(t, "bias_dropout_add_fused_backward_dbias", dbias, h);
    int nx = 21, vl = 80, V = 70;  // ten padding columns
    real *logits = input(t, (size_t)nx * vl, 3, 0), *st = zeros(t, 3 * (size_t)nx);
    int *tgt = ids(t, nx, V);
    t->B->xent_fused(st, st + nx, st + 2 * nx, logits, tgt, (real)0.3, V, vl, nx, 0);
    output(t, "xent_fused_stats", st, 3 * (size_t)nx);
    output(t, "xent_fused_grad", logits, (size_t)nx * vl);
    size_t np = 40000;
    real *p = input(t, np, 1, 0), *g = input(t, np, 0.1, 0), *m = input(t, np, 0.01, 0);
    real *v = input(t, np, 1e-4, 2e-3);
    t->B->adamw_fused(p, NULL, g, (real)0.75, m, v, np, 3, (real)1e-3, (real)0.9, (real)0.95, (real)1e-8, (real)0.1);
    output(t, "adamw_fused_param", p, np);
    output(t, "adamw_fused_v", v, np);
    output(t, "adamw_fused_grad_zeroed", g, np);
    FREE(t, x, y, dy, db, res, inp, bias, out, dinp, dbias, logits, st, tgt, p, g, m, v);
}

int main(int argc, char **argv) {
    // check ORACLE DUMP also writes this build's outputs to DUMP (same format),
    // so that two runs can be compared bit for bit.
    if (argc < 3 || argc > 4 || (strcmp(argv[1], "write") && strcmp(argv[1], "check")) ||
        (argc == 4 && strcmp(argv[1], "check"))) {
        fprintf(stderr, "usage: backend_ops write ORACLE | backend_ops check ORACLE [DUMP]\n");
        return 2;
    }
    ctx t = {0};
    t.writing = !strcmp(argv[1], "write");
#ifdef MT_FP64
    if (!t.writing) {
        fprintf(stderr, "backend_ops: the fp64 build is the oracle: use `write`\n");
        return 2;
    }
#else
    if (t.writing) {
        fprintf(stderr, "backend_ops: only the fp64 build writes the oracle\n");
        return 2;
    }
#endif
#ifdef MT_CUDA
    char msg[256];
    if (mt_cuda_init(0, 0, 0, msg, sizeof msg)) {
        fprintf(stderr, "backend_ops: %s\n", msg);
        return 2;
    }
    mt_cuda_describe(msg, sizeof msg);
    printf("# backend cuda, %s\n", msg);
#endif
    t.B = mt_backend_default();
    t.f = fopen(argv[2], t.writing ? "wb" : "rb");
    if (!t.f) {
        fprintf(stderr, "backend_ops: cannot open %s\n", argv[2]);
        return 2;
    }
    if (argc == 4 && !(t.dump = fopen(argv[3], "wb"))) {
        fprintf(stderr, "backend_ops: cannot open %s\n", argv[3]);
        return 2;
    }
    case_matmul(&t);
    case_layernorm(&t);
    case_rmsnorm(&t);
    case_gelu(&t);
    case_swiglu(&t);
    case_rope(&t);
    case_dropout(&t, 0.25, 0, "");
    case_dropout(&t, 0, 0, "_p0");
    case_dropout(&t, 0.25, 3, "_split");
    case_embedding(&t);
    case_attention(&t, 0.2, 3, 3, "");
    case_attention(&t, 0, 3, 3, "_p0");
    case_attention(&t, 0.2, 4, 2, "_gqa");
    case_flash(&t, 0.2, 3, 3, 37, 8, "");
    case_flash(&t, 0, 3, 3, 37, 8, "_p0");
    case_flash(&t, 0.2, 4, 2, 37, 8, "_gqa");
    case_flash(&t, 0.2, 4, 2, 70, 64, "_s70_hd64");
    case_block(&t, 0.2, 3, 3, "");
    case_block(&t, 0, 3, 3, "_p0");
    case_block(&t, 0.2, 4, 2, "_gqa");
    case_xent(&t);
    case_optimizer(&t);
    case_fused(&t);
    fclose(t.f);
    if (t.dump && fclose(t.dump)) {
        printf("not ok dump: cannot close %s\n", argv[3]);
        t.failed++;
    }
    printf("%d passed, %d failed (backend %s, %s, max nmse %.0e)\n", t.passed, t.failed, t.B->name,
           MT_PRECISION_NAME, MAX_NMSE);
    return t.failed ? 1 : 0;
}
