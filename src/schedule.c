// schedule.c: pipeline schedules over the model chunks of one stage.
#include "schedule.h"

#include "backend.h"
#include "buckets.h"
#include "chunk.h"
#include "trace.h"

#include <stdlib.h>
#include <string.h>

int mt_schedule_slots(const mt_config *c, int pp_rank) {
    int M = c->num_micro_batches;
    if (c->pp == 1) return 1;
    // All-forward-all-backward holds every micro-batch; interleaving holds up
    // to M per chunk (its warm-up runs several micro-batches per chunk ahead).
    if (c->schedule == MT_SCHED_AFAB || c->schedule == MT_SCHED_INTERLEAVED) return M;
    return MT_MIN(c->pp - pp_rank, M);
}

// One step of a schedule: the forward or backward of micro-batch mb on chunk k.
typedef struct { int bwd, k, mb; } op;

// Directions of pipeline receives: activations (forwards) and gradients (backwards).
enum { RX_ACT, RX_GRAD, RX_N };

typedef struct {
    mt_model *m;
    mt_comm *cm;
    const mt_step *st;
    mt_fill_fn fill;
    void *ctx;
    int backward;
    mt_sched_result res;
    MPI_Request *act_req;   // [chunk * nslots + slot]: activation send from x[nlayers]
    MPI_Request *grad_req;  // [chunk * nslots + slot]: gradient send from the slot's dsend
    op *ops;                // the schedule, in this stage's order
    int nops;
    // --overlap-p2p-communication: per direction, the receive in flight into
    // m->pp_rbuf[dir] and the op it is for (-1: none).
    mt_pp_recv rx[RX_N];
    int rx_op[RX_N];
} runner;

// Tags keep activations and gradients of different chunks apart; within a
// tag MPI's non-overtaking rule keeps micro-batches in order.
static int tag_act(int chunk) { return 2 * chunk; }
static int tag_grad(int chunk) { return 2 * chunk + 1; }

// Neighbours of chunk k on this stage in the virtual pipeline: stage p-1's
// chunk k feeds stage 0's chunk k+1 (Narayanan et al. 2021, Fig. 4).
static int prev_stage(const mt_model *m) { return (m->par->pp_rank - 1 + m->par->pp_size) % m->par->pp_size; }
static int next_stage(const mt_model *m) { return (m->par->pp_rank + 1) % m->par->pp_size; }
static int prev_chunk(const mt_model *m, int k) { return m->par->pp_rank == 0 ? k - 1 : k; }
static int next_chunk(const mt_model *m, int k) { return m->par->pp_rank == m->par->pp_size - 1 ? k + 1 : k; }

// Micro-batch mb of chunk k lives in slot mb mod nslots; *ri indexes its
// send requests.
static mt_slot *slot_of(runner *r, int k, int mb, int *ri) {
    mt_chunk *ch = &r->m->chunks[k];
    int si = mb % ch->nslots;
    *ri = k * ch->nslots + si;
    return &ch->slots[si];
}

// The receive op i needs: RX_ACT, RX_GRAD, or -1 (the chunk embeds, or has the head).
static int rx_dir(const runner *r, int i) {
    const mt_chunk *ch = &r->m->chunks[r->ops[i].k];
    if (r->ops[i].bwd) return ch->has_head ? -1 : RX_GRAD;
    return ch->has_embed ? -1 : RX_ACT;
}

// Where chunk k's input of direction dir comes from: activations from the
// previous stage, gradients from the next.
static void rx_from(const mt_model *m, int dir, int k, int *src, int *tag) {
    *src = dir == RX_ACT ? prev_stage(m) : next_stage(m);
    *tag = dir == RX_ACT ? tag_act(k) : tag_grad(k);
}

// Posts the first receive of direction dir among ops from..nops-1 into the
// direction's buffer. Receives of one tag are posted in the order the ops
// consume them, which is the order the neighbour sends them: MPI's
// non-overtaking rule matches each to its own micro-batch.
static void rx_post(runner *r, int dir, int from) {
    int i = from;
    while (i < r->nops && rx_dir(r, i) != dir) i++;
    r->rx_op[dir] = i < r->nops ? i : -1;
    if (i == r->nops) return;
    int src, tag;
    rx_from(r->m, dir, r->ops[i].k, &src, &tag);
    mt_comm_pp_irecv(r->cm, &r->rx[dir], r->m->pp_rbuf[dir], (size_t)r->m->n_l * (size_t)r->m->h, src, tag);
}

