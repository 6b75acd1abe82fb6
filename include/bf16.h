// bf16.h: the one rounding of --bf16 (docs/design.md, "bf16").
//
// bfloat16 keeps fp32's sign and 8 exponent bits and the top 7 of its 23
// mantissa bits, so an fp32 value becomes bf16 by rounding away the low 16
// bits: to nearest, ties to the even neighbour (what cuBLAS, PyTorch's
// .to(torch.bfloat16) and the hardware's conversion instructions do). The
// emulation keeps the rounded value in an fp32 slot; every op that hands a
// bf16 tensor on calls this. NaN stays NaN (its quiet bit set, so no payload
// rounds to infinity); a value past bf16's largest rounds to infinity, as
// the conversion does. tests/test_bf16.c checks all 2^32 inputs against a
// reference written with rint and powers of two.
#ifndef MT_BF16_H
#define MT_BF16_H

#include <string.h>

#include "common.h"

static inline MT_HD float mt_bf16_round(float x) {
    uint32_t u;
#ifdef __CUDA_ARCH__
    u = __float_as_uint(x);
#else
    memcpy(&u, &x, sizeof u);
#endif
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        u = (u | 0x00400000u) & 0xffff0000u;  // NaN: quiet, payload's top bits kept
    } else {
        // Adding 0x7fff rounds the low half up when it exceeds one half; the
        // kept bits' lowest (1 when odd) breaks the tie toward even. A carry
        // into the exponent is the correct next binade (or infinity).
        u += 0x7fffu + ((u >> 16) & 1u);
        u &= 0xffff0000u;
    }
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    memcpy(&x, &u, sizeof x);
    return x;
#endif
}

#endif
