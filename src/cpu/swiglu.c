// swiglu.c: SwiGLU, out = silu(gate) * up (ops.h). The sigmoid uses the
// build's exp (vmath.h): fp64 libm, a vectorised expf in fp32.
#include "ops.h"
#include "vmath.h"

static inline real sigmoid(real x) { return (real)1 / ((real)1 + MT_EXP(-x)); }

void mt_swiglu_forward(real *out,       // (n, f)
                       const real *inp, // (n, 2f) [gate | up]
                       int n, int f) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *g = inp + (size_t)i * 2 * f, *u = g + f;
        real *y = out + (size_t)i * f;
        for (int j = 0; j < f; j++) y[j] = g[j] * sigmoid(g[j]) * u[j];
    }
}

// d gate = dout * up * silu'(gate), silu'(x) = s + x s (1 - s);
// d up = dout * silu(gate).
void mt_swiglu_backward(real *dinp,       // (n, 2f)
                        const real *inp,  // (n, 2f)
                        const real *dout, // (n, f)
                        int n, int f) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *g = inp + (size_t)i * 2 * f, *u = g + f, *dy = dout + (size_t)i * f;
        real *dg = dinp + (size_t)i * 2 * f, *du = dg + f;
        for (int j = 0; j < f; j++) {
            real s = sigmoid(g[j]);
            dg[j] = dy[j] * u[j] * (s + g[j] * s * ((real)1 - s));
            du[j] = dy[j] * g[j] * s;
        }
    }
}
