// attention.cu: causal self-attention core, plain (probabilities kept), the
// CPU's algorithm (src/cpu/attention.c): the products on cuBLAS (batched
// over heads), the softmax and its backward in warp-per-row kernels. Rows of qkv are
// (s, b) ordered, each [Q | K | V] with head hh at columns hh*hd; a
// (batch column, head) "pair" owns an (s, s) block of probs. Attention
// dropout draws the CPU's mask (sample, head, query, key) from rng.h.
#include "attention_common.cuh"

#include <math.h>
#include <string.h>

mt_cuda_attn mt_cuda_attn_of(const mt_dropout_key *k, mt_attn_shape sh) {
    mt_cuda_attn a;
    memset(&a, 0, sizeof a);
    a.s = sh.s; a.b = sh.b; a.nh = sh.nh; a.hd = sh.hd; a.H = sh.nh * sh.hd;
    a.nkv = sh.nkv; a.per = sh.nh / sh.nkv; a.W = (sh.nh + 2 * sh.nkv) * sh.hd;
    a.head0 = sh.head0; a.sample0 = sh.sample0;
    a.scale = (float)(1.0 / sqrt((double)sh.hd));
    a.mask = mt_cuda_mask_of(k);
    a.bf16 = sh.bf16;
    return a;
}

__device__ static inline size_t p_at(const mt_cuda_attn &a, int bc, int hh, int q) {
    return (((size_t)bc * a.nh + hh) * a.s + q) * a.s;
}
// P[q, j] after dropout (Pd = P keep / (1-p)).
__device__ static inline float dropped(const mt_cuda_attn &a, int bc, int hh, int q, int j, float pv) {
    return mt_cuda_apply(pv, attn_keep(a, bc, hh, q, j));
}

// Per batch column, all local heads at once (strided batched GEMMs; a
// head's columns are hd apart). Row-major (s, hd) blocks with row stride
// ld are column-major (hd, s) matrices, so each product below is written
// for cuBLAS's column-major view; P, dS are (s, s) row-major with ld s.
typedef struct {
    const real *base;  // first row of head 0 for this batch column
    int ld;            // row stride
} blk;

// The block of query head hh (which 0), or of its KV head's K (1) or V (2).
static blk q_blk(const mt_cuda_attn &a, const real *qkv, int bc, int which, int hh = 0) {
    size_t col = which == 0 ? (size_t)hh * a.hd
               : ((size_t)a.nh + (which == 2 ? a.nkv : 0) + hh / a.per) * a.hd;
    blk r = {qkv + (size_t)bc * a.W + col, a.b * a.W};
    return r;
}
static size_t pair0(const mt_cuda_attn &a, int bc) { return (size_t)bc * a.nh * a.s * a.s; }

// C = alpha op(A) op(B) + beta C, batched over heads of one batch column.
static void gemm_heads(bool ta, bool tb, int m, int n, int k, float alpha, const real *A, int lda, long long sa,
                       const real *B, int ldb, long long sb, real *C, int ldc, long long sc, int heads, float beta = 0) {
    CUBLAS_CHECK(cublasSgemmStridedBatched(mt_cuda()->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           m, n, k, &alpha, A, lda, sa, B, ldb, sb, &beta, C, ldc, sc, heads));
}

// Multi-head attention batches all nh heads of a batch column (K and V hd
// apart, like Q). Grouped-query batches each KV head's `per` query heads
// with K and V stride 0 (the same block for all of them): calls go per
// group, g0 the group's first query head.
typedef struct { int groups, per; long long kv_stride; } head_batches;
static head_batches batches(const mt_cuda_attn &a) {
    head_batches hb = a.per == 1 ? head_batches{1, a.nh, (long long)a.hd} : head_batches{a.nkv, a.per, 0};
    return hb;
}

