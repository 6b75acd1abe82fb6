// backend.cu: the CUDA backend table, device selection, memory, and the
// optimizer-side kernels (AdamW, gradient norm, scale, add).
//
// Buffers are CUDA unified memory (cudaMallocManaged), first touched on the
// device: kernels find them resident there, and the trainer's host-side code
// (initialisation, checkpoints, llm.c files, tensor dumps) reads and writes
// the same pointers after a sync, so none of it needs a device twin. The
// hot path never touches them from the host: MPI goes through explicit
// staging copies (src/comm.c) or a CUDA-aware MPI.
#include "cuda_common.cuh"
// after cuda_common.cuh, whose extern "C" block gives common.h C linkage
#include "bf16.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static mt_cuda_ctx ctx = {-1, NULL, NULL, 0, 0};

const mt_cuda_ctx *mt_cuda(void) { return &ctx; }

extern "C" int mt_cuda_init(int local_rank, int bf16, int tf32, char *msg, size_t msg_size) {
    ctx.bf16 = bf16;
    // The blocked attention's kernels: shared-memory tiles (the default) or
    // the one-warp-per-row ones they replaced, for side-by-side timing
    // (tools/bench-cuda.sh) and tests (same bits).
    const char *fk = getenv("MT_CUDA_FLASH_KERNEL");
    ctx.flash_rows = fk && !strcmp(fk, "rows");
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(msg, msg_size, "no usable CUDA GPU (%s); this is the CUDA build, ./pretrain_gpt runs on the CPU",
                 e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
        return -1;
    }
    ctx.device = local_rank % count;
    e = cudaSetDevice(ctx.device);
    if (e == cudaSuccess) e = cudaFree(0);  // creates the context now, not inside the first op
    if (e != cudaSuccess) {
        snprintf(msg, msg_size, "no usable CUDA GPU: device %d: %s", ctx.device, cudaGetErrorString(e));
        return -1;
    }
    if (cublasCreate(&ctx.blas) != CUBLAS_STATUS_SUCCESS || cublasCreate(&ctx.blas_bf16) != CUBLAS_STATUS_SUCCESS) {
        snprintf(msg, msg_size, "no usable CUDA GPU: cuBLAS could not start on device %d", ctx.device);
        return -1;
    }
    // Plain fp32 products: the oracle comparison allows round-off, not TF32.
    // --tf32 opts in to TF32 tensor cores for them (10-bit mantissa inputs,
    // fp32 accumulation), as PyTorch's allow_tf32 does. The bf16 GemmEx
    // products name their own types; under --bf16 --tf32 the attention's
    // fp32 batched products (scores, P V) do move to TF32.
    CUBLAS_CHECK(cublasSetMathMode(ctx.blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
    // The bf16 products on a handle of their own with default math: cuBLAS
    // uses tensor cores unless a pedantic mode disables them, and pedantic
    // on the fp32 handle would keep --bf16's GEMMs off them. Default math
    // never turns fp32 inputs into TF32 (CUDA 11 on), and this handle only
    // ever sees bf16 inputs: products exact, fp32 accumulation.
    CUBLAS_CHECK(cublasSetMathMode(ctx.blas_bf16, CUBLAS_DEFAULT_MATH));
    return 0;
}

extern "C" void mt_cuda_describe(char *buf, size_t size) {
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, ctx.device));
    snprintf(buf, size, "device %d: %s, sm_%d%d, %d SMs, %.1f GiB%s", ctx.device, p.name, p.major, p.minor,
             p.multiProcessorCount, (double)p.totalGlobalMem / (1 << 30),
             ctx.flash_rows ? "; blocked attention by rows (MT_CUDA_FLASH_KERNEL=rows)" : "");
}

mt_cuda_mask mt_cuda_mask_of(const mt_dropout_key *k) {
    mt_cuda_mask m;
    memset(&m, 0, sizeof m);
    m.on = k && k->p > 0;
    if (m.on) {
        m.key = mt_rng_dropout_key(k);
        m.iter = k->iter;
        m.p = k->p;
        m.scale = (float)(1.0 / (1.0 - k->p));
    }
    return m;
}

// ---- memory ---------------------------------------------------------------

