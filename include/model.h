// model.h: one pipeline stage's share of the model: its parameter shards
// (from the tables of params.h), gradient and optimizer arenas, activation
// slots (one per micro-batch in flight) and workspaces, all allocated through
// one accounting table.
#ifndef MT_MODEL_H
#define MT_MODEL_H

#include "common.h"
#include "config.h"
#include "parallel.h"
#include "ops.h"
#include "params.h"

// One tensor instance on this rank: a row of params.h with the config's
// shape, this rank's shard and where it sits in the arenas.
typedef struct {
    char name[64];          // e.g. "h.3.attn.qkv.weight" (checkpoints, dumps)
    const mt_param_def *def;
    int index;              // its row: mt_layer_param (layer >= 0) or mt_top_param
    int layer;              // global layer, -1 outside the blocks
    int ndim;               // 1 or 2
    int64_t rows, cols;     // global shape (cols 1 for vectors)
    int64_t lrows, lcols;   // this rank's shard
    int nblocks;            // row blocks (MT_SPLIT_ROWS cuts each into tp parts)
    int64_t block[3];       // their global rows
    mt_split split;
    // Ownership (Megatron's param_is_not_tensor_parallel_duplicate and
    // shared-embedding attributes); the predicates below read only these.
    int tp_replicated;      // every TP rank holds the same values
    int tied;               // the first and the last stage each hold a copy (PP > 1)
    int sp_partial;         // under SP its gradient is a partial sum over s/t rows
    int decay;              // weight decay applies
    double std;             // init std; 0 means constant `init_value`
    double init_value;
    size_t off, n;          // offset and length in the stage's arenas
} mt_param;

// Row and width symbols of the activation and workspace tables, local sizes:
// rows N = s*b, NL = the rows this rank keeps (s/t*b under SP, else N), S =
// s (one per position); widths per row: ONE, FOUR, H, QKV ((a + 2 g)/t head
// dims: Q, K, V), HL (h/t), FF (ffn/t), FC1 (ffn/t, twice that with
// SwiGLU's gate and up), PROBS (a/t * s: the (b, a/t, s, s) probabilities),
// LSE (a/t), VL (Vp/t), ROT (RoPE's rotated dims: cos and sin of each pair),
// KV2 (2 g/t head dims: a packed K | V block of context parallelism's ring),
// KVALL (C times that: every CP rank's K | V block, gathered).
// PROBS counts every key of the sequence the attention core sees: s, or
// with the a2a context parallelism the whole sequence for a/(t C) heads.
typedef enum { MT_R_N, MT_R_NL, MT_R_S } mt_rows_sym;
typedef enum {
    MT_W_ONE, MT_W_FOUR, MT_W_H, MT_W_QKV, MT_W_HL, MT_W_FF, MT_W_FC1, MT_W_PROBS, MT_W_LSE, MT_W_VL, MT_W_ROT, MT_W_KV2, MT_W_KVALL
} mt_width_sym;
// When a buffer exists: always; the plain or the blocked attention kernel
// (context parallelism's ring and all-gather are blocked); LayerNorm
// (RMSNorm keeps no mean); SwiGLU; RoPE; the head stage; selective
// recomputation of the plain kernel; full recomputation; context
// parallelism's blocks merged by log-sum-exp (ring or all-gather), its
// ring, its all-to-all, its all-gather.
typedef enum {
    MT_BUF_ALWAYS, MT_BUF_PLAIN, MT_BUF_FLASH, MT_BUF_LN, MT_BUF_GLU, MT_BUF_ROPE, MT_BUF_HEAD,
    MT_BUF_SELECTIVE, MT_BUF_RECOMPUTE, MT_BUF_CPBLOCK, MT_BUF_RING, MT_BUF_A2A, MT_BUF_AG
} mt_buf_when;

