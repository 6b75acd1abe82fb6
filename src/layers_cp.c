// layers_cp.c: attention under context parallelism (layers_cp.h). The
// sequence is cut into 2C chunks and CP rank r holds chunks r and 2C-1-r
// (causal load balance, as Megatron and Transformer Engine do); every other
// op of the layer works on those rows alone, keyed by global positions.
// Attention needs every earlier position, so it crosses the split:
//
//  - p2p (ring attention): the K|V blocks travel around the CP ring while
//    the current one is attended; partial results merge by log-sum-exp; in
//    backward the blocks travel again, each with its dK|dV accumulating, and
//    one more hop brings every block's gradient home. No (s, s) matrix.
//  - a2a (DeepSpeed-Ulysses): an all-to-all turns [s/C positions, all
//    heads] into [all s positions, heads/C]; the ordinary kernels run on the
//    whole sequence in global order; an all-to-all turns the output back.
//    Backward re-exchanges QKV (and the output for the blocked kernel)
//    rather than keep a second copy, as SP re-gathers its LN output.
//  - allgather (Megatron's "allgather", Transformer Engine's KV all-gather):
//    every rank's K|V block is gathered; this rank's queries attend to each
//    block with the ring's kernels, in the ring's order, so the forward is
//    the ring's bit for bit. Backward gathers again (nothing kept), sums each
//    block's dK|dV over CP with one reduce-scatter. More memory than the
//    ring (C blocks at once), fewer messages (two collectives a layer).
#include "layers_cp.h"

#include "backend.h"

// ---- the ring -------------------------------------------------------------------

static mt_attn_block block_of(const mt_model *m, uint32_t sample0) {
    mt_attn_block ab = {.sq = m->s, .sk = m->s, .b = m->b, .nh = m->nh_l, .nkv = m->nkv_l, .hd = m->hd,
                        .ldq = m->qkv_l, .head0 = (uint32_t)(m->par->tp_rank * m->nh_l), .sample0 = sample0,
                        .chunk = m->s_full / (2 * m->par->cp_size), .no_causal = m->cfg->bug_cp_no_causal, .bf16 = m->bf16};
    return ab;
}

// This rank's K | V columns of qkv, packed row by row into kv (n, 2 g/t hd):
// the block that travels.
static void pack_kv(const mt_model *m, real *kv, const real *qkv) {
    size_t w = 2 * (size_t)m->nkv_l * m->hd, q = (size_t)m->nh_l * m->hd;
    for (int i = 0; i < m->n; i++) m->be->copy(kv + (size_t)i * w, qkv + (size_t)i * m->qkv_l + q, w);
}

static void unpack_kv(const mt_model *m, real *qkv, const real *kv) {
    size_t w = 2 * (size_t)m->nkv_l * m->hd, q = (size_t)m->nh_l * m->hd;
    for (int i = 0; i < m->n; i++) m->be->copy(qkv + (size_t)i * m->qkv_l + q, kv + (size_t)i * w, w);
}

static const int *pos_of(const mt_model *m, int cp_rank) { return m->cp_pos + (size_t)cp_rank * m->s; }
// The same positions in host memory, for indexing on the host.
static const int *host_pos_of(const mt_model *m, int cp_rank) { return m->cp_pos_host + (size_t)cp_rank * m->s; }

// Step k of the ring holds the block of CP rank (r - k) mod C.
static int src_at(const mt_model *m, int k) { return (m->par->cp_rank - k + m->par->cp_size) % m->par->cp_size; }

static void swap(real **a, real **b) { real *t = *a; *a = *b; *b = t; }

static void ring_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    const mt_backend *B = m->be;
    mt_attn_block ab = block_of(m, sample0);
    int C = m->par->cp_size;
    size_t nkv = (size_t)m->n * 2 * m->nkv_l * m->hd;
    real *cur = m->ws.kv_cur, *next = m->ws.kv_next;
    const int *qpos = pos_of(m, m->par->cp_rank);
    pack_kv(m, cur, a->qkv);
    for (int k = 0; k < C; k++) {
        mt_cp_ring ring;
        if (k + 1 < C) mt_comm_cp_ring_start(cm, &ring, next, cur, nkv);  // the next block arrives meanwhile
        if (k == 0) {
            B->attention_block_forward(a->atty, a->lse, a->qkv, cur, qpos, qpos, kp, ab);
        } else {
            B->attention_block_forward(m->ws.out_b, m->ws.lse_b, a->qkv, cur, qpos, pos_of(m, src_at(m, k)), kp, ab);
            B->attention_block_merge(a->atty, a->lse, m->ws.out_b, m->ws.lse_b, ab);
        }
        if (k + 1 < C) {
            mt_comm_cp_ring_wait(cm, &ring);
            swap(&cur, &next);
        }
    }
}

