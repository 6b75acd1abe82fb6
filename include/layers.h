// layers.h: GPT-2's pieces for one micro-batch on one TP rank, composed from
// ops and the mappings of comm.h (Korthikanti et al. 2022, Fig. 5):
//
//   x[s/t] -> LN -> g -> QKV (column) -> attention -> proj (row) -> ḡ
//          -> bias+dropout+residual [s/t] -> LN -> g -> fc1 (column) -> GELU
//          -> fc2 (row) -> ḡ -> bias+dropout+residual
//
// Without sequence parallelism g is f (identity forward, all-reduce
// backward) and ḡ is f̄ (all-reduce forward, identity backward), and every
// rank holds all s rows.
#ifndef MT_LAYERS_H
#define MT_LAYERS_H

#include "comm.h"
#include "model.h"
#include "ops.h"

typedef struct {
    uint32_t iter;     // 0-based training iteration (dropout key)
    int training;      // 0 disables dropout (evaluation)
} mt_step;

// Embedding: tokens (s, b) -> x (nl, h), vocab-parallel, + positions, dropout.
void mt_embed_forward(mt_model *m, mt_comm *cm, const mt_step *st, const mt_slot *sl, real *x);
// dx (nl, h) is consumed (overwritten).
void mt_embed_backward(mt_model *m, mt_comm *cm, const mt_step *st, const mt_slot *sl, real *dx);

// One transformer layer: x (nl, h) -> xout (nl, h).
void mt_block_forward(mt_model *m, mt_comm *cm, const mt_step *st, int layer, const mt_layer_w *w,
                      mt_layer_acts *a, const real *x, real *xout, uint32_t sample0);
// dres (nl, h): on entry the gradient of xout, on return the gradient of x.
void mt_block_backward(mt_model *m, mt_comm *cm, const mt_step *st, int layer, const mt_layer_w *w,
                       mt_layer_w *dw, const mt_layer_acts *a, const real *x, real *dres, uint32_t sample0);

// Final LayerNorm, LM head (tied to the vocab shard of wte) and vocab-parallel
// cross-entropy. Returns the mean loss over the micro-batch's s*b tokens.
// With dx != NULL also runs the backward right away (the logits are never
// kept): dx (nl, h) receives d loss * dscale / d x; weight gradients
// accumulate.
real mt_head_forward_backward(mt_model *m, mt_comm *cm, const real *x, const int *targets, real *dx, real dscale);

#endif
