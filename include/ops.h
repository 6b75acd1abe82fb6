// ops.h: the compute kernels, forward next to backward, listed once.
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
//
// Every op is one row X(return type, name, (parameters)) of MT_OPS below,
// with its contract in the comment above its group. The CPU functions are
// mt_<name> (src/cpu), the CUDA ones mt_cuda_<name> (src/cuda); the
// prototypes of both and the two backend tables (backend.h) are generated
// from these rows, so adding an op is a row here, its kernels and its test
// (docs/design.md, "Adding an op").
#ifndef MT_OPS_H
#define MT_OPS_H

#include "common.h"
#include "rng.h"

// Where a block of hidden rows sits in the global batch: row r of a block of
// `rows` rows ordered (s, b) is the token at local position p = r / b of
// global sample sample0 + r % b, whose global position is mt_rows_pos(p).
// Positions run from pos0; with context parallelism a rank holds two chunks
// of the sequence, so the positions may jump once: after `split` local
// positions they continue from pos1. Dropout masks and position tables are
// keyed by these global indices.
typedef struct {
    int rows;          // local rows = s_local * b
    int b;             // micro-batch size (samples per position)
    uint32_t pos0;     // global sequence position of the first row
    uint32_t sample0;  // global sample index of batch column 0
    int split;         // local positions in the first run (0: one run)
    uint32_t pos1;     // global position of local position `split`
} mt_rows;

static inline MT_HD uint32_t mt_rows_pos(mt_rows r, int p) {
    return r.split == 0 || p < r.split ? r.pos0 + (uint32_t)p : r.pos1 + (uint32_t)(p - r.split);
}

// The normalisation of a norm op: LayerNorm, y = (x - mean) rstd w + b with
// rstd = 1/sqrt(var + eps); or RMSNorm, y = x rstd w with rstd =
// 1/sqrt(mean(x²) + eps), no mean and no bias (Zhang & Sennrich 2019;
// Hugging Face's LlamaRMSNorm, Megatron's RMSNorm). Statistics in double.
typedef struct {
    double eps;
    int rms;       // RMSNorm: mean is NULL and b is NULL
} mt_norm;

// The attention core's shape: qkv rows are (s, b) ordered; each row is
// [Q | K | V]: Q is nh*hd wide with head j in columns [j*hd, (j+1)*hd), K
// and V are nkv*hd wide each. Query head j reads KV head j / (nh / nkv)
// (grouped-query attention; nkv = nh is multi-head attention). A row is
// W = (nh + 2 nkv) hd wide.
typedef struct {
    int s, b, nh, hd;   // sequence, micro-batch, local query heads, head dim
    int nkv;            // local KV heads (nh a multiple of it)
    uint32_t head0;     // global index of local query head 0
    uint32_t sample0;   // global sample of batch column 0
    int bf16;           // --bf16: round the core's bf16 intermediates (scores, probabilities, dS)
} mt_attn_shape;

// One block of context parallelism's attention: this rank's queries (sq
// positions) against one rank's keys and values (sk positions, packed rows
// [K (nkv hd) | V (nkv hd)]), each with global positions: key visible when
// its position is at most the query's.
typedef struct {
    int sq, sk, b, nh, nkv, hd;  // query and key positions, micro-batch, local query and KV heads, head dim
    int ldq;                     // row stride of the queries' buffer (Q at columns [0, nh hd))
    uint32_t head0, sample0;     // global indices of local head 0 and batch column 0
    int chunk, no_causal;        // negative control: no causal mask between chunks of `chunk` positions
    int bf16;                    // --bf16, as in mt_attn_shape
} mt_attn_block;