static void ring_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp,
                          uint32_t sample0) {
    const mt_backend *B = m->be;
    mt_attn_block ab = block_of(m, sample0);
    int C = m->par->cp_size;
    size_t nkv = (size_t)m->n * 2 * m->nkv_l * m->hd;
    real *cur = m->ws.kv_cur, *next = m->ws.kv_next, *dcur = m->ws.dkv_cur, *dnext = m->ws.dkv_next;
    const int *qpos = pos_of(m, m->par->cp_rank);
    B->zero(m->ws.dqkv, (size_t)m->n * m->qkv_l * sizeof(real));
    B->zero(dcur, nkv * sizeof(real));
    pack_kv(m, cur, a->qkv);
    for (int k = 0; k < C; k++) {
        B->attention_block_backward(m->ws.dqkv, dcur, m->ws.datty, a->qkv, cur, a->atty, a->lse, qpos,
                                    pos_of(m, src_at(m, k)), kp, ab);
        // The block and its gradient move on; after the last step only the
        // gradient travels, the one hop that brings it home.
        mt_cp_ring kvr, dr;
        if (k + 1 < C) mt_comm_cp_ring_start(cm, &kvr, next, cur, nkv);
        mt_comm_cp_ring_start(cm, &dr, dnext, dcur, nkv);
        if (k + 1 < C) mt_comm_cp_ring_wait(cm, &kvr);
        mt_comm_cp_ring_wait(cm, &dr);
        swap(&cur, &next);
        swap(&dcur, &dnext);
    }
    unpack_kv(m, m->ws.dqkv, dcur);  // this rank's own block's dK | dV, home
}

// ---- the all-gather -------------------------------------------------------------------

// Posts the all-gather of every CP rank's K|V block into ws.kv_all (block d
// from CP rank d), this rank's own packed first; returns it.
static real *ag_start(mt_model *m, mt_comm *cm, const real *qkv, mt_coll_req *req, int *counts, int *displs) {
    int C = m->par->cp_size, r = m->par->cp_rank;
    size_t nkv = (size_t)m->n * 2 * m->nkv_l * m->hd;
    if (nkv * (size_t)C > (size_t)INT32_MAX) mt_fail_local(MT_EXIT_FAIL, "CP all-gather of %zu elements: over MPI's int count", nkv * (size_t)C);
    for (int d = 0; d < C; d++) counts[d] = (int)nkv, displs[d] = (int)((size_t)d * nkv);
    real *own = m->ws.kv_all + (size_t)r * nkv;
    pack_kv(m, own, qkv);
    mt_comm_iallgatherv(cm, MT_GROUP_CP, m->ws.kv_all, counts, displs, req);
    return own;
}

static void ag_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    const mt_backend *B = m->be;
    mt_attn_block ab = block_of(m, sample0);
    int C = m->par->cp_size, counts[C], displs[C];
    size_t nkv = (size_t)m->n * 2 * m->nkv_l * m->hd;
    const int *qpos = pos_of(m, m->par->cp_rank);
    mt_coll_req req = {.req = MPI_REQUEST_NULL};
    const real *own = ag_start(m, cm, a->qkv, &req, counts, displs);
    // The own block while the others travel, then the others in the ring's
    // order (step k: CP rank r - k), merged as the ring merges them.
    B->attention_block_forward(a->atty, a->lse, a->qkv, own, qpos, qpos, kp, ab);
    if (!m->cfg->bug_cp_ag_early) mt_comm_coll_wait(cm, &req);
    for (int k = 1; k < C; k++) {
        int src = src_at(m, k);
        B->attention_block_forward(m->ws.out_b, m->ws.lse_b, a->qkv, m->ws.kv_all + (size_t)src * nkv, qpos, pos_of(m, src), kp, ab);
        B->attention_block_merge(a->atty, a->lse, m->ws.out_b, m->ws.lse_b, ab);
    }
    mt_comm_coll_wait(cm, &req);  // a no-op unless the test hook above skipped it
    mt_comm_coll_free(&req);
}

