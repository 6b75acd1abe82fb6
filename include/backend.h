// backend.h: the boundary between the trainer and its kernels (docs/design.md §2).
//
// Layers, schedules, the optimizer and communication call kernels only
// through an mt_backend table, so the same code drives the CPU reference
// (src/cpu, OpenBLAS) and the CUDA backend (src/cuda, cuBLAS). The table
// is chosen at compile time: `make` links the CPU one, `make CUDA=1`
// builds ./pretrain_gpt_cuda, whose model uses the CUDA one. Every op has
// the signature and contract of its CPU function in ops.h; pointers are
// buffers from `alloc` (host memory on the CPU, device-resident unified
// memory on CUDA).
//
// Host code may read or write a backend buffer only after `sync` (the
// trainer does so at the few places where it must: filling tokens,
// reading the loss, checkpoints, dumps). Kernels run in issue order.
#ifndef MT_BACKEND_H
#define MT_BACKEND_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// Buffer management, the same way: X(return type, name, parameters), bound
// to a static cpu_<name> or cuda_<name> in the backend's own file.
#define MT_BUFFER_OPS(X)                                                                                     \
    X(void *, alloc, (size_t bytes))      /* zero-filled; ends the job with a line when out of memory */     \
    X(void, free, (void *p))                                                                                 \
    X(void, sync, (void))                 /* wait for issued kernels: host access is safe after */           \
    X(void, to_host, (void *dst, const void *src, size_t bytes))   /* backend buffer -> host memory */      \
    X(void, to_device, (void *dst, const void *src, size_t bytes)) /* host memory -> backend buffer */      \
    X(void, copy, (real *dst, const real *src, size_t n))          /* buffer to buffer */                   \
    X(void, zero, (void *p, size_t bytes))

// Both lists in table order, for the backends' initializers: BUF binds a
// buffer op, OP an op.
#define MT_BACKEND_TABLE(BUF, OP) MT_BUFFER_OPS(BUF) MT_OPS(OP)

typedef struct mt_backend {
    const char *name;          // "cpu" or "cuda"
    int device_memory;         // buffers live on a device: MPI needs staging or CUDA-aware MPI
    int host_addressable;      // device buffers are host memory too (tests/cudaemu): MT_COMM_DIRECT=1
                               // may hand them to MPI, as a CUDA-aware MPI takes them

    // ---- memory (MT_BUFFER_OPS) -----------------------------------------------
#define MT_OP_FIELD(ret, name, params) ret(*name) params;
    MT_BUFFER_OPS(MT_OP_FIELD)

    // ---- ops (ops.h's MT_OPS), in its order ------------------------------------------
    MT_OPS(MT_OP_FIELD)
#undef MT_OP_FIELD
} mt_backend;

// The CPU reference (src/backend.c): ops.h's functions, malloc'd buffers.
extern const mt_backend mt_backend_cpu;

// The backend this build trains with: CUDA in `make CUDA=1` builds.
const mt_backend *mt_backend_default(void);

#ifdef MT_CUDA
// The CUDA ops, declared from the list (defined in src/cuda/*.cu).
#define MT_OP_CUDA_DECL(ret, name, params) ret mt_cuda_##name params;
MT_OPS(MT_OP_CUDA_DECL)
#undef MT_OP_CUDA_DECL
// The CUDA backend (src/cuda/backend.cu).
extern const mt_backend mt_backend_cuda;
// Picks GPU (local_rank % device count) and creates the cuBLAS handle;
// bf16: the linear layers run bf16 tensor-core GEMMs (--bf16). Returns 0,
// or -1 with a one-line reason in msg when no GPU is usable.
int mt_cuda_init(int local_rank, int bf16, int tf32, char *msg, size_t msg_size);
// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs" for logs.
void mt_cuda_describe(char *buf, size_t size);
#endif

#ifdef __cplusplus
}
#endif

#endif