// One warp per (pair, query) row of P: causal softmax in place (sum in
// double), zeros past the query.
__global__ static void softmax_kernel(real *probs, mt_cuda_attn a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (warp >= a.b * a.nh * a.s) return;
    int q = warp % a.s;
    real *P = probs + (size_t)warp * a.s;
    float m = -INFINITY;
    for (int j = lane; j <= q; j += 32) m = fmaxf(m, P[j]);
    m = warp_max(m);
    double sum = 0;
    for (int j = lane; j <= q; j += 32) {
        float e = expf(P[j] - m);
        P[j] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    float inv = (float)(1.0 / sum);
    for (int j = lane; j < a.s; j += 32) P[j] = j <= q ? attn_bf16(a.bf16, P[j] * inv) : 0.0f;
}

// With dropout, P·V reads the dropped probabilities: one block per (pair,
// query), one thread per d, the dropped row staged through shared memory
// in chunks of PV_CHUNK keys. (The whole row at once needed s floats of
// dynamic shared memory: past 48 KiB, s > 12288, the launch failed.) Each
// d's sum still runs over j in order, one chunk after the other.
#define PV_CHUNK 2048
__global__ static void pv_dropout_kernel(real *out, const real *probs, const real *qkv, mt_cuda_attn a) {
    __shared__ float row[PV_CHUNK];
    int pr = blockIdx.x / a.s, q = blockIdx.x % a.s, bc = pr / a.nh, hh = pr % a.nh;
    const real *P = probs + p_at(a, bc, hh, q);
    // Every thread runs every loop to the same bounds: the barriers are uniform.
    for (int d0 = 0; d0 < a.hd; d0 += blockDim.x) {
        int d = d0 + (int)threadIdx.x;
        float acc = 0;
        for (int j0 = 0; j0 <= q; j0 += PV_CHUNK) {
            int nj = min(PV_CHUNK, q + 1 - j0);
            for (int j = threadIdx.x; j < nj; j += blockDim.x)
                row[j] = attn_bf16(a.bf16, dropped(a, bc, hh, q, j0 + j, P[j0 + j]));
            __syncthreads();
            if (d < a.hd)
                for (int j = 0; j < nj; j++) acc += row[j] * qkv[attn_v_at(a, bc, hh, j0 + j) + d];
            __syncthreads();
        }
        if (d < a.hd) out[attn_o_at(a, bc, hh, q) + d] = acc;
    }
}

extern "C" void mt_cuda_attention_forward(real *out, real *probs, const real *qkv, const mt_dropout_key *k,
                                          mt_attn_shape sh) {
    mt_cuda_attn a = mt_cuda_attn_of(k, sh);
    unsigned rows = (unsigned)(a.b * a.nh * a.s);
    if (!rows) return;
    long long ss = (long long)a.s * a.s;
    head_batches hb = batches(a);
    for (int bc = 0; bc < a.b; bc++)
        for (int gi = 0; gi < hb.groups; gi++) {
            int h0 = gi * hb.per;
            blk Q = q_blk(a, qkv, bc, 0, h0), K = q_blk(a, qkv, bc, 1, h0);
            // P[q][j] = scale Q[q]·K[j]: column-major Pᵀ (s, s) = Kᵀ · Q
            gemm_heads(true, false, a.s, a.s, a.hd, a.scale, K.base, K.ld, hb.kv_stride, Q.base, Q.ld, a.hd,
                       probs + pair0(a, bc) + (size_t)h0 * ss, a.s, ss, hb.per);
        }
    if (a.bf16) mt_cuda_round_bf16(probs, probs, (size_t)rows * a.s);  // the scores GEMM's bf16 output
    softmax_kernel<<<blocks_for(rows, 8), 256>>>(probs, a);
    LAUNCH_CHECK();
    if (a.mask.on) {
        pv_dropout_kernel<<<rows, 64>>>(out, probs, qkv, a);
        LAUNCH_CHECK();
        return;
    }
    for (int bc = 0; bc < a.b; bc++)
        for (int gi = 0; gi < hb.groups; gi++) {
            int h0 = gi * hb.per;
            blk V = q_blk(a, qkv, bc, 2, h0);
            // out[q][d] = Σ_j P[q][j] V[j][d]: column-major outᵀ (hd, s) = Vᵀ (hd, s) · Pᵀ (s, s)
            gemm_heads(false, false, a.hd, a.s, a.s, 1, V.base, V.ld, hb.kv_stride, probs + pair0(a, bc) + (size_t)h0 * ss,
                       a.s, ss, out + (size_t)bc * a.H + (size_t)h0 * a.hd, a.b * a.H, a.hd, hb.per);
        }
}

// ---- backward ---------------------------------------------------------------------

// Pd = P keep / (1 - p) into dst (the dropout case of dV = Pdᵀ · dO).
__global__ static void drop_probs_kernel(real *dst, const real *probs, mt_cuda_attn a) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)a.b * a.nh * a.s * a.s) return;
    int j = (int)(e % a.s), q = (int)(e / a.s % a.s);
    int pr = (int)(e / ((size_t)a.s * a.s)), bc = pr / a.nh, hh = pr % a.nh;
    dst[e] = j <= q ? attn_bf16(a.bf16, dropped(a, bc, hh, q, j, probs[e])) : 0.0f;
}

// One warp per (pair, query) row, in place over dPd:
// dS = Pd ⊙ dPd - P ⊙ Σ_j (Pd ⊙ dPd), the CPU's rewrite (src/cpu/attention.c).
__global__ static void softmax_backward_kernel(real *dS, const real *probs, mt_cuda_attn a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (warp >= a.b * a.nh * a.s) return;
    int pr = warp / a.s, q = warp % a.s, bc = pr / a.nh, hh = pr % a.nh;
    const real *P = probs + (size_t)warp * a.s;
    real *d = dS + (size_t)warp * a.s;
    double dot = 0;
    for (int j = lane; j <= q; j += 32) dot += (double)attn_bf16(a.bf16, dropped(a, bc, hh, q, j, P[j])) * d[j];
    dot = warp_sum(dot);
    for (int j = lane; j < a.s; j += 32)
        d[j] = j <= q ? attn_bf16(a.bf16, (real)((double)attn_bf16(a.bf16, dropped(a, bc, hh, q, j, P[j])) * d[j] -
                                                 (double)P[j] * dot)) : 0.0f;
}

