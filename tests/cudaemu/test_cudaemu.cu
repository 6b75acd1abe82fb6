// test_cudaemu.cu: the emulator against CUDA's documented semantics
// (CUDA C++ Programming Guide: thread hierarchy, __syncthreads, warp
// shuffle functions; cuBLAS's column-major GEMM), with expected values
// worked out by hand. Built like src/cuda/*.cu (tests/cudaemu/launch.sed).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include "harness.h"
}

// Every thread of a 3-D grid of 3-D blocks writes its global linear index once.
__global__ static void index_kernel(int *out) {
    int b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    int n = blockDim.x * blockDim.y * blockDim.z;
    out[b * n + t] += b * n + t + 1;
}
TEST(grid_and_block_indices_cover_each_thread_once) {
    dim3 g(3, 2, 2), b(4, 3, 2);
    int n = 3 * 2 * 2 * 4 * 3 * 2, *out;
    cudaMallocManaged((void **)&out, n * sizeof(int));
    memset(out, 0, n * sizeof(int));
    index_kernel<<<g, b>>>(out);
    ASSERT(cudaGetLastError() == cudaSuccess, "launch failed");
    cudaDeviceSynchronize();
    for (int i = 0; i < n; i++) ASSERT(out[i] == i + 1, "out[%d] = %d", i, out[i]);
    cudaFree(out);
}

// Reverse through shared memory: correct only if the barrier holds every
// thread until all have written.
__global__ static void reverse_kernel(int *out, int n) {
    __shared__ int s[256];
    s[threadIdx.x] = (int)threadIdx.x * 7;
    __syncthreads();
    out[threadIdx.x] = s[n - 1 - threadIdx.x];
}
// The same without the barrier: thread i reads thread n-1-i's slot.
__global__ static void reverse_no_barrier_kernel(int *out, int n) {
    __shared__ int s2[256];
    s2[threadIdx.x] = (int)threadIdx.x * 7 + 1;
    out[threadIdx.x] = s2[n - 1 - threadIdx.x];
}
TEST(syncthreads_orders_shared_memory) {
    int *out;
    cudaMallocManaged((void **)&out, 256 * sizeof(int));
    reverse_kernel<<<1, 256>>>(out, 256);
    cudaDeviceSynchronize();
    for (int i = 0; i < 256; i++) ASSERT(out[i] == (255 - i) * 7, "out[%d] = %d", i, out[i]);
    // Fibers run in thread order, or in reverse on alternate launches:
    // without the barrier half of the threads read slots not yet written
    // (the 0xa5 fill), so the missing barrier shows.
    reverse_no_barrier_kernel<<<1, 256>>>(out, 256);
    cudaDeviceSynchronize();
    int wrong = 0;
    for (int i = 0; i < 256; i++) wrong += out[i] != (255 - i) * 7 + 1;
    ASSERT(wrong == 128, "a missing barrier: %d of 256 threads read a stale slot, want 128", wrong);
    cudaFree(out);
}

// One thread writes, the others read without a barrier: in thread order
// the readers after thread 0 see it, in reverse order none do. Alternate
// launches run the two orders, so one of two launches shows the missing
// barrier whichever thread writes.
__global__ static void broadcast_no_barrier_kernel(int *out, int writer, int v) {
    __shared__ int s4;
    if ((int)threadIdx.x == writer) s4 = v;
    out[threadIdx.x] = s4;
}
TEST(launch_order_alternates_so_either_missing_barrier_shows) {
    int *out;
    cudaMallocManaged((void **)&out, 2 * 64 * sizeof(int));
    broadcast_no_barrier_kernel<<<1, 64>>>(out, 0, 11);
    broadcast_no_barrier_kernel<<<1, 64>>>(out + 64, 0, 12);
    cudaDeviceSynchronize();
    int stale[2] = {0, 0};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 64; i++) stale[l] += out[l * 64 + i] != 11 + l;
    ASSERT((stale[0] == 0) != (stale[1] == 0), "stale reads %d and %d: the two launches ran in one order", stale[0], stale[1]);
    ASSERT(stale[0] + stale[1] == 63, "stale reads %d + %d, want 63 (all but the writer, in reverse order)", stale[0], stale[1]);
    cudaFree(out);
}

