// ops.h: the compute kernels, forward next to backward (src/cpu/*.c).
//
// Ops know nothing of MPI or of the layout: they see local row counts and local
// widths only. Activations are row-major with one row per token; the trainer
// orders rows (s, b), so under sequence parallelism a rank's rows are one
// contiguous block. Conventions:
//  - outputs first, then inputs, then weights, then sizes;
//  - gradient buffers are d-prefixed; weight and bias gradients ACCUMULATE
//    (+=) so micro-batches add up; input gradients are OVERWRITTEN unless the
//    comment says otherwise;
//  - a NULL optional pointer skips that part of the work.
#ifndef MT_OPS_H
#define MT_OPS_H

#include "common.h"
#include "rng.h"

// ---- matmul.c -------------------------------------------------------------

// Row-major GEMM through OpenBLAS (sgemm/dgemm by build):
// C = alpha * op(A) * op(B) + beta * C, op = transpose when ta/tb is set.
// A is (m, k) after op, B is (k, n) after op, C is (m, n).
void mt_gemm(int ta, int tb, int m, int n, int k, real alpha, const real *a, int lda,
             const real *b, int ldb, real beta, real *c, int ldc);

// Linear layer, PyTorch/llm.c convention: out = inp · wᵀ + bias.
void mt_matmul_forward(real *out,        // (n, oc)
                       const real *inp,  // (n, c)
                       const real *w,    // (oc, c)
                       const real *bias, // (oc) or NULL
                       int n, int c, int oc);
// dinp = dout · w (overwritten; NULL skips), dw += doutᵀ · inp,
// dbias += column sums of dout (NULL skips).
void mt_matmul_backward(real *dinp,       // (n, c) or NULL
                        real *dw,         // (oc, c) accumulated
                        real *dbias,      // (oc) accumulated, or NULL
                        const real *dout, // (n, oc)
                        const real *inp,  // (n, c)
                        const real *w,    // (oc, c)
                        int n, int c, int oc);

// ---- layernorm.c ----------------------------------------------------------

// LayerNorm over the last dim, eps 1e-5 (PyTorch's and Megatron's default).
void mt_layernorm_forward(real *out,       // (n, h)
                          real *mean,      // (n) saved for backward
                          real *rstd,      // (n) saved for backward
                          const real *inp, // (n, h)
                          const real *w,   // (h)
                          const real *b,   // (h)
                          int n, int h);
// dinp overwritten; dw, db accumulated (partial over these n rows: under SP
// the caller sums them over TP).
void mt_layernorm_backward(real *dinp,       // (n, h)
                           real *dw,         // (h) accumulated
                           real *db,         // (h) accumulated
                           const real *dout, // (n, h)
                           const real *inp,  // (n, h)
                           const real *w,    // (h)
                           const real *mean, // (n)
                           const real *rstd, // (n)
                           int n, int h);

// ---- gelu.c ---------------------------------------------------------------

// GELU, tanh approximation (GPT-2's): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
void mt_gelu_forward(real *out, const real *inp, size_t n);
// dinp = gelu'(inp) * dout (overwritten). dinp may alias dout.
void mt_gelu_backward(real *dinp, const real *inp, const real *dout, size_t n);

// ---- dropout.c ------------------------------------------------------------

// Where a block of hidden rows sits in the global batch: row r of a block of
// `rows` rows ordered (s, b) is token position pos0 + r / b of global sample
// sample0 + r % b. Dropout masks are keyed by these global indices.
typedef struct {
    int rows;          // local rows = s_local * b
    int b;             // micro-batch size (samples per position)
    uint32_t pos0;     // global sequence position of the first row
    uint32_t sample0;  // global sample index of batch column 0
} mt_rows;

// out = res + dropout(inp + bias): Megatron's bias-dropout-add. bias may be
// NULL. Masks come from the key (k->p == 0 or k == NULL: no dropout); kept
// values are scaled by 1/(1-p). out may alias res.
void mt_bias_dropout_add_forward(real *out,       // (rows, h)
                                 const real *res, // (rows, h)
                                 const real *inp, // (rows, h)
                                 const real *bias,// (h) or NULL
                                 const mt_dropout_key *k, mt_rows r, int h);
// dinp = mask * dout / (1-p) (overwritten), dbias += column sums of dinp.
// The residual's gradient is dout itself (the caller keeps it).
void mt_bias_dropout_add_backward(real *dinp,       // (rows, h)
                                  real *dbias,      // (h) accumulated, or NULL
                                  const real *dout, // (rows, h)
                                  const mt_dropout_key *k, mt_rows r, int h);

// In-place dropout on a (rows, h) block (the embedding output).
void mt_dropout_forward(real *x, const mt_dropout_key *k, mt_rows r, int h);
void mt_dropout_backward(real *dx, const mt_dropout_key *k, mt_rows r, int h);

// ---- embedding.c ----------------------------------------------------------

// Vocab-parallel word embedding: this rank holds rows [v0, v0 + vl) of the
// padded table. Tokens outside that range give zero rows (the caller sums
// over TP).
void mt_embedding_forward(real *out,          // (n, h) overwritten
                          const int *tokens,  // (n) global ids
                          const real *wte,    // (vl, h) local vocab shard
                          int v0, int vl, int n, int h);
