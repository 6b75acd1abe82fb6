// params.h: every tensor of the model, described once.
//
// One row per tensor. Everything else is driven by these rows: the arenas
// and their offsets, the per-layer pointer tables (mt_layer_w, mt_top_w),
// initialisation, TP sharding and the unsharded file views, checkpoints, the
// llm.c and Hugging Face files, weight decay, the gradient-norm and gradient
// sync rules, and the communication accounting. To add a tensor, add a row
// (docs/design.md, "Adding a tensor").
//
// Columns of a layer row (MT_LAYER_PARAMS):
//   field   its pointer in mt_layer_w (weights) and in the gradient table
//   name    the suffix of "h.<layer>.<name>", the name in checkpoints and dumps
//   r0..r2  the global rows as up to three blocks of dims (MT_PARAM_DIMS;
//           NONE ends the list). A row split (column-parallel) cuts every
//           block into tp parts, so each rank holds matching parts of Q, K
//           and V, or of SwiGLU's gate and up
//   cols    the global columns (ONE: a vector)
//   split   how TP splits it (mt_split)
//   init    how it starts (mt_init)
//   decay   AdamW weight decay applies (Megatron: 2-D weights, not biases or norms)
//   when    the config condition under which it exists (MT_PARAM_WHEN)
//   llmc    it is in llm.c's model file (which stores layer tensors kind by
//           kind in this table's order)
//   gpt2    its name in a Hugging Face GPT2LMHeadModel, after "transformer.h.<layer>."
//   tr      1: GPT-2 stores it transposed (its Conv1D keeps (in, out))
//   llama   its name in a LlamaForCausalLM, after "model.layers.<layer>.";
//           "a|b|c" names one tensor per row block (q_proj, k_proj, v_proj)
//
// Rows of the non-layer table (MT_TOP_PARAMS) add `where`: the pipeline
// stage that holds it (mt_where); their names are whole. Their order, with
// the layers in between, is llm.c's file order.
#ifndef MT_PARAMS_H
#define MT_PARAMS_H

#include "config.h"

// Dims a shape is made of: X(name, value under the config `c`). NONE ends
// a row-block list; a dim of value 0 is an empty block.
#define MT_PARAM_DIMS(X)                                                                     \
    X(NONE, 0)                                                                               \
    X(ONE, 1)                                                                                \
    X(H, c->hidden_size)                                     /* hidden size */               \
    X(Q, c->hidden_size)                                     /* query width: heads x head dim */ \
    X(KV, (int64_t)mt_param_kv_heads(c) * (c->hidden_size / c->num_heads)) /* K (or V) width */ \
    X(FF, mt_param_ffn(c))                                   /* MLP hidden size */           \
    X(GLU, c->swiglu ? mt_param_ffn(c) : 0)                  /* SwiGLU's up block */         \
    X(VP, c->padded_vocab)                                   /* padded vocabulary */         \
    X(POS, c->max_position_embeddings)                       /* learned positions */

typedef enum {
#define X(name, value) MT_DIM_##name,
    MT_PARAM_DIMS(X)
#undef X
} mt_dim;

// How a tensor is split over TP (global shape (rows, cols)).
typedef enum {
    MT_SPLIT_NONE,  // replicated on every TP rank
    MT_SPLIT_ROWS,  // column-parallel weights and biases, the vocabulary: every row block cut in tp parts
    MT_SPLIT_COLS,  // row-parallel weights: columns cut in tp parts
} mt_split;

typedef enum {
    MT_INIT_NORMAL,  // N(0, --init-method-std)
    MT_INIT_SCALED,  // N(0, std / sqrt(2 L)): output projections (GPT-2, Megatron's scaled init)
    MT_INIT_ONES,
    MT_INIT_ZEROS,
} mt_init;

// Config conditions a tensor exists under: X(name, condition on `c`).
#define MT_PARAM_WHEN(X)                                            \
    X(ALWAYS, 1)                                                    \
    X(LAYERNORM, c->normalization == MT_NORM_LAYERNORM) /* RMSNorm has no bias */ \
    X(BIAS, !c->disable_bias_linear)                                \
    X(LEARNED, c->position_embedding == MT_POS_LEARNED) /* no table under RoPE */ \
    X(UNTIED, c->untie_embeddings)

typedef enum {
#define X(name, cond) MT_WHEN_##name,
    MT_PARAM_WHEN(X)
#undef X
} mt_when;

// Which pipeline stage holds a non-layer tensor.
typedef enum {
    MT_AT_FIRST,  // the first stage (the embedding's)
    MT_AT_LAST,   // the last stage (the head's)
    MT_AT_TIED,   // the embedding: the first stage, and the last too when it is
                  // also the LM head (not --untie-embeddings-and-output-weights);
                  // with PP > 1 each end then holds a copy and their gradients are summed
} mt_where;