// ---- matmul.c: linear layer ----------------------------------------------------
// PyTorch/llm.c convention: out = inp · wᵀ + bias. Backward: dinp = dout · w
// (overwritten; NULL skips), dw += doutᵀ · inp (NULL skips), dbias += column
// sums of dout (NULL skips). The parts are independent, so one call with all
// three is bitwise two calls that split them (the TP backward runs its
// communication between them, layers.c).
#define MT_OPS_MATMUL(X)                                                                  \
    X(void, matmul_forward, (real *out,         /* (n, oc) */                             \
                             const real *inp,   /* (n, c) */                              \
                             const real *w,     /* (oc, c) */                             \
                             const real *bias,  /* (oc) or NULL */                        \
                             int n, int c, int oc))                                       \
    X(void, matmul_backward, (real *dinp,       /* (n, c) or NULL */                      \
                              real *dw,         /* (oc, c) accumulated, or NULL */        \
                              real *dbias,      /* (oc) accumulated, or NULL */           \
                              const real *dout, /* (n, oc) */                             \
                              const real *inp,  /* (n, c) */                              \
                              const real *w,    /* (oc, c) */                             \
                              int n, int c, int oc))

// ---- layernorm.c: normalisation over the last dim ------------------------------
// LayerNorm or RMSNorm (mt_norm). Under sequence parallelism the caller
// passes only its s/tp rows; the op never knows. Backward: dinp overwritten;
// dw, db accumulated (partial over these n rows: under SP the caller sums
// them over TP). RMSNorm: mean and b (db) are NULL.
#define MT_OPS_NORM(X)                                                                    \
    X(void, norm_forward, (real *out,           /* (n, h) */                              \
                           real *mean,          /* (n) saved for backward */              \
                           real *rstd,          /* (n) saved for backward */              \
                           const real *inp,     /* (n, h) */                              \
                           const real *w,       /* (h) */                                 \
                           const real *b,       /* (h) */                                 \
                           mt_norm nm, int n, int h))                                     \
    X(void, norm_backward, (real *dinp,         /* (n, h) */                              \
                            real *dw,           /* (h) accumulated */                     \
                            real *db,           /* (h) accumulated */                     \
                            const real *dout,   /* (n, h) */                              \
                            const real *inp,    /* (n, h) */                              \
                            const real *w,      /* (h) */                                 \
                            const real *mean,   /* (n) */                                 \
                            const real *rstd,   /* (n) */                                 \
                            mt_norm nm, int n, int h))

// ---- gelu.c: GELU, tanh approximation (GPT-2's) -------------------------------
// 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))). Backward: dinp = gelu'(inp) * dout
// (overwritten); dinp may alias dout.
#define MT_OPS_GELU(X)                                                                    \
    X(void, gelu_forward, (real *out, const real *inp, size_t n))                         \
    X(void, gelu_backward, (real *dinp, const real *inp, const real *dout, size_t n))

// ---- swiglu.c: SwiGLU (Shazeer 2020) -----------------------------------------------
// out = silu(gate) * up, silu(x) = x sigmoid(x), where each row of inp is
// [gate | up], f values each (the local halves of a column-parallel fc1:
// Megatron's chunk of the fc1 output into two). Backward: dinp (n, 2f)
// overwritten from dout (n, f).
#define MT_OPS_SWIGLU(X)                                                                  \
    X(void, swiglu_forward, (real *out,       /* (n, f) */                                \
                             const real *inp, /* (n, 2f) [gate | up] */                   \
                             int n, int f))                                               \
    X(void, swiglu_backward, (real *dinp,       /* (n, 2f) */                             \
                              const real *inp,  /* (n, 2f) */                             \
                              const real *dout, /* (n, f) */                              \
                              int n, int f))

// ---- rope.c: rotary position embeddings (Su et al. 2021) ----------------------------
// Rotate-half, non-interleaved (Hugging Face's and Megatron's default): in
// each Q and K head, dims i and i + rot/2 (i < rot/2) turn by the angle
// pos * base^(-2i/rot); dims past rot are left alone (--rotary-percent).
// The caller passes the angles' cos and sin per sequence row of qkv (the
// positions are global, whatever the split). In place on Q and K; V is
// untouched. Backward: the inverse rotation of dQ and dK, in place.
#define MT_OPS_ROPE(X)                                                                    \
    X(void, rope_forward, (real *qkv,       /* (s, b, W) Q and K rotated in place */      \
                           const real *cs,  /* (s, rot) per row: cos[rot/2] | sin[rot/2] */ \
                           int rot, mt_attn_shape sh))                                    \
    X(void, rope_backward, (real *dqkv,     /* (s, b, W) dQ and dK rotated back in place */ \
                            const real *cs, /* (s, rot) */                                \
                            int rot, mt_attn_shape sh))