void mt_embedding_backward(real *dwte,        // (vl, h) accumulated
                           const real *dout,  // (n, h)
                           const int *tokens, // (n)
                           int v0, int vl, int n, int h);

// Learned positions: x[r] += wpe[pos0 + r / b] for r in [0, rows).
void mt_position_forward(real *x, const real *wpe, mt_rows r, int h);
// dwpe[pos0 + r / b] += dout[r]  (partial over these rows under SP).
void mt_position_backward(real *dwpe, const real *dout, mt_rows r, int h);

// ---- attention.c ----------------------------------------------------------

// Causal multi-head self-attention core (after QKV, before the projection).
// qkv rows are (s, b) ordered; each row is [Q | K | V], each nh*hd wide with
// head j in columns [j*hd, (j+1)*hd). Scale 1/√hd. Attention dropout on the
// probabilities, keyed by (sample0 + batch column, head0 + local head,
// query, key) through mt_rng_keep_attn_row; k NULL or p 0 disables it.
typedef struct {
    int s, b, nh, hd;   // sequence, micro-batch, local heads, head dim
    uint32_t head0;     // global index of local head 0
    uint32_t sample0;   // global sample of batch column 0
} mt_attn_shape;

void mt_attention_forward(real *out,       // (s, b, nh*hd)
                          real *probs,     // (b, nh, s, s) softmax, before dropout; saved
                          const real *qkv, // (s, b, 3*nh*hd)
                          const mt_dropout_key *k, mt_attn_shape sh);
void mt_attention_backward(real *dqkv,       // (s, b, 3*nh*hd) overwritten
                           real *scratch,    // (b, nh, s, s) workspace
                           const real *dout, // (s, b, nh*hd)
                           const real *qkv,  // (s, b, 3*nh*hd)
                           const real *probs,// (b, nh, s, s) from forward
                           const mt_dropout_key *k, mt_attn_shape sh);

// ---- flash_attention.c ----------------------------------------------------

// The same attention, blocked (FlashAttention, Dao et al. 2022): query and
// key blocks of 64, an online softmax, and no (s, s) matrix kept or formed
// at once: per pair only a 64 x 64 block exists at a time. Forward saves the
// row log-sum-exp instead of the probabilities; backward recomputes the
// blocks from it. Same masks as the plain kernel (same keys).
void mt_flash_attention_forward(real *out,       // (s, b, nh*hd)
                                real *lse,       // (b, nh, s) saved for backward
                                const real *qkv, // (s, b, 3*nh*hd)
                                const mt_dropout_key *k, mt_attn_shape sh);
void mt_flash_attention_backward(real *dqkv,       // (s, b, 3*nh*hd) overwritten
                                 const real *dout, // (s, b, nh*hd)
                                 const real *qkv,  // (s, b, 3*nh*hd)
                                 const real *out,  // (s, b, nh*hd) from forward
                                 const real *lse,  // (b, nh, s) from forward
                                 const mt_dropout_key *k, mt_attn_shape sh);

// ---- crossentropy.c -------------------------------------------------------

// Vocab-parallel softmax cross-entropy over a padded vocabulary, in three
// steps so the caller can all-reduce between them (Megatron's
// VocabParallelCrossEntropy). This rank holds logit columns [v0, v0+vl);
// global columns >= V (padding) are masked out: they never enter the max,
// the sum or the gradient.
// Step 1: per-row max over this rank's valid columns (-inf when none).
void mt_xent_local_max(real *rmax,         // (n)
                       const real *logits, // (n, vl)
                       int v0, int vl, int V, int n);
// Step 2 (after a MAX all-reduce of rmax): sum of exp(logit - rmax) over this
// rank's valid columns, and the target's logit if this rank holds it, else 0.
void mt_xent_local_sums(real *sumexp,       // (n)
                        real *tlogit,       // (n)
                        const real *logits, // (n, vl)
                        const real *rmax,   // (n) global max
                        const int *targets, // (n) global ids < V
                        int v0, int vl, int V, int n);
// Step 3 (after SUM all-reduces): loss[i] = log(sumexp) + rmax - tlogit.
void mt_xent_loss(real *loss, const real *rmax, const real *sumexp, const real *tlogit, int n);
// Backward: dlogits = scale * (softmax - onehot(target)), padding columns 0.
// No communication needed. dlogits may alias logits.
void mt_xent_backward(real *dlogits,      // (n, vl)
                      const real *logits, // (n, vl)
                      const real *rmax, const real *sumexp, // (n) global
                      const int *targets, // (n)
                      real scale, int v0, int vl, int V, int n);

// ---- adamw.c --------------------------------------------------------------

// AdamW as Megatron (apex FusedAdam, adam_w_mode) with bias correction:
//   g = gscale * grad (gscale: the global-norm clip coefficient, 1 for none)
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )
// t is the 1-based step. grad is read, not written.
void mt_adamw_update(real *p, const real *grad, real gscale, real *m, real *v, size_t n, int t,
                     real lr, real b1, real b2, real eps, real wd);

// Σ g² in double (for the global gradient norm).
double mt_sumsq(const real *g, size_t n);
// x *= s
void mt_scale(real *x, size_t n, real s);
// y += x
void mt_add(real *y, const real *x, size_t n);

#endif
