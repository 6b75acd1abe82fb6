// schedule.h: the order in which a pipeline stage runs forward and backward
// passes of its micro-batches (Narayanan et al. 2021):
//   all-forward-all-backward (GPipe; the reference),
//   1F1B (warm-up min(p - stage - 1, M) forwards, then one forward and one
//   backward in turn, then the remaining backwards).
// Activations and gradients travel between stages as (s/t, b, h) under SP.
#ifndef MT_SCHEDULE_H
#define MT_SCHEDULE_H

#include "layers.h"

// Fills a slot for micro-batch mb of this step: sample0 always (dropout keys
// need it on every stage), tokens/targets where the chunk embeds or has the head.
typedef void (*mt_fill_fn)(void *ctx, int mb, mt_slot *sl, int need_tokens);

typedef struct {
    double loss_sum;    // Σ over this rank's micro-batches of the mean loss (last stage)
    double t_compute;   // seconds in forward/backward compute
    double t_wait;      // seconds blocked in pipeline receives
} mt_sched_result;

// Micro-batches in flight per chunk that `kind` needs on this stage; the
// model allocates that many activation slots.
int mt_schedule_slots(const mt_config *c, int pp_rank);

// Runs one step's M micro-batches. With backward == 0 runs forwards only
// (evaluation: no dropout, no gradients). Gradients accumulate in the model.
mt_sched_result mt_schedule_run(mt_model *m, mt_comm *cm, const mt_step *st, int backward,
                                mt_fill_fn fill, void *ctx);

#endif
