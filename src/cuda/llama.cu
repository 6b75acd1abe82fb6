// llama.cu: the Llama-family elementwise ops on the GPU — SwiGLU and RoPE —
// the CPU's formulas (src/cpu/swiglu.c, src/cpu/rope.c) element for element.
// (RMSNorm is the norm op's second mode, in layernorm.cu.)
#include "cuda_common.cuh"

__device__ static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ static void swiglu_forward_kernel(real *out, const real *inp, int n, int f) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * f) return;
    size_t i = e / f, j = e % f;
    real g = inp[i * 2 * f + j], u = inp[i * 2 * f + f + j];
    out[e] = g * sigmoidf_(g) * u;
}
extern "C" void mt_cuda_swiglu_forward(real *out, const real *inp, int n, int f) {
    if (n <= 0 || f <= 0) return;
    swiglu_forward_kernel<<<blocks_for((size_t)n * f, 256), 256>>>(out, inp, n, f);
    LAUNCH_CHECK();
}

__global__ static void swiglu_backward_kernel(real *dinp, const real *inp, const real *dout, int n, int f) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * f) return;
    size_t i = e / f, j = e % f;
    real g = inp[i * 2 * f + j], u = inp[i * 2 * f + f + j], s = sigmoidf_(g), dy = dout[e];
    dinp[i * 2 * f + j] = dy * u * (s + g * s * (1.0f - s));
    dinp[i * 2 * f + f + j] = dy * g * s;
}
extern "C" void mt_cuda_swiglu_backward(real *dinp, const real *inp, const real *dout, int n, int f) {
    if (n <= 0 || f <= 0) return;
    swiglu_backward_kernel<<<blocks_for((size_t)n * f, 256), 256>>>(dinp, inp, dout, n, f);
    LAUNCH_CHECK();
}

// One thread per (row, Q-or-K head, pair i < rot/2): dims i and i + rot/2
// turn by the row's angle; dir -1 turns back (the backward).
__global__ static void rope_kernel(real *qkv, const real *cs, int rot, mt_attn_shape sh, float dir) {
    int half = rot / 2, heads = sh.nh + sh.nkv, W = (sh.nh + 2 * sh.nkv) * sh.hd;
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)sh.s * sh.b * heads * half) return;
    int i = (int)(e % half);
    size_t rh = e / half;
    int h = (int)(rh % heads);
    size_t r = rh / heads;
    const real *c = cs + (r / sh.b) * rot, *sn = c + half;
    real *x = qkv + r * W + (size_t)h * sh.hd, *y = x + half;
    real a = x[i], b = y[i], s = dir * sn[i];
    x[i] = a * c[i] - b * s;
    y[i] = b * c[i] + a * s;
}
static void rope(real *qkv, const real *cs, int rot, mt_attn_shape sh, float dir) {
    size_t n = (size_t)sh.s * sh.b * (sh.nh + sh.nkv) * (rot / 2);
    if (!n) return;
    rope_kernel<<<blocks_for(n, 256), 256>>>(qkv, cs, rot, sh, dir);
    LAUNCH_CHECK();
}
extern "C" void mt_cuda_rope_forward(real *qkv, const real *cs, int rot, mt_attn_shape sh) { rope(qkv, cs, rot, sh, 1.0f); }
extern "C" void mt_cuda_rope_backward(real *dqkv, const real *cs, int rot, mt_attn_shape sh) { rope(dqkv, cs, rot, sh, -1.0f); }
