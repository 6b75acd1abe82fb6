// rng.h: counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// Every random value in the trainer is a pure function of global indices
// (DESIGN §1): a rank computes exactly the values of its own shard, with no
// state to carry between iterations and nothing that depends on the layout.
#ifndef MT_RNG_H
#define MT_RNG_H

#include "common.h"

typedef struct { uint32_t v[4]; } mt_philox_ctr;
typedef struct { uint32_t v[2]; } mt_philox_key;

// Four independent 32-bit words for (key, counter).
mt_philox_ctr mt_philox(mt_philox_key key, mt_philox_ctr ctr);

// Uniform in [0, 1) from a 32-bit word (24 bits, exact in float and double).
static inline double mt_u01(uint32_t x) { return (double)(x >> 8) * (1.0 / 16777216.0); }

// Standard normal for parameter element (row, col) of the tensor whose name
// hashes to `name_hash`: keyed by (seed, name), counted by (row, col).
double mt_rng_normal(uint64_t seed, uint64_t name_hash, uint64_t row, uint64_t col);

// Dropout sites (part of the key, so each site draws its own mask).
enum {
    MT_SITE_EMBED = 0,  // after the embedding sum
    MT_SITE_ATTN_PROB,  // attention probabilities
    MT_SITE_ATTN_OUT,   // after the attention projection
    MT_SITE_MLP_OUT,    // after fc2
};

// Everything a dropout mask depends on except the element's own indices.
typedef struct {
    uint64_t seed;
    uint32_t iter;     // training iteration, 0-based
    uint32_t layer;    // global layer index (0 for the embedding)
    uint32_t site;     // MT_SITE_*
    double p;          // drop probability; 0 disables (double in both builds, so fp32 and fp64 draw the same masks)
} mt_dropout_key;

// Hidden dropout: 1 keeps, 0 drops element (sample, pos, feature), all global.
int mt_rng_keep_hidden(const mt_dropout_key *k, uint32_t sample, uint32_t pos, uint32_t feature);

// Fills keep[0..n) for features f0..f0+n of one token; faster than one call per
// element because each Philox call yields four draws.
void mt_rng_keep_row(const mt_dropout_key *k, uint32_t sample, uint32_t pos,
                     uint32_t f0, int n, unsigned char *keep);

// Attention dropout: keep element (sample, head, query, key_pos), all global.
void mt_rng_keep_attn_row(const mt_dropout_key *k, uint32_t sample, uint32_t head,
                          uint32_t query, int nkeys, unsigned char *keep);

// The same draws for keys [key0, key0 + nkeys) only (blocked attention).
void mt_rng_keep_attn_range(const mt_dropout_key *k, uint32_t sample, uint32_t head,
                            uint32_t query, uint32_t key0, int nkeys, unsigned char *keep);

// Seeded permutation of [0, n) by cycle-walking a Feistel network: element j of
// epoch e maps to a sample index that depends only on (seed, e, j, n).
uint64_t mt_rng_permute(uint64_t seed, uint64_t epoch, uint64_t j, uint64_t n);

#endif
