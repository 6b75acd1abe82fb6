// reduce.h: the deterministic reductions the CPU kernels share.
#ifndef MT_CPU_REDUCE_H
#define MT_CPU_REDUCE_H

#include "common.h"

// Columns per thread task in column reductions: wide enough to stream rows,
// narrow enough that the partial sums stay in registers and L1.
#define MT_COLS_PER_TASK 64

// dst[j] += Σ_i x[i, j] in double (bias and norm gradients). Threads own
// column blocks, so the sum order is fixed (row 0 first) whatever the
// thread count, and no two threads write the same dst[j].
void mt_colsum_accumulate(real *dst,     // (h) accumulated
                          const real *x, // (n, h)
                          int n, int h);

#endif
