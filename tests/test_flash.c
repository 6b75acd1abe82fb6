// test_flash.c: the blocked (flash) attention against the plain kernel, the
// reference that test_ops.c checks by central differences. Sequence lengths
// that are and are not multiples of the 64-row block, with and without
// attention dropout (the same masks must be drawn). Bounds: fp64 1e-12
// relative to the largest |value| (round-off of reordered sums), fp32 2e-5.
#include "harness.h"
#include "ops.h"

#ifdef MT_FP64
#define TOL 1e-12
#else
#define TOL 2e-5
#endif

static double lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

static double max_rel(const real *a, const real *b, size_t n) {
    double big = 1e-300, worst = 0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    return worst / big;
}

// nh query heads over nkv KV heads (grouped-query when nkv < nh).
static int compare(int s, double p, int nh, int nkv, double *fw, double *bw) {
    mt_attn_shape sh = {.s = s, .b = 2, .nh = nh, .hd = 8, .nkv = nkv, .head0 = 1, .sample0 = 5};
    size_t nq = (size_t)s * sh.b * (sh.nh + 2 * sh.nkv) * sh.hd, no = (size_t)s * sh.b * sh.nh * sh.hd;
    size_t np = (size_t)sh.b * sh.nh * s * s, nl = (size_t)sh.b * sh.nh * s;
    real *qkv = malloc(nq * sizeof(real)), *dout = malloc(no * sizeof(real));
    real *o1 = malloc(no * sizeof(real)), *o2 = malloc(no * sizeof(real)), *probs = malloc(np * sizeof(real));
    real *scr = malloc(np * sizeof(real)), *lse = malloc(nl * sizeof(real));
    real *d1 = malloc(nq * sizeof(real)), *d2 = malloc(nq * sizeof(real));
    uint64_t seed = 42;
    for (size_t i = 0; i < nq; i++) qkv[i] = (real)(2 * lcg(&seed));
    for (size_t i = 0; i < no; i++) dout[i] = (real)lcg(&seed);
    mt_dropout_key k = {7, 3, 1, MT_SITE_ATTN_PROB, p};
    mt_attention_forward(o1, probs, qkv, &k, sh);
    mt_flash_attention_forward(o2, lse, qkv, &k, sh);
    mt_attention_backward(d1, scr, dout, qkv, probs, &k, sh);
    for (size_t i = 0; i < nq; i++) d2[i] = 777;  // must be overwritten
    mt_flash_attention_backward(d2, dout, qkv, o2, lse, &k, sh);
    *fw = max_rel(o2, o1, no);
    *bw = max_rel(d2, d1, nq);
    free(qkv); free(dout); free(o1); free(o2); free(probs); free(scr); free(lse); free(d1); free(d2);
    return 0;
}

#define CASE(name, s, p, nh, nkv)                                                   \
    TEST(name) {                                                                    \
        double fw, bw;                                                              \
        compare(s, p, nh, nkv, &fw, &bw);                                           \
        printf("  s %d p %.1f heads %d/%d: forward %.2e, backward %.2e\n", s, p, nh, nkv, fw, bw); \
        ASSERT(fw <= TOL && bw <= TOL, "forward %.3g backward %.3g > %.1g", fw, bw, TOL); \
    }
CASE(flash_equals_plain_s64, 64, 0.0, 2, 2)
CASE(flash_equals_plain_s150, 150, 0.0, 2, 2)
CASE(flash_equals_plain_s150_dropout, 150, 0.2, 2, 2)
CASE(flash_equals_plain_s200_dropout, 200, 0.1, 2, 2)
// Grouped-query attention: 4 query heads on 2 KV heads, and on 1.
CASE(flash_equals_plain_gqa_s150_dropout, 150, 0.2, 4, 2)
CASE(flash_equals_plain_mqa_s100, 100, 0.0, 4, 1)