// ---- dropout.c: hidden dropout ---------------------------------------------------
// bias_dropout_add: out = res + dropout(inp + bias), Megatron's
// bias-dropout-add; bias may be NULL; out may alias res. Masks come from the
// key (k->p == 0 or k == NULL: no dropout); kept values are scaled by
// 1/(1-p). Backward: dinp = mask * dout / (1-p) (overwritten), dbias +=
// column sums of dinp; the residual's gradient is dout itself (the caller
// keeps it). dropout_forward/backward: in place on a (rows, h) block (the
// embedding output).
#define MT_OPS_DROPOUT(X)                                                                 \
    X(void, bias_dropout_add_forward, (real *out,        /* (rows, h) */                  \
                                       const real *res,  /* (rows, h) */                  \
                                       const real *inp,  /* (rows, h) */                  \
                                       const real *bias, /* (h) or NULL */                \
                                       const mt_dropout_key *k, mt_rows r, int h))        \
    X(void, bias_dropout_add_backward, (real *dinp,       /* (rows, h) */                 \
                                        real *dbias,      /* (h) accumulated, or NULL */  \
                                        const real *dout, /* (rows, h) */                 \
                                        const mt_dropout_key *k, mt_rows r, int h))       \
    X(void, dropout_forward, (real *x, const mt_dropout_key *k, mt_rows r, int h))        \
    X(void, dropout_backward, (real *dx, const mt_dropout_key *k, mt_rows r, int h))

// ---- embedding.c: vocab-parallel word embedding and learned positions ----------
// This rank holds rows [v0, v0 + vl) of the padded table. Tokens outside
// that range give zero rows (the caller sums over TP). Positions:
// x[r] += wpe[pos0 + r / b]; backward dwpe[pos0 + r / b] += dout[r]
// (partial over these rows under SP).
#define MT_OPS_EMBEDDING(X)                                                               \
    X(void, embedding_forward, (real *out,         /* (n, h) overwritten */               \
                                const int *tokens, /* (n) global ids */                   \
                                const real *wte,   /* (vl, h) local vocab shard */        \
                                int v0, int vl, int n, int h))                            \
    X(void, embedding_backward, (real *dwte,        /* (vl, h) accumulated */             \
                                 const real *dout,  /* (n, h) */                          \
                                 const int *tokens, /* (n) */                             \
                                 int v0, int vl, int n, int h))                           \
    X(void, position_forward, (real *x,         /* (rows, h) in place */                  \
                               const real *wpe, /* (positions, h) the whole table */      \
                               mt_rows r, int h))                                         \
    X(void, position_backward, (real *dwpe,       /* (positions, h) accumulated */        \
                                const real *dout, /* (rows, h) */                         \
                                mt_rows r, int h))

// ---- attention.c: causal multi-head self-attention core ------------------------
// After QKV, before the projection; grouped-query when sh.nkv < sh.nh.
// Scale 1/√hd. Attention dropout on the probabilities, keyed by (sample0 +
// batch column, head0 + local query head, query, key) through
// mt_rng_keep_attn_row; k NULL or p 0 disables it. W = (nh + 2 nkv) hd.
#define MT_OPS_ATTENTION(X)                                                               \
    X(void, attention_forward, (real *out,       /* (s, b, nh*hd) */                      \
                                real *probs,     /* (b, nh, s, s) softmax before dropout; saved */ \
                                const real *qkv, /* (s, b, W) */                    \
                                const mt_dropout_key *k, mt_attn_shape sh))               \
    X(void, attention_backward, (real *dqkv,        /* (s, b, W) overwritten */     \
                                 real *scratch,     /* (b, nh, s, s) workspace */         \
                                 const real *dout,  /* (s, b, nh*hd) */                   \
                                 const real *qkv,   /* (s, b, W) */                 \
                                 const real *probs, /* (b, nh, s, s) from forward */      \
                                 const mt_dropout_key *k, mt_attn_shape sh))

