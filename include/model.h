// model.h: one pipeline stage's share of GPT-2: its parameter shards, gradient
// and optimizer arenas, activation slots (one per micro-batch in flight) and
// workspaces, all allocated through one accounting table.
#ifndef MT_MODEL_H
#define MT_MODEL_H

#include "common.h"
#include "config.h"
#include "parallel.h"

// How a parameter is split over TP (global shape (rows, cols)).
typedef enum {
    MT_SPLIT_NONE,  // replicated on every TP rank
    MT_SPLIT_ROWS,  // column-parallel weights/biases and the vocab: rows [r*lr, (r+1)*lr)
    MT_SPLIT_COLS,  // row-parallel weights: columns [r*lc, (r+1)*lc)
    MT_SPLIT_QKV,   // QKV: each of the Q, K, V row blocks split like MT_SPLIT_ROWS
} mt_split;

typedef struct {
    char name[64];          // e.g. "h.3.attn.qkv.weight" (DESIGN §7)
    int layer;              // global layer, -1 outside the blocks
    int ndim;               // 1 or 2
    int64_t rows, cols;     // global shape (cols 1 for vectors)
    int64_t lrows, lcols;   // this rank's shard
    mt_split split;
    int tp_replicated;      // same value on every TP rank: counted once in the norm
    int sp_partial;         // under SP its gradient is a partial sum over s/t rows
    int decay;              // weight decay applies (2-D weights only, as Megatron)
    double std;             // init std; 0 means constant `init_value`
    double init_value;
    size_t off, n;          // offset and length in the stage's arenas
} mt_param;

// The weights (or gradients) of one transformer layer, local shards.
typedef struct {
    real *ln1w, *ln1b;      // (h)
    real *qkvw, *qkvb;      // (3h/t, h), (3h/t)
    real *projw, *projb;    // (h, h/t), (h)
    real *ln2w, *ln2b;      // (h)
    real *fc1w, *fc1b;      // (4h/t, h), (4h/t)
    real *fc2w, *fc2b;      // (h, 4h/t), (h)
} mt_layer_w;

// Saved activations of one layer for one micro-batch (local shapes; n = s*b
// rows, nl = s/t*b under SP and n otherwise).
typedef struct {
    real *ln1, *ln1_mean, *ln1_rstd;  // (nl, h), (nl), (nl)
    real *qkv;                        // (n, 3h/t)
    real *probs;                      // (b, a/t, s, s)
    real *atty;                       // (n, h/t)
    real *x2;                         // (nl, h) residual after attention
    real *ln2, *ln2_mean, *ln2_rstd;  // (nl, h), (nl), (nl)
    real *fc1;                        // (n, 4h/t) before GELU
    real *gelu;                       // (n, 4h/t)
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

// Bytes per element by category. The trainer uses its real type for all
// and keeps two AdamW moments per optimizer element; the planner can count
// a GPU run's mixed precision instead (tools/plan --bf16).
typedef struct { int param, grad, act, optim; } mt_elem_bytes;

// Memory categories, each measured from its allocations.
typedef enum { MT_MEM_PARAMS, MT_MEM_GRADS, MT_MEM_OPTIM, MT_MEM_ACTS, MT_MEM_WORK, MT_MEM_N } mt_mem_kind;
extern const char *const mt_mem_names[MT_MEM_N];

struct mt_backend;
typedef struct {
    const struct mt_backend *be;  // kernels and buffers (backend.h): CPU, or CUDA in CUDA=1 builds
    const mt_config *cfg;
    const mt_parallel *par;
    // dimensions (local where marked)
    int h, nh, hd, s, b, V, Vp;
    int nh_l, h_l, ff_l, v_l, v0;   // local heads, h/t, 4h/t, Vp/t, first vocab row
    int s_l, pos0;                  // rows of s held (s/t under SP), first position
    int n, n_l;                     // s*b, s_l*b
    // parameters
    int nparams;
    mt_param *params;
    size_t nelem;                   // elements of the parameters
    size_t nelem_pad;               // arena length: nelem rounded up to a multiple of dp
    size_t shard0, shard_n;         // this DP rank's optimizer shard (distributed optimizer)
    real *param_mem, *grad_mem, *m_mem, *v_mem;
    real *wte, *dwte, *wpe, *dwpe, *lnfw, *lnfb, *dlnfw, *dlnfb;  // NULL if absent
    int nchunks;
    mt_chunk *chunks;
    // workspaces shared by all layers and micro-batches
    real *w_gath;      // (n, h)    g's output
    real *w_part;      // (n, h)    row-parallel partial sums; head: dlnf gathered
    real *w_dres;      // (nl, h)   running residual gradient
    real *w_dtmp;      // (nl, h)
    real *w_dqkv;      // (n, 3h/t)
    real *w_datty;     // (n, h/t)
    real *w_dff;       // (n, 4h/t)
    real *w_dprobs;    // (b, a/t, s, s)
    real *w_logits;    // (n, Vp/t)
    real *w_lnf, *w_lnf_mean, *w_lnf_rstd;  // (nl, h), (nl), (nl)
    real *w_xent;      // (4n) row max, sumexp, target logit, loss
    // Recomputation: one group's activations, shared by all slots, refilled
    // by re-running the forward in backward (Korthikanti et al. 2022 §5).
    int rc_len;                     // layers per recompute group (0: none)
    mt_layer_acts *rc_acts;         // rc_len
    real **rc_x;                    // rc_len: inputs of a group's inner layers
    real *w_xscratch;               // (nl, h) a recomputed group's output (discarded)
    real *w_probs;                  // (b, a/t, s, s) selective: probabilities of the layer in backward
    size_t act_layer_bytes;         // activation bytes the slots hold for transformer layers
    size_t mem[MT_MEM_N];           // bytes allocated per category
    int dry;                        // planning only: count bytes, allocate nothing
    mt_elem_bytes eb;
} mt_model;

// Builds the stage's parameter table, allocates everything and initialises
// the parameters from the counter-based generator (DESIGN §1).
// `slots_per_chunk` = micro-batches in flight that the schedule needs.
void mt_model_init(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk);
// The same construction without allocating or initialising anything: every
// size lands in m->mem exactly as mt_model_init would allocate it (the
// planner, tools/plan). eb NULL: this build's element sizes.
void mt_model_plan(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk, const mt_elem_bytes *eb);
void mt_model_free(mt_model *m);

// Global (row, col) of local element (i, j) of parameter `pr` on TP rank r.
void mt_param_global_index(const mt_param *pr, int tp_rank, int64_t i, int64_t j, int64_t *gi, int64_t *gj);

const mt_param *mt_model_find(const mt_model *m, const char *name);

#endif
