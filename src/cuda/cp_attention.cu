// cp_attention.cu: context parallelism's attention blocks on the GPU, the
// CPU's semantics (src/cpu/flash_attention.c: queries against one block of
// keys by global positions, partial results merged by log-sum-exp), one warp
// per row as the blocked kernel (flash_attention.cu). Compile-checked; run on
// a GPU by the backend op test (tests/backend_ops.c) when one is present.
#include "attention_common.cuh"

#define HD_PER_LANE 8  // head dims up to 256

typedef struct {
    mt_attn_block ab;
    float scale;
    mt_cuda_mask mask;
    int ldkv;
} cp_args;

static cp_args cp_args_of(const mt_dropout_key *k, mt_attn_block ab) {
    if (ab.hd > 32 * HD_PER_LANE) mt_fail_local(MT_EXIT_USAGE, "context parallelism on CUDA: head dim %d > %d", ab.hd, 32 * HD_PER_LANE);
    cp_args a;
    a.ab = ab;
    a.scale = (float)(1.0 / sqrt((double)ab.hd));
    a.mask = mt_cuda_mask_of(k);
    a.ldkv = 2 * ab.nkv * ab.hd;
    return a;
}

__device__ static inline float dotf(const real *x, const real *y, int n) {
    float d = 0;
    for (int t = 0; t < n; t++) d += x[t] * y[t];
    return d;
}
__device__ static inline const real *q_row(const cp_args &a, const real *q, int bc, int h, int i) {
    return q + ((size_t)i * a.ab.b + bc) * a.ab.ldq + (size_t)h * a.ab.hd;
}
__device__ static inline const real *k_row(const cp_args &a, const real *kv, int bc, int h, int j) {
    return kv + ((size_t)j * a.ab.b + bc) * a.ldkv + (size_t)(h / (a.ab.nh / a.ab.nkv)) * a.ab.hd;
}
__device__ static inline size_t o_at(const cp_args &a, int bc, int h, int i) {
    return ((size_t)i * a.ab.b + bc) * a.ab.nh * a.ab.hd + (size_t)h * a.ab.hd;
}
__device__ static inline int visible(const cp_args &a, int qp, int kp) {
    return kp <= qp || (a.ab.no_causal && kp / a.ab.chunk != qp / a.ab.chunk);
}
__device__ static inline float keep_of(const cp_args &a, int bc, int h, int qp, int kp) {
    return mt_cuda_keep(a.mask, a.ab.sample0 + (uint32_t)bc, (a.ab.head0 + (uint32_t)h) << 16 | (uint32_t)qp, (uint32_t)kp);
}

// One warp per (pair, query): online softmax over the visible keys.
__global__ static void block_forward_kernel(real *out, real *lse, const real *q, const real *kv, const int *qpos,
                                            const int *kpos, cp_args a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    const mt_attn_block &ab = a.ab;
    if (warp >= ab.b * ab.nh * ab.sq) return;
    int pr = warp / ab.sq, i = warp % ab.sq, bc = pr / ab.nh, h = pr % ab.nh, qp = qpos[i];
    const real *Q = q_row(a, q, bc, h, i);
    float o[HD_PER_LANE] = {0}, m = -INFINITY;
    double l = 0;
    for (int j0 = 0; j0 < ab.sk; j0 += 32) {
        int j = j0 + lane, nj = min(32, ab.sk - j0);
        int vis = j < ab.sk && visible(a, qp, kpos[j]);
        float sc = vis ? a.scale * dotf(Q, k_row(a, kv, bc, h, j), ab.hd) : -INFINITY;
        float mn = fmaxf(m, warp_max(sc));
        if (mn == -INFINITY) continue;  // nothing visible yet
        float resc = m == -INFINITY ? 0.0f : expf(m - mn), pj = vis ? expf(sc - mn) : 0.0f;
        l = l * resc + warp_sum((double)pj);
        m = mn;
        float pd = vis ? attn_bf16(ab.bf16, mt_cuda_apply(pj, keep_of(a, bc, h, qp, kpos[j]))) : 0.0f;
        for (int k = 0; k < HD_PER_LANE; k++) o[k] *= resc;
        for (int c = 0; c < nj; c++) {
            float pc = __shfl_sync(0xffffffffu, pd, c);
            const real *V = k_row(a, kv, bc, h, j0 + c) + ab.nkv * ab.hd;
            for (int k = 0, d = lane; k < HD_PER_LANE && d < ab.hd; k++, d += 32) o[k] += pc * V[d];
        }
    }
    real *O = out + o_at(a, bc, h, i);
    float inv = l > 0 ? (float)(1.0 / l) : 0.0f;
    for (int k = 0, d = lane; k < HD_PER_LANE && d < ab.hd; k++, d += 32) O[d] = o[k] * inv;
    if (lane == 0) lse[(size_t)pr * ab.sq + i] = l > 0 ? (real)((double)m + log(l)) : (real)-INFINITY;
}

