// rng.h: counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// Every random value in the trainer is a pure function of global indices
// (docs/design.md §1): a rank computes exactly the values of its own shard, with no
// state to carry between iterations and nothing that depends on the layout.
#ifndef MT_RNG_H
#define MT_RNG_H

#include "common.h"

typedef struct { uint32_t v[4]; } mt_philox_ctr;
typedef struct { uint32_t v[2]; } mt_philox_key;

// The CUDA kernels (src/cuda) draw the same masks from the same code (MT_HD).

// Philox4x32-10: four independent 32-bit words for (key, counter).
static inline MT_HD mt_philox_ctr mt_philox_10(mt_philox_key key, mt_philox_ctr c) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c.v[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c.v[2];
        mt_philox_ctr n;
        n.v[0] = (uint32_t)(p1 >> 32) ^ c.v[1] ^ key.v[0];
        n.v[1] = (uint32_t)p1;
        n.v[2] = (uint32_t)(p0 >> 32) ^ c.v[3] ^ key.v[1];
        n.v[3] = (uint32_t)p0;
        c = n;
        key.v[0] += 0x9E3779B9u;
        key.v[1] += 0xBB67AE85u;
    }
    return c;
}
mt_philox_ctr mt_philox(mt_philox_key key, mt_philox_ctr ctr);

// Uniform in [0, 1) from a 32-bit word (24 bits, exact in float and double).
static inline MT_HD double mt_u01(uint32_t x) { return (double)(x >> 8) * (1.0 / 16777216.0); }

// Dropout's keep decision for word x: kept with probability 1 - p.
static inline MT_HD int mt_keep_of(uint32_t x, double p) { return mt_u01(x) >= p; }

// Keep bit j of the draw run (iter, sample, w2): counter (iter, sample, w2,
// j/4), lane j%4. Hidden dropout uses w2 = position and j = feature;
// attention dropout w2 = head << 16 | query and j = key position.
static inline MT_HD int mt_keep_at(mt_philox_key key, uint32_t iter, uint32_t sample, uint32_t w2, uint32_t j, double p) {
    mt_philox_ctr c;
    c.v[0] = iter; c.v[1] = sample; c.v[2] = w2; c.v[3] = j >> 2;
    return mt_keep_of(mt_philox_10(key, c).v[j & 3], p);
}

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

// The Philox key of a dropout site (what mt_keep_at takes).
mt_philox_key mt_rng_dropout_key(const mt_dropout_key *k);

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
