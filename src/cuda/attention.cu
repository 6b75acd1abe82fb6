// attention.cu: causal self-attention core, plain (probabilities kept), the
// CPU's algorithm (src/cpu/attention.c) in small kernels. Rows of qkv are
// (s, b) ordered, each [Q | K | V] with head hh at columns hh*hd; a
// (batch column, head) "pair" owns an (s, s) block of probs. Attention
// dropout draws the CPU's mask (sample, head, query, key) from rng.h.
#include "cuda_common.cuh"

#include <math.h>
#include <string.h>

extern "C" {
#include "rng.h"
}

typedef struct {
    int s, b, nh, hd, H;   // H = nh * hd
    uint32_t head0, sample0;
    float scale;           // 1/√hd
    mt_philox_key key;
    uint32_t iter;
    double p;
    int drop;
    float keep_scale;      // 1/(1-p)
} attn_args;

static attn_args args_of(const mt_dropout_key *k, mt_attn_shape sh) {
    attn_args a;
    memset(&a, 0, sizeof a);
    a.s = sh.s; a.b = sh.b; a.nh = sh.nh; a.hd = sh.hd; a.H = sh.nh * sh.hd;
    a.head0 = sh.head0; a.sample0 = sh.sample0;
    a.scale = (float)(1.0 / sqrt((double)sh.hd));
    a.drop = k && k->p > 0;
    if (a.drop) {
        a.key = mt_rng_dropout_key(k);
        a.iter = k->iter;
        a.p = k->p;
        a.keep_scale = (float)(1.0 / (1.0 - k->p));
    }
    return a;
}

// Offsets of pair (bc, hh): its Q row `pos` in qkv, its output row in out.
__device__ static inline size_t q_at(const attn_args &a, int bc, int hh, int pos) {
    return ((size_t)pos * a.b + bc) * 3 * a.H + (size_t)hh * a.hd;
}
__device__ static inline size_t o_at(const attn_args &a, int bc, int hh, int pos) {
    return ((size_t)pos * a.b + bc) * a.H + (size_t)hh * a.hd;
}
__device__ static inline size_t p_at(const attn_args &a, int bc, int hh, int q) {
    return (((size_t)bc * a.nh + hh) * a.s + q) * a.s;
}
// P[q, j] after dropout (Pd = P keep / (1-p)).
__device__ static inline float dropped(const attn_args &a, int bc, int hh, int q, int j, float pv) {
    if (!a.drop) return pv;
    int keep = mt_keep_at(a.key, a.iter, a.sample0 + (uint32_t)bc, (a.head0 + (uint32_t)hh) << 16 | (uint32_t)q,
                          (uint32_t)j, a.p);
    return keep ? pv * a.keep_scale : 0.0f;
}

// One warp per (pair, query): scores, causal softmax (sum in double), zeros past q.
__global__ static void softmax_kernel(real *probs, const real *qkv, attn_args a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    int npairs = a.b * a.nh;
    if (warp >= npairs * a.s) return;
    int pr = warp / a.s, q = warp % a.s, bc = pr / a.nh, hh = pr % a.nh;
    const real *Q = qkv + q_at(a, bc, hh, q);
    real *P = probs + p_at(a, bc, hh, q);
    float m = -INFINITY;
    for (int j = lane; j <= q; j += 32) {
        const real *K = qkv + q_at(a, bc, hh, j) + a.H;
        float d = 0;
        for (int t = 0; t < a.hd; t++) d += Q[t] * K[t];
        d *= a.scale;
        P[j] = d;
        m = fmaxf(m, d);
    }
    m = warp_max(m);
    double sum = 0;
    for (int j = lane; j <= q; j += 32) {
        float e = expf(P[j] - m);
        P[j] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    float inv = (float)(1.0 / sum);
    __syncwarp();
    for (int j = lane; j < a.s; j += 32) P[j] = j <= q ? P[j] * inv : 0.0f;
}

// One block per (pair, query): the dropped row in shared memory, then
// out[q, d] = Σ_j Pd[q, j] V[j, d], one thread per d.
__global__ static void pv_kernel(real *out, const real *probs, const real *qkv, attn_args a) {
    extern __shared__ float row[];
    int pr = blockIdx.x / a.s, q = blockIdx.x % a.s, bc = pr / a.nh, hh = pr % a.nh;
    const real *P = probs + p_at(a, bc, hh, q);
    for (int j = threadIdx.x; j <= q; j += blockDim.x) row[j] = dropped(a, bc, hh, q, j, P[j]);
    __syncthreads();
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float acc = 0;
        for (int j = 0; j <= q; j++) acc += row[j] * qkv[q_at(a, bc, hh, j) + 2 * a.H + d];
        out[o_at(a, bc, hh, q) + d] = acc;
    }
}

