// matmul.cu: the linear layer on cuBLAS. Row-major (n, c) data is the
// column-major (c, n) matrix, so out = inp · wᵀ is, column-major,
// outᵀ (oc, n) = w (c, oc)ᵀ · inpᵀ (c, n): cuBLAS with op(w) = T.
#include "cuda_common.cuh"

// out rows start as the bias; one GEMM with beta = 1 adds the product.
__global__ static void seed_bias_kernel(real *out, const real *bias, int n, int oc) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < (size_t)n * oc) out[e] = bias[e % oc];
}

extern "C" void mt_cuda_matmul_forward(real *out,        // (n, oc)
                                       const real *inp,  // (n, c)
                                       const real *w,    // (oc, c)
                                       const real *bias, // (oc) or NULL
                                       int n, int c, int oc) {
    if (n <= 0 || oc <= 0) return;
    const float one = 1, zero = 0;
    if (bias) {
        seed_bias_kernel<<<blocks_for((size_t)n * oc, 256), 256>>>(out, bias, n, oc);
        LAUNCH_CHECK();
    }
    CUBLAS_CHECK(cublasSgemm(mt_cuda()->blas, CUBLAS_OP_T, CUBLAS_OP_N, oc, n, c, &one, w, c, inp, c,
                             bias ? &one : &zero, out, oc));
}

extern "C" void mt_cuda_matmul_backward(real *dinp,       // (n, c) or NULL
                                        real *dw,         // (oc, c) accumulated
                                        real *dbias,      // (oc) accumulated, or NULL
                                        const real *dout, // (n, oc)
                                        const real *inp,  // (n, c)
                                        const real *w,    // (oc, c)
                                        int n, int c, int oc) {
    const float one = 1, zero = 0;
    cublasHandle_t h = mt_cuda()->blas;
    // dinpᵀ (c, n) = w (oc, c) column-major (c, oc) · doutᵀ (oc, n)
    if (dinp) CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, c, n, oc, &one, w, c, dout, oc, &zero, dinp, c));
    // dwᵀ (c, oc) += inpᵀ (c, n) · dout (n, oc)
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, c, oc, n, &one, inp, c, dout, oc, &one, dw, c));
    if (dbias) mt_cuda_colsum_accumulate(dbias, dout, n, oc);
}
