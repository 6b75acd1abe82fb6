// buckets.c: gradient buckets and their overlapped reduction (buckets.h).
#include "buckets.h"

#include "backend.h"
#include "gradnorm.h"

#include <stdlib.h>
#include <string.h>

int mt_buckets_plan(const mt_model *m, int *first) {
    size_t want = (size_t)MT_MAX(m->cfg->ddp_bucket_size, 1), acc = 0;
    int n = 0;
    // From the last tensor down: backward writes them in about that order.
    for (int i = m->nparams - 1; i >= 0; i--) {
        acc += m->params[i].n;
        if (acc >= want || i == 0) {
            if (first) first[n] = i;
            n++;
            acc = 0;
        }
    }
    return n;
}

// The arena's end: the distributed optimizer reduces the padding too.
static size_t arena_end(const mt_model *m) { return m->cfg->use_distributed_optimizer ? m->nelem_pad : m->nelem; }

static int copies(const mt_model *m) { return m->par->dp_size * m->par->cp_size; }

void mt_buckets_init(mt_buckets *gb, const mt_model *m, mt_comm *cm) {
    memset(gb, 0, sizeof *gb);
    int *first = mt_malloc(sizeof(int) * (size_t)m->nparams);
    gb->n = mt_buckets_plan(m, first);
    gb->b = mt_calloc((size_t)gb->n, sizeof(mt_bucket));
    gb->of_param = mt_malloc(sizeof(int) * (size_t)m->nparams);
    int G = copies(m);
    size_t S = m->nelem_pad / (size_t)G;
    for (int i = 0; i < gb->n; i++) {
        mt_bucket *bk = &gb->b[i];
        bk->p0 = first[i];
        bk->p1 = i == 0 ? m->nparams : first[i - 1];
        bk->a = m->params[bk->p0].off;
        bk->b = i == 0 ? arena_end(m) : m->params[bk->p1].off;
        bk->red.req = bk->gat.req = MPI_REQUEST_NULL;
        for (int k = bk->p0; k < bk->p1; k++) {
            gb->of_param[k] = i;
            bk->has_tied |= m->params[k].tied;
        }
        bk->pending = bk->p1 - bk->p0;
        // Each optimizer shard's part of the bucket: shards are contiguous
        // in group-rank order, so the parts are too.
        bk->counts = mt_malloc(sizeof(int) * (size_t)G);
        bk->displs = mt_malloc(sizeof(int) * (size_t)G);
        for (int d = 0; d < G; d++) {
            size_t lo = MT_MAX(bk->a, (size_t)d * S), hi = MT_MIN(bk->b, (size_t)(d + 1) * S);
            bk->counts[d] = hi > lo ? (int)(hi - lo) : 0;
            bk->displs[d] = hi > lo ? (int)(lo - bk->a) : 0;
        }
    }
    free(first);
    (void)cm;
}

void mt_buckets_free(mt_buckets *gb) {
    for (int i = 0; i < gb->n; i++) {
        mt_comm_coll_free(&gb->b[i].red);
        mt_comm_coll_free(&gb->b[i].gat);
        free(gb->b[i].counts);
        free(gb->b[i].displs);
    }
    free(gb->b);
    free(gb->of_param);
    memset(gb, 0, sizeof *gb);
}

// Bucket i's reduction, always this sequence (buckets.h): the TP sum of its
// SP-partial tensors, packed into one all-reduce (as Megatron packs its
// sequence-parallel grads); the embedding group's sum of its tied tensors;
// then the nonblocking sum over every copy.
static void post(mt_model *m, mt_comm *cm, int i) {
    mt_bucket *bk = &m->gb->b[i];
    const mt_backend *B = m->be;
    bk->posted = 1;
    if (m->sp_pack) {
        const unsigned tp = 1u << MT_GROUP_TP;
        size_t o = 0;
        for (int k = bk->p0; k < bk->p1; k++)
            if (mt_param_grad_groups(m, &m->params[k]) & tp) B->copy(m->sp_pack + o, m->grad_mem + m->params[k].off, m->params[k].n), o += m->params[k].n;
        if (o) {
            mt_comm_tp_allreduce(cm, m->sp_pack, o);
            // Negative control: keep them rank-local (Megatron #1446).
            o = 0;
            for (int k = bk->p0; k < bk->p1 && !m->cfg->bug_no_sp_grad_sync; k++)
                if (mt_param_grad_groups(m, &m->params[k]) & tp) B->copy(m->grad_mem + m->params[k].off, m->sp_pack + o, m->params[k].n), o += m->params[k].n;
        }
    }
    // Tied tensors: the first and last stage each hold a copy (the embedding).
    for (int k = bk->p0; k < bk->p1; k++)
        if (mt_param_grad_groups(m, &m->params[k]) & (1u << MT_GROUP_EMBD))
            mt_comm_allreduce_group(cm, MT_GROUP_EMBD, m->grad_mem + m->params[k].off, m->params[k].n);
    if (copies(m) == 1) return;
    // Sum over every copy (DP, and CP's partial sums), all of it or
    // (distributed optimizer) only each rank's shard, which is all its
    // optimizer will read.
    mt_group g = mt_grad_group(m->par);
    // Negative control: sum over DP only, each CP rank keeping its partial gradient.
    if (m->cfg->bug_no_cp_grad_sum) g = MT_GROUP_DP;
    B->sync();  // MPI reads the gradients the kernels wrote
    if (m->cfg->use_distributed_optimizer && g == mt_grad_group(m->par))
        mt_comm_ireduce_scatter(cm, g, m->grad_mem + bk->a, bk->counts, bk->displs, &bk->red);
    else if (m->cfg->use_distributed_optimizer) {
        // The negative control's shards are not the buckets' parts: the
        // whole arena at once, with the first bucket.
        if (i == 0) mt_comm_shard_reduce_scatter(cm, g, m->grad_mem, m->nelem_pad);
    }
    else
        mt_comm_iallreduce(cm, g, m->grad_mem + bk->a, bk->b - bk->a, &bk->red);
}

