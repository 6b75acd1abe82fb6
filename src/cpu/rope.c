// rope.c: rotary position embeddings, rotate-half (ops.h). The angles come
// from the caller (the model computes them once from global positions), so
// this file only turns pairs of dims.
#include "ops.h"

// Turns dims (i, i + rot/2) of every Q and K head of every row by the row's
// angle, forward (dir = +1) or back (dir = -1, the transpose: backward).
static void rotate(real *qkv, const real *cs, int rot, mt_attn_shape sh, int dir) {
    int half = rot / 2, heads = sh.nh + sh.nkv, W = (sh.nh + 2 * sh.nkv) * sh.hd;
    int rows = sh.s * sh.b;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const real *c = cs + (size_t)(r / sh.b) * rot, *sn = c + half;
        real *row = qkv + (size_t)r * W;
        for (int h = 0; h < heads; h++) {  // the Q heads, then the K heads: adjacent in a row
            real *x = row + (size_t)h * sh.hd, *y = x + half;
            for (int i = 0; i < half; i++) {
                real a = x[i], b = y[i], s = dir * sn[i];
                x[i] = a * c[i] - b * s;
                y[i] = b * c[i] + a * s;
            }
        }
    }
}

void mt_rope_forward(real *qkv,      // (s, b, W) in place
                     const real *cs, // (s, rot)
                     int rot, mt_attn_shape sh) {
    rotate(qkv, cs, rot, sh, 1);
}

void mt_rope_backward(real *dqkv,     // (s, b, W) in place
                      const real *cs, // (s, rot)
                      int rot, mt_attn_shape sh) {
    rotate(dqkv, cs, rot, sh, -1);
}
