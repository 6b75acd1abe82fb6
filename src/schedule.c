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

static void forward_one(runner *r, int k, int mb) {
    mt_model *m = r->m;
    const mt_chunk *ch = &m->chunks[k];
    int ri;
    mt_slot *sl = slot_of(r, k, mb, &ri);
    size_t nx = (size_t)m->n_l * (size_t)m->h;
    // The slot's previous activation send must finish before x is rewritten.
    mt_comm_wait(r->cm, &r->act_req[ri]);
    m->be->sync();  // the slot's tokens are rewritten by the host: earlier kernels must be done with them
    r->fill(r->ctx, mb, sl, ch->has_embed || ch->has_head);
    if (!ch->has_embed) {
        double t0 = mt_now();
        mt_comm_pp_recv(r->cm, sl->x[0], nx, prev_stage(m), tag_act(k));
        r->res.t_wait += mt_now() - t0;
    }
    double t0 = mt_now();
    r->res.loss_sum += mt_chunk_forward(m, r->cm, r->st, k, sl, r->backward);
    r->res.t_compute += mt_now() - t0;
    mt_trace_add(r->cm->trace, MT_EV_FORWARD, k, mb, t0, mt_now());
    if (!ch->has_head) mt_comm_pp_isend(r->cm, sl->x[ch->nlayers], nx, next_stage(m), tag_act(next_chunk(m, k)), &r->act_req[ri]);
}

static void backward_one(runner *r, int k, int mb) {
    mt_model *m = r->m;
    const mt_chunk *ch = &m->chunks[k];
    int ri;
    mt_slot *sl = slot_of(r, k, mb, &ri);
    size_t nx = (size_t)m->n_l * (size_t)m->h;
    if (!ch->has_head) {
        double t0 = mt_now();
        mt_comm_pp_recv(r->cm, m->ws.dres, nx, next_stage(m), tag_grad(k));
        r->res.t_wait += mt_now() - t0;
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

static void run_interleaved(runner *r) {
    int M = r->m->cfg->num_micro_batches, p = r->m->par->pp_size, v = r->m->nchunks;
    int total = M * v, stage = r->m->par->pp_rank;
    int warm = MT_MIN((p - stage - 1) * 2 + (v - 1) * p, total), f = 0, b = 0;
    for (; f < warm; f++) forward_one(r, vchunk(r, f, 1), vmb(r, f));
    for (; f < total; f++, b++) {
        forward_one(r, vchunk(r, f, 1), vmb(r, f));
        backward_one(r, vchunk(r, b, 0), vmb(r, b));
    }
    for (; b < total; b++) backward_one(r, vchunk(r, b, 0), vmb(r, b));
}

static void run_order(runner *r) {
    const mt_config *c = r->m->cfg;
    int M = c->num_micro_batches, p = c->pp, stage = r->m->par->pp_rank, v = r->m->nchunks;
    if (!r->backward) {
        for (int i = 0; i < M * v; i++) forward_one(r, vchunk(r, i, 1), vmb(r, i));
    } else if (p == 1) {
        for (int mb = 0; mb < M; mb++) { forward_one(r, 0, mb); backward_one(r, 0, mb); }
    } else if (c->schedule == MT_SCHED_INTERLEAVED) {
        run_interleaved(r);
    } else if (c->schedule == MT_SCHED_AFAB) {
        for (int mb = 0; mb < M; mb++) forward_one(r, 0, mb);
        for (int mb = 0; mb < M; mb++) backward_one(r, 0, mb);
    } else {
        // 1F1B: the dependencies between stages form no cycle and sends never
        // block, so every receive is eventually matched.
        int warm = MT_MIN(p - stage - 1, M), fwd = 0, bwd = 0;
        for (; fwd < warm; fwd++) forward_one(r, 0, fwd);
        for (; fwd < M; fwd++, bwd++) {
            forward_one(r, 0, fwd);
            backward_one(r, 0, bwd);
        }
        for (; bwd < M; bwd++) backward_one(r, 0, bwd);
    }
}

mt_sched_result mt_schedule_run(mt_model *m, mt_comm *cm, const mt_step *st, int backward, mt_fill_fn fill, void *ctx) {
    runner r = {.m = m, .cm = cm, .st = st, .fill = fill, .ctx = ctx, .backward = backward};
    int nreq = m->nchunks * m->chunks[0].nslots;
    r.act_req = mt_malloc(sizeof(MPI_Request) * (size_t)nreq);
    r.grad_req = mt_malloc(sizeof(MPI_Request) * (size_t)nreq);
    for (int i = 0; i < nreq; i++) r.act_req[i] = r.grad_req[i] = MPI_REQUEST_NULL;
    run_order(&r);
    for (int i = 0; i < nreq; i++) {
        mt_comm_wait(cm, &r.act_req[i]);
        mt_comm_wait(cm, &r.grad_req[i]);
    }
    free(r.act_req);
    free(r.grad_req);
    return r.res;
}