// The activation fields of one layer: X(field, rows, width, when).
#define MT_LAYER_ACTS(X)                                                                  \
    X(ln1, NL, H, ALWAYS)       /* LN1 output */                                         \
    X(ln1_mean, NL, ONE, LN)     /* LN1 statistics, saved for backward */                 \
    X(ln1_rstd, NL, ONE, ALWAYS)                                                         \
    X(qkv, N, QKV, ALWAYS)      /* (n, W) Q, K (rotated under RoPE), V */                \
    X(probs, N, PROBS, PLAIN)    /* (b, a/t, s, s) softmax probabilities */               \
    X(lse, N, LSE, FLASH)        /* (b, a/t, s) row log-sum-exp of the blocked kernel */  \
    X(atty, N, HL, ALWAYS)      /* attention output (n, h/t) */                          \
    X(x2, NL, H, ALWAYS)        /* residual after attention */                           \
    X(ln2, NL, H, ALWAYS)                                                                \
    X(ln2_mean, NL, ONE, LN)                                                              \
    X(ln2_rstd, NL, ONE, ALWAYS)                                                         \
    X(fc1, N, FC1, ALWAYS)      /* (n, ffn/t) before GELU; (n, 2 ffn/t) gate | up */      \
    X(act, N, FF, ALWAYS)       /* (n, ffn/t) GELU or SwiGLU output, fc2's input */

typedef enum {
#define X(field, ...) MT_ACT_##field,
    MT_LAYER_ACTS(X)
#undef X
    MT_ACT_N
} mt_act;

// Saved activations of one layer for one micro-batch (NULL: not kept).
typedef union {
    struct {
#define X(field, ...) real *field;
        MT_LAYER_ACTS(X)
#undef X
    };
    real *t[MT_ACT_N];
} mt_layer_acts;

// One micro-batch in flight through one model chunk.
typedef struct {
    int *tokens, *targets;   // (s, b) global ids; first / last stage only
    real **x;                // nlayers+1 residual buffers (nl, h): x[0] input
    mt_layer_acts *acts;     // nlayers
    real *dsend;             // (nl, h) gradient in flight to the previous stage (not on the embedding chunk)
    uint32_t sample0;        // global index of the micro-batch's first sample
    real loss;               // last chunk: mean loss of this micro-batch
} mt_slot;

// A contiguous run of layers on this stage (one virtual stage).
typedef struct {
    int layer0, nlayers;     // global index of the first layer
    int has_embed, has_head;
    mt_layer_w *w, *dw;      // nlayers
    // Full recomputation: layer l is recomputed in backward from the input
    // of its group, which starts at local layer rc_group0[l] (-1: stored).
    int *rc_group0;          // nlayers
    int nslots;
    mt_slot *slots;
} mt_chunk;

// Workspaces shared by all layers and micro-batches of the stage. Each has
// one role; the comment says from when to when its contents matter. (n =
// s*b rows, nl = the rows this rank keeps.) X(field, rows, width, when).
#define MT_WORKSPACE(X)                                                                                     \
    X(gath, N, H, ALWAYS)    /* g's output: from the all-gather to the GEMM that reads it */              \
    X(part, N, H, ALWAYS)    /* row-parallel partial sums, until f̄/ḡ sums them; the head's dlnf */       \
    X(dres, NL, H, ALWAYS)   /* the residual gradient, through a chunk's backward */                       \
    X(dtmp, NL, H, ALWAYS)   /* a summed (nl, h) branch: f̄/ḡ's output, bias-dropout-add's gradient */     \
    X(dln, NL, H, ALWAYS)    /* a norm's input gradient, until added into dres */                          \
    X(dqkv, N, QKV, ALWAYS)  /* attention's input gradient; the recomputed core output before it */       \
    X(datty, N, HL, ALWAYS)  /* the attention output's gradient */                                         \
    X(dff, N, FF, ALWAYS)    /* fc2's input gradient; with GELU, fc1's output gradient (in place) */       \
    X(dfc1, N, FC1, GLU)      /* SwiGLU: fc1's output gradient (gate | up) */                               \
    X(dprobs, N, PROBS, PLAIN) /* the probabilities' gradient inside attention backward */                  \
    X(logits, N, VL, HEAD)    /* the logits shard, then (in place) their gradient */                        \
    X(lnf, NL, H, HEAD)       /* final norm output and statistics, forward to backward of the head */      \
    X(lnf_mean, NL, ONE, HEAD)                                                                              \
    X(lnf_rstd, NL, ONE, HEAD)                                                                              \
    X(xent, N, FOUR, HEAD)    /* per row: max, sum of exp, target logit, loss */                            \
    X(probs, N, PROBS, SELECTIVE) /* selective recomputation: the layer in backward's probabilities */      \
    X(xscratch, NL, H, RECOMPUTE) /* a recomputed group's output (discarded) */                             \
    X(rope_cs, S, ROT, ROPE)  /* RoPE: cos | sin of each row's global position, filled once */            \
    X(kv_cur, N, KV2, RING)   /* the ring: the K | V block attended now (this rank's, then others') */    \
    X(kv_next, N, KV2, RING)  /* the ring: the next block, arriving while kv_cur is attended */           \
    X(dkv_cur, N, KV2, RING)  /* the ring, backward: the current block's dK | dV, travelling with it */   \
    X(dkv_next, N, KV2, RING)                                                                             \
    X(out_b, N, HL, CPBLOCK)  /* ring, all-gather: one block's partial output, merged into the running one */ \
    X(lse_b, N, LSE, CPBLOCK) /* its log-sum-exps */                                                      \
    X(kv_own, N, KV2, AG)     /* the all-gather: this rank's K | V block, its send buffer (read meanwhile) */ \
    X(kv_all, N, KVALL, AG)   /* the all-gather: every CP rank's K | V block, block d from CP rank d */    \
    X(dkv_all, N, KVALL, AG)  /* its backward: this rank's share of every block's dK | dV, reduce-scattered */ \
    X(cp_send, N, QKV, A2A)   /* the all-to-all's send blocks (one per CP rank) */                         \
    X(cp_recv, N, QKV, A2A)   /* and its received blocks */                                                \
    X(qkv_h, N, QKV, A2A)     /* QKV split by heads: the whole sequence, a/(tC) heads */                  \
    X(atty_h, N, HL, A2A)     /* the attention output in that split */                                    \
    X(datty_h, N, HL, A2A)    /* its gradient */                                                          \
    X(dqkv_h, N, QKV, A2A)    /* the head-split QKV gradient, before the all-to-all back */

