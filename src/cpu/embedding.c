// embedding.c: vocab-parallel word embedding and learned positions.
#include "ops.h"

#include <string.h>

#include "reduce.h"

// Rows of tokens this rank does not hold come out zero; the caller's TP
// all-reduce then fills them in from the rank that does (Megatron's
// VocabParallelEmbedding).
void mt_embedding_forward(real *out,         // (n, h) overwritten
                          const int *tokens, // (n) global ids
                          const real *wte,   // (vl, h) local vocab shard
                          int v0, int vl, int n, int h) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        int t = tokens[i] - v0;
        real *y = out + (size_t)i * h;
        if (t >= 0 && t < vl) memcpy(y, wte + (size_t)t * h, (size_t)h * sizeof(real));
        else memset(y, 0, (size_t)h * sizeof(real));
    }
}

// A token may repeat, so rows of dwte collide; threads own column blocks
// instead of rows, which avoids atomics and keeps the sum order fixed.
void mt_embedding_backward(real *dwte,        // (vl, h) accumulated
                           const real *dout,  // (n, h)
                           const int *tokens, // (n)
                           int v0, int vl, int n, int h) {
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < h; j0 += MT_COLS_PER_TASK) {
        int w = MT_MIN(MT_COLS_PER_TASK, h - j0);
        for (int i = 0; i < n; i++) {
            int t = tokens[i] - v0;
            if (t < 0 || t >= vl) continue;
            real *g = dwte + (size_t)t * h + j0;
            const real *dy = dout + (size_t)i * h + j0;
            for (int j = 0; j < w; j++) g[j] += dy[j];
        }
    }
}

// Row r holds global position mt_rows_pos(r / b) (rows are ordered (s, b)).
void mt_position_forward(real *x,         // (rows, h) in place
                         const real *wpe, // (max positions, h) whole table
                         mt_rows r, int h) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < r.rows; i++) {
        const real *p = wpe + (size_t)mt_rows_pos(r, i / r.b) * h;
        real *y = x + (size_t)i * h;
        for (int j = 0; j < h; j++) y[j] += p[j];
    }
}

// The b rows of one position are adjacent; a thread owns whole positions, so
// each dwpe row is written by one thread, batch column 0 first.
void mt_position_backward(real *dwpe,       // (max positions, h) accumulated
                          const real *dout, // (rows, h)
                          mt_rows r, int h) {
    int npos = (r.rows + r.b - 1) / r.b;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < npos; p++) {
        real *g = dwpe + (size_t)mt_rows_pos(r, p) * h;
        for (int i = p * r.b; i < MT_MIN((p + 1) * r.b, r.rows); i++) {
            const real *dy = dout + (size_t)i * h;
            for (int j = 0; j < h; j++) g[j] += dy[j];
        }
    }
}