// Races between blocks: every block writes out[0] (a write-write race), and
// block 1 reads what block 0 writes (a read-write race; blocks run in any
// order, and at once, on a GPU). Alternate launches run the blocks in
// opposite orders, so both races give results that differ between two
// launches: the last writer is block 3 or block 0, and block 1 sees block
// 0's value or the 0xa5 fill.
__global__ static void block_race_kernel(int *out) {
    if (threadIdx.x) return;
    out[0] = (int)blockIdx.x;
    if (blockIdx.x == 0) out[1] = 77;
    if (blockIdx.x == 1) out[2] = out[1];
}
TEST(block_order_alternates_so_races_between_blocks_show) {
    int *out;
    cudaMalloc((void **)&out, 2 * 3 * sizeof(int));
    block_race_kernel<<<4, 32>>>(out);
    block_race_kernel<<<4, 32>>>(out + 3);
    int h[6];
    cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost);
    ASSERT((h[0] == 3 && h[3] == 0) || (h[0] == 0 && h[3] == 3), "last writers %d and %d, want 3 and 0 in some order", h[0], h[3]);
    int fill = (int)0xa5a5a5a5;
    ASSERT((h[2] == 77 && h[5] == fill) || (h[2] == fill && h[5] == 77), "block 1 read %d and %d, want 77 once and the fill once", h[2], h[5]);
    ASSERT((h[0] == 3) == (h[2] == 77), "the two races ran in different orders in one launch");
    cudaFree(out);
}

// Shared memory is undefined when a block starts: the emulator fills each
// array with 0xa5 for every block, so a block that reads before it writes
// never finds what an earlier block (or launch) left there.
__global__ static void shared_starts_fresh_kernel(int *out) {
    __shared__ int s5[4];
    if (threadIdx.x == 0) out[blockIdx.x] = s5[blockIdx.x % 4];
    __syncthreads();
    s5[threadIdx.x % 4] = (int)blockIdx.x + 1;
}
TEST(shared_memory_starts_filled_in_every_block) {
    int *out, h[6];
    cudaMalloc((void **)&out, 6 * sizeof(int));
    shared_starts_fresh_kernel<<<3, 32>>>(out);
    shared_starts_fresh_kernel<<<3, 32>>>(out + 3);
    cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost);
    for (int i = 0; i < 6; i++) ASSERT(h[i] == (int)0xa5a5a5a5, "block %d read %#x before writing, want the fill", i, h[i]);
    cudaFree(out);
}

// Threads past n return before the barrier; the rest still meet there
// (exited threads no longer count, as on the hardware since Volta).
__global__ static void early_exit_kernel(int *out, int n) {
    __shared__ int s3[128];
    if ((int)threadIdx.x >= n) return;
    s3[threadIdx.x] = (int)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s3[n - 1 - threadIdx.x];
}
TEST(barrier_counts_only_threads_that_have_not_exited) {
    int *out;
    cudaMallocManaged((void **)&out, 128 * sizeof(int));
    early_exit_kernel<<<1, 128>>>(out, 77);
    cudaDeviceSynchronize();
    for (int i = 0; i < 77; i++) ASSERT(out[i] == 76 - i, "out[%d] = %d", i, out[i]);
    cudaFree(out);
}

// Warp shuffles: a tree sum with __shfl_down_sync (lane 0 gets the sum),
// a butterfly with __shfl_xor_sync (every lane gets it), a broadcast, and
// sub-warp widths.
__global__ static void shuffle_kernel(int *out) {
    int lane = threadIdx.x & 31, v = lane + 100 * (int)(threadIdx.x >> 5);
    int s = v;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    int x = v;
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    int bc = __shfl_sync(0xffffffffu, v, 5);
    int w16 = __shfl_sync(0xffffffffu, v, 0, 16);        // lane 0 of each 16-lane half
    int dn = __shfl_down_sync(0xffffffffu, v, 3, 8);      // past the 8-lane segment: own value
    int up = __shfl_up_sync(0xffffffffu, v, 1);           // lane 0: own value
    double d = __shfl_sync(0xffffffffu, (double)v + 0.5, 31);  // 8-byte values
    int *o = out + threadIdx.x * 7;
    o[0] = s, o[1] = x, o[2] = bc, o[3] = w16, o[4] = dn, o[5] = up, o[6] = (int)(d * 2);
}
TEST(warp_shuffles_follow_cuda_semantics) {
    int *out;
    cudaMallocManaged((void **)&out, 64 * 7 * sizeof(int));
    shuffle_kernel<<<1, 64>>>(out);
    cudaDeviceSynchronize();
    for (int t = 0; t < 64; t++) {
        int lane = t & 31, w = t >> 5, base = 100 * w, *o = out + t * 7;
        int total = 496 + 32 * base;
        if (lane == 0) ASSERT(o[0] == total, "thread %d: down-sum %d, want %d", t, o[0], total);
        ASSERT(o[1] == total, "thread %d: xor-sum %d, want %d", t, o[1], total);
        ASSERT(o[2] == base + 5, "thread %d: broadcast %d", t, o[2]);
        ASSERT(o[3] == base + (lane & 16), "thread %d: width-16 broadcast %d", t, o[3]);
        int want_dn = (lane & 7) + 3 < 8 ? base + lane + 3 : base + lane;
        ASSERT(o[4] == want_dn, "thread %d: width-8 down %d, want %d", t, o[4], want_dn);
        ASSERT(o[5] == (lane ? base + lane - 1 : base), "thread %d: up %d", t, o[5]);
        ASSERT(o[6] == 2 * (base + 31) + 1, "thread %d: double broadcast %d", t, o[6]);
    }
    cudaFree(out);
}

