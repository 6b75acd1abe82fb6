// vmath.h: exp and tanh for the hot elementwise loops. The fp64 oracle
// build keeps libm; the fp32 build uses a branch-free single-precision exp
// (Cephes' expf polynomial, ~2 ulp) that GCC vectorises, because glibc's
// scalar exp/tanh in double were 18% of a training step.
#ifndef MT_VMATH_H
#define MT_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float mt_expf_fast(float x) {
    // Ternaries, not fminf/fmaxf, so GCC can if-convert and vectorise.
    float xc = x < -87.3f ? -87.3f : x > 88.3f ? 88.3f : x;
    float k = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - k * 0.693359375f + k * 2.12194440e-4f;  // x - k ln 2, in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {((int32_t)k + 127) << 23};  // 2^k
    return x < -87.3f ? 0.0f : y * scale.f;    // exp(-inf) = 0 for masked logits
}

// tanh(x) = 1 - 2 / (exp(2x) + 1): exact at both tails; near 0 its absolute
// error stays ~1e-7, which is what GELU's 0.5 x (1 + tanh) sees.
static inline float mt_tanhf_fast(float x) { return 1.0f - 2.0f / (mt_expf_fast(2.0f * x) + 1.0f); }

#ifdef MT_FP64
#define MT_EXP(x) exp(x)
#define MT_TANH(x) tanh(x)
#define MT_SQRT(x) sqrt(x)
#else
#define MT_EXP(x) mt_expf_fast(x)
#define MT_TANH(x) mt_tanhf_fast(x)
// Correctly rounded like (float)sqrt((double)x), without the round trip.
#define MT_SQRT(x) sqrtf(x)
#endif

#endif
