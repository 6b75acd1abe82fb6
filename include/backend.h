// backend.h: the boundary between the trainer and its kernels (DESIGN §2).
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

// Every op, once: X(return type, name, parameters). The CPU table binds
// name to mt_<name> (ops.h, src/cpu), the CUDA table to mt_cuda_<name>
// (src/cuda); both tables and the CUDA prototypes are generated from this
// list, so a missing op, a wrong signature or two ops swapped is a compile
// error. Contracts and shapes: ops.h.
#define MT_OPS(X)                                                                                            \
    X(void, add, (real *y, const real *x, size_t n))                                                         \
    X(void, matmul_forward, (real *out, const real *inp, const real *w, const real *bias, int n, int c, int oc)) \
    X(void, matmul_backward, (real *dinp, real *dw, real *dbias, const real *dout, const real *inp, const real *w, \
                              int n, int c, int oc))                                                        \
    X(void, layernorm_forward, (real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b, \
                                int n, int h))                                                              \
    X(void, layernorm_backward, (real *dinp, real *dw, real *db, const real *dout, const real *inp, const real *w, \
                                 const real *mean, const real *rstd, int n, int h))                         \
    X(void, gelu_forward, (real *out, const real *inp, size_t n))                                            \
    X(void, gelu_backward, (real *dinp, const real *inp, const real *dout, size_t n))                        \
    X(void, bias_dropout_add_forward, (real *out, const real *res, const real *inp, const real *bias,         \
                                       const mt_dropout_key *k, mt_rows r, int h))                          \
    X(void, bias_dropout_add_backward, (real *dinp, real *dbias, const real *dout, const mt_dropout_key *k,   \
                                        mt_rows r, int h))                                                  \
    X(void, dropout_forward, (real *x, const mt_dropout_key *k, mt_rows r, int h))                           \
    X(void, dropout_backward, (real *dx, const mt_dropout_key *k, mt_rows r, int h))                         \
    X(void, embedding_forward, (real *out, const int *tokens, const real *wte, int v0, int vl, int n, int h)) \
    X(void, embedding_backward, (real *dwte, const real *dout, const int *tokens, int v0, int vl, int n, int h)) \
    X(void, position_forward, (real *x, const real *wpe, mt_rows r, int h))                                  \
    X(void, position_backward, (real *dwpe, const real *dout, mt_rows r, int h))                             \
    X(void, attention_forward, (real *out, real *probs, const real *qkv, const mt_dropout_key *k, mt_attn_shape sh)) \
    X(void, attention_backward, (real *dqkv, real *scratch, const real *dout, const real *qkv, const real *probs, \
                                 const mt_dropout_key *k, mt_attn_shape sh))                                \
    X(void, flash_attention_forward, (real *out, real *lse, const real *qkv, const mt_dropout_key *k,         \
                                      mt_attn_shape sh))                                                    \
    X(void, flash_attention_backward, (real *dqkv, const real *dout, const real *qkv, const real *out,        \
                                       const real *lse, const mt_dropout_key *k, mt_attn_shape sh))         \
    X(void, xent_local_max, (real *rmax, const real *logits, int v0, int vl, int V, int n))                  \
    X(void, xent_local_sums, (real *sumexp, real *tlogit, const real *logits, const real *rmax,               \
                              const int *targets, int v0, int vl, int V, int n))                            \
    X(void, xent_loss, (real *loss, const real *rmax, const real *sumexp, const real *tlogit, int n))        \
    X(void, xent_backward, (real *dlogits, const real *logits, const real *rmax, const real *sumexp,          \
                            const int *targets, real scale, int v0, int vl, int V, int n))                  \
    X(void, adamw_update, (real *p, const real *g, real gscale, real *m, real *v, size_t n, int t, real lr,   \
                           real b1, real b2, real eps, real wd))                                            \
    X(double, sumsq, (const real *g, size_t n))                                                              \
    X(void, scale, (real *x, size_t n, real s))

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

    // ---- memory (MT_BUFFER_OPS) -----------------------------------------------
#define MT_OP_FIELD(ret, name, params) ret(*name) params;
    MT_BUFFER_OPS(MT_OP_FIELD)

    // ---- ops (ops.h), in MT_OPS order ------------------------------------------
    MT_OPS(MT_OP_FIELD)
#undef MT_OP_FIELD
} mt_backend;

// The CPU functions must match the list exactly: a redeclaration with
// another signature is an error.
#define MT_OP_CPU_DECL(ret, name, params) ret mt_##name params;
MT_OPS(MT_OP_CPU_DECL)
#undef MT_OP_CPU_DECL

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
// Picks GPU (local_rank % device count) and creates the cuBLAS handle.
// Returns 0, or -1 with a one-line reason in msg when no GPU is usable.
int mt_cuda_init(int local_rank, char *msg, size_t msg_size);
// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs" for logs.
void mt_cuda_describe(char *buf, size_t size);
#endif

#ifdef __cplusplus
}
#endif

#endif