// Op i's input from the neighbour into x: a blocking receive, or (with
// --overlap-p2p-communication) the wait for the receive posted when the
// previous one of its direction landed, whose successor is posted at once
// so that it is in flight through this op's compute.
static void recv_input(runner *r, int i, real *x) {
    mt_model *m = r->m;
    int dir = rx_dir(r, i), k = r->ops[i].k;
    size_t nx = (size_t)m->n_l * (size_t)m->h;
    double t0 = mt_now();
    if (!m->cfg->overlap_p2p_comm) {
        int src, tag;
        rx_from(m, dir, k, &src, &tag);
        mt_comm_pp_recv(r->cm, x, nx, src, tag);
    } else {
        if (r->rx_op[dir] != i) mt_fail_local(MT_EXIT_FAIL, "schedule: op %d's early receive was posted for op %d", i, r->rx_op[dir]);
        mt_comm_pp_recv_wait(r->cm, &r->rx[dir]);
        // Negative control: no copy, so the compute reads the slot's stale
        // input, not what the early receive brought.
        if (!(m->cfg->bug_p2p_stale && dir == RX_ACT)) m->be->copy(x, m->pp_rbuf[dir], nx);
    }
    r->res.t_wait += mt_now() - t0;
    if (m->cfg->overlap_p2p_comm) rx_post(r, dir, i + 1);
}

static void forward_one(runner *r, int i) {
    int k = r->ops[i].k, mb = r->ops[i].mb;
    mt_model *m = r->m;
    const mt_chunk *ch = &m->chunks[k];
    int ri;
    mt_slot *sl = slot_of(r, k, mb, &ri);
    size_t nx = (size_t)m->n_l * (size_t)m->h;
    // The slot's previous activation send must finish before x is rewritten.
    mt_comm_wait(r->cm, &r->act_req[ri]);
    m->be->sync();  // the slot's tokens are rewritten by the host: earlier kernels must be done with them
    r->fill(r->ctx, mb, sl, ch->has_embed || ch->has_head);
    if (!ch->has_embed) recv_input(r, i, sl->x[0]);
    double t0 = mt_now();
    r->res.loss_sum += mt_chunk_forward(m, r->cm, r->st, k, sl, r->backward);
    r->res.t_compute += mt_now() - t0;
    mt_trace_add(r->cm->trace, MT_EV_FORWARD, k, mb, t0, mt_now());
    if (!ch->has_head) mt_comm_pp_isend(r->cm, sl->x[ch->nlayers], nx, next_stage(m), tag_act(next_chunk(m, k)), &r->act_req[ri]);
}

static void backward_one(runner *r, int i) {
    int k = r->ops[i].k, mb = r->ops[i].mb;
    mt_model *m = r->m;
    const mt_chunk *ch = &m->chunks[k];
    int ri;
    mt_slot *sl = slot_of(r, k, mb, &ri);
    size_t nx = (size_t)m->n_l * (size_t)m->h;
    if (!ch->has_head) {
        recv_input(r, i, m->ws.dres);
        // Negative control: divide by M again on every stage (DeepSpeed #8152).
        if (m->cfg->bug_loss_per_stage) m->be->scale(m->ws.dres, nx, (real)1 / (real)m->cfg->num_micro_batches);
    }
    double t0 = mt_now();
    // Each chunk's backward of the last micro-batch writes its final gradients.
    mt_buckets_arm(m, mb == m->cfg->num_micro_batches - 1);
    mt_chunk_backward(m, r->cm, r->st, k, sl);
    mt_buckets_arm(m, 0);
    r->res.t_compute += mt_now() - t0;
    mt_trace_add(r->cm->trace, MT_EV_BACKWARD, k, mb, t0, mt_now());
    if (!ch->has_embed) {
        mt_comm_wait(r->cm, &r->grad_req[ri]);
        m->be->copy(sl->dsend, m->ws.dres, nx);
        mt_comm_pp_isend(r->cm, sl->dsend, nx, prev_stage(m), tag_grad(prev_chunk(m, k)), &r->grad_req[ri]);
    }
}

