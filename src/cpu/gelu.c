// gelu.c: GELU with GPT-2's tanh approximation.
#include "ops.h"

#include <math.h>

#include "vmath.h"

// √(2/π): the tanh approximation's slope at 0.
#define GELU_K 0.7978845608028654
#define GELU_C 0.044715

// Both directions compute in the build's precision with MT_TANH (libm in
// fp64; a vectorised tanh in fp32, see vmath.h).
void mt_gelu_forward(real *out,       // (n)
                     const real *inp, // (n)
                     size_t n) {
    const real k = (real)GELU_K, c = (real)GELU_C;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        out[i] = (real)0.5 * x * ((real)1 + MT_TANH(k * (x + c * x * x * x)));
    }
}

void mt_gelu_backward(real *dinp,       // (n) may alias dout
                      const real *inp,  // (n)
                      const real *dout, // (n)
                      size_t n) {
    const real k = (real)GELU_K, c = (real)GELU_C;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        real t = MT_TANH(k * (x + c * x * x * x));
        real du = k * ((real)1 + (real)3 * c * x * x);
        real d = (real)0.5 * ((real)1 + t) + (real)0.5 * x * ((real)1 - t * t) * du;
        dinp[i] = d * dout[i];
    }
}
