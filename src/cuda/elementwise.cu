// elementwise.cu: GELU, hidden dropout (with bias and residual), and the
// embeddings. Masks come from the same Philox draws as the CPU (rng.h's
// mt_keep_at), keyed by global indices, so they equal the CPU's bit for bit.
#include "cuda_common.cuh"

#include "bf16.h"

#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

__global__ static void gelu_forward_kernel(real *out, const real *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    real x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_C * x * x * x)));
}
extern "C" void mt_cuda_gelu_forward(real *out, const real *inp, size_t n) {
    if (!n) return;
    gelu_forward_kernel<<<blocks_for(n, 256), 256>>>(out, inp, n);
    LAUNCH_CHECK();
}

__global__ static void gelu_backward_kernel(real *dinp, const real *inp, const real *dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    real x = inp[i];
    real t = tanhf(GELU_K * (x + GELU_C * x * x * x));
    real du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    dinp[i] = (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du) * dout[i];
}
extern "C" void mt_cuda_gelu_backward(real *dinp, const real *inp, const real *dout, size_t n) {
    if (!n) return;
    gelu_backward_kernel<<<blocks_for(n, 256), 256>>>(dinp, inp, dout, n);
    LAUNCH_CHECK();
}

// ---- hidden dropout -----------------------------------------------------------

// Row i of a (rows, h) block is sample sample0 + i % b at global position mt_rows_pos(i / b).
__device__ static inline float hidden_keep(const mt_cuda_mask &a, mt_rows r, size_t i, int j) {
    return mt_cuda_keep(a, r.sample0 + (uint32_t)(i % r.b), mt_rows_pos(r, (int)(i / r.b)), (uint32_t)j);
}

__global__ static void bias_dropout_add_kernel(real *out, const real *res, const real *inp, const real *bias,
                                               mt_cuda_mask a, mt_rows r, int h) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)r.rows * h) return;
    size_t i = e / h;
    int j = (int)(e % h);
    real v = inp[e] + (bias ? bias[j] : 0.0f);
    out[e] = res[e] + (!a.on ? v : mt_cuda_apply(v, hidden_keep(a, r, i, j)));
}
extern "C" void mt_cuda_bias_dropout_add_forward(real *out, const real *res, const real *inp, const real *bias,
                                                 const mt_dropout_key *k, mt_rows r, int h) {
    size_t n = (size_t)r.rows * h;
    if (!n) return;
    bias_dropout_add_kernel<<<blocks_for(n, 256), 256>>>(out, res, inp, bias, mt_cuda_mask_of(k), r, h);
    LAUNCH_CHECK();
}

// y = mask * x / (1 - p); dropout is linear and its own adjoint.
__global__ static void dropout_kernel(real *y, const real *x, mt_cuda_mask a, mt_rows r, int h) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)r.rows * h) return;
    y[e] = !a.on ? x[e] : mt_cuda_apply(x[e], hidden_keep(a, r, e / h, (int)(e % h)));
}
static void dropout_apply(real *y, const real *x, const mt_dropout_key *k, mt_rows r, int h) {
    mt_cuda_mask a = mt_cuda_mask_of(k);
    size_t n = (size_t)r.rows * h;
    if (!n || (!a.on && y == x)) return;
    dropout_kernel<<<blocks_for(n, 256), 256>>>(y, x, a, r, h);
    LAUNCH_CHECK();
}
extern "C" void mt_cuda_bias_dropout_add_backward(real *dinp, real *dbias, const real *dout, const mt_dropout_key *k,
                                                  mt_rows r, int h) {
    dropout_apply(dinp, dout, k, r, h);
    if (dbias) mt_cuda_colsum_accumulate(dbias, dinp, r.rows, h);
}
extern "C" void mt_cuda_dropout_forward(real *x, const mt_dropout_key *k, mt_rows r, int h) { dropout_apply(x, x, k, r, h); }
extern "C" void mt_cuda_dropout_backward(real *dx, const mt_dropout_key *k, mt_rows r, int h) { dropout_apply(dx, dx, k, r, h); }

// ---- fused sweeps (ops.h MT_OPS_FUSED): the chains above in fewer passes -------

__device__ static inline real round_if(real x, int on) { return on ? mt_bf16_round(x) : x; }

__global__ static void gelu_fused_forward_kernel(real *out, real *inp, size_t n, int bf) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    real x = round_if(inp[i], bf);
    if (bf) inp[i] = x;
    out[i] = round_if(0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_C * x * x * x))), bf);
}
extern "C" void mt_cuda_gelu_fused_forward(real *out, real *inp, size_t n, int bf16) {
    if (!n) return;
    gelu_fused_forward_kernel<<<blocks_for(n, 256), 256>>>(out, inp, n, bf16);
    LAUNCH_CHECK();
}

