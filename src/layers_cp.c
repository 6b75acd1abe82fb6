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

// One ring: its group, this rank's place, every member's row positions (its
// query and key positions), the block shape, and the rows it works on.
// Plain p2p: the CP group on the layer's own QKV; a2a+p2p: the ring level,
// on the head-split rows the all-to-all level produced.
typedef struct {
    mt_group g;
    int size, rank;
    const int *pos;          // (size, ab.sq) global positions, device memory
    mt_attn_block ab;
    size_t rows, q, kvw;     // rows (ab.sq b); per row: Q's width (from a row's start) and K | V's
} ring_t;

static mt_attn_block block_of(const mt_model *m, uint32_t sample0) {
    mt_attn_block ab = {.sq = m->s, .sk = m->s, .b = m->b, .nh = m->nh_l, .nkv = m->nkv_l, .hd = m->hd,
                        .ldq = m->qkv_l, .head0 = (uint32_t)(m->par->tp_rank * m->nh_l), .sample0 = sample0,
                        .chunk = m->s_full / (2 * m->par->cp_size), .no_causal = m->cfg->bug_cp_no_causal, .bf16 = m->bf16};
    return ab;
}

static ring_t ring_of(const mt_model *m, uint32_t sample0) {
    ring_t R = {MT_GROUP_CP, m->par->cp_size, m->par->cp_rank, m->cp_pos, block_of(m, sample0), 0, 0, 0};
    if (m->cp_hier) {
        // After the all-to-all within A adjacent CP ranks: A times the rows,
        // a/A of the heads (this rank's place i in its group picks which),
        // chunks of 2P in the ring of the CP ranks i, i + A, ...
        int A = m->par->hcp_a, P = m->par->cp_size / A, i = m->par->cp_rank % A;
        R.g = MT_GROUP_CPP2P, R.size = P, R.rank = m->par->cp_rank / A, R.pos = m->hcp_pos;
        R.ab.sq = R.ab.sk = A * m->s, R.ab.nh = m->nh_l / A, R.ab.nkv = m->nkv_l / A, R.ab.ldq = m->qkv_l / A;
        R.ab.head0 += (uint32_t)(i * (m->nh_l / A));
        R.ab.chunk = m->s_full / (2 * P);
    }
    R.rows = (size_t)R.ab.sq * (size_t)R.ab.b;
    R.q = (size_t)R.ab.nh * R.ab.hd;
    R.kvw = 2 * (size_t)R.ab.nkv * R.ab.hd;
    return R;
}

// The K | V columns of qkv's rows, packed row by row into kv: the block
// that travels; and back.
static void pack_kv(const mt_model *m, const ring_t *R, real *kv, const real *qkv) {
    for (size_t i = 0; i < R->rows; i++) m->be->copy(kv + i * R->kvw, qkv + i * R->ab.ldq + R->q, R->kvw);
}

static void unpack_kv(const mt_model *m, const ring_t *R, real *qkv, const real *kv) {
    for (size_t i = 0; i < R->rows; i++) m->be->copy(qkv + i * R->ab.ldq + R->q, kv + i * R->kvw, R->kvw);
}

static const int *pos_of(const ring_t *R, int member) { return R->pos + (size_t)member * R->ab.sq; }
// CP rank r's positions in host memory, for indexing on the host.
static const int *host_pos_of(const mt_model *m, int cp_rank) { return m->cp_pos_host + (size_t)cp_rank * m->s; }

// Step k of the ring holds the block of member (r - k) mod size.
static int src_at(const ring_t *R, int k) { return (R->rank - k + R->size) % R->size; }

static void swap(real **a, real **b) { real *t = *a; *a = *b; *b = t; }

