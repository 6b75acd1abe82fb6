// train.h: the optimizer step (gradient synchronisation, global-norm
// clipping, AdamW with Megatron's parameter groups) and the LR schedule.
#ifndef MT_TRAIN_H
#define MT_TRAIN_H

#include "comm.h"
#include "model.h"

// Learning rate of 1-based iteration `it` (Megatron's OptimizerParamScheduler
// after it - 1 completed steps): linear warm-up from 0, then constant, linear
// or cosine decay to --min-lr at --lr-decay-iters. With --train-samples the
// schedule counts the samples `consumed` before the step instead.
double mt_lr_at(const mt_config *c, int it, uint64_t consumed);
// The weight decay of the step that starts after `consumed` samples.
double mt_wd_at(const mt_config *c, uint64_t consumed);

// After the last micro-batch's backward: sums each gradient over the groups
// mt_param_grad_groups names (SP-partial tensors over TP, tied ones over the
// embedding group) and averages all of them over DP.
void mt_grad_sync(mt_model *m, mt_comm *cm);

// Global L2 norm of all gradients, each parameter counted once
// (mt_param_counts_in_norm: TP-replicated tensors on TP rank 0 only, tied
// ones on the first stage only).
double mt_grad_norm(mt_model *m, mt_comm *cm);

// Zeroes the gradients before a step's first backward: all of them, less
// the range the previous step's AdamW consumed and left at zero (ops.h
// adamw_update), which is every gradient without the distributed optimizer.
void mt_grad_zero(mt_model *m);

// Allocates the AdamW moments (m, v), zeroed.
void mt_optimizer_init(mt_model *m);
// --bf16: the bf16 weights from the fp32 main weights (after a checkpoint
// or --init-from wrote the main weights); all-gathered under the
// distributed optimizer. Nothing otherwise.
void mt_optimizer_publish(mt_model *m, mt_comm *cm);

// Clips (when --clip-grad > 0 and the norm exceeds it) and applies AdamW.
// `step` is the 1-based optimizer step.
// With --use-distributed-optimizer each DP rank updates its 1/dp shard of the
// arenas (its AdamW moments are 1/dp of the plain optimizer's) and the
// parameters are all-gathered over DP afterwards. In this CPU trainer the
// parameters are already in the build's full precision, so they are their own
// "master copy": the shard updated in place is the master shard.
void mt_optimizer_step(mt_model *m, mt_comm *cm, double grad_norm, double lr, double weight_decay, int step);

#endif