__global__ static void gelu_fused_backward_kernel(real *dinp, const real *inp, const real *dout, size_t n, int bf) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    real x = inp[i];
    real t = tanhf(GELU_K * (x + GELU_C * x * x * x));
    real du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    dinp[i] = round_if((0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du) * round_if(dout[i], bf), bf);
}
// The column sum stays a second kernel here (the CPU folds it into the sweep).
extern "C" void mt_cuda_gelu_fused_backward(real *dinp, real *dbias, const real *inp, const real *dout, int n, int f,
                                            int bf16) {
    size_t e = (size_t)n * f;
    if (!e) return;
    gelu_fused_backward_kernel<<<blocks_for(e, 256), 256>>>(dinp, inp, dout, e, bf16);
    LAUNCH_CHECK();
    if (dbias) mt_cuda_colsum_accumulate(dbias, dinp, n, f);
}

__global__ static void bda_fused_kernel(real *out, const real *res, const real *inp, const real *bias, mt_cuda_mask a,
                                        mt_rows r, int h, int bf) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)r.rows * h) return;
    size_t i = e / h;
    int j = (int)(e % h);
    real v = inp[e] + (bias ? bias[j] : 0.0f);
    out[e] = round_if(res[e] + (!a.on ? v : mt_cuda_apply(v, hidden_keep(a, r, i, j))), bf);
}
extern "C" void mt_cuda_bias_dropout_add_fused_forward(real *out, const real *res, const real *inp, const real *bias,
                                                       const mt_dropout_key *k, mt_rows r, int h, int bf16) {
    size_t n = (size_t)r.rows * h;
    if (!n) return;
    bda_fused_kernel<<<blocks_for(n, 256), 256>>>(out, res, inp, bias, mt_cuda_mask_of(k), r, h, bf16);
    LAUNCH_CHECK();
}

// dbias sums the unrounded gradient, so the rounding follows the column sum.
extern "C" void mt_cuda_bias_dropout_add_fused_backward(real *dinp, real *dbias, const real *dout,
                                                        const mt_dropout_key *k, mt_rows r, int h, int bf16) {
    mt_cuda_bias_dropout_add_backward(dinp, dbias, dout, k, r, h);
    if (bf16) mt_cuda_round_bf16(dinp, dinp, (size_t)r.rows * h);
}

// ---- embeddings -----------------------------------------------------------------

__global__ static void embedding_forward_kernel(real *out, const int *tokens, const real *wte, int v0, int vl, int n,
                                                int h) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * h) return;
    int t = tokens[e / h] - v0;
    out[e] = t >= 0 && t < vl ? wte[(size_t)t * h + e % h] : 0.0f;
}
extern "C" void mt_cuda_embedding_forward(real *out, const int *tokens, const real *wte, int v0, int vl, int n, int h) {
    if (n <= 0) return;
    embedding_forward_kernel<<<blocks_for((size_t)n * h, 256), 256>>>(out, tokens, wte, v0, vl, n, h);
    LAUNCH_CHECK();
}

// A token may repeat: one thread per column walks the rows in order (the
// CPU's order), no atomics.
__global__ static void embedding_backward_kernel(real *dwte, const real *dout, const int *tokens, int v0, int vl,
                                                 int n, int h) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= h) return;
    for (int i = 0; i < n; i++) {
        int t = tokens[i] - v0;
        if (t >= 0 && t < vl) dwte[(size_t)t * h + j] += dout[(size_t)i * h + j];
    }
}
extern "C" void mt_cuda_embedding_backward(real *dwte, const real *dout, const int *tokens, int v0, int vl, int n,
                                           int h) {
    if (n <= 0) return;
    embedding_backward_kernel<<<blocks_for((size_t)h, 128), 128>>>(dwte, dout, tokens, v0, vl, n, h);
    LAUNCH_CHECK();
}

__global__ static void position_forward_kernel(real *x, const real *wpe, mt_rows r, int h) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)r.rows * h) return;
    size_t i = e / h;
    x[e] += wpe[(size_t)mt_rows_pos(r, (int)(i / r.b)) * h + e % h];
}
extern "C" void mt_cuda_position_forward(real *x, const real *wpe, mt_rows r, int h) {
    size_t n = (size_t)r.rows * h;
    if (!n) return;
    position_forward_kernel<<<blocks_for(n, 256), 256>>>(x, wpe, r, h);
    LAUNCH_CHECK();
}

// One thread per (position, column): the b rows of a position, in order.
__global__ static void position_backward_kernel(real *dwpe, const real *dout, mt_rows r, int h) {
    int npos = (r.rows + r.b - 1) / r.b;
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)npos * h) return;
    int p = (int)(e / h), j = (int)(e % h);
    real *g = dwpe + (size_t)mt_rows_pos(r, (int)p) * h + j;
    for (int i = p * r.b; i < (p + 1) * r.b && i < r.rows; i++) *g += dout[(size_t)i * h + j];
}
extern "C" void mt_cuda_position_backward(real *dwpe, const real *dout, mt_rows r, int h) {
    if (r.rows <= 0) return;
    size_t npos = (size_t)((r.rows + r.b - 1) / r.b);
    position_backward_kernel<<<blocks_for(npos * h, 256), 256>>>(dwpe, dout, r, h);
    LAUNCH_CHECK();
}
