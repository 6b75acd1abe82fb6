// cuda_bf16.h for tests/cudaemu: bf16 as 16 bits, converted as the hardware
// does (to nearest, ties to even; NaN kept quiet).
#ifndef CUDAEMU_BF16_H
#define CUDAEMU_BF16_H
#include "cudaemu.h"
struct __nv_bfloat16 { uint16_t x; };
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) u = (u | 0x00400000u);
    else u += 0x7fffu + ((u >> 16) & 1u);
    __nv_bfloat16 b;
    b.x = (uint16_t)(u >> 16);
    return b;
}
static inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((uint32_t)b.x << 16); }
#endif
