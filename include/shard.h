// shard.h: unsharded views of the parameters, for files. Gathers a global
// tensor onto world rank 0 from whichever ranks own its shards, or hands each
// rank its shard of a tensor rank 0 read. Files therefore never depend on
// the layout that wrote or reads them. Also llm.c's model file (docs/design.md §6).
#ifndef MT_SHARD_H
#define MT_SHARD_H

#include "model.h"

// Which arena a tensor lives in. Parameters and gradients span the stage's
// whole arena; AdamW moments span this rank's optimizer shard [shard0,
// shard0 + shard_n) (all of it without the distributed optimizer), stored
// from index 0.
// MT_ARENA_MAIN: --bf16's fp32 main weights; asking for MT_ARENA_PARAMS
// under --bf16 gets them (the bf16 copy is derived, never stored).
typedef enum { MT_ARENA_PARAMS, MT_ARENA_GRADS, MT_ARENA_ADAM_M, MT_ARENA_ADAM_V, MT_ARENA_MAIN } mt_arena;

// Collective over the world: the full (rows, cols) tensor of `name` from
// `arena` lands in `full` on world rank 0 (ignored elsewhere; may be NULL).
void mt_shard_gather(const mt_model *m, mt_arena arena, const char *name, int64_t rows, int64_t cols, real *full);
// Collective over the world: rank 0's `full` (rows, cols) is broadcast and
// every rank copies the part of `name` its arena holds. `full` must be
// allocated on every rank (it receives the broadcast).
void mt_shard_scatter(mt_model *m, mt_arena arena, const char *name, int64_t rows, int64_t cols, real *full);

#define MT_LLMC_MAGIC 20240326

typedef struct {
    int max_seq, vocab, layers, heads, channels, padded_vocab;
} mt_llmc_header;

// Whether llm.c's file can hold this config's model (GPT-2 blocks only): 0,
// or -1 with the reason in err.
int mt_llmc_supports(const mt_config *c, char *err, size_t errlen);

// Validates an llm.c model file (magic, version 3 = fp32, positive sizes,
// file size matching the header). 0 on success, -1 with one line in err.
int mt_llmc_read_header(const char *path, mt_llmc_header *h, char *err, size_t errlen);
// Loads the weights into this rank's shards (rank 0 reads the file; the
// header must already have been checked against the config). Also refuses
// non-finite weights: returns -1 with err on every rank.
int mt_llmc_load(mt_model *m, const char *path, char *err, size_t errlen);
// Writes the current weights as an llm.c version-3 file (rank 0 writes:
// temporary name, fsync, rename). Collective: returns -1 with err on every
// rank when the write failed.
int mt_llmc_save(const mt_model *m, const char *path, char *err, size_t errlen);

// Writes every parameter (and with grads also every gradient, named
// "<name>.grad") in this build's precision as one safetensors file.
int mt_dump_tensors(const mt_model *m, const char *path, int grads, char *err, size_t errlen);

#endif