// A warp of 16 lanes (blockDim 48) shuffling among the lanes it has.
__global__ static void partial_warp_kernel(int *out) {
    unsigned mask = threadIdx.x < 32 ? 0xffffffffu : 0x0000ffffu;
    int s = (int)threadIdx.x;
    for (int o = 8; o > 0; o >>= 1) s += __shfl_xor_sync(mask, s, o);
    out[threadIdx.x] = s;
}
TEST(partial_warp_shuffles_among_present_lanes) {
    int *out;
    cudaMallocManaged((void **)&out, 48 * sizeof(int));
    partial_warp_kernel<<<1, 48>>>(out);
    cudaDeviceSynchronize();
    for (int t = 0; t < 48; t++) {
        int lo = t & ~15, want = 16 * lo + 120;  // Σ over the thread's 16-lane group
        ASSERT(out[t] == want, "thread %d: %d, want %d", t, out[t], want);
    }
    cudaFree(out);
}

// Two shuffles in a row with different masks: the lanes of the second
// must not test their source against the first's mask (or the reverse).
__global__ static void mask_change_kernel(int *out) {
    int lane = threadIdx.x & 31, v = lane * 10;
    int a = __shfl_sync(0xffffffffu, v, 5);
    int b = v;
    if (lane >= 16) b = __shfl_sync(0xffff0000u, v, 20);
    out[threadIdx.x] = a * 1000 + b;
}
TEST(consecutive_shuffles_keep_their_own_masks) {
    int *out;
    cudaMallocManaged((void **)&out, 32 * sizeof(int));
    mask_change_kernel<<<1, 32>>>(out);
    mask_change_kernel<<<1, 32>>>(out);  // and in the other order of threads
    cudaDeviceSynchronize();
    for (int t = 0; t < 32; t++) {
        int want = 50 * 1000 + (t >= 16 ? 200 : t * 10);
        ASSERT(out[t] == want, "lane %d: %d, want %d", t, out[t], want);
    }
    cudaFree(out);
}