// qkv (R's rows) -> atty, lse.
static void ring_forward(mt_model *m, mt_comm *cm, const ring_t *R, real *atty, real *lse, const real *qkv, const mt_dropout_key *kp) {
    const mt_backend *B = m->be;
    size_t nkv = R->rows * R->kvw;
    real *cur = m->ws.kv_cur, *next = m->ws.kv_next;
    const int *qpos = pos_of(R, R->rank);
    pack_kv(m, R, cur, qkv);
    for (int k = 0; k < R->size; k++) {
        mt_cp_ring ring;
        if (k + 1 < R->size) mt_comm_cp_ring_start(cm, R->g, &ring, next, cur, nkv);  // the next block arrives meanwhile
        if (k == 0) {
            B->attention_block_forward(atty, lse, qkv, cur, qpos, qpos, kp, R->ab);
        } else {
            B->attention_block_forward(m->ws.out_b, m->ws.lse_b, qkv, cur, qpos, pos_of(R, src_at(R, k)), kp, R->ab);
            B->attention_block_merge(atty, lse, m->ws.out_b, m->ws.lse_b, R->ab);
        }
        if (k + 1 < R->size) {
            mt_comm_cp_ring_wait(cm, &ring);
            swap(&cur, &next);
        }
    }
}

// datty -> dqkv (R's rows), from what the forward kept.
static void ring_backward(mt_model *m, mt_comm *cm, const ring_t *R, real *dqkv, const real *datty, const real *qkv,
                          const real *atty, const real *lse, const mt_dropout_key *kp) {
    const mt_backend *B = m->be;
    size_t nkv = R->rows * R->kvw;
    real *cur = m->ws.kv_cur, *next = m->ws.kv_next, *dcur = m->ws.dkv_cur, *dnext = m->ws.dkv_next;
    const int *qpos = pos_of(R, R->rank);
    B->zero(dqkv, R->rows * R->ab.ldq * sizeof(real));
    B->zero(dcur, nkv * sizeof(real));
    pack_kv(m, R, cur, qkv);
    for (int k = 0; k < R->size; k++) {
        B->attention_block_backward(dqkv, dcur, datty, qkv, cur, atty, lse, qpos, pos_of(R, src_at(R, k)), kp, R->ab);
        if (R->size == 1) break;  // a2a+p2p with a ring of one: the block is home
        // The block and its gradient move on; after the last step only the
        // gradient travels, the one hop that brings it home.
        mt_cp_ring kvr, dr;
        if (k + 1 < R->size) mt_comm_cp_ring_start(cm, R->g, &kvr, next, cur, nkv);
        mt_comm_cp_ring_start(cm, R->g, &dr, dnext, dcur, nkv);
        if (k + 1 < R->size) mt_comm_cp_ring_wait(cm, &kvr);
        mt_comm_cp_ring_wait(cm, &dr);
        swap(&cur, &next);
        swap(&dcur, &dnext);
    }
    unpack_kv(m, R, dqkv, dcur);  // this rank's own block's dK | dV, home
}

// ---- the all-gather -------------------------------------------------------------------

// Packs this rank's K|V block into ws.kv_own and posts its all-gather into
// ws.kv_all (block d from CP rank d); returns the own block, which the
// caller attends to meanwhile (a send buffer may be read in flight; the
// receive buffer, its own block included, may not).
static const real *ag_start(mt_model *m, mt_comm *cm, const ring_t *R, const real *qkv, mt_coll_req *req) {
    pack_kv(m, R, m->ws.kv_own, qkv);
    mt_comm_iall_gather(cm, R->g, m->ws.kv_all, m->ws.kv_own, R->rows * R->kvw, req);
    return m->ws.kv_own;
}

static void ag_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    const mt_backend *B = m->be;
    ring_t R = ring_of(m, sample0);
    size_t nkv = R.rows * R.kvw;
    const int *qpos = pos_of(&R, R.rank);
    mt_coll_req req = {.req = MPI_REQUEST_NULL};
    const real *own = ag_start(m, cm, &R, a->qkv, &req);
    // The own block while the others travel, then the others in the ring's
    // order (step k: CP rank r - k), merged as the ring merges them.
    B->attention_block_forward(a->atty, a->lse, a->qkv, own, qpos, qpos, kp, R.ab);
    if (!m->cfg->bug_cp_ag_early) mt_comm_coll_wait(cm, &req);
    for (int k = 1; k < R.size; k++) {
        int src = src_at(&R, k);
        B->attention_block_forward(m->ws.out_b, m->ws.lse_b, a->qkv, m->ws.kv_all + (size_t)src * nkv, qpos, pos_of(&R, src), kp, R.ab);
        B->attention_block_merge(a->atty, a->lse, m->ws.out_b, m->ws.lse_b, R.ab);
    }
    mt_comm_coll_wait(cm, &req);  // a no-op unless the test hook above skipped it
    mt_comm_coll_free(&req);
}

