// cuda_common.cuh: what every CUDA kernel file shares: error checks, launch
// sizes, warp reductions and the process's CUDA context.
//
// The CUDA kernels mirror src/cpu op by op (same signatures, ops.h's
// contracts) and are tested against the CPU fp64 build (tests/backend_ops.c).
// Reductions accumulate in double where the CPU does, so fp32 results stay
// within round-off of the CPU's; sums that must not depend on scheduling
// (weight-gradient column sums, the gradient norm) have one thread per
// output walk the rows in order, never atomics.
#ifndef MT_CUDA_COMMON_CUH
#define MT_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "backend.h"
}

// A CUDA error is a runtime failure (exit 1) with the call that failed.
#define CUDA_CHECK(call)                                                                          \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) mt_fail_local(MT_EXIT_FAIL, "CUDA: %s (%s:%d: %s)", cudaGetErrorString(e_), \
                                       __FILE__, __LINE__, #call);                                \
    } while (0)
#define CUBLAS_CHECK(call)                                                                        \
    do {                                                                                          \
        cublasStatus_t s_ = (call);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) mt_fail_local(MT_EXIT_FAIL, "cuBLAS: status %d (%s:%d: %s)", (int)s_, \
                                                 __FILE__, __LINE__, #call);                      \
    } while (0)
// After every launch: a bad configuration shows here, a fault at the next sync.
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

static inline unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

__device__ static inline double warp_sum(double x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
    return __shfl_sync(0xffffffffu, x, 0);
}
__device__ static inline float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_down_sync(0xffffffffu, x, o));
    return __shfl_sync(0xffffffffu, x, 0);
}

// A dropout site as the kernels draw it (rng.h's mt_keep_at): the Philox
// key, the iteration, p, on/off and the kept values' scale 1/(1-p).
typedef struct {
    mt_philox_key key;
    uint32_t iter;
    double p;
    int on;       // k NULL or p 0: no dropout
    float scale;
} mt_cuda_mask;
mt_cuda_mask mt_cuda_mask_of(const mt_dropout_key *k);
// keep/(1-p) or 0 for draw j of run (sample, w2); 1 when dropout is off.
__device__ static inline float mt_cuda_keep(const mt_cuda_mask &m, uint32_t sample, uint32_t w2, uint32_t j) {
    if (!m.on) return 1.0f;
    return mt_keep_at(m.key, m.iter, sample, w2, j, m.p) ? m.scale : 0.0f;
}
// v scaled by a keep factor, selecting 0 for a dropped value (as the CPU
// does: a dropped inf or NaN gives 0, not NaN).
__device__ static inline float mt_cuda_apply(float v, float keep) { return keep == 0.0f ? 0.0f : v * keep; }

// The process's CUDA state, set once by mt_cuda_init before any op runs and
// read-only afterwards: the ops' signatures (shared with the CPU) carry no
// context, like OpenBLAS's own global state.
typedef struct {
    int device;
    cublasHandle_t blas;       // fp32 products: pedantic, or TF32 under --tf32
    cublasHandle_t blas_bf16;  // --bf16's GemmEx products: default math (tensor cores)
    int bf16;  // --bf16: the linear layers' GEMMs take bf16 operands on tensor cores (matmul.cu)
    int flash_rows;  // MT_CUDA_FLASH_KERNEL=rows: the blocked attention one warp per row, no tiles
} mt_cuda_ctx;
const mt_cuda_ctx *mt_cuda(void);

// Column sums accumulated into dst in double, deterministic (fixed chunks of
// COLSUM_ROWS rows summed in chunk order): dst[j] += Σ_i x[i, j].
#define COLSUM_ROWS 64
void mt_cuda_colsum_accumulate(real *dst, const real *x, int n, int h);
int mt_cuda_row_chunks(int n);  // chunks of COLSUM_ROWS rows covering n
// Scratch from the stream-ordered pool, freed in stream order.
void *mt_cuda_scratch(size_t bytes);
void mt_cuda_scratch_free(void *p);

#endif