static void ag_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    const mt_backend *B = m->be;
    mt_attn_block ab = block_of(m, sample0);
    int C = m->par->cp_size, r = m->par->cp_rank, counts[C], displs[C];
    size_t nkv = (size_t)m->n * 2 * m->nkv_l * m->hd;
    const int *qpos = pos_of(m, r);
    B->zero(m->ws.dqkv, (size_t)m->n * m->qkv_l * sizeof(real));
    B->zero(m->ws.dkv_all, (size_t)C * nkv * sizeof(real));
    mt_coll_req req = {.req = MPI_REQUEST_NULL};
    const real *own = ag_start(m, cm, a->qkv, &req, counts, displs);
    B->attention_block_backward(m->ws.dqkv, m->ws.dkv_all + (size_t)r * nkv, m->ws.datty, a->qkv, own, a->atty, a->lse,
                                qpos, qpos, kp, ab);
    mt_comm_coll_wait(cm, &req);
    for (int k = 1; k < C; k++) {
        int src = src_at(m, k);
        B->attention_block_backward(m->ws.dqkv, m->ws.dkv_all + (size_t)src * nkv, m->ws.datty, a->qkv,
                                    m->ws.kv_all + (size_t)src * nkv, a->atty, a->lse, qpos, pos_of(m, src), kp, ab);
    }
    mt_comm_coll_free(&req);
    // Block d's dK|dV summed over every rank's queries lands in block d of
    // CP rank d: this rank's own.
    mt_comm_shard_reduce_scatter(cm, MT_GROUP_CP, m->ws.dkv_all, (size_t)C * nkv);
    unpack_kv(m, m->ws.dqkv, m->ws.dkv_all + (size_t)r * nkv);
}

// ---- the all-to-all -------------------------------------------------------------------

// Column segments of a row that split over CP by heads: QKV's Q, K and V
// parts (each cut in C), or the attention output's one part.
typedef struct { int n; size_t off[3], len[3]; } segs;

static segs qkv_segs(const mt_model *m) {
    size_t q = (size_t)m->nh_l * m->hd, kv = (size_t)m->nkv_l * m->hd;
    segs s = {3, {0, q, q + kv}, {q, kv, kv}};
    return s;
}
static segs out_segs(const mt_model *m) {
    segs s = {1, {0}, {(size_t)m->h_l}};
    return s;
}
static size_t segs_width(const segs *g) { return g->len[0] + (g->n > 1 ? g->len[1] + g->len[2] : 0); }

// src (n local rows, all heads) -> dst (s_full b rows in global order, the
// heads of this CP rank). The send block of CP rank d holds its heads.
static void to_heads(mt_model *m, mt_comm *cm, real *dst, const real *src, segs g) {
    const mt_backend *B = m->be;
    int C = m->par->cp_size;
    size_t W = segs_width(&g), wd = W / (size_t)C, n = (size_t)m->n;
    for (int d = 0; d < C; d++)
        for (size_t i = 0; i < n; i++) {
            real *o = m->ws.cp_send + ((size_t)d * n + i) * wd;
            for (int k = 0; k < g.n; k++) {
                size_t part = g.len[k] / (size_t)C;
                B->copy(o, src + i * W + g.off[k] + (size_t)d * part, part);
                o += part;
            }
        }
    mt_comm_cp_all_to_all(cm, m->ws.cp_recv, m->ws.cp_send, n * W);
    for (int r = 0; r < C; r++)
        for (size_t i = 0; i < n; i++) {
            size_t row = (size_t)host_pos_of(m, r)[i / (size_t)m->b] * (size_t)m->b + i % (size_t)m->b;
            B->copy(dst + row * wd, m->ws.cp_recv + ((size_t)r * n + i) * wd, wd);
        }
}

