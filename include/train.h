// train.h: the optimizer step (gradient synchronisation, global-norm
// clipping, AdamW with Megatron's parameter groups) and the LR schedule.
#ifndef MT_TRAIN_H
#define MT_TRAIN_H

#include "comm.h"
#include "model.h"

// What Megatron's OptimizerParamScheduler sets for a step: the LR of its
// parameter groups (--decoupled-lr's group: the word embeddings and the
// untied output layer) and the weight decay.
typedef struct {
    double lr, lr_decoupled, weight_decay;
    double params_norm;  // --log-params-norm: after the step (main.c fills it)
} mt_sched;

// The scheduler's values after `n_samples` samples of its count (Megatron's
// num_steps: the consumed samples, less those before a --no-load-optim
// restart): a linear warm-up from --lr-warmup-init, then constant, linear,
// cosine, inverse-square-root or WSD decay to the group's minimum at the
// decay's end. `decoupled` selects --decoupled-lr's group.
double mt_lr_at(const mt_config *c, uint64_t n_samples, int decoupled);
// get_wd: the weight decay at that count.
double mt_wd_at(const mt_config *c, uint64_t n_samples);
mt_sched mt_sched_at(const mt_config *c, uint64_t n_samples);
// Whether parameter p takes --decoupled-lr (Megatron's
// is_embedding_or_output_parameter): the word embeddings, the output layer.
int mt_param_decoupled_lr(const mt_param *p);

// After the last micro-batch's backward: sums each gradient over the groups
// mt_param_grad_groups names (SP-partial tensors over TP, tied ones over the
// embedding group) and averages all of them over DP.
void mt_grad_sync(mt_model *m, mt_comm *cm);

// Global L2 norm of all gradients, each parameter counted once
// (mt_param_counts_in_norm: TP-replicated tensors on TP rank 0 only, tied
// ones on the first stage only).
double mt_grad_norm(mt_model *m, mt_comm *cm);

// Global L2 norm of the weights (Megatron's calc_params_l2_norm for
// --log-params-norm), each tensor counted once, as the gradient norm counts.
double mt_params_norm(mt_model *m, mt_comm *cm);

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
void mt_optimizer_step(mt_model *m, mt_comm *cm, double grad_norm, const mt_sched *s, int step);

#endif