static void ag_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    const mt_backend *B = m->be;
    ring_t R = ring_of(m, sample0);
    size_t nkv = R.rows * R.kvw;
    const int *qpos = pos_of(&R, R.rank);
    B->zero(m->ws.dqkv, R.rows * R.ab.ldq * sizeof(real));
    B->zero(m->ws.dkv_all, (size_t)R.size * nkv * sizeof(real));
    mt_coll_req req = {.req = MPI_REQUEST_NULL};
    const real *own = ag_start(m, cm, &R, a->qkv, &req);
    B->attention_block_backward(m->ws.dqkv, m->ws.dkv_all + (size_t)R.rank * nkv, m->ws.datty, a->qkv, own, a->atty, a->lse,
                                qpos, qpos, kp, R.ab);
    mt_comm_coll_wait(cm, &req);
    for (int k = 1; k < R.size; k++) {
        int src = src_at(&R, k);
        B->attention_block_backward(m->ws.dqkv, m->ws.dkv_all + (size_t)src * nkv, m->ws.datty, a->qkv,
                                    m->ws.kv_all + (size_t)src * nkv, a->atty, a->lse, qpos, pos_of(&R, src), kp, R.ab);
    }
    mt_comm_coll_free(&req);
    // Block d's dK|dV summed over every rank's queries lands in block d of
    // CP rank d: this rank's own.
    mt_comm_shard_reduce_scatter(cm, R.g, m->ws.dkv_all, (size_t)R.size * nkv);
    unpack_kv(m, &R, m->ws.dqkv, m->ws.dkv_all + (size_t)R.rank * nkv);
}

// ---- the all-to-all -------------------------------------------------------------------

// Column segments of a row that split by heads: QKV's Q, K and V parts
// (each cut in G), or the attention output's one part.
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

// The all-to-all's group: G CP ranks (base, base + 1, ...), and where a
// received row lands. Plain a2a: every CP rank, the whole sequence in
// global order. a2a+p2p: A adjacent CP ranks, whose chunks make the two
// runs of ring member j (chunks j and 2P-1-j of 2P, each S positions), in
// that member's local order. (P = 1, j = 0 is the global order.)
typedef struct { mt_group g; int G, base, P, j; size_t S; } a2a_t;

static a2a_t a2a_of(const mt_model *m) {
    a2a_t x = {MT_GROUP_CP, m->par->cp_size, 0, 1, 0, 0};
    if (m->cp_hier) {
        int A = m->par->hcp_a;
        x.g = MT_GROUP_CPA2A, x.G = A, x.base = m->par->cp_rank / A * A, x.P = m->par->cp_size / A, x.j = m->par->cp_rank / A;
    }
    x.S = (size_t)m->s_full / (2 * (size_t)x.P);
    return x;
}

// The row of (position pos, sample bcol) after the all-to-all.
static size_t dest_row(const mt_model *m, const a2a_t *x, int pos, size_t bcol) {
    size_t p = (size_t)pos, lo = (size_t)x->j * x->S;
    size_t at = p < lo + x->S ? p - lo : x->S + p - (size_t)(2 * x->P - 1 - x->j) * x->S;
    return at * (size_t)m->b + bcol;
}