// ---- flash_attention.c: the same attention, blocked ------------------------------
// FlashAttention (Dao et al. 2022): query and key blocks of 64, an online
// softmax, and no (s, s) matrix kept or formed at once: per pair only a
// 64 x 64 block exists at a time. Forward saves the row log-sum-exp instead
// of the probabilities; backward recomputes the blocks from it. Same masks
// as the plain kernel (same keys).
#define MT_OPS_FLASH(X)                                                                   \
    X(void, flash_attention_forward, (real *out,       /* (s, b, nh*hd) */                \
                                      real *lse,       /* (b, nh, s) saved for backward */ \
                                      const real *qkv, /* (s, b, W) */              \
                                      const mt_dropout_key *k, mt_attn_shape sh))         \
    X(void, flash_attention_backward, (real *dqkv,       /* (s, b, W) overwritten */ \
                                       const real *dout, /* (s, b, nh*hd) */              \
                                       const real *qkv,  /* (s, b, W) */            \
                                       const real *out,  /* (s, b, nh*hd) from forward */ \
                                       const real *lse,  /* (b, nh, s) from forward */    \
                                       const mt_dropout_key *k, mt_attn_shape sh))

// ---- crossentropy.c: vocab-parallel softmax cross-entropy ------------------------
// Over a padded vocabulary, in three steps so the caller can all-reduce
// between them (Megatron's VocabParallelCrossEntropy). This rank holds logit
// columns [v0, v0+vl); global columns >= V (padding) are masked out: they
// never enter the max, the sum or the gradient.
//  1. xent_local_max: per-row max over this rank's valid columns (-inf when none);
//  2. after a MAX all-reduce of rmax, xent_local_sums: the sum of
//     exp(logit - rmax) over this rank's valid columns, and the target's logit
//     if this rank holds it, else 0;
//  3. after SUM all-reduces, xent_loss: loss[i] = log(sumexp) + rmax - tlogit.
// Backward: dlogits = scale * (softmax - onehot(target)), padding columns 0;
// no communication needed; dlogits may alias logits.
// Context parallelism (the p2p ring, src/layers_cp.c): block_forward
// attends the queries to one block of keys, out normalised over the
// visible ones and lse their log-sum-exp (-inf, out 0, where none is
// visible); block_merge folds such a partial result into the running one
// (weights exp(lse)); block_backward, given the final out and lse, ADDS the
// block's share to dq (Q columns of the queries' buffer) and to dkv (the
// block's packed K | V gradient). Dropout keyed by global positions, as the
// blocked kernel's.
#define MT_OPS_CP(X)                                                                      \
    X(void, attention_block_forward, (real *out,       /* (sq, b, nh hd) */                \
                                      real *lse,       /* (b, nh, sq) */                   \
                                      const real *q,   /* (sq, b, ldq) */                  \
                                      const real *kv,  /* (sk, b, 2 nkv hd) */             \
                                      const int *qpos, /* (sq) global positions */         \
                                      const int *kpos, /* (sk) */                          \
                                      const mt_dropout_key *k, mt_attn_block ab))         \
    X(void, attention_block_merge, (real *out,          /* (sq, b, nh hd) running */       \
                                    real *lse,          /* (b, nh, sq) running */          \
                                    const real *out_b,  /* (sq, b, nh hd) a block's */     \
                                    const real *lse_b,  /* (b, nh, sq) */                  \
                                    mt_attn_block ab))                                    \
    X(void, attention_block_backward, (real *dq,         /* (sq, b, ldq) accumulated */    \
                                       real *dkv,        /* (sk, b, 2 nkv hd) accumulated */ \
                                       const real *dout, /* (sq, b, nh hd) */              \
                                       const real *q, const real *kv,                     \
                                       const real *out,  /* (sq, b, nh hd) final */        \
                                       const real *lse,  /* (b, nh, sq) final */           \
                                       const int *qpos, const int *kpos,                  \
                                       const mt_dropout_key *k, mt_attn_block ab))

