// ckpt.h: layout-independent checkpoints (docs/design.md §6).
//
//   DIR/latest_checkpointed_iteration.txt     the iteration to resume from
//   DIR/iter_0000010/model.safetensors       every parameter, unsharded, in
//                                             the build's precision, with the
//                                             run's metadata in __metadata__
//   DIR/iter_0000010/optimizer.safetensors   AdamW moments "<name>.exp_avg",
//                                             "<name>.exp_avg_sq", unsharded
//   DIR/iter_0000010/checkpoint.json         the same metadata for people
//
// A save works relative to the --save directory's descriptor and never
// follows a link: it writes .iter_N.tmp.PID.X/, fsyncs it, renames it to
// iter_N/ (an existing iter_N is swapped in one step by RENAME_EXCHANGE, or
// moved to iter_N.old first where the file system cannot), then replaces the
// latest file by rename: a crash, a SIGKILL or a full disk at any point
// leaves the previous checkpoint, or the new one, as what a --load finds.
// The loader reads the metadata from model.safetensors (validated by the
// strict reader), so the JSON is informational.
#ifndef MT_CKPT_H
#define MT_CKPT_H

#include "model.h"

typedef struct {
    int iteration;              // completed training iterations
    uint64_t consumed_samples;  // global samples consumed by those iterations
    // AdamW's own step count, its bias corrections' t: the iteration, unless
    // the optimizer restarted since (--no-load-optim), as the step count a
    // PyTorch optimizer keeps in its state. Checkpoints written before it
    // was recorded: the iteration.
    int optimizer_steps;
    // The LR scheduler's sample count (Megatron's num_steps, which it keeps
    // in its own state): consumed_samples, unless the scheduler restarted
    // since (--no-load-optim). Checkpoints written before: consumed_samples.
    uint64_t scheduler_samples;
} mt_ckpt_state;

// Collective. Returns 0, or -1 with a one-line reason in err on every rank
// (the previous checkpoint is then untouched).
int mt_ckpt_save(const mt_model *m, const char *dir, mt_ckpt_state st, char *err, size_t errlen);

// Collective. Finds the latest checkpoint in dir: returns 1 and loads it
// (parameters, AdamW moments, state) after checking that its model shape
// matches the flags; 0 when dir holds no checkpoint yet (a fresh start);
// -1 with a one-line reason when it is unreadable or does not match. With
// weights_only (--finetune, --no-load-optim) the optimizer file is neither
// read nor required, and the moments stay as they are (zero at start).
int mt_ckpt_load(mt_model *m, const char *flag, const char *dir, int weights_only, mt_ckpt_state *st, char *err, size_t errlen);

#endif