typedef struct {
#define X(field, ...) real *field;
    MT_WORKSPACE(X)
#undef X
} mt_workspace;

// Bytes per element by category. The trainer uses its real type for all
// and keeps two AdamW moments per optimizer element. Under --bf16 it counts
// what Megatron's mixed precision holds: bf16 weights and activations (2),
// fp32 gradients (4), and per optimizer element the fp32 main weight and
// two moments (12). The emulation stores bf16 values in fp32 slots, so the
// process holds more than it reports; the report is a GPU run's.
typedef struct { int param, grad, act, optim; } mt_elem_bytes;
mt_elem_bytes mt_elem_bytes_of(const mt_config *c);

// Memory categories, each measured from its allocations.
typedef enum { MT_MEM_PARAMS, MT_MEM_GRADS, MT_MEM_OPTIM, MT_MEM_ACTS, MT_MEM_WORK, MT_MEM_N } mt_mem_kind;
extern const char *const mt_mem_names[MT_MEM_N];

struct mt_backend;
typedef struct {
    const struct mt_backend *be;  // kernels and buffers (backend.h): CPU, or CUDA in CUDA=1 builds
    const mt_config *cfg;
    const mt_parallel *par;
    // dimensions (local where marked)
    int h, nh, hd, s, b, V, Vp;     // s: the positions this rank's QKV holds (s_full / CP)
    int s_full;                     // --seq-length
    int nh_l, h_l, ff_l, v_l, v0;   // local heads, h/t, ffn/t, Vp/t, first vocab row
    int nkv_l, qkv_l, fc1_l;        // local KV heads, QKV row width, fc1 output width
    int rot;                        // RoPE's rotated dims per head (0: learned positions)
    int cp_ring, cp_a2a, cp_ag;     // context parallelism's attention: a K/V ring, an all-to-all, or an all-gather
    int cp_hier;                    // a2a+p2p: an all-to-all within groups of A, then a ring of P over them
    int cp_blocks;                  // ring, all-gather or a2a+p2p: the blocked kernel, blocks merged by log-sum-exp
    int *cp_pos;                    // (C, s) every CP rank's global positions, in its local order
    int *cp_pos_host;               // the same on the host, for host-side indexing (layers_cp.c)
    int *hcp_pos;                   // a2a+p2p: (P, A s) each ring member's positions after its all-to-all
    int s_l, pos0;                  // positions of s held (s/t under SP), the first one's local index
    int n, n_l;                     // s*b, s_l*b
    mt_norm norm;                   // the normalisation every norm op of the model uses
    // parameters
    int nparams;
    mt_param *params;
    size_t nelem;                   // elements of the parameters
    size_t nelem_pad;               // arena length: nelem rounded up to a multiple of dp
    size_t shard0, shard_n;         // this DP rank's optimizer shard (distributed optimizer)
    int shard_grads_zero;           // the last AdamW left the shard's gradients at zero (mt_grad_zero)
    real *param_mem, *grad_mem, *m_mem, *v_mem;
    // --bf16: param_mem holds the bf16 weights every op reads, and main_mem
    // the fp32 main weights of this rank's optimizer shard (indexed like
    // m_mem), which AdamW updates and checkpoints save. NULL otherwise.
    real *main_mem;
    int bf16;                       // --bf16: activations and their gradients rounded (layers.c)
    int fused;                      // the fused sweeps (ops.h MT_OPS_FUSED); 0 only under MT_INJECT_BUG=unfused
    int fused_gelu, fused_bda;      // GELU's and bias-dropout-add's sweeps: fused, less Megatron's --no-*-fusion
    mt_top_w w, dw;                 // the non-layer tensors (NULL where absent) and their gradients
    real *sp_pack;                  // the SP-partial gradients packed for one TP all-reduce
    struct mt_buckets *gb;          // gradient buckets (the trainer's; NULL when planning)
    struct mt_gradnorm *gn;         // the gradient norm's parts (gradnorm.h; NULL when planning)
    size_t sp_pack_n;
    // --overlap-p2p-communication: where the early pipeline receives land,
    // [0] activations, [1] gradients (NULL where this stage receives none);
    // copied into the slot (or dres) when the data is used.
    real *pp_rbuf[2];
    int nchunks;
    mt_chunk *chunks;
    mt_workspace ws;
    // Full recomputation: one group's activations, shared by all slots,
    // refilled by re-running the forward in backward (Korthikanti et al. 2022 §5).
    int rc_len;                     // layers per recompute group (0: none)
    mt_layer_acts *rc_acts;         // rc_len
    real **rc_x;                    // rc_len: inputs of a group's inner layers
    size_t act_layer_bytes;         // activation bytes the slots hold for transformer layers
    size_t mem[MT_MEM_N];           // bytes allocated per category
    int dry;                        // planning only: count bytes, allocate nothing
    mt_elem_bytes eb;
} mt_model;