#define MT_LAYER_PARAMS(X)                                                                                    \
    X(ln1w, "ln_1.weight", H, NONE, NONE, ONE, NONE, ONES, 0, ALWAYS, 1, "ln_1.weight", 0,                     \
      "input_layernorm.weight")                                                                              \
    X(ln1b, "ln_1.bias", H, NONE, NONE, ONE, NONE, ZEROS, 0, LAYERNORM, 1, "ln_1.bias", 0, "")                 \
    X(qkvw, "attn.qkv.weight", Q, KV, KV, H, ROWS, NORMAL, 1, ALWAYS, 1, "attn.c_attn.weight", 1,              \
      "self_attn.q_proj.weight|self_attn.k_proj.weight|self_attn.v_proj.weight")                               \
    X(qkvb, "attn.qkv.bias", Q, KV, KV, ONE, ROWS, ZEROS, 0, BIAS, 1, "attn.c_attn.bias", 0,                   \
      "self_attn.q_proj.bias|self_attn.k_proj.bias|self_attn.v_proj.bias")                                     \
    X(projw, "attn.proj.weight", H, NONE, NONE, Q, COLS, SCALED, 1, ALWAYS, 1, "attn.c_proj.weight", 1,        \
      "self_attn.o_proj.weight")                                                                             \
    X(projb, "attn.proj.bias", H, NONE, NONE, ONE, NONE, ZEROS, 0, BIAS, 1, "attn.c_proj.bias", 0,             \
      "self_attn.o_proj.bias")                                                                               \
    X(ln2w, "ln_2.weight", H, NONE, NONE, ONE, NONE, ONES, 0, ALWAYS, 1, "ln_2.weight", 0,                     \
      "post_attention_layernorm.weight")                                                                     \
    X(ln2b, "ln_2.bias", H, NONE, NONE, ONE, NONE, ZEROS, 0, LAYERNORM, 1, "ln_2.bias", 0, "")                 \
    X(fc1w, "mlp.fc1.weight", FF, GLU, NONE, H, ROWS, NORMAL, 1, ALWAYS, 1, "mlp.c_fc.weight", 1,              \
      "mlp.gate_proj.weight|mlp.up_proj.weight")                                                             \
    X(fc1b, "mlp.fc1.bias", FF, GLU, NONE, ONE, ROWS, ZEROS, 0, BIAS, 1, "mlp.c_fc.bias", 0,                   \
      "mlp.gate_proj.bias|mlp.up_proj.bias")                                                                 \
    X(fc2w, "mlp.fc2.weight", H, NONE, NONE, FF, COLS, SCALED, 1, ALWAYS, 1, "mlp.c_proj.weight", 1,           \
      "mlp.down_proj.weight")                                                                                \
    X(fc2b, "mlp.fc2.bias", H, NONE, NONE, ONE, NONE, ZEROS, 0, BIAS, 1, "mlp.c_proj.bias", 0,                 \
      "mlp.down_proj.bias")

//  X(field, name, rows, cols, split, init, decay, when, where, llmc, gpt2, tr, llama)
#define MT_TOP_PARAMS(X)                                                                                      \
    X(wte, "wte.weight", VP, H, ROWS, NORMAL, 1, ALWAYS, TIED, 1, "transformer.wte.weight", 0,                 \
      "model.embed_tokens.weight")                                                                           \
    X(wpe, "wpe.weight", POS, H, NONE, NORMAL, 1, LEARNED, FIRST, 1, "transformer.wpe.weight", 0, "")         \
    X(lnfw, "ln_f.weight", H, ONE, NONE, ONES, 0, ALWAYS, LAST, 1, "transformer.ln_f.weight", 0,              \
      "model.norm.weight")                                                                                   \
    X(lnfb, "ln_f.bias", H, ONE, NONE, ZEROS, 0, LAYERNORM, LAST, 1, "transformer.ln_f.bias", 0, "")          \
    X(lm_head, "lm_head.weight", VP, H, ROWS, NORMAL, 1, UNTIED, LAST, 0, "lm_head.weight", 0, "lm_head.weight")

// Indices into the tables, in row order.
typedef enum {
#define X(field, ...) MT_LP_##field,
    MT_LAYER_PARAMS(X)
#undef X
    MT_LP_N
} mt_layer_param;
typedef enum {
#define X(field, ...) MT_TP_##field,
    MT_TOP_PARAMS(X)
#undef X
    MT_TP_N
} mt_top_param;

// One row, as data.
typedef struct {
    const char *name;
    mt_dim rows[3], cols;
    mt_split split;
    mt_init init;
    int decay;
    mt_when when;
    mt_where where;     // non-layer rows only
    int llmc;
    const char *gpt2;       // Hugging Face GPT2LMHeadModel name ("" if none)
    int gpt2_transposed;
    const char *llama;      // Hugging Face LlamaForCausalLM name(s) ("" if none)
} mt_param_def;

extern const mt_param_def mt_layer_param_defs[MT_LP_N];
extern const mt_param_def mt_top_param_defs[MT_TP_N];

// The local shards of one layer's tensors, by name or by table index (NULL
// where the config leaves a tensor out). The same type holds their gradients.
typedef union {
    struct {
#define X(field, ...) real *field;
        MT_LAYER_PARAMS(X)
#undef X
    };
    real *t[MT_LP_N];
} mt_layer_w;

// The non-layer tensors this stage holds (NULL elsewhere), and their gradients.
typedef union {
    struct {
#define X(field, ...) real *field;
        MT_TOP_PARAMS(X)
#undef X
    };
    real *t[MT_TP_N];
} mt_top_w;

// The value of a dim under a config (global, unsplit).
int64_t mt_param_dim(const mt_config *c, mt_dim d);
// KV heads and the MLP hidden size under a config, defaulted for configs
// that never went through mt_config_finish (an llm.c header's).
int mt_param_kv_heads(const mt_config *c);
int64_t mt_param_ffn(const mt_config *c);
// Whether the config keeps the tensor.
int mt_param_present(const mt_config *c, const mt_param_def *d);

#endif
