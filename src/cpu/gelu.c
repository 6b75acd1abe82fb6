// gelu.c: GELU with GPT-2's tanh approximation.
#include "ops.h"

#include <math.h>

// √(2/π): the tanh approximation's slope at 0.
#define GELU_K 0.7978845608028654
#define GELU_C 0.044715

// Both directions compute in double: the cost is small next to the GEMMs
// around them, and the fp32 build then rounds once, at the store.
void mt_gelu_forward(real *out,       // (n)
                     const real *inp, // (n)
                     size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (real)(0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_C * x * x * x))));
    }
}

void mt_gelu_backward(real *dinp,       // (n) may alias dout
                      const real *inp,  // (n)
                      const real *dout, // (n)
                      size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double t = tanh(GELU_K * (x + GELU_C * x * x * x));
        double du = GELU_K * (1.0 + 3.0 * GELU_C * x * x);
        double d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
        dinp[i] = (real)(d * dout[i]);
    }
}