extern "C" void mt_cuda_attention_block_forward(real *out, real *lse, const real *q, const real *kv, const int *qpos,
                                                const int *kpos, const mt_dropout_key *k, mt_attn_block ab) {
    cp_args a = cp_args_of(k, ab);
    size_t rows = (size_t)ab.b * ab.nh * ab.sq;
    if (!rows) return;
    block_forward_kernel<<<blocks_for(rows, 8), 256>>>(out, lse, q, kv, qpos, kpos, a);
    LAUNCH_CHECK();
}

__global__ static void merge_kernel(real *out, real *lse, const real *out_b, const real *lse_b, mt_attn_block ab) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)ab.b * ab.nh * ab.sq) return;
    int bc = (int)(e / ((size_t)ab.nh * ab.sq)), h = (int)(e / ab.sq % ab.nh), i = (int)(e % ab.sq);
    double x = lse[e], y = lse_b[e], mx = x > y ? x : y;
    if (mx == -INFINITY) return;
    double wx = exp(x - mx), wy = exp(y - mx), s = wx + wy;
    size_t o = ((size_t)i * ab.b + bc) * ab.nh * ab.hd + (size_t)h * ab.hd;
    for (int d = 0; d < ab.hd; d++) out[o + d] = (real)((out[o + d] * wx + out_b[o + d] * wy) / s);
    lse[e] = (real)(mx + log(s));
}

extern "C" void mt_cuda_attention_block_merge(real *out, real *lse, const real *out_b, const real *lse_b, mt_attn_block ab) {
    size_t rows = (size_t)ab.b * ab.nh * ab.sq;
    if (!rows) return;
    merge_kernel<<<blocks_for(rows, 128), 128>>>(out, lse, out_b, lse_b, ab);
    LAUNCH_CHECK();
}

// D[row] = dO · O per (pair, query).
__global__ static void rowdot_kernel(real *D, const real *dout, const real *out, cp_args a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    const mt_attn_block &ab = a.ab;
    if (warp >= ab.b * ab.nh * ab.sq) return;
    int pr = warp / ab.sq, i = warp % ab.sq, bc = pr / ab.nh, h = pr % ab.nh;
    size_t o = o_at(a, bc, h, i);
    double acc = 0;
    for (int d = lane; d < ab.hd; d += 32) acc += (double)out[o + d] * dout[o + d];
    acc = warp_sum(acc);
    if (lane == 0) D[warp] = (real)acc;
}

// dS and P_drop of (query i, key j), from the final lse and D.
__device__ static inline void score_grads(const cp_args &a, const real *q, const real *kv, const real *dout,
                                          const real *lse, const real *D, const int *qpos, const int *kpos, int bc,
                                          int h, int i, int j, float *dS, float *pd) {
    const mt_attn_block &ab = a.ab;
    size_t row = ((size_t)bc * ab.nh + h) * ab.sq + i;
    if (!visible(a, qpos[i], kpos[j]) || lse[row] == -INFINITY) { *dS = 0; *pd = 0; return; }
    const real *K = k_row(a, kv, bc, h, j);
    float P = expf(a.scale * dotf(q_row(a, q, bc, h, i), K, ab.hd) - lse[row]);
    float dpd = dotf(dout + o_at(a, bc, h, i), K + ab.nkv * ab.hd, ab.hd);
    float kd = keep_of(a, bc, h, qpos[i], kpos[j]);
    *dS = attn_bf16(ab.bf16, P * (mt_cuda_apply(dpd, kd) - D[row]));
    *pd = attn_bf16(ab.bf16, mt_cuda_apply(P, kd));
}

