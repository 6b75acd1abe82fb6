// matmul.c: GEMM through OpenBLAS and the linear layer built on it.
#include "ops.h"

#include <cblas.h>

// The build picks the BLAS precision, so callers never name sgemm or dgemm.
void mt_gemm(int ta, int tb, int m, int n, int k, real alpha, const real *a, int lda,
             const real *b, int ldb, real beta, real *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        // BLAS rejects lda = 0; with nothing to sum, C is just scaled.
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                real *cij = c + (size_t)i * ldc + j;
                *cij = beta == 0 ? 0 : beta * *cij;
            }
        return;
    }
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE opb = tb ? CblasTrans : CblasNoTrans;
#ifdef MT_FP64
    cblas_dgemm(CblasRowMajor, opa, opb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
    cblas_sgemm(CblasRowMajor, opa, opb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

// Columns per thread task in column reductions: wide enough to stream rows,
// narrow enough that the partial sums stay in registers and L1.
#define COLS_PER_TASK 64

// dst[j] += Σ_i x[i, j] in double. Threads own column blocks, so the sum
// order is fixed (row 0 first) whatever the thread count.
static void colsum_accumulate(real *dst,     // (h) accumulated
                              const real *x, // (n, h)
                              int n, int h) {
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < h; j0 += COLS_PER_TASK) {
        int w = MT_MIN(COLS_PER_TASK, h - j0);
        double acc[COLS_PER_TASK] = {0};
        for (int i = 0; i < n; i++) {
            const real *row = x + (size_t)i * h + j0;
            for (int j = 0; j < w; j++) acc[j] += row[j];
        }
        for (int j = 0; j < w; j++) dst[j0 + j] += (real)acc[j];
    }
}

void mt_matmul_forward(real *out,        // (n, oc)
                       const real *inp,  // (n, c)
                       const real *w,    // (oc, c)
                       const real *bias, // (oc) or NULL
                       int n, int c, int oc) {
    // Seed out with the bias so one GEMM with beta = 1 adds it for free.
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            real *row = out + (size_t)i * oc;
            for (int o = 0; o < oc; o++) row[o] = bias[o];
        }
    }
    mt_gemm(0, 1, n, oc, c, 1, inp, c, w, c, bias ? 1 : 0, out, oc);
}

void mt_matmul_backward(real *dinp,       // (n, c) or NULL
                        real *dw,         // (oc, c) accumulated
                        real *dbias,      // (oc) accumulated, or NULL
                        const real *dout, // (n, oc)
                        const real *inp,  // (n, c)
                        const real *w,    // (oc, c)
                        int n, int c, int oc) {
    if (dinp) mt_gemm(0, 0, n, c, oc, 1, dout, oc, w, c, 0, dinp, c);
    // beta = 1: weight gradients add up over micro-batches.
    mt_gemm(1, 0, oc, c, n, 1, dout, oc, inp, c, 1, dw, c);
    if (dbias) colsum_accumulate(dbias, dout, n, oc);
}