// src (n local rows, all heads) -> dst (G n rows, as a2a_of places them,
// this rank's share of the heads). The send block of group rank d holds
// its heads.
static void to_heads(mt_model *m, mt_comm *cm, real *dst, const real *src, segs g) {
    const mt_backend *B = m->be;
    a2a_t x = a2a_of(m);
    size_t W = segs_width(&g), wd = W / (size_t)x.G, n = (size_t)m->n, b = (size_t)m->b;
    for (int d = 0; d < x.G; d++)
        for (size_t i = 0; i < n; i++) {
            real *o = m->ws.cp_send + ((size_t)d * n + i) * wd;
            for (int k = 0; k < g.n; k++) {
                size_t part = g.len[k] / (size_t)x.G;
                B->copy(o, src + i * W + g.off[k] + (size_t)d * part, part);
                o += part;
            }
        }
    mt_comm_cp_all_to_all(cm, x.g, m->ws.cp_recv, m->ws.cp_send, n * W);
    for (int r = 0; r < x.G; r++)
        for (size_t i = 0; i < n; i++)
            B->copy(dst + dest_row(m, &x, host_pos_of(m, x.base + r)[i / b], i % b) * wd, m->ws.cp_recv + ((size_t)r * n + i) * wd, wd);
}

// The inverse: src (G n rows, this rank's heads) -> dst (n local rows).
static void to_seq(mt_model *m, mt_comm *cm, real *dst, const real *src, segs g) {
    const mt_backend *B = m->be;
    a2a_t x = a2a_of(m);
    size_t W = segs_width(&g), wd = W / (size_t)x.G, n = (size_t)m->n, b = (size_t)m->b;
    for (int d = 0; d < x.G; d++)
        for (size_t i = 0; i < n; i++)
            B->copy(m->ws.cp_send + ((size_t)d * n + i) * wd, src + dest_row(m, &x, host_pos_of(m, x.base + d)[i / b], i % b) * wd, wd);
    mt_comm_cp_all_to_all(cm, x.g, m->ws.cp_recv, m->ws.cp_send, n * W);
    for (int r = 0; r < x.G; r++)
        for (size_t i = 0; i < n; i++) {
            const real *in = m->ws.cp_recv + ((size_t)r * n + i) * wd;
            for (int k = 0; k < g.n; k++) {
                size_t part = g.len[k] / (size_t)x.G;
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

// ---- both levels (a2a+p2p) ----------------------------------------------------------

// The all-to-all within A adjacent CP ranks makes each rank's rows those of
// a ring member of P holding chunks j and 2P-1-j, for a/A of the heads; the
// ring runs on them as p2p runs on the plain split; an all-to-all brings
// the output back. Backward re-exchanges QKV and the output, as a2a does.
static void hier_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    ring_t R = ring_of(m, sample0);
    to_heads(m, cm, m->ws.qkv_h, a->qkv, qkv_segs(m));
    ring_forward(m, cm, &R, m->ws.atty_h, a->lse, m->ws.qkv_h, kp);
    to_seq(m, cm, a->atty, m->ws.atty_h, out_segs(m));
}

static void hier_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    ring_t R = ring_of(m, sample0);
    to_heads(m, cm, m->ws.datty_h, m->ws.datty, out_segs(m));
    to_heads(m, cm, m->ws.qkv_h, a->qkv, qkv_segs(m));
    to_heads(m, cm, m->ws.atty_h, a->atty, out_segs(m));
    ring_backward(m, cm, &R, m->ws.dqkv_h, m->ws.datty_h, m->ws.qkv_h, m->ws.atty_h, a->lse, kp);
    to_seq(m, cm, m->ws.dqkv, m->ws.dqkv_h, qkv_segs(m));
}

// ---- entry points -----------------------------------------------------------------

void mt_cp_attention_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0) {
    if (m->cp_ring) {
        ring_t R = ring_of(m, sample0);
        ring_forward(m, cm, &R, a->atty, a->lse, a->qkv, kp);
    } else if (m->cp_ag) ag_forward(m, cm, a, kp, sample0);
    else if (m->cp_hier) hier_forward(m, cm, a, kp, sample0);
    else a2a_forward(m, cm, a, kp, sample0);
}

void mt_cp_attention_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp,
                              uint32_t sample0) {
    if (m->cp_ring) {
        ring_t R = ring_of(m, sample0);
        ring_backward(m, cm, &R, m->ws.dqkv, m->ws.datty, a->qkv, a->atty, a->lse, kp);
    } else if (m->cp_ag) ag_backward(m, cm, a, kp, sample0);
    else if (m->cp_hier) hier_backward(m, cm, a, kp, sample0);
    else a2a_backward(m, cm, a, kp, sample0);
}