// The inverse: src (s_full b rows, this rank's heads) -> dst (n local rows).
static void to_seq(mt_model *m, mt_comm *cm, real *dst, const real *src, segs g) {
    const mt_backend *B = m->be;
    int C = m->par->cp_size;
    size_t W = segs_width(&g), wd = W / (size_t)C, n = (size_t)m->n;
    for (int d = 0; d < C; d++)
        for (size_t i = 0; i < n; i++) {
            size_t row = (size_t)host_pos_of(m, d)[i / (size_t)m->b] * (size_t)m->b + i % (size_t)m->b;
            B->copy(m->ws.cp_send + ((size_t)d * n + i) * wd, src + row * wd, wd);
        }
    mt_comm_cp_all_to_all(cm, m->ws.cp_recv, m->ws.cp_send, n * W);
    for (int r = 0; r < C; r++)
        for (size_t i = 0; i < n; i++) {
            const real *in = m->ws.cp_recv + ((size_t)r * n + i) * wd;
            for (int k = 0; k < g.n; k++) {
                size_t part = g.len[k] / (size_t)C;
                B->copy(dst + i * W + g.off[k] + (size_t)r * part, in, part);
                in += part;
            }
        }
}

// The attention core's shape after the all-to-all: the whole sequence, the
// heads of this (TP, CP) rank.
static mt_attn_shape a2a_shape(const mt_model *m, uint32_t sample0) {
    int C = m->par->cp_size;
    mt_attn_shape sh = {.s = m->s_full, .b = m->b, .nh = m->nh_l / C, .hd = m->hd, .nkv = m->nkv_l / C,
                        .head0 = (uint32_t)(m->par->tp_rank * m->nh_l + m->par->cp_rank * (m->nh_l / C)),
                        .sample0 = sample0, .bf16 = m->bf16};
    return sh;
}

static void a2a_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    mt_attn_shape sh = a2a_shape(m, sample0);
    to_heads(m, cm, m->ws.qkv_h, a->qkv, qkv_segs(m));
    if (m->cfg->flash_attn) m->be->flash_attention_forward(m->ws.atty_h, a->lse, m->ws.qkv_h, kp, sh);
    else m->be->attention_forward(m->ws.atty_h, a->probs, m->ws.qkv_h, kp, sh);
    to_seq(m, cm, a->atty, m->ws.atty_h, out_segs(m));
}

static void a2a_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp,
                         uint32_t sample0) {
    const mt_backend *B = m->be;
    mt_attn_shape sh = a2a_shape(m, sample0);
    to_heads(m, cm, m->ws.datty_h, m->ws.datty, out_segs(m));
    to_heads(m, cm, m->ws.qkv_h, a->qkv, qkv_segs(m));
    if (m->cfg->flash_attn) {
        to_heads(m, cm, m->ws.atty_h, a->atty, out_segs(m));
        B->flash_attention_backward(m->ws.dqkv_h, m->ws.datty_h, m->ws.qkv_h, m->ws.atty_h, a->lse, kp, sh);
    } else {
        // Selective recomputation: the probabilities again, from the
        // re-exchanged QKV (the output lands in atty_h, unused).
        if (m->cfg->recompute == MT_RECOMPUTE_SELECTIVE) B->attention_forward(m->ws.atty_h, a->probs, m->ws.qkv_h, kp, sh);
        B->attention_backward(m->ws.dqkv_h, m->ws.dprobs, m->ws.datty_h, m->ws.qkv_h, a->probs, kp, sh);
    }
    to_seq(m, cm, m->ws.dqkv, m->ws.dqkv_h, qkv_segs(m));
}

// ---- entry points -----------------------------------------------------------------

void mt_cp_attention_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    if (m->cp_ring) ring_forward(m, cm, a, kp, sample0);
    else if (m->cp_ag) ag_forward(m, cm, a, kp, sample0);
    else a2a_forward(m, cm, a, kp, sample0);
}

void mt_cp_attention_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp,
                              uint32_t sample0) {
    if (m->cp_ring) ring_backward(m, cm, a, kp, sample0);
    else if (m->cp_ag) ag_backward(m, cm, a, kp, sample0);
    else a2a_backward(m, cm, a, kp, sample0);
}