#define MT_OPS_XENT(X)                                                                    \
    X(void, xent_local_max, (real *rmax,         /* (n) */                                \
                             const real *logits, /* (n, vl) */                            \
                             int v0, int vl, int V, int n))                               \
    X(void, xent_local_sums, (real *sumexp,       /* (n) */                               \
                              real *tlogit,       /* (n) */                               \
                              const real *logits, /* (n, vl) */                           \
                              const real *rmax,   /* (n) global max */                    \
                              const int *targets, /* (n) global ids < V */                \
                              int v0, int vl, int V, int n))                              \
    X(void, xent_loss, (real *loss, const real *rmax, const real *sumexp, const real *tlogit, int n)) \
    X(void, xent_backward, (real *dlogits,                        /* (n, vl) */           \
                            const real *logits,                   /* (n, vl) */           \
                            const real *rmax, const real *sumexp, /* (n) global */        \
                            const int *targets,                   /* (n) */               \
                            real scale, int v0, int vl, int V, int n))

// ---- adamw.c: the optimizer and vector helpers ----------------------------------
// AdamW as Megatron (apex FusedAdam, adam_w_mode) with bias correction:
//   g = gscale * grad (gscale: the global-norm clip coefficient, 1 for none)
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )
// t is the 1-based step; grad is read, then zeroed: the next step
// accumulates into it, and the separate zeroing pass this replaces cost 11
// ms of a 124M step (memset's own sweep over 0.5 GB; the zeros written here
// ride on lines AdamW has in cache anyway). sumsq_parts: the global
// gradient norm's partial sums, part[c] = Σ g² in double over block c,
// the elements [c, c + 1) * MT_SUMSQ_BLOCK of [0, n); part is host memory
// of ceil(n / MT_SUMSQ_BLOCK) entries. Fixed blocks, added by the caller
// in order, make the norm independent of threads and of when each block
// was summed (src/gradnorm.c sums them as gradients become final).
// scale_sumsq_parts: x *= s, then sumsq_parts of the result, in one pass
// (the same bits as the two calls; DP's gradient average). scale:
// x *= s. add: y += x. round_bf16: dst = src rounded to bf16
// (include/bf16.h; dst may alias src), the one rounding of --bf16.
#define MT_SUMSQ_BLOCK 16384
#define MT_OPS_OPTIM(X)                                                                   \
    X(void, adamw_update, (real *p, real *g, real gscale, real *m, real *v, size_t n, int t, real lr, \
                           real b1, real b2, real eps, real wd))                          \
    X(void, sumsq_parts, (const real *g, size_t n, double *part))                         \
    X(void, scale_sumsq_parts, (real *x, size_t n, real s, double *part))                 \
    X(void, scale, (real *x, size_t n, real s))                                           \
    X(void, add, (real *y, const real *x, size_t n))                                      \
    X(void, round_bf16, (real *dst, const real *src, size_t n))

