// matmul.cu: the linear layer on cuBLAS. Row-major (n, c) data is the
// column-major (c, n) matrix, so out = inp · wᵀ is, column-major,
// outᵀ (oc, n) = w (c, oc)ᵀ · inpᵀ (c, n): cuBLAS with op(w) = T.
//
// Under --bf16 (mt_cuda()->bf16) the operands, which already hold bf16
// values, are packed into bf16 scratch and multiplied on the tensor cores
// with fp32 accumulation and an fp32 result (cublasGemmEx, CUBLAS_COMPUTE_32F):
// the products are exact, as in the CPU emulation's sgemm on rounded inputs,
// so only the summation order differs. The caller rounds the output.
#include <cuda_bf16.h>

#include "cuda_common.cuh"

// out rows start as the bias; one GEMM with beta = 1 adds the product.
__global__ static void seed_bias_kernel(real *out, const real *bias, int n, int oc) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < (size_t)n * oc) out[e] = bias[e % oc];
}

__global__ static void pack_bf16_kernel(__nv_bfloat16 *dst, const real *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

// x as bf16 in pool scratch (exact: x holds bf16 values); free with
// mt_cuda_scratch_free in stream order.
static __nv_bfloat16 *packed(const real *x, size_t n) {
    __nv_bfloat16 *p = (__nv_bfloat16 *)mt_cuda_scratch(n * sizeof(__nv_bfloat16));
    pack_bf16_kernel<<<blocks_for(n, 256), 256>>>(p, x, n);
    LAUNCH_CHECK();
    return p;
}

// C (m, n, column-major, fp32) = alpha op(A) op(B) + beta C, where A is
// (rows_a x cols_a) with leading dimension lda, in fp32 or (bf16) tensor-core
// bf16.
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *alpha, const real *A,
                 size_t na, int lda, const real *B, size_t nb, int ldb, const float *beta, real *C, int ldc) {
    if (!mt_cuda()->bf16) {
        CUBLAS_CHECK(cublasSgemm(mt_cuda()->blas, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc));
        return;
    }
    __nv_bfloat16 *a16 = packed(A, na), *b16 = packed(B, nb);
    CUBLAS_CHECK(cublasGemmEx(mt_cuda()->blas_bf16, ta, tb, m, n, k, alpha, a16, CUDA_R_16BF, lda, b16, CUDA_R_16BF, ldb, beta, C,
                              CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    mt_cuda_scratch_free(a16);
    mt_cuda_scratch_free(b16);
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
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, oc, n, c, &one, w, (size_t)oc * c, c, inp, (size_t)n * c, c, bias ? &one : &zero, out, oc);
}

extern "C" void mt_cuda_matmul_backward(real *dinp,       // (n, c) or NULL
                                        real *dw,         // (oc, c) accumulated, or NULL
                                        real *dbias,      // (oc) accumulated, or NULL
                                        const real *dout, // (n, oc)
                                        const real *inp,  // (n, c); unread without dw
                                        const real *w,    // (oc, c)
                                        int n, int c, int oc) {
    const float one = 1, zero = 0;
    // dinpᵀ (c, n) = w (oc, c) column-major (c, oc) · doutᵀ (oc, n)
    if (dinp) gemm(CUBLAS_OP_N, CUBLAS_OP_N, c, n, oc, &one, w, (size_t)oc * c, c, dout, (size_t)n * oc, oc, &zero, dinp, c);
    // dwᵀ (c, oc) += inpᵀ (c, n) · dout (n, oc): fp32 accumulation into the fp32 gradient
    if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, c, oc, n, &one, inp, (size_t)n * c, c, dout, (size_t)n * oc, oc, &one, dw, c);
    if (dbias) mt_cuda_colsum_accumulate(dbias, dout, n, oc);
}