static void *cuda_alloc(size_t bytes) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    // Unified memory can oversubscribe the GPU, and a GPU oversubscribed that
    // way can stall: refuse with a line instead.
    if (bytes + ((size_t)64 << 20) > free_b)
        mt_fail_local(MT_EXIT_FAIL, "out of GPU memory: %zu bytes asked, %zu free on device %d", bytes, free_b, ctx.device);
    void *p = NULL;
    CUDA_CHECK(cudaMallocManaged(&p, bytes ? bytes : 1, cudaMemAttachGlobal));
    CUDA_CHECK(cudaMemset(p, 0, bytes ? bytes : 1));  // first touch on the device
    CUDA_CHECK(cudaDeviceSynchronize());
    return p;
}
static void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}
static void cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }
static void cuda_to_host(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}
// Unified memory: cudaMemcpyDefault finds the direction from the pointers.
static void cuda_to_device(void *dst, const void *src, size_t bytes) { cuda_to_host(dst, src, bytes); }
static void cuda_copy(real *dst, const real *src, size_t n) {
    if (n && dst != src) CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(real), cudaMemcpyDefault, 0));
}
static void cuda_zero(void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, 0));
}

// ---- elementwise and reductions --------------------------------------------

__global__ static void add_kernel(real *y, const real *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}
extern "C" void mt_cuda_add(real *y, const real *x, size_t n) {
    if (!n) return;
    add_kernel<<<blocks_for(n, 256), 256>>>(y, x, n);
    LAUNCH_CHECK();
}

__global__ static void round_bf16_kernel(real *dst, const real *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = mt_bf16_round(src[i]);
}
extern "C" void mt_cuda_round_bf16(real *dst, const real *src, size_t n) {
    if (!n) return;
    round_bf16_kernel<<<blocks_for(n, 256), 256>>>(dst, src, n);
    LAUNCH_CHECK();
}

__global__ static void scale_kernel(real *x, size_t n, real s) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}
extern "C" void mt_cuda_scale(real *x, size_t n, real s) {
    if (!n) return;
    scale_kernel<<<blocks_for(n, 256), 256>>>(x, n, s);
    LAUNCH_CHECK();
}

__global__ static void adamw_fused_kernel(real *p, real *pbf, real *g, real gscale, real *m, real *v, size_t n,
                                          real c1, real c2, real lr, real b1, real b2, real eps, real wd);
extern "C" void mt_cuda_adamw_update(real *p, real *g, real gscale, real *m, real *v, size_t n, int t, real lr,
                                     real b1, real b2, real eps, real wd) {
    if (!n) return;
    real c1 = (real)(1.0 - pow((double)b1, t)), c2 = (real)(1.0 - pow((double)b2, t));
    adamw_fused_kernel<<<blocks_for(n, 256), 256>>>(p, NULL, g, gscale, m, v, n, c1, c2, lr, b1, b2, eps, wd);
    LAUNCH_CHECK();
}

// The fused pass (ops.h adamw_fused): the update and, with pbf, its bf16 copy.
// The CPU's formula, element for element (src/cpu/adamw.c); adamw_update is
// this kernel without the copy.
__global__ static void adamw_fused_kernel(real *p, real *pbf, real *g, real gscale, real *m, real *v, size_t n,
                                          real c1, real c2, real lr, real b1, real b2, real eps, real wd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    real gi = g[i] * gscale, pi = p[i];
    g[i] = 0;  // consumed (ops.h adamw_update)
    real mi = b1 * m[i] + (1.0f - b1) * gi;
    real vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    pi -= lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + wd * pi);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    if (pbf) pbf[i] = mt_bf16_round(pi);
}
extern "C" void mt_cuda_adamw_fused(real *p, real *pbf, real *g, real gscale, real *m, real *v, size_t n, int t,
                                    real lr, real b1, real b2, real eps, real wd) {
    if (!n) return;
    real c1 = (real)(1.0 - pow((double)b1, t)), c2 = (real)(1.0 - pow((double)b2, t));
    adamw_fused_kernel<<<blocks_for(n, 256), 256>>>(p, pbf, g, gscale, m, v, n, c1, c2, lr, b1, b2, eps, wd);
    LAUNCH_CHECK();
}