// Interleaved 1F1B (Megatron's order): virtual step i runs chunk
// (i / p) mod v forward (reversed for backward) on micro-batch
// (i / (p v)) p + i mod p.
static int vchunk(const runner *r, int i, int fwd) {
    int p = r->m->par->pp_size, v = r->m->nchunks, k = (i / p) % v;
    return fwd ? k : v - 1 - k;
}
static int vmb(const runner *r, int i) {
    int p = r->m->par->pp_size, v = r->m->nchunks;
    return (i / (p * v)) * p + i % p;
}

static void add_fwd(runner *r, int k, int mb) { r->ops[r->nops++] = (op){0, k, mb}; }
static void add_bwd(runner *r, int k, int mb) { r->ops[r->nops++] = (op){1, k, mb}; }

static void plan_interleaved(runner *r) {
    int M = r->m->cfg->num_micro_batches, p = r->m->par->pp_size, v = r->m->nchunks;
    int total = M * v, stage = r->m->par->pp_rank;
    int warm = MT_MIN((p - stage - 1) * 2 + (v - 1) * p, total), f = 0, b = 0;
    for (; f < warm; f++) add_fwd(r, vchunk(r, f, 1), vmb(r, f));
    for (; f < total; f++, b++) {
        add_fwd(r, vchunk(r, f, 1), vmb(r, f));
        add_bwd(r, vchunk(r, b, 0), vmb(r, b));
    }
    for (; b < total; b++) add_bwd(r, vchunk(r, b, 0), vmb(r, b));
}

// Lists the schedule's ops in this stage's order into r->ops.
static void plan_order(runner *r) {
    const mt_config *c = r->m->cfg;
    int M = c->num_micro_batches, p = c->pp, stage = r->m->par->pp_rank, v = r->m->nchunks;
    if (!r->backward) {
        for (int i = 0; i < M * v; i++) add_fwd(r, vchunk(r, i, 1), vmb(r, i));
    } else if (p == 1) {
        for (int mb = 0; mb < M; mb++) { add_fwd(r, 0, mb); add_bwd(r, 0, mb); }
    } else if (c->schedule == MT_SCHED_INTERLEAVED) {
        plan_interleaved(r);
    } else if (c->schedule == MT_SCHED_AFAB) {
        for (int mb = 0; mb < M; mb++) add_fwd(r, 0, mb);
        for (int mb = 0; mb < M; mb++) add_bwd(r, 0, mb);
    } else {
        // 1F1B: the dependencies between stages form no cycle and sends never
        // block, so every receive is eventually matched.
        int warm = MT_MIN(p - stage - 1, M), fwd = 0, bwd = 0;
        for (; fwd < warm; fwd++) add_fwd(r, 0, fwd);
        for (; fwd < M; fwd++, bwd++) {
            add_fwd(r, 0, fwd);
            add_bwd(r, 0, bwd);
        }
        for (; bwd < M; bwd++) add_bwd(r, 0, bwd);
    }
}

mt_sched_result mt_schedule_run(mt_model *m, mt_comm *cm, const mt_step *st, int backward, mt_fill_fn fill, void *ctx) {
    runner r = {.m = m, .cm = cm, .st = st, .fill = fill, .ctx = ctx, .backward = backward};
    int nreq = m->nchunks * m->chunks[0].nslots;
    r.act_req = mt_malloc(sizeof(MPI_Request) * (size_t)nreq);
    r.grad_req = mt_malloc(sizeof(MPI_Request) * (size_t)nreq);
    for (int i = 0; i < nreq; i++) r.act_req[i] = r.grad_req[i] = MPI_REQUEST_NULL;
    r.ops = mt_malloc(sizeof(op) * 2 * (size_t)m->cfg->num_micro_batches * (size_t)m->nchunks);
    plan_order(&r);
    for (int d = 0; d < RX_N; d++) r.rx_op[d] = -1;
    if (m->cfg->overlap_p2p_comm)
        for (int d = 0; d < RX_N; d++) rx_post(&r, d, 0);
    for (int i = 0; i < r.nops; i++) {
        if (r.ops[i].bwd) backward_one(&r, i);
        else forward_one(&r, i);
    }
    for (int i = 0; i < nreq; i++) {
        mt_comm_wait(cm, &r.act_req[i]);
        mt_comm_wait(cm, &r.grad_req[i]);
    }
    free(r.ops);
    free(r.act_req);
    free(r.grad_req);
    return r.res;
}