// ---- the fused sweeps (docs/design.md, "Fused sweeps") --------------------------
// Each is a chain of the ops above done in one pass over memory, with the
// same arithmetic in the same order, so its results are bitwise those of
// the chain (tests/test_ops_fused.c). bf16 (--bf16): the values the chain
// would round to bf16 between its steps are rounded here, in the sweep.
//  - gelu_fused_forward: under bf16 inp is first rounded IN PLACE (the
//    saved fc1 output), then out = gelu(inp), rounded. (The fc1 bias is
//    already inside the GEMM: matmul_forward seeds out with it.)
//  - gelu_fused_backward: dinp = gelu'(inp) * dout (dout read as bf16 under
//    bf16, dinp rounded), and dbias += the column sums of dinp, the fc1
//    bias gradient that matmul_backward would otherwise sum in a second
//    pass (then called with dbias NULL). dinp may alias dout.
//  - bias_dropout_add_fused_forward/backward: the ops of the same name in
//    one sweep, out (dinp) rounded under bf16; backward's dbias sums the
//    unrounded dinp, as the chain does.
//  - xent_fused: the cross-entropy with the whole vocabulary on this rank
//    (TP 1: v0 0, vl the padded V): per row, max, sum of exponentials, loss,
//    and when dscale is nonzero the gradient, written over the logits in
//    place while the row is in cache: the (n, vl) logits are read from
//    memory once and written once. Under bf16 the logits are read as bf16
//    and the gradient rounded. rmax and sumexp (n) are outputs, as the
//    three-step path leaves them.
//  - adamw_fused: adamw_update, and pbf (NULL: none) = p rounded to bf16 in
//    the same pass (the --bf16 compute copy).
#define MT_OPS_FUSED(X)                                                                   \
    X(void, gelu_fused_forward, (real *out,  /* (n) */                                    \
                                 real *inp,  /* (n) rounded in place under bf16 */        \
                                 size_t n, int bf16))                                     \
    X(void, gelu_fused_backward, (real *dinp,       /* (n, f) may alias dout */           \
                                  real *dbias,      /* (f) accumulated, or NULL */        \
                                  const real *inp,  /* (n, f) */                          \
                                  const real *dout, /* (n, f) */                          \
                                  int n, int f, int bf16))                                \
    X(void, bias_dropout_add_fused_forward, (real *out,        /* (rows, h) may alias res */ \
                                             const real *res,  /* (rows, h) */            \
                                             const real *inp,  /* (rows, h) */            \
                                             const real *bias, /* (h) or NULL */          \
                                             const mt_dropout_key *k, mt_rows r, int h, int bf16)) \
    X(void, bias_dropout_add_fused_backward, (real *dinp,       /* (rows, h) */           \
                                              real *dbias,      /* (h) accumulated, or NULL */ \
                                              const real *dout, /* (rows, h) */           \
                                              const mt_dropout_key *k, mt_rows r, int h, int bf16)) \
    X(void, xent_fused, (real *loss,         /* (n) */                                    \
                         real *rmax,         /* (n) */                                    \
                         real *sumexp,       /* (n) */                                    \
                         real *logits,       /* (n, vl) in; the gradient out when dscale != 0 */ \
                         const int *targets, /* (n) ids < V */                            \
                         real dscale, int V, int vl, int n, int bf16))                    \
    X(void, adamw_fused, (real *p, real *pbf, real *g, real gscale, real *m, real *v, size_t n, int t, \
                          real lr, real b1, real b2, real eps, real wd))

#define MT_OPS(X)                                                                         \
    MT_OPS_MATMUL(X) MT_OPS_NORM(X) MT_OPS_GELU(X) MT_OPS_SWIGLU(X) MT_OPS_ROPE(X)        \
    MT_OPS_DROPOUT(X) MT_OPS_EMBEDDING(X)                                                 \
    MT_OPS_ATTENTION(X) MT_OPS_FLASH(X) MT_OPS_CP(X) MT_OPS_XENT(X) MT_OPS_OPTIM(X)      \
    MT_OPS_FUSED(X)

// The CPU reference functions, declared from the list.
#define MT_OP_CPU_DECL(ret, name, params) ret mt_##name params;
MT_OPS(MT_OP_CPU_DECL)
#undef MT_OP_CPU_DECL

// Σ g² in double: sumsq_parts' parts added in block order (not an op).
double mt_sumsq(const real *g, size_t n);

// Row-major GEMM through OpenBLAS (sgemm/dgemm by build), the CPU kernels'
// building block (not an op): C = alpha * op(A) * op(B) + beta * C, op =
// transpose when ta/tb is set. A is (m, k) after op, B is (k, n) after op,
// C is (m, n).
void mt_gemm(int ta, int tb, int m, int n, int k, real alpha, const real *a, int lda,
             const real *b, int ldb, real beta, real *c, int ldc);

#endif