// Builds the stage's parameter table, allocates everything and initialises
// the parameters from the counter-based generator (docs/design.md §1).
// `slots_per_chunk` = micro-batches in flight that the schedule needs.
void mt_model_init(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk);
// The same construction without allocating or initialising anything: every
// size lands in m->mem exactly as mt_model_init would allocate it (the
// planner, tools/plan). eb NULL: this build's element sizes.
void mt_model_plan(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk, const mt_elem_bytes *eb);
void mt_model_free(mt_model *m);

// Every tensor of the whole model (all stages, all layers) with its global
// shape and no shard: what files store. Caller frees.
mt_param *mt_params_global(const mt_config *c, int *n);

// The sizes of the activation and workspace tables' symbols on this rank,
// and whether a buffer of condition `when` exists (what allocation uses).
size_t mt_model_rows_sym(const mt_model *m, mt_rows_sym r);
size_t mt_model_width_sym(const mt_model *m, mt_width_sym w);
int mt_model_buf_wanted(const mt_model *m, mt_buf_when when);

// Where local positions [first, first + count) of this rank's sequence sit
// globally (mt_rows; rows = count * b): with context parallelism the rank
// holds chunks cp_rank and 2C-1-cp_rank of the 2C chunks.
mt_rows mt_model_rows(const mt_model *m, int first, int count, uint32_t sample0);

// Global (row, col) of local element (i, j) of parameter `pr` on TP rank r.
void mt_param_global_index(const mt_param *pr, int tp_rank, int64_t i, int64_t j, int64_t *gi, int64_t *gj);

const mt_param *mt_model_find(const mt_model *m, const char *name);

// The part of parameter p inside this rank's optimizer shard (the
// distributed optimizer's 1/dp of the arena; all of it otherwise), as [a, b)
// offsets into the arenas; empty when a >= b.
void mt_param_shard(const mt_model *m, const mt_param *p, size_t *a, size_t *b);

// Ownership predicates (from the attributes, never from names).
// This rank's copy is the one counted in the gradient norm: TP rank 0 for a
// TP-replicated tensor, the first stage for a tied one.
int mt_param_counts_in_norm(const mt_model *m, const mt_param *p);
// This rank's copy is the one written to files: as above, and DP rank 0
// when every DP rank holds the same values (dp_copies).
int mt_param_is_writer(const mt_model *m, const mt_param *p, int dp_copies);
// The groups whose sum the gradient needs before the optimizer, besides the
// data-parallel average every tensor gets: a bit (1 << g) per mt_group.
unsigned mt_param_grad_groups(const mt_model *m, const mt_param *p);

#endif
