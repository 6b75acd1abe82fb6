// crossentropy.cu: vocab-parallel softmax cross-entropy over a padded
// vocabulary, the CPU's three steps (src/cpu/crossentropy.c): padding
// columns (global index >= V) never enter the max, the sum or the gradient.
#include "cuda_common.cuh"

#include <math.h>

#include "bf16.h"

static int valid_cols(int v0, int vl, int V) { return MT_MAX(0, MT_MIN(vl, V - v0)); }

// One warp per row.
__global__ static void local_max_kernel(real *rmax, const real *logits, int nv, int vl, int n) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    const real *l = logits + (size_t)row * vl;
    float m = -INFINITY;
    for (int j = lane; j < nv; j += 32) m = fmaxf(m, l[j]);
    m = warp_max(m);
    if (lane == 0) rmax[row] = m;
}
extern "C" void mt_cuda_xent_local_max(real *rmax, const real *logits, int v0, int vl, int V, int n) {
    if (n <= 0) return;
    local_max_kernel<<<blocks_for((size_t)n, 8), 256>>>(rmax, logits, valid_cols(v0, vl, V), vl, n);
    LAUNCH_CHECK();
}

__global__ static void local_sums_kernel(real *sumexp, real *tlogit, const real *logits, const real *rmax,
                                         const int *targets, int v0, int nv, int vl, int n) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    const real *l = logits + (size_t)row * vl;
    float m = rmax[row];
    double s = 0;
    for (int j = lane; j < nv; j += 32) s += (double)expf(l[j] - m);
    s = warp_sum(s);
    if (lane == 0) {
        sumexp[row] = (real)s;
        int t = targets[row] - v0;
        tlogit[row] = t >= 0 && t < nv ? l[t] : 0.0f;  // zero where another rank holds the target
    }
}
extern "C" void mt_cuda_xent_local_sums(real *sumexp, real *tlogit, const real *logits, const real *rmax,
                                        const int *targets, int v0, int vl, int V, int n) {
    if (n <= 0) return;
    local_sums_kernel<<<blocks_for((size_t)n, 8), 256>>>(sumexp, tlogit, logits, rmax, targets, v0,
                                                         valid_cols(v0, vl, V), vl, n);
    LAUNCH_CHECK();
}

__global__ static void loss_kernel(real *loss, const real *rmax, const real *sumexp, const real *tlogit, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) loss[i] = (real)(log((double)sumexp[i]) + (double)rmax[i] - (double)tlogit[i]);
}
extern "C" void mt_cuda_xent_loss(real *loss, const real *rmax, const real *sumexp, const real *tlogit, int n) {
    if (n <= 0) return;
    loss_kernel<<<blocks_for((size_t)n, 256), 256>>>(loss, rmax, sumexp, tlogit, n);
    LAUNCH_CHECK();
}

// dlogits = scale (softmax - onehot), padding 0; may alias logits (each
// element reads only itself).
__global__ static void xent_backward_kernel(real *dlogits, const real *logits, const real *rmax, const real *sumexp,
                                            const int *targets, real scale, int v0, int nv, int vl, int n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * vl) return;
    int i = (int)(e / vl), j = (int)(e % vl);
    if (j >= nv) {
        dlogits[e] = 0;
        return;
    }
    float sinv = (float)(scale / (double)sumexp[i]);
    float d = expf(logits[e] - rmax[i]) * sinv;
    if (j == targets[i] - v0) d -= scale;
    dlogits[e] = d;
}
extern "C" void mt_cuda_xent_backward(real *dlogits, const real *logits, const real *rmax, const real *sumexp,
                                      const int *targets, real scale, int v0, int vl, int V, int n) {
    if (n <= 0) return;
    xent_backward_kernel<<<blocks_for((size_t)n * vl, 256), 256>>>(dlogits, logits, rmax, sumexp, targets, scale, v0,
                                                                   valid_cols(v0, vl, V), vl, n);
    LAUNCH_CHECK();
}

// ---- fused (ops.h xent_fused): TP 1, one warp per row, every step of the
// row in one kernel: round (bf16), max, sum, loss, gradient (round).
__global__ static void xent_fused_kernel(real *loss, real *rmax, real *sumexp, real *logits, const int *targets,
                                         real scale, int nv, int vl, int n, int bf) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    real *l = logits + (size_t)row * vl;
    if (bf) {
        for (int j = lane; j < vl; j += 32) l[j] = mt_bf16_round(l[j]);
        __syncwarp();
    }
    float m = -INFINITY;
    for (int j = lane; j < nv; j += 32) m = fmaxf(m, l[j]);
    m = warp_max(m);
    double s = 0;
    for (int j = lane; j < nv; j += 32) s += (double)expf(l[j] - m);
    s = warp_sum(s);
    int t = targets[row];
    real tl = t >= 0 && t < nv ? l[t] : 0.0f;
    real se = (real)s;
    __syncwarp();  // every lane has read l[t] before any overwrites it
    if (lane == 0) {
        rmax[row] = m;
        sumexp[row] = se;
        loss[row] = (real)(log((double)se) + (double)m - (double)tl);
    }
    if (scale == 0) return;
    float sinv = (float)(scale / (double)se);
    for (int j = lane; j < vl; j += 32) {
        float d = j < nv ? expf(l[j] - m) * sinv : 0.0f;
        if (j == t) d -= scale;
        l[j] = bf ? mt_bf16_round(d) : d;
    }
}
extern "C" void mt_cuda_xent_fused(real *loss, real *rmax, real *sumexp, real *logits, const int *targets, real dscale,
                                   int V, int vl, int n, int bf16) {
    if (n <= 0) return;
    xent_fused_kernel<<<blocks_for((size_t)n, 8), 256>>>(loss, rmax, sumexp, logits, targets, dscale,
                                                         valid_cols(0, vl, V), vl, n, bf16);
    LAUNCH_CHECK();
}
