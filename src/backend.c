// backend.c: the CPU backend table (the reference every other backend is
// tested against) and the compile-time choice of the training backend.
#include "backend.h"

#include <stdlib.h>
#include <string.h>

static void *cpu_alloc(size_t bytes) { return mt_calloc(bytes ? bytes : 1, 1); }
static void cpu_free(void *p) { free(p); }
static void cpu_sync(void) {}
static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
    if (dst != src && bytes) memcpy(dst, src, bytes);
}
static void cpu_copy(real *dst, const real *src, size_t n) { cpu_memcpy(dst, src, n * sizeof(real)); }

static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

static void cpu_add(real *y, const real *x, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

const mt_backend mt_backend_cpu = {
    .name = "cpu",
    .device_memory = 0,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .sync = cpu_sync,
    .to_host = cpu_memcpy,
    .to_device = cpu_memcpy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .add = cpu_add,
    .matmul_forward = mt_matmul_forward,
    .matmul_backward = mt_matmul_backward,
    .layernorm_forward = mt_layernorm_forward,
    .layernorm_backward = mt_layernorm_backward,
    .gelu_forward = mt_gelu_forward,
    .gelu_backward = mt_gelu_backward,
    .bias_dropout_add_forward = mt_bias_dropout_add_forward,
    .bias_dropout_add_backward = mt_bias_dropout_add_backward,
    .dropout_forward = mt_dropout_forward,
    .dropout_backward = mt_dropout_backward,
    .embedding_forward = mt_embedding_forward,
    .embedding_backward = mt_embedding_backward,
    .position_forward = mt_position_forward,
    .position_backward = mt_position_backward,
    .attention_forward = mt_attention_forward,
    .attention_backward = mt_attention_backward,
    .flash_attention_forward = mt_flash_attention_forward,
    .flash_attention_backward = mt_flash_attention_backward,
    .xent_local_max = mt_xent_local_max,
    .xent_local_sums = mt_xent_local_sums,
    .xent_loss = mt_xent_loss,
    .xent_backward = mt_xent_backward,
    .adamw_update = mt_adamw_update,
    .sumsq = mt_sumsq,
    .scale = mt_scale,
};

const mt_backend *mt_backend_default(void) {
#ifdef MT_CUDA
    return &mt_backend_cuda;
#else
    return &mt_backend_cpu;
#endif
}
