// cudaemu.h: the CUDA the backend's kernels use, run on the CPU.
//
// tests/cudaemu builds src/cuda/*.cu with g++ instead of nvcc: each kernel
// launch runs every thread of every block as a fiber on the calling thread,
// so __syncthreads and the warp shuffles meet as on a GPU (a thread waits
// at its barrier until its block's, or its warp's, others arrive). cuBLAS
// is OpenBLAS; device and managed memory are host memory. What this checks
// without a GPU: the kernels' indexing, their barriers and shuffles, their
// launch configurations (sizes past the hardware's limits fail as on a GPU)
// and the host code around them. What it cannot: timing, races between
// threads (fibers run one at a time), the GPU's own summation orders.
// Device code sees no __CUDA_ARCH__ and no __CUDACC__: shared headers take
// their host paths.
#ifndef CUDAEMU_H
#define CUDAEMU_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <math.h>

// ---- types and runtime API -------------------------------------------------
struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorLaunchFailure = 719,
} cudaError_t;
typedef cudaError_t cudaError;
typedef enum {
    cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4,
} cudaMemcpyKind;
typedef struct cudaemu_stream *cudaStream_t;
// Device memory is host memory here (src/cuda/backend.cu: MT_COMM_DIRECT=1
// may pass it to MPI, as a CUDA-aware MPI takes device buffers).
#define MT_CUDA_HOST_ADDRESSABLE 1
#define cudaMemAttachGlobal 1u
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock;
    int major, minor, multiProcessorCount, maxThreadsPerBlock, warpSize;
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaMallocManaged(void **p, size_t bytes, unsigned flags = cudaMemAttachGlobal);
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s);
cudaError_t cudaFree(void *p);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);

// ---- device code ------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
// One copy per OS thread: a block runs on one, its fibers share it.
// launch.sed follows each `__shared__` declaration with CUDAEMU_SHARED(name)
// for every array it declares: the block's first thread to get there fills
// the array with 0xa5, so a block never sees the values an earlier block or
// launch left (shared memory starts undefined on a GPU).
#define __shared__ static thread_local
#define CUDAEMU_SHARED(x) cudaemu::shared_fresh(&(x), sizeof(x));

namespace cudaemu {
struct block;
struct thread {
    uint3 tid;
    int warp, lane;
    block *blk;
};
extern thread_local thread *cur;
const uint3 &block_idx();
const dim3 &block_dim();
const dim3 &grid_dim();
void shared_fresh(void *p, size_t bytes);
void syncthreads();
void syncwarp(unsigned mask);
// The lanes' values meet in their warp's slots; returns lane src's.
uint64_t exchange(unsigned mask, uint64_t v, int src);
template <class T> T shfl(unsigned mask, T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    u = exchange(mask, u, src);
    T r;
    memcpy(&r, &u, sizeof r);
    return r;
}

// A launch: emu::cfg(grid, block, shared, stream)(kernel)(args...), which
// tests/cudaemu/launch.sed writes for kernel<<<grid, block, ...>>>(args...).
void launch(const void *key, dim3 g, dim3 b, size_t shmem, const std::function<void()> &body);
template <class F> struct bound;
// The arguments convert to the kernel's parameter types at the call, as a
// launch converts them (NULL, a long 0, becomes the pointer it stands for).
template <class... P> struct bound<void(P...)> {
    void (*f)(P...);
    dim3 g, b;
    size_t shmem;
    void operator()(P... a) const {
        void (*fn)(P...) = f;
        launch((const void *)fn, g, b, shmem, [=]() { fn(a...); });
    }
};
struct cfg {
    dim3 g, b;
    size_t shmem;
    cfg(dim3 g_, dim3 b_, size_t s = 0, cudaStream_t = 0) : g(g_), b(b_), shmem(s) {}
    template <class F> bound<F> operator()(F *f) const { return bound<F>{f, g, b, shmem}; }
};
}  // namespace cudaemu

#define threadIdx (cudaemu::cur->tid)
#define blockIdx (cudaemu::block_idx())
#define blockDim (cudaemu::block_dim())
#define gridDim (cudaemu::grid_dim())
// A macro, so the barrier's call site is the kernel's own (see syncthreads).
#define __syncthreads() cudaemu::syncthreads()
static inline void __syncwarp(unsigned mask = 0xffffffffu) { cudaemu::syncwarp(mask); }
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    int lane = cudaemu::cur->lane;
    return cudaemu::shfl(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    int lane = cudaemu::cur->lane, seg = lane & ~(width - 1);
    int src = lane + (int)d < seg + width ? lane + (int)d : lane;
    return cudaemu::shfl(mask, v, src);
}
template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    int lane = cudaemu::cur->lane, seg = lane & ~(width - 1);
    int src = lane - (int)d >= seg ? lane - (int)d : lane;
    return cudaemu::shfl(mask, v, src);
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
    int lane = cudaemu::cur->lane, seg = lane & ~(width - 1);
    int src = lane ^ m;
    return cudaemu::shfl(mask, v, src < seg + width ? src : lane);
}

// CUDA's overloaded min/max and single-precision helpers.
#define CUDAEMU_MINMAX(T) \
    static inline T min(T a, T b) { return a < b ? a : b; } \
    static inline T max(T a, T b) { return a > b ? a : b; }
CUDAEMU_MINMAX(int)
CUDAEMU_MINMAX(unsigned)
CUDAEMU_MINMAX(long)
CUDAEMU_MINMAX(unsigned long)
CUDAEMU_MINMAX(long long)
CUDAEMU_MINMAX(unsigned long long)
CUDAEMU_MINMAX(float)
CUDAEMU_MINMAX(double)
#undef CUDAEMU_MINMAX
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }

#endif
