// reduce.c: deterministic column sums (reduce.h).
#include "reduce.h"

void mt_colsum_accumulate(real *dst, const real *x, int n, int h) {
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < h; j0 += MT_COLS_PER_TASK) {
        int w = MT_MIN(MT_COLS_PER_TASK, h - j0);
        double acc[MT_COLS_PER_TASK] = {0};
        for (int i = 0; i < n; i++) {
            const real *row = x + (size_t)i * h + j0;
            for (int j = 0; j < w; j++) acc[j] += row[j];
        }
        for (int j = 0; j < w; j++) dst[j0 + j] += (real)acc[j];
    }
}