// Context parallelism's blocks: C CP ranks, rank r holding chunks r and
// 2C-1-r of the sequence. For each rank, its queries attend every rank's
// block (block_forward, merged by log-sum-exp) and the gradients come back
// per block (block_backward); the result must equal the plain kernel over
// the whole sequence at the rows and columns of those positions.
static void cp_blocks(int C, double p, int nh, int nkv, double *fw, double *bw) {
    int s = 4 * C * 3, c = s / (2 * C), sl = s / C, hd = 8, b = 2;
    mt_attn_shape sh = {.s = s, .b = b, .nh = nh, .hd = hd, .nkv = nkv, .head0 = 1, .sample0 = 5};
    int W = (nh + 2 * nkv) * hd, H = nh * hd, KV = 2 * nkv * hd;
    size_t nq = (size_t)s * b * W, no = (size_t)s * b * H, np = (size_t)b * nh * s * s;
    real *qkv = malloc(nq * sizeof(real)), *dout = malloc(no * sizeof(real)), *o1 = malloc(no * sizeof(real));
    real *probs = malloc(np * sizeof(real)), *scr = malloc(np * sizeof(real)), *d1 = malloc(nq * sizeof(real));
    uint64_t seed = 7;
    for (size_t i = 0; i < nq; i++) qkv[i] = (real)(2 * lcg(&seed));
    for (size_t i = 0; i < no; i++) dout[i] = (real)lcg(&seed);
    mt_dropout_key k = {7, 3, 1, MT_SITE_ATTN_PROB, p};
    mt_attention_forward(o1, probs, qkv, &k, sh);
    mt_attention_backward(d1, scr, dout, qkv, probs, &k, sh);
    // Each rank's positions, and its rows cut out of the whole sequence.
    int *pos = malloc(sizeof(int) * (size_t)C * sl);
    for (int r = 0; r < C; r++)
        for (int i = 0; i < sl; i++) pos[r * sl + i] = i < c ? r * c + i : (2 * C - 1 - r) * c + i - c;
    size_t rq = (size_t)sl * b * W, ro = (size_t)sl * b * H, rk = (size_t)sl * b * KV, rl = (size_t)b * nh * sl;
    real *q = malloc(C * rq * sizeof(real)), *kv = malloc(C * rk * sizeof(real)), *dO = malloc(ro * sizeof(real));
    for (int r = 0; r < C; r++)
        for (int i = 0; i < sl * b; i++) {
            size_t row = (size_t)pos[r * sl + i / b] * b + i % b;
            memcpy(q + r * rq + (size_t)i * W, qkv + row * W, sizeof(real) * W);
            memcpy(kv + r * rk + (size_t)i * KV, qkv + row * W + H, sizeof(real) * KV);
        }
    real *out = malloc(ro * sizeof(real)), *ob = malloc(ro * sizeof(real)), *lse = malloc(rl * sizeof(real));
    real *lb = malloc(rl * sizeof(real)), *dq = calloc(rq, sizeof(real)), *dkv = calloc(C * rk, sizeof(real));
    double fworst = 0, bworst = 0, fbig = 1e-300, bbig = 1e-300;
    for (size_t i = 0; i < no; i++) fbig = fmax(fbig, fabs((double)o1[i]));
    for (size_t i = 0; i < nq; i++) bbig = fmax(bbig, fabs((double)d1[i]));
    memset(dkv, 0, C * rk * sizeof(real));
    for (int r = 0; r < C; r++) {
        mt_attn_block ab = {.sq = sl, .sk = sl, .b = b, .nh = nh, .nkv = nkv, .hd = hd, .ldq = W, .head0 = 1, .sample0 = 5};
        for (int src = 0; src < C; src++) {
            if (src == 0) mt_attention_block_forward(out, lse, q + r * rq, kv + src * rk, pos + r * sl, pos + src * sl, &k, ab);
            else {
                mt_attention_block_forward(ob, lb, q + r * rq, kv + src * rk, pos + r * sl, pos + src * sl, &k, ab);
                mt_attention_block_merge(out, lse, ob, lb, ab);
            }
        }
        for (int i = 0; i < sl * b; i++) {
            size_t row = (size_t)pos[r * sl + i / b] * b + i % b;
            for (int j = 0; j < H; j++) fworst = fmax(fworst, fabs((double)out[(size_t)i * H + j] - o1[row * H + j]));
            memcpy(dO + (size_t)i * H, dout + row * H, sizeof(real) * H);
        }
        memset(dq, 0, rq * sizeof(real));
        for (int src = 0; src < C; src++)
            mt_attention_block_backward(dq, dkv + src * rk, dO, q + r * rq, kv + src * rk, out, lse, pos + r * sl,
                                        pos + src * sl, &k, ab);
        for (int i = 0; i < sl * b; i++) {
            size_t row = (size_t)pos[r * sl + i / b] * b + i % b;
            for (int j = 0; j < H; j++) bworst = fmax(bworst, fabs((double)dq[(size_t)i * W + j] - d1[row * W + j]));
        }
    }
    // Every block's dK | dV, summed over all the ranks' queries.
    for (int src = 0; src < C; src++)
        for (int i = 0; i < sl * b; i++) {
            size_t row = (size_t)pos[src * sl + i / b] * b + i % b;
            for (int j = 0; j < KV; j++)
                bworst = fmax(bworst, fabs((double)dkv[src * rk + (size_t)i * KV + j] - d1[row * W + H + j]));
        }
    *fw = fworst / fbig;
    *bw = bworst / bbig;
    free(qkv); free(dout); free(o1); free(probs); free(scr); free(d1); free(pos); free(q); free(kv); free(dO);
    free(out); free(ob); free(lse); free(lb); free(dq); free(dkv);
}

#define CP_CASE(name, C, p, nh, nkv)                                                \
    TEST(name) {                                                                    \
        double fw, bw;                                                              \
        cp_blocks(C, p, nh, nkv, &fw, &bw);                                         \
        printf("  CP %d p %.1f heads %d/%d: forward %.2e, backward %.2e\n", C, p, nh, nkv, fw, bw); \
        ASSERT(fw <= TOL && bw <= TOL, "forward %.3g backward %.3g > %.1g", fw, bw, TOL); \
    }
CP_CASE(cp2_blocks_merge_to_plain, 2, 0.0, 2, 2)
CP_CASE(cp3_blocks_merge_to_plain_dropout, 3, 0.2, 2, 2)
CP_CASE(cp4_blocks_merge_to_plain_gqa_dropout, 4, 0.1, 4, 2)

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
