// account_acts.h: one transformer layer's activations tensor by tensor, each
// next to the term of Korthikanti et al. 2022's Table 2 it stands for and
// whether this build stores it, recomputes it or never needs it (printed by
// --log-memory --verbose and tools/plan).
//
// The tensors are the rows of model.h's MT_LAYER_ACTS plus the layer's input
// (the slot's x[l]); the terms are the paper's §4.1 derivation of
// sbh(34 + 5as/h): 2-byte activations, 1-byte dropout masks, divided by t
// under TP (and the LayerNorm/dropout terms by t only under SP).
#ifndef MT_ACCOUNT_ACTS_H
#define MT_ACCOUNT_ACTS_H

#include <stdio.h>

#include "model.h"

// Where a layer stands under full recomputation: kept whole, the first
// layer of a recompute group (its input only), or inside a group (nothing).
typedef enum { MT_LAYER_STORED, MT_LAYER_GROUP_FIRST, MT_LAYER_GROUP_INNER } mt_layer_kind;

// One row of the breakdown: a tensor this build has, or a Table 2 term it
// has no tensor for (tensor "-").
typedef struct {
    const char *tensor;   // "x" (layer input), an MT_LAYER_ACTS field, or "-"
    size_t rows, width;   // this rank's shape (0 x 0 for "-")
    size_t bytes;         // bytes held per layer and micro-batch (0: not kept)
    const char *status;   // "stored", "recomputed (selective)", ...
    char terms[96];       // the Table 2 term(s), e.g. "Q, K 4sbh + V 2sbh"
    double paper_bytes;   // the paper's bytes for those terms on this rank
} mt_act_row;

#define MT_ACT_ROWS_MAX 24

// The rows of one layer of `kind` on this rank; returns their count.
int mt_account_act_rows(const mt_model *m, mt_layer_kind kind, mt_act_row *rows);

// Bytes all slots of this stage hold for transformer layers, summed from
// the rows (must equal m->act_layer_bytes, the allocator's count).
size_t mt_account_act_rows_total(const mt_model *m);

// Prints the breakdown of a stored layer (and, under full recomputation,
// of a group's first layer), the paper's total next to this build's, and
// the sum over layers and micro-batches next to the measured bytes.
// Returns 0 when the sum equals m->act_layer_bytes.
int mt_account_act_print(const mt_model *m, FILE *f);

#endif