// One warp per (pair, query): dQ += scale Σ_j dS K.
__global__ static void dq_kernel(real *dq, const real *q, const real *kv, const real *dout, const real *lse,
                                 const real *D, const int *qpos, const int *kpos, cp_args a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    const mt_attn_block &ab = a.ab;
    if (warp >= ab.b * ab.nh * ab.sq) return;
    int pr = warp / ab.sq, i = warp % ab.sq, bc = pr / ab.nh, h = pr % ab.nh;
    float acc[HD_PER_LANE] = {0};
    for (int j0 = 0; j0 < ab.sk; j0 += 32) {
        int j = j0 + lane, nj = min(32, ab.sk - j0);
        float dS = 0, pd = 0;
        if (j < ab.sk) score_grads(a, q, kv, dout, lse, D, qpos, kpos, bc, h, i, j, &dS, &pd);
        for (int c = 0; c < nj; c++) {
            float g = __shfl_sync(0xffffffffu, dS, c);
            const real *K = k_row(a, kv, bc, h, j0 + c);
            for (int k = 0, d = lane; k < HD_PER_LANE && d < ab.hd; k++, d += 32) acc[k] += g * K[d];
        }
    }
    real *dQ = dq + ((size_t)i * ab.b + bc) * ab.ldq + (size_t)h * ab.hd;
    for (int k = 0, d = lane; k < HD_PER_LANE && d < ab.hd; k++, d += 32) dQ[d] += acc[k] * a.scale;
}

// One warp per (batch column, KV head, key): dK, dV += over the group's
// query heads in order and every query.
__global__ static void dkv_kernel(real *dkv, const real *q, const real *kv, const real *dout, const real *lse,
                                  const real *D, const int *qpos, const int *kpos, cp_args a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    const mt_attn_block &ab = a.ab;
    if (warp >= ab.b * ab.nkv * ab.sk) return;
    int gp = warp / ab.sk, j = warp % ab.sk, bc = gp / ab.nkv, g = gp % ab.nkv, per = ab.nh / ab.nkv;
    float dk[HD_PER_LANE] = {0}, dv[HD_PER_LANE] = {0};
    for (int h = g * per; h < (g + 1) * per; h++)
        for (int i0 = 0; i0 < ab.sq; i0 += 32) {
            int i = i0 + lane, ni = min(32, ab.sq - i0);
            float dS = 0, pd = 0;
            if (i < ab.sq) score_grads(a, q, kv, dout, lse, D, qpos, kpos, bc, h, i, j, &dS, &pd);
            for (int c = 0; c < ni; c++) {
                float gs = __shfl_sync(0xffffffffu, dS, c), w = __shfl_sync(0xffffffffu, pd, c);
                const real *Q = q_row(a, q, bc, h, i0 + c), *dO = dout + o_at(a, bc, h, i0 + c);
                for (int k = 0, d = lane; k < HD_PER_LANE && d < ab.hd; k++, d += 32) {
                    dk[k] += gs * Q[d];
                    dv[k] += w * dO[d];
                }
            }
        }
    real *dK = dkv + ((size_t)j * ab.b + bc) * a.ldkv + (size_t)g * ab.hd, *dV = dK + ab.nkv * ab.hd;
    for (int k = 0, d = lane; k < HD_PER_LANE && d < ab.hd; k++, d += 32) {
        dK[d] += dk[k] * a.scale;
        dV[d] += dv[k];
    }
}

extern "C" void mt_cuda_attention_block_backward(real *dq, real *dkv, const real *dout, const real *q, const real *kv,
                                                 const real *out, const real *lse, const int *qpos, const int *kpos,
                                                 const mt_dropout_key *k, mt_attn_block ab) {
    cp_args a = cp_args_of(k, ab);
    size_t rows = (size_t)ab.b * ab.nh * ab.sq, keys = (size_t)ab.b * ab.nkv * ab.sk;
    if (!rows || !keys) return;
    real *D = (real *)mt_cuda_scratch(rows * sizeof(real));
    rowdot_kernel<<<blocks_for(rows, 8), 256>>>(D, dout, out, a);
    LAUNCH_CHECK();
    dq_kernel<<<blocks_for(rows, 8), 256>>>(dq, q, kv, dout, lse, D, qpos, kpos, a);
    LAUNCH_CHECK();
    dkv_kernel<<<blocks_for(keys, 8), 256>>>(dkv, q, kv, dout, lse, D, qpos, kpos, a);
    LAUNCH_CHECK();
    mt_cuda_scratch_free(D);
}
