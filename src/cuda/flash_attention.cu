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

// ---- tiles through shared memory (head dims up to TILE_HD) -----------------------
// The kernels above read every K and V row from global memory once per
// query (and Q, dO once per key): a block of 8 warps re-reads the same rows
// 8 times. Below, a block stages tiles in shared memory and its warps share
// them (FlashAttention-2's blocking, in fp32 SIMT and without atomics):
// forward and dQ take TQ queries per block, 8 warps x TQ/8 rows, walking
// 32-key tiles; dK | dV take TKEY keys per block, walking 32-query tiles.
// Each row's sums run in exactly the order of the one-warp-per-row kernels
// (32-key chunks from key 0, keys and queries ascending), so the two give
// the same bits wherever the compiler fuses the same multiply-adds
// (tests/cudaemu: bitwise).
#define TILE_HD 64    // head dims the tiles take (GPT-2's 64); larger go by rows
#define TK 32         // keys (forward, dQ) or queries (dK | dV) per tile
#define TQ 64         // query rows per forward block: 8 per warp
#define TQB 32        // query rows per dQ block: 4 per warp
#define TKEY 32       // keys per dK | dV block: 4 per warp
#define NWARP 8
#define PAD (TILE_HD + 1)  // a lane reading row `lane` of a tile hits its own bank
// The per-row loops are unrolled so each row's accumulators stay in registers
// (rolled, nvcc put the forward's 8 rows' o, m, l in local memory).

// Where row `pos` of a pair's Q, K, V (in qkv) or O / dO (in out, dout) sits.
enum { TILE_Q, TILE_K, TILE_V, TILE_O };
template <int WHICH> __device__ static inline size_t tile_at(const mt_cuda_attn &a, int bc, int hh, int pos) {
    return WHICH == TILE_Q ? attn_q_at(a, bc, hh, pos) : WHICH == TILE_K ? attn_k_at(a, bc, hh, pos)
         : WHICH == TILE_V ? attn_v_at(a, bc, hh, pos) : attn_o_at(a, bc, hh, pos);
}

// Loads N rows from r0 of a pair's tensor into a tile of `ld` floats per
// row, head dims [0, TILE_HD), zero past the sequence and the head dim (so
// no lane reads garbage). Every thread of the block (NWARP * 32) takes part;
// the row's address is worked out once (rows sit b * W, or b * H for O / dO,
// floats apart). Not unrolled: unrolled, nvcc hoisted the loads into
// registers and the forward took 174 of them instead of 128 (one block per
// SM instead of two).
template <int WHICH, int N>
__device__ static inline void load_tile(float *tile, int ld, const real *base, const mt_cuda_attn &a, int bc, int hh,
                                        int r0) {
    const int PER = N * TILE_HD / (NWARP * 32);
    size_t row0 = tile_at<WHICH>(a, bc, hh, 0), stride = (size_t)a.b * (WHICH == TILE_O ? a.H : a.W);
#pragma unroll 1
    for (int k = 0; k < PER; k++) {
        int e = threadIdx.x + k * NWARP * 32, r = e / TILE_HD, d = e % TILE_HD, pos = r0 + r;
        tile[r * ld + d] = pos < a.s && d < a.hd ? base[row0 + (size_t)pos * stride + d] : 0.0f;
    }
}

// Σ_d x[d] y[d] over the head dims, d ascending (as dot() above).
__device__ static inline float tile_dot(const float *x, const float *y, int hd) {
    float d = 0;
    for (int t = 0; t < hd; t++) d += x[t] * y[t];
    return d;
}

