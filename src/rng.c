// rng.c: Philox4x32-10 and the keyed draws built on it.
#include "rng.h"

#include <math.h>

mt_philox_ctr mt_philox(mt_philox_key key, mt_philox_ctr c) { return mt_philox_10(key, c); }

static mt_philox_key key_of(uint64_t a, uint64_t b) {
    // Mix two 64-bit values into the 64-bit key (splitmix64 finalizer).
    uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    mt_philox_key k = {{(uint32_t)z, (uint32_t)(z >> 32)}};
    return k;
}

double mt_rng_normal(uint64_t seed, uint64_t name_hash, uint64_t row, uint64_t col) {
    mt_philox_ctr c = {{(uint32_t)row, (uint32_t)(row >> 32), (uint32_t)col, (uint32_t)(col >> 32)}};
    mt_philox_ctr r = mt_philox(key_of(seed, name_hash), c);
    // Box-Muller on two 32-bit uniforms; u1 in (0, 1] keeps the log finite.
    double u1 = ((double)r.v[0] + 1.0) * (1.0 / 4294967296.0);
    double u2 = (double)r.v[1] * (1.0 / 4294967296.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static mt_philox_key dropout_key(const mt_dropout_key *k) {
    return key_of(k->seed, ((uint64_t)k->layer << 8 | k->site) + 0x5D0000000ull);
}

mt_philox_key mt_rng_dropout_key(const mt_dropout_key *k) { return dropout_key(k); }

static inline int keep_of(uint32_t word, double p) { return mt_keep_of(word, p); }

int mt_rng_keep_hidden(const mt_dropout_key *k, uint32_t sample, uint32_t pos, uint32_t feature) {
    mt_philox_ctr c = {{k->iter, sample, pos, feature >> 2}};
    mt_philox_ctr r = mt_philox(dropout_key(k), c);
    return keep_of(r.v[feature & 3], (double)k->p);
}

// Shared by hidden and attention rows: counter (iter, sample, w2, j/4), lane j%4.
static void keep_run(mt_philox_key key, uint32_t iter, uint32_t sample, uint32_t w2,
                     uint32_t j0, int n, double p, unsigned char *keep) {
    int i = 0;
    while (i < n) {
        uint32_t j = j0 + (uint32_t)i;
        mt_philox_ctr r = mt_philox(key, (mt_philox_ctr){{iter, sample, w2, j >> 2}});
        for (uint32_t lane = j & 3; lane < 4 && i < n; lane++, i++) keep[i] = (unsigned char)keep_of(r.v[lane], p);
    }
}

void mt_rng_keep_row(const mt_dropout_key *k, uint32_t sample, uint32_t pos,
                     uint32_t f0, int n, unsigned char *keep) {
    keep_run(dropout_key(k), k->iter, sample, pos, f0, n, (double)k->p, keep);
}

void mt_rng_keep_attn_row(const mt_dropout_key *k, uint32_t sample, uint32_t head,
                          uint32_t query, int nkeys, unsigned char *keep) {
    // Heads and positions both stay below 2^16 (checked by the config), so
    // (head, query) packs into one counter word.
    keep_run(dropout_key(k), k->iter, sample, head << 16 | query, 0, nkeys, (double)k->p, keep);
}

void mt_rng_keep_attn_range(const mt_dropout_key *k, uint32_t sample, uint32_t head,
                            uint32_t query, uint32_t key0, int nkeys, unsigned char *keep) {
    keep_run(dropout_key(k), k->iter, sample, head << 16 | query, key0, nkeys, (double)k->p, keep);
}

uint64_t mt_rng_permute(uint64_t seed, uint64_t epoch, uint64_t j, uint64_t n) {
    if (n <= 1) return 0;
    // Smallest even number of bits covering n, split into two halves.
    int bits = 2;
    while ((1ull << bits) < n) bits++;
    if (bits & 1) bits++;
    int half = bits / 2;
    uint64_t mask = (1ull << half) - 1;
    mt_philox_key key = key_of(seed ^ 0xDA7A0DE5ull, epoch);
    uint64_t x = j;
    do {  // cycle-walk: a permutation of [0, 2^bits) restricted to [0, n)
        uint64_t l = x >> half, r = x & mask;
        for (uint32_t round = 0; round < 4; round++) {
            mt_philox_ctr f = mt_philox(key, (mt_philox_ctr){{(uint32_t)r, (uint32_t)(r >> 32), round, 0}});
            uint64_t nl = r;
            r = (l ^ ((uint64_t)f.v[0] | (uint64_t)f.v[1] << 32)) & mask;
            l = nl;
        }
        x = l << half | r;
    } while (x >= n);
    return x;
}
