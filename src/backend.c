// backend.c: the CPU backend table (the reference every other backend is
// tested against) and the compile-time choice of the training backend.
#include "backend.h"

#include <stdlib.h>
#include <string.h>

static void *cpu_alloc(size_t bytes) { return mt_calloc(bytes ? bytes : 1, 1); }
static void cpu_free(void *p) { free(p); }
static void cpu_sync(void) {}
static void cpu_to_host(void *dst, const void *src, size_t bytes) {
    if (dst != src && bytes) memcpy(dst, src, bytes);
}
// Host memory is the backend's memory: both directions are one memcpy.
static void cpu_to_device(void *dst, const void *src, size_t bytes) { cpu_to_host(dst, src, bytes); }
static void cpu_copy(real *dst, const real *src, size_t n) { cpu_to_host(dst, src, n * sizeof(real)); }

static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

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
