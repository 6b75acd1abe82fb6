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

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
