// attention_common.cuh: what the plain (attention.cu) and blocked
// (flash_attention.cu) attention kernels share: the shape, the dropout site,
// and where a (batch column, head) pair's rows sit. Rows of qkv are (s, b)
// ordered, each [Q (nh hd) | K (nkv hd) | V (nkv hd)], W wide, with query
// head hh at columns hh*hd reading KV head hh / per (grouped-query
// attention; per = nh / nkv, 1 for multi-head); out/dout rows hold the
// query heads' outputs side by side.
#ifndef MT_CUDA_ATTENTION_COMMON_CUH
#define MT_CUDA_ATTENTION_COMMON_CUH

#include "cuda_common.cuh"
// after cuda_common.cuh, whose extern "C" block gives common.h C linkage
#include "bf16.h"

typedef struct {
    int s, b, nh, hd, H;      // H = nh * hd
    int nkv, per, W;          // KV heads, query heads per KV head, qkv row width (nh + 2 nkv) hd
    uint32_t head0, sample0;  // global indices of local head 0 and batch column 0
    float scale;              // 1/√hd
    mt_cuda_mask mask;        // attention dropout on the probabilities
    int bf16;                 // --bf16: round the bf16 intermediates as the CPU kernels do
} mt_cuda_attn;

// --bf16: the value a bf16 tensor holds (identity when off).
__device__ static inline float attn_bf16(int on, float x) { return on ? mt_bf16_round(x) : x; }

mt_cuda_attn mt_cuda_attn_of(const mt_dropout_key *k, mt_attn_shape sh);

// Row `pos` of pair (bc, hh): its Q, K and V in qkv and its row in out / dout.
__device__ static inline size_t attn_q_at(const mt_cuda_attn &a, int bc, int hh, int pos) {
    return ((size_t)pos * a.b + bc) * a.W + (size_t)hh * a.hd;
}
__device__ static inline size_t attn_k_at(const mt_cuda_attn &a, int bc, int hh, int pos) {
    return ((size_t)pos * a.b + bc) * a.W + ((size_t)a.nh + hh / a.per) * a.hd;
}
__device__ static inline size_t attn_v_at(const mt_cuda_attn &a, int bc, int hh, int pos) {
    return ((size_t)pos * a.b + bc) * a.W + ((size_t)a.nh + a.nkv + hh / a.per) * a.hd;
}
__device__ static inline size_t attn_o_at(const mt_cuda_attn &a, int bc, int hh, int pos) {
    return ((size_t)pos * a.b + bc) * a.H + (size_t)hh * a.hd;
}
// keep/(1-p), 0, or 1 without dropout, for probability (query q, key j):
// the CPU's draw (sample, head << 16 | query, key).
__device__ static inline float attn_keep(const mt_cuda_attn &a, int bc, int hh, int q, int j) {
    return mt_cuda_keep(a.mask, a.sample0 + (uint32_t)bc, (a.head0 + (uint32_t)hh) << 16 | (uint32_t)q, (uint32_t)j);
}

#endif