// Σ g² in double over fixed pieces of MT_SUMSQ_BLOCK elements, one thread
// block each; the caller adds the parts on the host in order, so the norm
// never depends on timing.
#define SUMSQ_THREADS 256
__global__ static void sumsq_kernel(double *part, const real *g, size_t n) {
    __shared__ double warps[SUMSQ_THREADS / 32];
    size_t lo = (size_t)blockIdx.x * MT_SUMSQ_BLOCK, hi = lo + MT_SUMSQ_BLOCK < n ? lo + MT_SUMSQ_BLOCK : n;
    double s = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)g[i] * g[i];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int w = 0; w < SUMSQ_THREADS / 32; w++) t += warps[w];
        part[blockIdx.x] = t;
    }
}
extern "C" void mt_cuda_sumsq_parts(const real *g, size_t n, double *host) {
    if (!n) return;
    size_t nc = (n + MT_SUMSQ_BLOCK - 1) / MT_SUMSQ_BLOCK;
    double *part = (double *)mt_cuda_scratch(nc * sizeof(double));
    sumsq_kernel<<<(unsigned)nc, SUMSQ_THREADS>>>(part, g, n);
    LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpy(host, part, nc * sizeof(double), cudaMemcpyDeviceToHost));
    mt_cuda_scratch_free(part);
}

// The two kernels one after the other (the CPU's one pass is a cache
// optimisation; the bits are the same).
extern "C" void mt_cuda_scale_sumsq_parts(real *x, size_t n, real s, double *host) {
    mt_cuda_scale(x, n, s);
    mt_cuda_sumsq_parts(x, n, host);
}

// Column sums in two deterministic stages, so every SM has work: partial
// sums over fixed chunks of COLSUM_ROWS rows (one thread per chunk and
// column), then one thread per column adds the chunks in order. Scratch
// comes from the stream-ordered pool (cudaMallocAsync): no per-call
// cudaMalloc, no state kept between calls.
__global__ static void colsum_partial_kernel(double *part, const real *x, int n, int h) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
    if (j >= h) return;
    int lo = c * COLSUM_ROWS, hi = lo + COLSUM_ROWS < n ? lo + COLSUM_ROWS : n;
    double acc = 0;
    for (int i = lo; i < hi; i++) acc += x[(size_t)i * h + j];
    part[(size_t)c * h + j] = acc;
}
__global__ static void colsum_finish_kernel(real *dst, const double *part, int nc, int h) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= h) return;
    double acc = 0;
    for (int c = 0; c < nc; c++) acc += part[(size_t)c * h + j];
    dst[j] += (real)acc;
}
void mt_cuda_colsum_accumulate(real *dst, const real *x, int n, int h) {
    if (h <= 0 || n <= 0) return;
    int nc = mt_cuda_row_chunks(n);
    double *part = (double *)mt_cuda_scratch((size_t)nc * h * sizeof(double));
    colsum_partial_kernel<<<dim3(blocks_for((size_t)h, 128), (unsigned)nc), 128>>>(part, x, n, h);
    LAUNCH_CHECK();
    colsum_finish_kernel<<<blocks_for((size_t)h, 128), 128>>>(dst, part, nc, h);
    LAUNCH_CHECK();
    mt_cuda_scratch_free(part);
}

int mt_cuda_row_chunks(int n) { return (n + COLSUM_ROWS - 1) / COLSUM_ROWS; }
void *mt_cuda_scratch(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMallocAsync(&p, bytes ? bytes : 1, 0));
    return p;
}
void mt_cuda_scratch_free(void *p) { CUDA_CHECK(cudaFreeAsync(p, 0)); }

// ---- the table --------------------------------------------------------------

// Generated from MT_OPS (backend.h); C++20 designated initializers, in the
// struct's order.
// The emulator's device memory is host memory (tests/cudaemu/cudaemu.h sets
// this), so its runs can take the CUDA-aware MPI path; a GPU's is not.
#ifndef MT_CUDA_HOST_ADDRESSABLE
#define MT_CUDA_HOST_ADDRESSABLE 0
#endif
extern "C" const mt_backend mt_backend_cuda = {
    .name = "cuda", .device_memory = 1, .host_addressable = MT_CUDA_HOST_ADDRESSABLE,
#define BUF(ret, name, params) .name = cuda_##name,
#define OP(ret, name, params) .name = mt_cuda_##name,
    MT_BACKEND_TABLE(BUF, OP)
};
