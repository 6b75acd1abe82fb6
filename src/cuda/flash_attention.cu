// flash_attention.cu: blocked causal attention on the GPU, the CPU's
// algorithm (src/cpu/flash_attention.c: online softmax, the row log-sum-exp
// saved instead of the (s, s) probabilities, both recomputed in backward)
// with one warp per row: lanes take 32 keys (or queries) at a time for the
// scores, then own head dimensions d = lane, lane + 32, ... for the sums.
// No (s, s) block exists in memory at any time. Same dropout masks as the
// CPU (rng.h's mt_keep_at on (sample, head << 16 | query, key)).
#include "attention_common.cuh"

#define HD_PER_LANE 8  // head dims up to 256

static mt_cuda_attn flash_args_of(const mt_dropout_key *k, mt_attn_shape sh) {
    if (sh.hd > 32 * HD_PER_LANE) mt_fail_local(MT_EXIT_USAGE, "--use-flash-attn on CUDA: head dim %d > %d", sh.hd, 32 * HD_PER_LANE);
    return mt_cuda_attn_of(k, sh);
}

__device__ static inline float dot(const real *x, const real *y, int n) {
    float d = 0;
    for (int t = 0; t < n; t++) d += x[t] * y[t];
    return d;
}

// One warp per (pair, query): running max m and sum l (double, as the CPU),
// output accumulated over 32-key chunks and rescaled as the max grows.
__global__ static void flash_forward_kernel(real *out, real *lse, const real *qkv, mt_cuda_attn a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (warp >= a.b * a.nh * a.s) return;
    int pr = warp / a.s, q = warp % a.s, bc = pr / a.nh, hh = pr % a.nh;
    const real *Q = qkv + attn_q_at(a, bc, hh, q);
    float o[HD_PER_LANE] = {0};
    float m = -INFINITY;
    double l = 0;
    for (int j0 = 0; j0 <= q; j0 += 32) {
        int j = j0 + lane, valid = j <= q, nj = min(32, q - j0 + 1);
        float sc = valid ? a.scale * dot(Q, qkv + attn_k_at(a, bc, hh, j), a.hd) : -INFINITY;
        float mn = fmaxf(m, warp_max(sc));
        float resc = m == -INFINITY ? 0.0f : expf(m - mn);
        float pj = valid ? expf(sc - mn) : 0.0f;
        l = l * resc + warp_sum((double)pj);
        m = mn;
        float pd = valid ? attn_bf16(a.bf16, mt_cuda_apply(pj, attn_keep(a, bc, hh, q, j))) : 0.0f;
        for (int k = 0; k < HD_PER_LANE; k++) o[k] *= resc;
        for (int c = 0; c < nj; c++) {
            float pc = __shfl_sync(0xffffffffu, pd, c);
            const real *V = qkv + attn_v_at(a, bc, hh, j0 + c);
            for (int k = 0, d = lane; k < HD_PER_LANE && d < a.hd; k++, d += 32) o[k] += pc * V[d];
        }
    }
    float inv = (float)(1.0 / l);
    real *O = out + attn_o_at(a, bc, hh, q);
    for (int k = 0, d = lane; k < HD_PER_LANE && d < a.hd; k++, d += 32) O[d] = o[k] * inv;
    if (lane == 0) lse[(size_t)pr * a.s + q] = (real)((double)m + log(l));
}

extern "C" void mt_cuda_flash_attention_forward(real *out, real *lse, const real *qkv, const mt_dropout_key *k,
                                                mt_attn_shape sh) {
    mt_cuda_attn a = flash_args_of(k, sh);
    size_t rows = (size_t)a.b * a.nh * a.s;
    if (!rows) return;
    flash_forward_kernel<<<blocks_for(rows, 8), 256>>>(out, lse, qkv, a);
    LAUNCH_CHECK();
}

// ---- backward ---------------------------------------------------------------------

// D[q] = dO[q]·O[q] (= Σ_j Pd dPd: the softmax backward's row term).
__global__ static void flash_rowdot_kernel(real *D, const real *dout, const real *out, mt_cuda_attn a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (warp >= a.b * a.nh * a.s) return;
    int pr = warp / a.s, q = warp % a.s, bc = pr / a.nh, hh = pr % a.nh;
    size_t o = attn_o_at(a, bc, hh, q);
    double acc = 0;
    for (int d = lane; d < a.hd; d += 32) acc += (double)out[o + d] * dout[o + d];
    acc = warp_sum(acc);
    if (lane == 0) D[warp] = (real)acc;
}