extern "C" void mt_cuda_attention_forward(real *out, real *probs, const real *qkv, const mt_dropout_key *k,
                                          mt_attn_shape sh) {
    attn_args a = args_of(k, sh);
    unsigned rows = (unsigned)(a.b * a.nh * a.s);
    if (!rows) return;
    softmax_kernel<<<blocks_for(rows, 8), 256>>>(probs, qkv, a);
    LAUNCH_CHECK();
    pv_kernel<<<rows, 64, (size_t)a.s * sizeof(float)>>>(out, probs, qkv, a);
    LAUNCH_CHECK();
}

// ---- backward ---------------------------------------------------------------------

// One block per (pair, query): dPd[q, j] = dO[q]·V[j], then the softmax
// backward dS = Pd ⊙ dPd - P ⊙ Σ_j (Pd ⊙ dPd), written to scratch.
__global__ static void dscores_kernel(real *dS, const real *dout, const real *qkv, const real *probs, attn_args a) {
    extern __shared__ float sh_mem[];
    float *pd = sh_mem, *dp = sh_mem + a.s;
    __shared__ double part[32];
    int pr = blockIdx.x / a.s, q = blockIdx.x % a.s, bc = pr / a.nh, hh = pr % a.nh;
    const real *P = probs + p_at(a, bc, hh, q), *dO = dout + o_at(a, bc, hh, q);
    double dot = 0;
    for (int j = threadIdx.x; j <= q; j += blockDim.x) {
        const real *V = qkv + q_at(a, bc, hh, j) + 2 * a.H;
        float d = 0;
        for (int t = 0; t < a.hd; t++) d += dO[t] * V[t];
        pd[j] = dropped(a, bc, hh, q, j, P[j]);
        dp[j] = d;
        dot += (double)pd[j] * d;
    }
    dot = warp_sum(dot);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = dot;
    __syncthreads();
    double tot = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) tot += part[w];
    real *row = dS + p_at(a, bc, hh, q);
    for (int j = threadIdx.x; j < a.s; j += blockDim.x)
        row[j] = j <= q ? (real)((double)pd[j] * dp[j] - (double)P[j] * tot) : 0.0f;
}

// One block per (pair, key j): the dropped column Pd[q ≥ j, j] in shared
// memory; then dV[j, d] = Σ_q Pd[q, j] dO[q, d] and
// dK[j, d] = scale Σ_q dS[q, j] Q[q, d], one thread per d.
__global__ static void dkv_kernel(real *dqkv, const real *dout, const real *qkv, const real *probs, const real *dS,
                                  attn_args a) {
    extern __shared__ float col[];
    int pr = blockIdx.x / a.s, j = blockIdx.x % a.s, bc = pr / a.nh, hh = pr % a.nh;
    for (int q = j + threadIdx.x; q < a.s; q += blockDim.x) col[q] = dropped(a, bc, hh, q, j, probs[p_at(a, bc, hh, q) + j]);
    __syncthreads();
    real *dK = dqkv + q_at(a, bc, hh, j) + a.H, *dV = dK + a.H;
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float v = 0, k = 0;
        for (int q = j; q < a.s; q++) {
            v += col[q] * dout[o_at(a, bc, hh, q) + d];
            k += dS[p_at(a, bc, hh, q) + j] * qkv[q_at(a, bc, hh, q) + d];
        }
        dV[d] = v;
        dK[d] = k * a.scale;
    }
}

// dQ[q, d] = scale Σ_{j ≤ q} dS[q, j] K[j, d], one thread per (pair, q, d).
__global__ static void dq_kernel(real *dqkv, const real *qkv, const real *dS, attn_args a) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)a.b * a.nh * a.s * a.hd) return;
    int d = (int)(e % a.hd), q = (int)(e / a.hd % a.s);
    int pr = (int)(e / ((size_t)a.hd * a.s)), bc = pr / a.nh, hh = pr % a.nh;
    const real *row = dS + p_at(a, bc, hh, q);
    float acc = 0;
    for (int j = 0; j <= q; j++) acc += row[j] * qkv[q_at(a, bc, hh, j) + a.H + d];
    dqkv[q_at(a, bc, hh, q) + d] = acc * a.scale;
}

extern "C" void mt_cuda_attention_backward(real *dqkv, real *scratch, const real *dout, const real *qkv,
                                           const real *probs, const mt_dropout_key *k, mt_attn_shape sh) {
    attn_args a = args_of(k, sh);
    unsigned rows = (unsigned)(a.b * a.nh * a.s);
    if (!rows) return;
    dscores_kernel<<<rows, 128, 2 * (size_t)a.s * sizeof(float)>>>(scratch, dout, qkv, probs, a);
    LAUNCH_CHECK();
    dkv_kernel<<<rows, 64, (size_t)a.s * sizeof(float)>>>(dqkv, dout, qkv, probs, scratch, a);
    LAUNCH_CHECK();
    size_t nq = (size_t)rows * a.hd;
    dq_kernel<<<blocks_for(nq, 256), 256>>>(dqkv, qkv, scratch, a);
    LAUNCH_CHECK();
}
