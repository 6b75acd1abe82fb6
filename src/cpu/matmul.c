// matmul.c: GEMM through OpenBLAS and the linear layer built on it.
#include "ops.h"

#include <cblas.h>

#include "reduce.h"

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
                        real *dw,         // (oc, c) accumulated, or NULL
                        real *dbias,      // (oc) accumulated, or NULL
                        const real *dout, // (n, oc)
                        const real *inp,  // (n, c); unread without dw
                        const real *w,    // (oc, c)
                        int n, int c, int oc) {
    if (dinp) mt_gemm(0, 0, n, c, oc, 1, dout, oc, w, c, 0, dinp, c);
    // beta = 1: weight gradients add up over micro-batches.
    if (dw) mt_gemm(1, 0, oc, c, n, 1, dout, oc, inp, c, 1, dw, c);
    if (dbias) mt_colsum_accumulate(dbias, dout, n, oc);
}
