// data.h: llm.c token files (docs/design.md §6) and the global sample order.
//
// Global sample j of a split with n = (tokens - 1) / T samples is the window
// [k*T, k*T + T + 1) with k = j mod n in sequential order, or k = a seeded
// permutation of [0, n) for epoch j / n in the default shuffled order. Only
// the iteration and the global sample index decide which tokens a rank sees.
#ifndef MT_DATA_H
#define MT_DATA_H

#include "common.h"
#include "config.h"

#define MT_TOKENS_MAGIC 20240520

// Tokens are kept 2 bytes wide in memory when the vocabulary fits (every
// GPT-2 or byte-level file: half the memory of 4-byte ids), 4 otherwise.
typedef struct {
    void *tok;         // all tokens of the file, `width` bytes each
    int width;         // 2 (uint16_t) or 4 (uint32_t)
    size_t ntok;
} mt_token_file;

// Token i of an array of `width`-byte ids.
static inline uint32_t mt_token_at(const void *tok, int width, size_t i) {
    return width == 2 ? ((const uint16_t *)tok)[i] : ((const uint32_t *)tok)[i];
}
// The in-memory width for a vocabulary: 2 when every id fits in 16 bits.
static inline int mt_token_width(int vocab) { return vocab <= 65536 ? 2 : 4; }

// Reads and validates a token file: magic, version (1: uint16, 2: uint32),
// size agreeing with the header, every id < vocab. Returns 0, or -1 with one
// line in err naming the problem.
int mt_token_file_read(mt_token_file *f, const char *path, int vocab, char *err, size_t errlen);
void mt_token_file_free(mt_token_file *f);

typedef struct {
    const unsigned char *tok;  // first token of the split
    int width;             // bytes per token (mt_token_file)
    size_t ntok;
    size_t nsamples;       // (ntok - 1) / T
    int T;
    int shuffle;
    uint64_t seed;
} mt_split_view;

// A view of tokens [begin, end) of f as a split of T-token samples.
mt_split_view mt_split_make(const mt_token_file *f, size_t begin, size_t end, int T, int shuffle, uint64_t seed);

// Writes global sample j's inputs and targets into column bcol of (s, b)
// ordered buffers: row pos*b + bcol.
void mt_split_fill(const mt_split_view *v, uint64_t j, int *inputs, int *targets, int b, int bcol);
// The same for the positions pos[0..npos) of sample j only (context
// parallelism: a rank's two chunks of the sequence), in that order.
void mt_split_fill_at(const mt_split_view *v, uint64_t j, const int *pos, int npos, int *inputs, int *targets, int b,
                      int bcol);

// Token ranges of the train/valid/test splits for "a,b,c" weights (Megatron's
// --split): contiguous, in order, boundaries rounded down.
void mt_split_ranges(size_t ntok, const int split[3], size_t begin[3], size_t end[3]);

#endif
