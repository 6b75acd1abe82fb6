// schedule.c: pipeline schedules over one model chunk per stage.
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

enum { TAG_ACT = 1, TAG_GRAD = 2 };

int mt_schedule_slots(const mt_config *c, int pp_rank) {
    int M = c->num_micro_batches;
    if (c->schedule == MT_SCHED_AFAB || c->pp == 1) return c->pp == 1 ? 1 : M;
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
    MPI_Request *act_req;      // activation send per slot (x[nlayers] in flight)
    MPI_Request grad_req;      // gradient send from grad_buf
    real *grad_buf;            // (nl, h)
} runner;

static mt_slot *slot_of(mt_chunk *ch, int mb) { return &ch->slots[mb % ch->nslots]; }

static void forward_one(runner *r, int mb) {
    mt_model *m = r->m;
    mt_chunk *ch = &m->chunks[0];
    mt_slot *sl = slot_of(ch, mb);
    const mt_parallel *p = m->par;
    size_t nx = (size_t)m->n_l * (size_t)m->h;
    // The slot's previous activation send must finish before x is rewritten.
    mt_comm_wait(r->cm, &r->act_req[mb % ch->nslots]);
    r->fill(r->ctx, mb, sl, ch->has_embed || ch->has_head);
    if (ch->has_embed) {
        double t0 = mt_now();
        mt_embed_forward(m, r->cm, r->st, sl, sl->x[0]);
        r->res.t_compute += mt_now() - t0;
    } else {
        double t0 = mt_now();
        mt_comm_pp_recv(r->cm, sl->x[0], nx, p->pp_rank - 1, TAG_ACT);
        r->res.t_wait += mt_now() - t0;
    }
    double t0 = mt_now();
    for (int l = 0; l < ch->nlayers; l++)
        mt_block_forward(m, r->cm, r->st, ch->layer0 + l, &ch->w[l], &sl->acts[l], sl->x[l], sl->x[l + 1], sl->sample0);
    real *top = sl->x[ch->nlayers];
    if (ch->has_head) {
        // The head runs its backward at once; its input gradient replaces the
        // (no longer needed) head input in the slot until this micro-batch's
        // backward comes up. Loss scale 1/M: each micro-batch's mean loss
        // counts 1/M of the step's loss (DP averaging divides by dp later).
        real scale = (real)1 / (real)m->cfg->num_micro_batches;
        sl->loss = mt_head_forward_backward(m, r->cm, top, sl->targets, r->backward ? m->w_dres : NULL, scale);
        if (r->backward) memcpy(top, m->w_dres, nx * sizeof(real));
        r->res.loss_sum += sl->loss;
        r->res.t_compute += mt_now() - t0;
    } else {
        r->res.t_compute += mt_now() - t0;
        mt_comm_pp_isend(r->cm, top, nx, p->pp_rank + 1, TAG_ACT, &r->act_req[mb % ch->nslots]);
    }
}

static void backward_one(runner *r, int mb) {
    mt_model *m = r->m;
    mt_chunk *ch = &m->chunks[0];
    mt_slot *sl = slot_of(ch, mb);
    const mt_parallel *p = m->par;
    size_t nx = (size_t)m->n_l * (size_t)m->h;
    if (ch->has_head) {
        memcpy(m->w_dres, sl->x[ch->nlayers], nx * sizeof(real));
    } else {
        double t0 = mt_now();
        mt_comm_pp_recv(r->cm, m->w_dres, nx, p->pp_rank + 1, TAG_GRAD);
        r->res.t_wait += mt_now() - t0;
        // Negative control: divide by M again on every stage (DeepSpeed #8152).
        if (m->cfg->bug_loss_per_stage) mt_scale(m->w_dres, nx, (real)1 / (real)m->cfg->num_micro_batches);
    }
    double t0 = mt_now();
    for (int l = ch->nlayers - 1; l >= 0; l--)
        mt_block_backward(m, r->cm, r->st, ch->layer0 + l, &ch->w[l], &ch->dw[l], &sl->acts[l], sl->x[l], m->w_dres,
                          sl->sample0);
    if (ch->has_embed) {
        mt_embed_backward(m, r->cm, r->st, sl, m->w_dres);
        r->res.t_compute += mt_now() - t0;
    } else {
        r->res.t_compute += mt_now() - t0;
        mt_comm_wait(r->cm, &r->grad_req);
        memcpy(r->grad_buf, m->w_dres, nx * sizeof(real));
        mt_comm_pp_isend(r->cm, r->grad_buf, nx, p->pp_rank - 1, TAG_GRAD, &r->grad_req);
    }
}

static void run_order(runner *r) {
    const mt_config *c = r->m->cfg;
    int M = c->num_micro_batches, p = c->pp, stage = r->m->par->pp_rank;
    if (!r->backward) {
        for (int mb = 0; mb < M; mb++) forward_one(r, mb);
    } else if (p == 1) {
        for (int mb = 0; mb < M; mb++) { forward_one(r, mb); backward_one(r, mb); }
    } else if (c->schedule == MT_SCHED_AFAB) {
        for (int mb = 0; mb < M; mb++) forward_one(r, mb);
        for (int mb = 0; mb < M; mb++) backward_one(r, mb);
    } else {
        // 1F1B: the dependencies between stages form no cycle and sends never
        // block, so every receive is eventually matched.
        int warm = MT_MIN(p - stage - 1, M), fwd = 0, bwd = 0;
        for (; fwd < warm; fwd++) forward_one(r, fwd);
        for (; fwd < M; fwd++, bwd++) {
            forward_one(r, fwd);
            backward_one(r, bwd);
        }
        for (; bwd < M; bwd++) backward_one(r, bwd);
    }
}

mt_sched_result mt_schedule_run(mt_model *m, mt_comm *cm, const mt_step *st, int backward, mt_fill_fn fill, void *ctx) {
    runner r = {.m = m, .cm = cm, .st = st, .fill = fill, .ctx = ctx, .backward = backward,
                .grad_req = MPI_REQUEST_NULL, .grad_buf = m->w_gradsend};
    int ns = m->chunks[0].nslots;
    r.act_req = mt_malloc(sizeof(MPI_Request) * (size_t)ns);
    for (int i = 0; i < ns; i++) r.act_req[i] = MPI_REQUEST_NULL;
    run_order(&r);
    for (int i = 0; i < ns; i++) mt_comm_wait(cm, &r.act_req[i]);
    free(r.act_req);
    mt_comm_wait(cm, &r.grad_req);
    return r.res;
}