// dS[q, j] = P (dPd kd - D[q]) with P = exp(scale Q·K - lse[q]), dPd = dO[q]·V[j].
__device__ static inline void score_grads(const mt_cuda_attn &a, const real *qkv, const real *dout, const real *lse,
                                          const real *D, int pr, int bc, int hh, int q, int j, float *dS, float *pd) {
    float P = expf(a.scale * dot(qkv + attn_q_at(a, bc, hh, q), qkv + attn_k_at(a, bc, hh, j), a.hd) -
                   lse[(size_t)pr * a.s + q]);
    float dpd = dot(dout + attn_o_at(a, bc, hh, q), qkv + attn_v_at(a, bc, hh, j), a.hd);
    float kd = attn_keep(a, bc, hh, q, j);
    *dS = attn_bf16(a.bf16, P * (mt_cuda_apply(dpd, kd) - D[(size_t)pr * a.s + q]));
    *pd = attn_bf16(a.bf16, mt_cuda_apply(P, kd));
}

// One warp per (pair, query): dQ[q] = scale Σ_{j ≤ q} dS[q, j] K[j].
__global__ static void flash_dq_kernel(real *dqkv, const real *qkv, const real *dout, const real *lse, const real *D,
                                       mt_cuda_attn a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (warp >= a.b * a.nh * a.s) return;
    int pr = warp / a.s, q = warp % a.s, bc = pr / a.nh, hh = pr % a.nh;
    float acc[HD_PER_LANE] = {0};
    for (int j0 = 0; j0 <= q; j0 += 32) {
        int j = j0 + lane, nj = min(32, q - j0 + 1);
        float dS = 0, pd = 0;
        if (j <= q) score_grads(a, qkv, dout, lse, D, pr, bc, hh, q, j, &dS, &pd);
        for (int c = 0; c < nj; c++) {
            float g = __shfl_sync(0xffffffffu, dS, c);
            const real *K = qkv + attn_k_at(a, bc, hh, j0 + c);
            for (int k = 0, d = lane; k < HD_PER_LANE && d < a.hd; k++, d += 32) acc[k] += g * K[d];
        }
    }
    real *dQ = dqkv + attn_q_at(a, bc, hh, q);
    for (int k = 0, d = lane; k < HD_PER_LANE && d < a.hd; k++, d += 32) dQ[d] = acc[k] * a.scale;
}

// One warp per (batch column, KV head, key): dK[j] = scale Σ_h Σ_{q ≥ j}
// dS_h[q, j] Q_h[q] and dV[j] = Σ_h Σ_{q ≥ j} Pd_h[q, j] dO_h[q] over the
// query heads h that share the KV head, in head order (deterministic).
__global__ static void flash_dkv_kernel(real *dqkv, const real *qkv, const real *dout, const real *lse, const real *D,
                                        mt_cuda_attn a) {
    int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (warp >= a.b * a.nkv * a.s) return;
    int gp = warp / a.s, j = warp % a.s, bc = gp / a.nkv, g = gp % a.nkv;
    float dk[HD_PER_LANE] = {0}, dv[HD_PER_LANE] = {0};
    for (int hh = g * a.per; hh < (g + 1) * a.per; hh++) {
        int pr = bc * a.nh + hh;
        for (int q0 = j; q0 < a.s; q0 += 32) {
            int q = q0 + lane, nq = min(32, a.s - q0);
            float dS = 0, pd = 0;
            if (q < a.s) score_grads(a, qkv, dout, lse, D, pr, bc, hh, q, j, &dS, &pd);
            for (int c = 0; c < nq; c++) {
                float gs = __shfl_sync(0xffffffffu, dS, c), w = __shfl_sync(0xffffffffu, pd, c);
                const real *Q = qkv + attn_q_at(a, bc, hh, q0 + c), *dO = dout + attn_o_at(a, bc, hh, q0 + c);
                for (int k = 0, d = lane; k < HD_PER_LANE && d < a.hd; k++, d += 32) {
                    dk[k] += gs * Q[d];
                    dv[k] += w * dO[d];
                }
            }
        }
    }
    real *dK = dqkv + attn_k_at(a, bc, g * a.per, j), *dV = dqkv + attn_v_at(a, bc, g * a.per, j);
    for (int k = 0, d = lane; k < HD_PER_LANE && d < a.hd; k++, d += 32) {
        dK[d] = dk[k] * a.scale;
        dV[d] = dv[k];
    }
}

extern "C" void mt_cuda_flash_attention_backward(real *dqkv, const real *dout, const real *qkv, const real *out,
                                                 const real *lse, const mt_dropout_key *k, mt_attn_shape sh) {
    mt_cuda_attn a = flash_args_of(k, sh);
    size_t rows = (size_t)a.b * a.nh * a.s;
    if (!rows) return;
    real *D = (real *)mt_cuda_scratch(rows * sizeof(real));
    flash_rowdot_kernel<<<blocks_for(rows, 8), 256>>>(D, dout, out, a);
    LAUNCH_CHECK();
    flash_dq_kernel<<<blocks_for(rows, 8), 256>>>(dqkv, qkv, dout, lse, D, a);
    LAUNCH_CHECK();
    flash_dkv_kernel<<<blocks_for((size_t)a.b * a.nkv * a.s, 8), 256>>>(dqkv, qkv, dout, lse, D, a);
    LAUNCH_CHECK();
    mt_cuda_scratch_free(D);
}
