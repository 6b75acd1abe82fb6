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

typedef struct mt_backend {
    const char *name;          // "cpu" or "cuda"
    int device_memory;         // buffers live on a device: MPI needs staging or CUDA-aware MPI

    // ---- memory ------------------------------------------------------------
    void *(*alloc)(size_t bytes);   // zero-filled; exits with a line when out of memory
    void (*free)(void *p);
    void (*sync)(void);             // wait for issued kernels: host access is safe after
    void (*to_host)(void *dst, const void *src, size_t bytes);  // backend buffer -> host memory
    void (*to_device)(void *dst, const void *src, size_t bytes);// host memory -> backend buffer
    void (*copy)(real *dst, const real *src, size_t n);        // buffer to buffer
    void (*zero)(void *p, size_t bytes);
    void (*add)(real *y, const real *x, size_t n);             // y += x

    // ---- ops (ops.h) --------------------------------------------------------
    void (*matmul_forward)(real *out, const real *inp, const real *w, const real *bias, int n, int c, int oc);
    void (*matmul_backward)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, const real *w,
                            int n, int c, int oc);
    void (*layernorm_forward)(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b,
                              int n, int h);
    void (*layernorm_backward)(real *dinp, real *dw, real *db, const real *dout, const real *inp, const real *w,
                               const real *mean, const real *rstd, int n, int h);
    void (*gelu_forward)(real *out, const real *inp, size_t n);
    void (*gelu_backward)(real *dinp, const real *inp, const real *dout, size_t n);
    void (*bias_dropout_add_forward)(real *out, const real *res, const real *inp, const real *bias,
                                     const mt_dropout_key *k, mt_rows r, int h);
    void (*bias_dropout_add_backward)(real *dinp, real *dbias, const real *dout, const mt_dropout_key *k,
                                      mt_rows r, int h);
    void (*dropout_forward)(real *x, const mt_dropout_key *k, mt_rows r, int h);
    void (*dropout_backward)(real *dx, const mt_dropout_key *k, mt_rows r, int h);
    void (*embedding_forward)(real *out, const int *tokens, const real *wte, int v0, int vl, int n, int h);
    void (*embedding_backward)(real *dwte, const real *dout, const int *tokens, int v0, int vl, int n, int h);
    void (*position_forward)(real *x, const real *wpe, mt_rows r, int h);
    void (*position_backward)(real *dwpe, const real *dout, mt_rows r, int h);
    void (*attention_forward)(real *out, real *probs, const real *qkv, const mt_dropout_key *k, mt_attn_shape sh);
    void (*attention_backward)(real *dqkv, real *scratch, const real *dout, const real *qkv, const real *probs,
                               const mt_dropout_key *k, mt_attn_shape sh);
    void (*flash_attention_forward)(real *out, real *lse, const real *qkv, const mt_dropout_key *k,
                                    mt_attn_shape sh);
    void (*flash_attention_backward)(real *dqkv, const real *dout, const real *qkv, const real *out,
                                     const real *lse, const mt_dropout_key *k, mt_attn_shape sh);
    void (*xent_local_max)(real *rmax, const real *logits, int v0, int vl, int V, int n);
    void (*xent_local_sums)(real *sumexp, real *tlogit, const real *logits, const real *rmax, const int *targets,
                            int v0, int vl, int V, int n);
    void (*xent_loss)(real *loss, const real *rmax, const real *sumexp, const real *tlogit, int n);
    void (*xent_backward)(real *dlogits, const real *logits, const real *rmax, const real *sumexp,
                          const int *targets, real scale, int v0, int vl, int V, int n);
    void (*adamw_update)(real *p, const real *g, real gscale, real *m, real *v, size_t n, int t, real lr, real b1,
                         real b2, real eps, real wd);
    double (*sumsq)(const real *g, size_t n);
    void (*scale)(real *x, size_t n, real s);
} mt_backend;

// The CPU reference (src/backend.c): ops.h's functions, malloc'd buffers.
extern const mt_backend mt_backend_cpu;

// The backend this build trains with: CUDA in `make CUDA=1` builds.
const mt_backend *mt_backend_default(void);

#ifdef MT_CUDA
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