// Launch configurations past the hardware's limits fail at the launch and
// run nothing.
__global__ static void mark_kernel(int *flag) { *flag = 1; }
TEST(bad_launch_configurations_fail_and_run_nothing) {
    int *flag;
    cudaMallocManaged((void **)&flag, sizeof(int));
    *flag = 0;
    mark_kernel<<<1, 1025>>>(flag);
    ASSERT(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads accepted");
    mark_kernel<<<dim3(1, 65536), 32>>>(flag);
    ASSERT(cudaGetLastError() == cudaErrorInvalidConfiguration, "grid y 65536 accepted");
    mark_kernel<<<1, 32, 49 * 1024>>>(flag);
    ASSERT(cudaGetLastError() == cudaErrorInvalidValue, "49 KiB of dynamic shared memory accepted");
    mark_kernel<<<0, 32>>>(flag);
    ASSERT(cudaGetLastError() == cudaErrorInvalidConfiguration, "an empty grid accepted");
    ASSERT(*flag == 0, "a refused launch ran");
    mark_kernel<<<1, 1024, 48 * 1024>>>(flag);
    ASSERT(cudaGetLastError() == cudaSuccess, "the largest valid launch refused");
    cudaDeviceSynchronize();
    ASSERT(*flag == 1, "the largest valid launch did not run");
    cudaFree(flag);
}

// A barrier in code only some threads run hangs a GPU or lets threads
// through early; here it stops the process with a line saying so. So does a
// wait nobody can end: lane 0 at a shuffle its warp never reaches, the other
// lanes at a barrier lane 0 never reaches.
__global__ static void divergent_barrier_kernel(int *out) {
    if (threadIdx.x < 16) __syncthreads();
    else if (threadIdx.x < 48) { __syncthreads(); __syncthreads(); }
    out[threadIdx.x] = 1;
}
__global__ static void deadlock_kernel(int *out) {
    int v = (int)threadIdx.x;
    if (threadIdx.x == 0) v = __shfl_sync(0xffffffffu, v, 1);
    else __syncthreads();
    out[threadIdx.x] = v;
}
// Runs launch(out) in a child; its stderr and whether it aborted.
static int child_aborts(void (*launch)(int *), const char *want, char *buf, size_t size) {
    int fd[2];
    if (pipe(fd)) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        int *out;
        cudaMallocManaged((void **)&out, 64 * sizeof(int));
        launch(out);
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    for (ssize_t k; got < size - 1 && (k = read(fd[0], buf + got, size - 1 - got)) > 0;) got += (size_t)k;
    buf[got] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(buf, want);
}
// A shuffle whose mask names a lane that has exited.
__global__ static void exited_lane_kernel(int *out) {
    if (threadIdx.x == 3) return;
    out[threadIdx.x] = __shfl_sync(0xffffffffu, (int)threadIdx.x, 3);
}
static void launch_exited(int *out) { exited_lane_kernel<<<1, 32>>>(out); cudaDeviceSynchronize(); }
static void launch_divergent(int *out) { divergent_barrier_kernel<<<1, 64>>>(out); cudaDeviceSynchronize(); }
static void launch_deadlock(int *out) { deadlock_kernel<<<1, 64>>>(out); cudaDeviceSynchronize(); }
// One thread too many: thread 64 writes just past the 64-int buffer. The
// allocation ends where a guard page begins, so the write stops the process
// with a line (on a GPU it would land in a neighbour, silently, unless
// compute-sanitizer watched).
__global__ static void past_end_kernel(int *out) { out[threadIdx.x] = 1; }
static void launch_past_end(int *out) { past_end_kernel<<<1, 65>>>(out); cudaDeviceSynchronize(); }
TEST(an_access_past_a_buffer_end_stops_with_a_line) {
    char buf[4096];
    ASSERT(child_aborts(launch_past_end, "an access at byte 256 of a 256-byte device allocation", buf, sizeof buf),
           "no out-of-bounds stop: %.300s", buf);
}

TEST(divergent_barrier_and_deadlock_stop_with_a_line) {
    char buf[512];
    ASSERT(child_aborts(launch_divergent, "divergent __syncthreads", buf, sizeof buf), "divergent barrier: %s", buf);
    ASSERT(child_aborts(launch_deadlock, "deadlock", buf, sizeof buf), "deadlock: %s", buf);
    ASSERT(child_aborts(launch_exited, "had exited", buf, sizeof buf), "shuffle from an exited lane: %s", buf);
}

// Work runs when the host waits: a read before the wait (a race on a GPU)
// sees the old contents every time; under CUDAEMU_STRICT=1 any host touch of
// device memory with work queued stops the process with a line.
__global__ static void fill_kernel(int *out, int v) { out[threadIdx.x] = v; }
static void launch_then_read(int *out) {
    fill_kernel<<<1, 32>>>(out, 7);
    volatile int x = out[3];  // no cudaDeviceSynchronize first
    (void)x;
}
TEST(work_runs_at_the_wait_and_strict_mode_stops_early_reads) {
    int *out;
    cudaMallocManaged((void **)&out, 32 * sizeof(int));
    fill_kernel<<<1, 32>>>(out, 5);
    cudaDeviceSynchronize();
    ASSERT(out[31] == 5, "out[31] = %d after the wait", out[31]);
    fill_kernel<<<1, 32>>>(out, 6);
    ASSERT(out[31] == 5, "out[31] = %d before the wait: the launch ran early", out[31]);
    cudaDeviceSynchronize();
    ASSERT(out[31] == 6, "out[31] = %d after the second wait", out[31]);
    cudaFree(out);
    // The strict check lives in the child's environment (read at its first allocation).
    if (fork() == 0) {
        setenv("CUDAEMU_STRICT", "1", 1);
        char *argv[] = {(char *)"/proc/self/exe", (char *)"strict_child", NULL};
        execv("/proc/self/exe", argv);
        _exit(3);
    }
    int st = 0;
    wait(&st);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the strict child's check failed (status %d)", st);
}
// In a process started with CUDAEMU_STRICT=1 (see above): an early read aborts with a line.
static int strict_child(void) {
    char buf[2048];
    return child_aborts(launch_then_read, "missing sync", buf, sizeof buf) ? 0 : (fprintf(stderr, "%s", buf), 1);
}

// cuBLAS's column-major products against loops, transposes included; bf16
// operands through GemmEx; a leading dimension too small is refused.
TEST(cublas_products_match_loops) {
    cublasHandle_t h;
    ASSERT(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "create");
    const int m = 5, n = 4, k = 3;
    float A[k * m], B[n * k], C[m * n], W[m * n];  // A (k x m) col-major used as Aᵀ; B (n x k) as Bᵀ
    for (int i = 0; i < k * m; i++) A[i] = (float)(i % 7) - 2.5f;
    for (int i = 0; i < n * k; i++) B[i] = (float)(i % 5) * 0.5f - 1;
    for (int i = 0; i < m * n; i++) C[i] = W[i] = (float)i;
    const float alpha = 2, beta = 0.5f;
    ASSERT(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_T, m, n, k, &alpha, A, k, B, n, &beta, C, m) == CUBLAS_STATUS_SUCCESS, "sgemm");
    cudaDeviceSynchronize();
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float s = 0;
            for (int p = 0; p < k; p++) s += A[i * k + p] * B[p * n + j];  // Aᵀ[i][p] = A(p,i); Bᵀ[p][j] = B(j,p)
            float want = alpha * s + beta * W[j * m + i];
            ASSERT_CLOSE(C[j * m + i], want, 1e-5);
        }
    __nv_bfloat16 a16[k * m], b16[n * k];
    float ar[k * m], br[n * k], C2[m * n], C3[m * n];
    for (int i = 0; i < k * m; i++) a16[i] = __float2bfloat16_rn(A[i] * 1.01f), ar[i] = __bfloat162float(a16[i]);
    for (int i = 0; i < n * k; i++) b16[i] = __float2bfloat16_rn(B[i] * 0.99f), br[i] = __bfloat162float(b16[i]);
    const float one = 1, zero = 0;
    ASSERT(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_T, m, n, k, &one, a16, CUDA_R_16BF, k, b16, CUDA_R_16BF, n, &zero,
                        C2, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS, "gemmex");
    ASSERT(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_T, m, n, k, &one, ar, k, br, n, &zero, C3, m) == CUBLAS_STATUS_SUCCESS, "sgemm");
    cudaDeviceSynchronize();
    for (int i = 0; i < m * n; i++) ASSERT(C2[i] == C3[i], "bf16 product %d: %g vs %g", i, C2[i], C3[i]);
    ASSERT(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, m - 1, B, k, &zero, C, m) == CUBLAS_STATUS_INVALID_VALUE,
           "lda < m accepted");
    cublasDestroy(h);
}

