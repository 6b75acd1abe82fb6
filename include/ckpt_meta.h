// ckpt_meta.h: a checkpoint's metadata read strictly and validated by the
// trainer's own flag rules (config.c), for tools/generate and the loader:
// 0 heads or a 0 vocabulary is one line, never a SIGFPE.
#ifndef MT_CKPT_META_H
#define MT_CKPT_META_H

#include <string.h>

#include "ckpt.h"
#include "safetensors.h"

// Version 2 is written when AdamW's step count differs from the iteration
// (optimizer_steps) or the LR scheduler's count from the consumed samples
// (scheduler_samples), both after --no-load-optim: a reader that knows only
// version 1 would resume with t = the iteration and the LR of the consumed
// samples, so it must refuse the file. Every other checkpoint stays version 1.
#define MT_CKPT_FORMAT "megatron.c checkpoint 1"
#define MT_CKPT_FORMAT_2 "megatron.c checkpoint 2"
static inline int mt_ckpt_format_known(const char *f) { return f && (!strcmp(f, MT_CKPT_FORMAT) || !strcmp(f, MT_CKPT_FORMAT_2)); }
#define MT_CKPT_LATEST "latest_checkpointed_iteration.txt"

// The model a checkpoint file describes, as the config a run with its flags
// would have (one rank, no dropout, seq = positions): every value parsed
// strictly (input.h), then checked by mt_config_parse_checked and
// mt_config_finish_checked. Returns 0, or -1 with "PATH: ..." in err.
int mt_ckpt_meta_config(const mt_st_file *f, const char *path, mt_config *c, char *err, size_t errlen);

// iteration (>= 1) and consumed_samples (>= 0) from the metadata, strictly.
int mt_ckpt_meta_state(const mt_st_file *f, const char *path, mt_ckpt_state *st, char *err, size_t errlen);

// DIR's latest iteration (DIR/latest_checkpointed_iteration.txt, a regular
// file of at most 64 bytes holding a number in [1, 1e9]): 1 and *iter, 0
// when DIR or the file does not exist, -1 with a line in err.
int mt_ckpt_latest(const char *flag, const char *dir, int *iter, char *err, size_t errlen);

// tools/generate's loader: DIR's latest checkpoint's config (as
// mt_ckpt_meta_config) and iteration. Returns 0 or -1 with err.
int mt_ckpt_meta_read_dir(const char *dir, mt_config *c, int *iter, char *err, size_t errlen);

#endif