// Block (pair, query tile): warp w owns rows q0 + w*(TQ/NWARP) + r. Pairs
// run along the grid's x (no 65,535 limit there), tiles along its y.
__global__ static void flash_forward_tiled_kernel(real *out, real *lse, const real *qkv, mt_cuda_attn a) {
    __shared__ float Qs[TQ * TILE_HD], Ks[TK * PAD], Vs[TK * TILE_HD];
    const int R = TQ / NWARP;
    int pr = blockIdx.x, bc = pr / a.nh, hh = pr % a.nh, q0 = blockIdx.y * TQ;
    int w = threadIdx.x / 32, lane = threadIdx.x & 31;
    load_tile<TILE_Q, TQ>(Qs, TILE_HD, qkv, a, bc, hh, q0);
    float o[TQ / NWARP][2], m[TQ / NWARP];
    double l[TQ / NWARP];
#pragma unroll
    for (int r = 0; r < R; r++) o[r][0] = o[r][1] = 0, m[r] = -INFINITY, l[r] = 0;
    int qlast = min(a.s, q0 + TQ) - 1;
    for (int j0 = 0; j0 <= qlast; j0 += TK) {
        __syncthreads();  // the previous tile is no longer read
        load_tile<TILE_K, TK>(Ks, PAD, qkv, a, bc, hh, j0);
        load_tile<TILE_V, TK>(Vs, TILE_HD, qkv, a, bc, hh, j0);
        __syncthreads();
        int j = j0 + lane;
#pragma unroll
        for (int r = 0; r < R; r++) {
            int q = q0 + w * R + r;
            if (q >= a.s || q < j0) continue;  // warp-uniform: no key of this tile is visible
            int valid = j <= q, nj = min(TK, q - j0 + 1);
            float sc = valid ? a.scale * tile_dot(Qs + (w * R + r) * TILE_HD, Ks + lane * PAD, a.hd) : -INFINITY;
            float mn = fmaxf(m[r], warp_max(sc));
            float resc = m[r] == -INFINITY ? 0.0f : expf(m[r] - mn);
            float pj = valid ? expf(sc - mn) : 0.0f;
            l[r] = l[r] * resc + warp_sum((double)pj);
            m[r] = mn;
            float pd = valid ? attn_bf16(a.bf16, mt_cuda_apply(pj, attn_keep(a, bc, hh, q, j))) : 0.0f;
            for (int k = 0; k < 2; k++) o[r][k] *= resc;
            for (int c = 0; c < nj; c++) {
                float pc = __shfl_sync(0xffffffffu, pd, c);
                for (int k = 0, d = lane; k < 2 && d < a.hd; k++, d += 32) o[r][k] += pc * Vs[c * TILE_HD + d];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        int q = q0 + w * R + r;
        if (q >= a.s) continue;
        float inv = (float)(1.0 / l[r]);
        real *O = out + attn_o_at(a, bc, hh, q);
        for (int k = 0, d = lane; k < 2 && d < a.hd; k++, d += 32) O[d] = o[r][k] * inv;
        if (lane == 0) lse[(size_t)pr * a.s + q] = (real)((double)m[r] + log(l[r]));
    }
}

// Tiles unless MT_CUDA_FLASH_KERNEL=rows (read once, mt_cuda_init) or the
// head dim is past TILE_HD.
static int tiled(const mt_cuda_attn &a) { return a.hd <= TILE_HD && !mt_cuda()->flash_rows; }

extern "C" void mt_cuda_flash_attention_forward(real *out, real *lse, const real *qkv, const mt_dropout_key *k,
                                                mt_attn_shape sh) {
    mt_cuda_attn a = flash_args_of(k, sh);
    size_t rows = (size_t)a.b * a.nh * a.s;
    if (!rows) return;
    if (tiled(a)) flash_forward_tiled_kernel<<<dim3((unsigned)(a.b * a.nh), blocks_for((size_t)a.s, TQ)), NWARP * 32>>>(out, lse, qkv, a);
    else flash_forward_kernel<<<blocks_for(rows, 8), 256>>>(out, lse, qkv, a);
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

// dS and Pd of (query q, key j) from staged rows: score_grads' expressions
// in its order, with Q, K, dO, V read from shared memory.
__device__ static inline void tile_score_grads(const mt_cuda_attn &a, const float *Q, const float *K, const float *dO,
                                               const float *V, real L, real Dq, int bc, int hh, int q, int j, float *dS,
                                               float *pd) {
    float P = expf(a.scale * tile_dot(Q, K, a.hd) - L);
    float dpd = tile_dot(dO, V, a.hd);
    float kd = attn_keep(a, bc, hh, q, j);
    *dS = attn_bf16(a.bf16, P * (mt_cuda_apply(dpd, kd) - Dq));
    *pd = attn_bf16(a.bf16, mt_cuda_apply(P, kd));
}

// Block (pair, query tile): dQ of TQB rows, warp w owning rows q0 + w*(TQB/NWARP) + r.
__global__ static void flash_dq_tiled_kernel(real *dqkv, const real *qkv, const real *dout, const real *lse,
                                             const real *D, mt_cuda_attn a) {
    __shared__ float Qs[TQB * TILE_HD], dOs[TQB * TILE_HD], Ks[TK * PAD], Vs[TK * PAD];
    const int R = TQB / NWARP;
    int pr = blockIdx.x, bc = pr / a.nh, hh = pr % a.nh, q0 = blockIdx.y * TQB;
    int w = threadIdx.x / 32, lane = threadIdx.x & 31;
    load_tile<TILE_Q, TQB>(Qs, TILE_HD, qkv, a, bc, hh, q0);
    load_tile<TILE_O, TQB>(dOs, TILE_HD, dout, a, bc, hh, q0);
    float acc[TQB / NWARP][2];
    real L[TQB / NWARP], Dq[TQB / NWARP];  // each row's lse and D, read once
#pragma unroll
    for (int r = 0; r < R; r++) {
        int q = q0 + w * R + r;
        acc[r][0] = acc[r][1] = 0;
        L[r] = q < a.s ? lse[(size_t)pr * a.s + q] : 0;
        Dq[r] = q < a.s ? D[(size_t)pr * a.s + q] : 0;
    }
    int qlast = min(a.s, q0 + TQB) - 1;
    for (int j0 = 0; j0 <= qlast; j0 += TK) {
        __syncthreads();
        load_tile<TILE_K, TK>(Ks, PAD, qkv, a, bc, hh, j0);
        load_tile<TILE_V, TK>(Vs, PAD, qkv, a, bc, hh, j0);
        __syncthreads();
        int j = j0 + lane;
#pragma unroll
        for (int r = 0; r < R; r++) {
            int q = q0 + w * R + r;
            if (q >= a.s || q < j0) continue;
            int nj = min(TK, q - j0 + 1);
            float dS = 0, pd = 0;
            if (j <= q)
                tile_score_grads(a, Qs + (w * R + r) * TILE_HD, Ks + lane * PAD, dOs + (w * R + r) * TILE_HD,
                                 Vs + lane * PAD, L[r], Dq[r], bc, hh, q, j, &dS, &pd);
            for (int c = 0; c < nj; c++) {
                float g = __shfl_sync(0xffffffffu, dS, c);
                for (int k = 0, d = lane; k < 2 && d < a.hd; k++, d += 32) acc[r][k] += g * Ks[c * PAD + d];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        int q = q0 + w * R + r;
        if (q >= a.s) continue;
        real *dQ = dqkv + attn_q_at(a, bc, hh, q);
        for (int k = 0, d = lane; k < 2 && d < a.hd; k++, d += 32) dQ[d] = acc[r][k] * a.scale;
    }
}

// Block (batch column x KV head, key tile): dK | dV of TKEY keys, warp w
// owning keys j = k0 + w*(TKEY/NWARP) + r; the group's query heads in order,
// each walking 32-query tiles from the block's first key's. A key adds
// queries q >= j in ascending order, as flash_dkv_kernel does.
__global__ static void flash_dkv_tiled_kernel(real *dqkv, const real *qkv, const real *dout, const real *lse,
                                              const real *D, mt_cuda_attn a) {
    __shared__ float Ks[TKEY * TILE_HD], Vs[TKEY * TILE_HD], Qs[TK * PAD], dOs[TK * PAD];
    __shared__ real Ls[TK], Ds[TK];
    const int R = TKEY / NWARP;
    int gp = blockIdx.x, bc = gp / a.nkv, g = gp % a.nkv, k0 = blockIdx.y * TKEY;
    int w = threadIdx.x / 32, lane = threadIdx.x & 31;
    // K and V rows of the group's KV head (attn_k_at reads it through any of its query heads).
    load_tile<TILE_K, TKEY>(Ks, TILE_HD, qkv, a, bc, g * a.per, k0);
    load_tile<TILE_V, TKEY>(Vs, TILE_HD, qkv, a, bc, g * a.per, k0);
    float dk[TKEY / NWARP][2], dv[TKEY / NWARP][2];
#pragma unroll
    for (int r = 0; r < R; r++) dk[r][0] = dk[r][1] = dv[r][0] = dv[r][1] = 0;
    for (int hh = g * a.per; hh < (g + 1) * a.per; hh++) {
        int pr = bc * a.nh + hh;
        for (int t0 = k0 / TK * TK; t0 < a.s; t0 += TK) {
            __syncthreads();
            load_tile<TILE_Q, TK>(Qs, PAD, qkv, a, bc, hh, t0);
            load_tile<TILE_O, TK>(dOs, PAD, dout, a, bc, hh, t0);
            for (int e = threadIdx.x; e < TK; e += blockDim.x) {
                int q = t0 + e;
                Ls[e] = q < a.s ? lse[(size_t)pr * a.s + q] : 0;
                Ds[e] = q < a.s ? D[(size_t)pr * a.s + q] : 0;
            }
            __syncthreads();
            int q = t0 + lane;
#pragma unroll
            for (int r = 0; r < R; r++) {
                int j = k0 + w * R + r;
                if (j >= a.s) continue;  // warp-uniform
                float dS = 0, pd = 0;
                if (q < a.s && q >= j)
                    tile_score_grads(a, Qs + lane * PAD, Ks + (w * R + r) * TILE_HD, dOs + lane * PAD,
                                     Vs + (w * R + r) * TILE_HD, Ls[lane], Ds[lane], bc, hh, q, j, &dS, &pd);
                int c0 = j > t0 ? j - t0 : 0, c1 = min(TK, a.s - t0);
                for (int c = c0; c < c1; c++) {
                    float gs = __shfl_sync(0xffffffffu, dS, c), wt = __shfl_sync(0xffffffffu, pd, c);
                    for (int k = 0, d = lane; k < 2 && d < a.hd; k++, d += 32) {
                        dk[r][k] += gs * Qs[c * PAD + d];
                        dv[r][k] += wt * dOs[c * PAD + d];
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        int j = k0 + w * R + r;
        if (j >= a.s) continue;
        real *dK = dqkv + attn_k_at(a, bc, g * a.per, j), *dV = dqkv + attn_v_at(a, bc, g * a.per, j);
        for (int k = 0, d = lane; k < 2 && d < a.hd; k++, d += 32) {
            dK[d] = dk[r][k] * a.scale;
            dV[d] = dv[r][k];
        }
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
    if (tiled(a)) {
        flash_dq_tiled_kernel<<<dim3((unsigned)(a.b * a.nh), blocks_for((size_t)a.s, TQB)), NWARP * 32>>>(dqkv, qkv, dout, lse, D, a);
        LAUNCH_CHECK();
        flash_dkv_tiled_kernel<<<dim3((unsigned)(a.b * a.nkv), blocks_for((size_t)a.s, TKEY)), NWARP * 32>>>(dqkv, qkv, dout, lse, D, a);
    } else {
        flash_dq_kernel<<<blocks_for(rows, 8), 256>>>(dqkv, qkv, dout, lse, D, a);
        LAUNCH_CHECK();
        flash_dkv_kernel<<<blocks_for((size_t)a.b * a.nkv * a.s, 8), 256>>>(dqkv, qkv, dout, lse, D, a);
    }
    LAUNCH_CHECK();
    mt_cuda_scratch_free(D);
}