extern "C" void mt_cuda_attention_backward(real *dqkv, real *scratch, const real *dout, const real *qkv,
                                           const real *probs, const mt_dropout_key *k, mt_attn_shape sh) {
    mt_cuda_attn a = mt_cuda_attn_of(k, sh);
    unsigned rows = (unsigned)(a.b * a.nh * a.s);
    if (!rows) return;
    long long ss = (long long)a.s * a.s;
    int ldo = a.b * a.H;
    // dV = Pdᵀ · dO, with Pd materialised in scratch when dropout is on.
    const real *pd = probs;
    if (a.mask.on) {
        drop_probs_kernel<<<blocks_for((size_t)rows * a.s, 256), 256>>>(scratch, probs, a);
        LAUNCH_CHECK();
        pd = scratch;
    }
    head_batches hb = batches(a);
    // dV (and below dK) of a KV head sums over its query heads: with
    // grouped-query attention one head at a time, the first writing (beta 0)
    // and the rest adding, in head order.
    for (int bc = 0; bc < a.b; bc++)
        for (int h = 0; h < a.nh; h += a.per == 1 ? a.nh : 1) {
            int heads = a.per == 1 ? a.nh : 1;
            blk dV = q_blk(a, dqkv, bc, 2, h);
            // dV[j][d] = Σ_q dO[q][d] Pd[q][j]: column-major dVᵀ (hd, s) = dOᵀ (hd, s) · Pd (s, s)
            gemm_heads(false, true, a.hd, a.s, a.s, 1, dout + (size_t)bc * a.H + (size_t)h * a.hd, ldo, a.hd,
                       pd + pair0(a, bc) + (size_t)h * ss, a.s, ss, (real *)dV.base, dV.ld, a.hd, heads,
                       a.per > 1 && h % a.per ? 1.0f : 0.0f);
        }
    for (int bc = 0; bc < a.b; bc++)
        for (int gi = 0; gi < hb.groups; gi++) {
            int h0 = gi * hb.per;
            blk V = q_blk(a, qkv, bc, 2, h0);
            // dPd[q][j] = dO[q]·V[j]: column-major dPdᵀ (s, s) = V (s, hd) · dOᵀ (hd, s)
            gemm_heads(true, false, a.s, a.s, a.hd, 1, V.base, V.ld, hb.kv_stride, dout + (size_t)bc * a.H + (size_t)h0 * a.hd,
                       ldo, a.hd, scratch + pair0(a, bc) + (size_t)h0 * ss, a.s, ss, hb.per);
        }
    if (a.bf16) mt_cuda_round_bf16(scratch, scratch, (size_t)rows * a.s);  // dPd, a bf16 GEMM output
    softmax_backward_kernel<<<blocks_for(rows, 8), 256>>>(scratch, probs, a);
    LAUNCH_CHECK();
    for (int bc = 0; bc < a.b; bc++)
        for (int gi = 0; gi < hb.groups; gi++) {
            int h0 = gi * hb.per;
            blk K = q_blk(a, qkv, bc, 1, h0), dQ = q_blk(a, dqkv, bc, 0, h0);
            // dQ[q][d] = scale Σ_j dS[q][j] K[j][d]: column-major dQᵀ (hd, s) = Kᵀ (hd, s) · dSᵀ (s, s)
            gemm_heads(false, false, a.hd, a.s, a.s, a.scale, K.base, K.ld, hb.kv_stride, scratch + pair0(a, bc) + (size_t)h0 * ss,
                       a.s, ss, (real *)dQ.base, dQ.ld, a.hd, hb.per);
        }
    for (int bc = 0; bc < a.b; bc++)
        for (int h = 0; h < a.nh; h += a.per == 1 ? a.nh : 1) {
            int heads = a.per == 1 ? a.nh : 1;
            blk Q = q_blk(a, qkv, bc, 0, h), dK = q_blk(a, dqkv, bc, 1, h);
            // dK[j][d] = scale Σ_q dS[q][j] Q[q][d]: column-major dKᵀ (hd, s) = Qᵀ (hd, s) · dS (s, s)
            gemm_heads(false, true, a.hd, a.s, a.s, a.scale, Q.base, Q.ld, a.hd, scratch + pair0(a, bc) + (size_t)h * ss, a.s,
                       ss, (real *)dK.base, dK.ld, a.hd, heads, a.per > 1 && h % a.per ? 1.0f : 0.0f);
        }
}
