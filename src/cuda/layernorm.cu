// layernorm.cu: LayerNorm and RMSNorm over the hidden dim (mt_norm), one
// warp per row; statistics in double as on the CPU (src/cpu/layernorm.c).
// RMSNorm is LayerNorm with the mean taken as 0 and no bias: mean and b are
// NULL, and every kernel below reads a NULL mean as 0.
#include "cuda_common.cuh"

__global__ static void layernorm_forward_kernel(real *out, real *mean, real *rstd, const real *inp, const real *w,
                                                const real *b, double eps, int rms, int n, int h) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    const real *x = inp + (size_t)row * h;
    real *y = out + (size_t)row * h;
    double m = 0, v = 0;
    if (!rms) {
        for (int j = lane; j < h; j += 32) m += x[j];
        m = warp_sum(m) / h;
    }
    for (int j = lane; j < h; j += 32) v += (x[j] - m) * (x[j] - m);
    v = warp_sum(v) / h;
    double r = 1.0 / sqrt(v + eps);
    for (int j = lane; j < h; j += 32) y[j] = (real)((x[j] - m) * r * w[j] + (b ? b[j] : 0.0f));
    if (lane == 0) {
        if (mean) mean[row] = (real)m;
        rstd[row] = (real)r;
    }
}

extern "C" void mt_cuda_norm_forward(real *out, real *mean, real *rstd, const real *inp, const real *w,
                                     const real *b, mt_norm nm, int n, int h) {
    if (n <= 0) return;
    layernorm_forward_kernel<<<blocks_for((size_t)n, 8), 256>>>(out, mean, rstd, inp, w, b, nm.eps, nm.rms, n, h);
    LAUNCH_CHECK();
}

// dinp = rstd (g - mean(g) - x̂ mean(g x̂)), g = w dout.
__global__ static void layernorm_dinp_kernel(real *dinp, const real *dout, const real *inp, const real *w,
                                             const real *mean, const real *rstd, int rms, int n, int h) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    const real *x = inp + (size_t)row * h, *dy = dout + (size_t)row * h;
    real *dx = dinp + (size_t)row * h;
    double m = mean ? (double)mean[row] : 0, r = rstd[row], sg = 0, sgx = 0;
    for (int j = lane; j < h; j += 32) {
        double g = (double)w[j] * dy[j];
        sg += g;
        sgx += g * (x[j] - m) * r;
    }
    sg = rms ? 0 : warp_sum(sg) / h;
    sgx = warp_sum(sgx) / h;
    for (int j = lane; j < h; j += 32) {
        double g = (double)w[j] * dy[j];
        dx[j] = (real)(r * (g - sg - (x[j] - m) * r * sgx));
    }
}

// dw[j] += Σ_i dout x̂, db[j] += Σ_i dout, in two deterministic stages as
// mt_cuda_colsum_accumulate: chunks of COLSUM_ROWS rows, then chunks in order.
__global__ static void layernorm_dparams_partial_kernel(double *part, const real *dout, const real *inp,
                                                        const real *mean, const real *rstd, int n, int h) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
    if (j >= h) return;
    int lo = c * COLSUM_ROWS, hi = lo + COLSUM_ROWS < n ? lo + COLSUM_ROWS : n;
    double aw = 0, ab = 0;
    for (int i = lo; i < hi; i++) {
        double dy = dout[(size_t)i * h + j];
        aw += dy * (inp[(size_t)i * h + j] - (mean ? (double)mean[i] : 0)) * (double)rstd[i];
        ab += dy;
    }
    size_t nc = gridDim.y;
    part[(size_t)c * h + j] = aw;
    part[(nc + c) * h + j] = ab;
}
__global__ static void layernorm_dparams_finish_kernel(real *dw, real *db, const double *part, int nc, int h) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= h) return;
    double aw = 0, ab = 0;
    for (int c = 0; c < nc; c++) {
        aw += part[(size_t)c * h + j];
        ab += part[((size_t)nc + c) * h + j];
    }
    dw[j] += (real)aw;
    if (db) db[j] += (real)ab;
}

extern "C" void mt_cuda_norm_backward(real *dinp, real *dw, real *db, const real *dout, const real *inp,
                                      const real *w, const real *mean, const real *rstd, mt_norm nm, int n, int h) {
    if (n <= 0) return;
    layernorm_dinp_kernel<<<blocks_for((size_t)n, 8), 256>>>(dinp, dout, inp, w, mean, rstd, nm.rms, n, h);
    LAUNCH_CHECK();
    int nc = mt_cuda_row_chunks(n);
    double *part = (double *)mt_cuda_scratch(2 * (size_t)nc * h * sizeof(double));
    layernorm_dparams_partial_kernel<<<dim3(blocks_for((size_t)h, 128), (unsigned)nc), 128>>>(part, dout, inp, mean,
                                                                                               rstd, n, h);
    LAUNCH_CHECK();
    layernorm_dparams_finish_kernel<<<blocks_for((size_t)h, 128), 128>>>(dw, db, part, nc, h);
    LAUNCH_CHECK();
    mt_cuda_scratch_free(part);
}
