// gradnorm.h: the global gradient norm's sum of squares, summed where
// possible as each gradient becomes final rather than in a pass of its own.
//
// The norm is one fixed sum (so its bits never depend on when a part was
// computed): the counted tensors' shard parts (mt_param_counts_in_norm) form
// runs of adjacent arena ranges; each run is cut into blocks of
// MT_SUMSQ_BLOCK from its start; a block's part is Σ g² in double
// (ops.h sumsq_parts); a run's sum adds its parts in order from 0, and the
// total adds the runs' sums in order from 0.
//
// A block's part may be computed as soon as every tensor overlapping it is
// final: its last micro-batch's backward has written it and nothing will
// change it before the optimizer. That holds for a tensor with one copy of
// the gradient (DP and CP of 1: no sum, no 1/dp average) and no group sum
// (mt_param_grad_groups 0: not SP-partial, not tied across stages). The
// backward hooks (buckets.c) report such tensors layer by layer, when the
// layer's gradients are freshly written and largely still in cache; the
// rest is summed after backward. Under DP the gradients' last write is
// the average's scaling after the reduction; the blocks are summed in that
// pass instead (mt_gradnorm_scale).
#ifndef MT_GRADNORM_H
#define MT_GRADNORM_H

#include "model.h"

typedef struct mt_gradnorm {
    int nrun, nblock;
    int *run_b0;              // (nrun + 1) run r's blocks [run_b0[r], run_b0[r + 1])
    size_t *off, *len;        // (nblock) each block's arena range
    int *b0, *b1;             // (nparams) tensor k's blocks [b0, b1); empty when not counted here
    int *need, *left;         // (nblock) tensors overlapping the block; of them not yet final this step
    unsigned char *done;      // (nblock) the part is summed this step
    double *part;             // (nblock)
    int early;                // tensors may be reported final during backward (one copy, CPU)
    int fold;                 // the blocks are summed in DP's averaging pass (DP > 1, CPU)
    int *ready, nready;       // blocks whose tensors are all final, not yet summed
    size_t elems;             // Σ len: the elements the norm reads
    size_t early_elems;       // of them summed during this step's backward
    size_t avg_elems;         // of them summed in this step's DP averaging pass
    size_t early_last, avg_last; // the same for the last completed norm (--log-comm)
} mt_gradnorm;

// After the model and its optimizer shard exist (mt_optimizer_init).
mt_gradnorm *mt_gradnorm_new(const mt_model *m);
void mt_gradnorm_free(mt_gradnorm *gn);

// Tensor k's gradient is final for this step (buckets.c, last micro-batch
// only); flush sums the blocks that became complete, in one call per
// stretch of adjacent blocks.
void mt_gradnorm_final(mt_model *m, int k);
void mt_gradnorm_flush(mt_model *m);

// DP's average: this rank's shard of the gradients *= s, and where
// folding is on (fold) every block summed in the same pass, while it is in
// cache, instead of read again for the norm (mt_grad_sync).
void mt_gradnorm_scale(mt_model *m, real s);

// Σ g² over this rank's counted gradients: the blocks not yet summed, then
// the fixed sum. Resets the step's state.
double mt_gradnorm_local(mt_model *m);
// Forgets what this step summed: no gradient is final yet (mt_grad_zero,
// at a step's start; mt_gradnorm_local, after use).
void mt_gradnorm_reset(mt_gradnorm *gn);

#endif