static void progress(mt_model *m, mt_comm *cm) {
    for (int i = 0; i < m->gb->n; i++) {
        mt_bucket *bk = &m->gb->b[i];
        if (bk->posted) mt_comm_coll_test(cm, &bk->red);
        if (bk->gathering) mt_comm_coll_test(cm, &bk->gat);
    }
}

void mt_buckets_arm(mt_model *m, int last_micro_batch) {
    if (m->gb) m->gb->armed = last_micro_batch;
}

// Tensor k's gradient is final: its bucket may go, and its share of the
// gradient norm may be summed while it is fresh (gradnorm.h).
static void tensor_final(mt_model *m, mt_comm *cm, int k) {
    mt_gradnorm_final(m, k);
    mt_bucket *bk = &m->gb->b[m->gb->of_param[k]];
    if (--bk->pending == 0 && m->cfg->overlap_grad_reduce && !bk->has_tied && !bk->posted) {
        post(m, cm, m->gb->of_param[k]);
        cm->stats.early_posts++;
    }
}

void mt_buckets_layer_done(mt_model *m, mt_comm *cm, int layer) {
    if (!m->gb) return;
    // Negative control: the next layer's tensors count as final before its
    // backward has run.
    int early = m->cfg->bug_bucket_early;
    if (m->gb->armed)
        for (int k = 0; k < m->nparams; k++)
            if (m->params[k].layer == layer || (early && m->params[k].layer == layer - 1)) tensor_final(m, cm, k);
    mt_gradnorm_flush(m);
    progress(m, cm);
}

void mt_buckets_top_done(mt_model *m, mt_comm *cm, int after_layers) {
    if (!m->gb) return;
    // The embedding's tensors are final after its backward; a tensor the head
    // shares with it (tied on one stage) is not final after the head.
    if (m->gb->armed)
        for (int k = 0; k < m->nparams; k++) {
            const mt_param *p = &m->params[k];
            if (p->layer < 0 && (p->def->where == MT_AT_LAST) == after_layers) tensor_final(m, cm, k);
        }
    mt_gradnorm_flush(m);
    progress(m, cm);
}

void mt_buckets_reduce_finish(mt_model *m, mt_comm *cm) {
    mt_buckets *gb = m->gb;
    for (int i = 0; i < gb->n; i++)
        if (!gb->b[i].posted) post(m, cm, i);
    cm->stats.buckets = gb->n;
    // The reduction's span: from the first bucket posted to the last one
    // done; its exposed part: this wait, which no compute hides.
    double t_first = mt_now(), t_wait = t_first;
    int any = 0;   // no request at all: one copy of the parameters, nothing to report
    for (int i = 0; i < gb->n; i++)
        if (gb->b[i].red.req != MPI_REQUEST_NULL || gb->b[i].red.t_done > 0) t_first = MT_MIN(t_first, gb->b[i].red.t0), any = 1;
    for (int i = 0; i < gb->n; i++) {
        mt_comm_coll_wait(cm, &gb->b[i].red);
        gb->b[i].red.t_done = 0;
        gb->b[i].posted = 0;
        gb->b[i].pending = gb->b[i].p1 - gb->b[i].p0;
    }
    double t_end = mt_now();
    gb->armed = 0;
    if (!any) return;
    cm->stats.grad_span_seconds += t_end - t_first;
    cm->stats.grad_wait_seconds += t_end - t_wait;
}

void mt_buckets_gather_start(mt_model *m, mt_comm *cm) {
    mt_group g = mt_grad_group(m->par);
    for (int i = 0; i < m->gb->n; i++) {
        mt_bucket *bk = &m->gb->b[i];
        mt_comm_iallgatherv(cm, g, m->param_mem + bk->a, bk->counts, bk->displs, &bk->gat);
        bk->gathering = 1;
    }
}

static void gather_wait_bucket(mt_comm *cm, mt_bucket *bk) {
    if (!bk->gathering) return;
    mt_comm_coll_wait(cm, &bk->gat);
    bk->gathering = 0;
}

void mt_buckets_gather_wait(mt_model *m, mt_comm *cm, int layer) {
    if (!m->gb) return;
    int any = 0;
    for (int i = 0; i < m->gb->n; i++) any |= m->gb->b[i].gathering;
    if (!any) return;
    for (int k = 0; k < m->nparams; k++)
        if (m->params[k].layer == layer) gather_wait_bucket(cm, &m->gb->b[m->gb->of_param[k]]);
    progress(m, cm);
}

void mt_buckets_gather_finish(mt_model *m, mt_comm *cm) {
    if (!m->gb) return;
    for (int i = 0; i < m->gb->n; i++) gather_wait_bucket(cm, &m->gb->b[i]);
}
