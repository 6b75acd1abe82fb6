// fused.h: what the fused sweeps (ops.h, MT_OPS_FUSED) share with the ops
// they fuse, so that both compute each value with the same expression.
#ifndef MT_CPU_FUSED_H
#define MT_CPU_FUSED_H

#include "bf16.h"
#include "common.h"

// Forces inlining where a sweep is instantiated twice, with bf16 a constant
// 0 or 1: the fp32 instance then carries no rounding and no branch.
#define MT_INLINE static inline __attribute__((always_inline))

// --bf16's rounding of one value, or the value itself (on 0).
MT_INLINE real mt_round_if(real x, int on) { return on ? (real)mt_bf16_round((float)x) : x; }

#endif
