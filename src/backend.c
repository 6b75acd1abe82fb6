// backend.c: the CPU backend table (the reference every other backend is
// tested against) and the compile-time choice of the training backend.
#include "backend.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void cpu_free(void *p) { free(p); }
static void cpu_sync(void) {}
static void cpu_to_host(void *dst, const void *src, size_t bytes) {
    if (dst != src && bytes) memcpy(dst, src, bytes);
}
// Host memory is the backend's memory: both directions are one memcpy.
static void cpu_to_device(void *dst, const void *src, size_t bytes) { cpu_to_host(dst, src, bytes); }
static void cpu_copy(real *dst, const real *src, size_t n) { cpu_to_host(dst, src, n * sizeof(real)); }

// Zeroing the gradient arena (500 MB at GPT-2 124M) every step: one thread's
// memset reached 24 GB/s here, two threads 36 GB/s (21 against 14 ms), so
// large buffers are cleared in 1 MiB pieces by the OpenMP team. Small ones
// are not worth waking it.
static void cpu_zero(void *p, size_t bytes) {
    const size_t piece = (size_t)1 << 20;
    if (bytes < 8 * piece) {
        memset(p, 0, bytes);
        return;
    }
    size_t n = (bytes + piece - 1) / piece;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        size_t lo = i * piece;
        memset((char *)p + lo, 0, MT_MIN(piece, bytes - lo));
    }
}

// Large buffers (the parameter, gradient, moment and master arenas, big
// activation slots) are asked to sit on 2 MiB pages. Debian's kernel grants
// transparent huge pages only to ranges that madvise for them, and with 4 KiB
// pages the AdamW sweep and OpenBLAS's packing of the weights stream hundreds
// of MB through a few thousand TLB entries: a GPT-2 124M step ran 6% faster
// side by side (docs/design.md, "Speed"). Aligned to 2 MiB and rounded up to whole
// pages so every page of the buffer can be huge; a kernel without THP answers
// madvise with an error, ignored, and the buffer is an ordinary one.
static void *cpu_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < 2 * huge) return mt_calloc(bytes ? bytes : 1, 1);
    if (bytes > SIZE_MAX - huge) mt_fail_local(MT_EXIT_FAIL, "out of memory allocating %zu bytes", bytes);
    size_t n = (bytes + huge - 1) & ~(huge - 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, n)) mt_fail_local(MT_EXIT_FAIL, "out of memory allocating %zu bytes", bytes);
#if defined(MT_NO_HUGE_PAGES) && defined(MADV_NOHUGEPAGE)  // tools/bench-opts.sh's "before", THP "always" too
    (void)madvise(p, n, MADV_NOHUGEPAGE);
#elif defined(MADV_HUGEPAGE)
    (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    cpu_zero(p, n);
    return p;
}

const mt_backend mt_backend_cpu = {
    .name = "cpu", .device_memory = 0,
#define BUF(ret, name, params) .name = cpu_##name,
#define OP(ret, name, params) .name = mt_##name,
    MT_BACKEND_TABLE(BUF, OP)
};

const mt_backend *mt_backend_default(void) {
#ifdef MT_CUDA
    return &mt_backend_cuda;
#else
    return &mt_backend_cpu;
#endif
}