// bf16 conversion: to nearest, ties to even, NaN kept.
TEST(bf16_conversion_rounds_to_nearest_even) {
    ASSERT(__float2bfloat16_rn(1.0f).x == 0x3f80, "1.0");
    ASSERT(__float2bfloat16_rn(__uint_as_float(0x3f808000u)).x == 0x3f80, "tie to even (down)");
    ASSERT(__float2bfloat16_rn(__uint_as_float(0x3f818000u)).x == 0x3f82, "tie to even (up)");
    ASSERT(__float2bfloat16_rn(__uint_as_float(0x3f808001u)).x == 0x3f81, "above the tie");
    ASSERT((__float2bfloat16_rn(__uint_as_float(0x7f800001u)).x & 0x7fc0) == 0x7fc0, "NaN stays NaN");
}

// Device memory: fresh allocations hold garbage (0xa5), the free count
// follows allocations, and the device's size is a limit.
TEST(memory_is_garbage_filled_and_limited) {
    size_t f0, t0, f1, t1;
    cudaMemGetInfo(&f0, &t0);
    unsigned char *p;
    ASSERT(cudaMalloc((void **)&p, 4096) == cudaSuccess, "malloc");
    ASSERT(p[0] == 0xa5 && p[4095] == 0xa5, "fresh memory %02x %02x", p[0], p[4095]);
    cudaMemGetInfo(&f1, &t1);
    ASSERT(f0 - f1 == 4096 && t0 == t1, "free %zu -> %zu", f0, f1);
    void *q = NULL;
    ASSERT(cudaMalloc(&q, t0 + 1) == cudaErrorMemoryAllocation, "more than the device accepted");
    cudaGetLastError();
    cudaFree(p);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "strict_child")) return strict_child();
    return mt_test_main(argc, argv);
}
