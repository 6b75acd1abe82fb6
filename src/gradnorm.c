// gradnorm.c: the gradient norm's parts, summed as gradients become final
// (gradnorm.h).
#include "gradnorm.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"

static size_t nblocks_of(size_t n) { return (n + MT_SUMSQ_BLOCK - 1) / MT_SUMSQ_BLOCK; }

// Walks the counted tensors' shard parts, merging adjacent ones into runs,
// and calls fn(run start, run end) for each: the one definition of the
// runs, used to count them and then to fill them in.
typedef void run_fn(mt_gradnorm *gn, size_t a, size_t b);
static void each_run(const mt_model *m, mt_gradnorm *gn, run_fn *fn) {
    size_t ra = 0, rb = 0;
    for (int i = 0; i < m->nparams; i++) {
        const mt_param *p = &m->params[i];
        size_t a, b;
        mt_param_shard(m, p, &a, &b);
        if (!mt_param_counts_in_norm(m, p) || a >= b) continue;
        if (a != rb) {
            if (ra < rb) fn(gn, ra, rb);
            ra = a;
        }
        rb = b;
    }
    if (ra < rb) fn(gn, ra, rb);
}

static void count_run(mt_gradnorm *gn, size_t a, size_t b) {
    gn->nrun++;
    gn->nblock += (int)nblocks_of(b - a);
}

static void fill_run(mt_gradnorm *gn, size_t a, size_t b) {
    int j = gn->run_b0[gn->nrun];
    for (size_t o = a; o < b; o += MT_SUMSQ_BLOCK, j++) {
        gn->off[j] = o;
        gn->len[j] = MT_MIN((size_t)MT_SUMSQ_BLOCK, b - o);
        gn->elems += gn->len[j];
    }
    gn->run_b0[++gn->nrun] = j;
}

// The first block whose range ends after arena offset x (blocks are in
// arena order).
static int block_after(const mt_gradnorm *gn, size_t x) {
    int lo = 0, hi = gn->nblock;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (gn->off[mid] + gn->len[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

mt_gradnorm *mt_gradnorm_new(const mt_model *m) {
    mt_gradnorm *gn = mt_calloc(1, sizeof *gn);
    each_run(m, gn, count_run);
    size_t nc = (size_t)MT_MAX(gn->nblock, 1);
    gn->run_b0 = mt_calloc((size_t)gn->nrun + 1, sizeof(int));
    gn->off = mt_malloc(nc * sizeof(size_t));
    gn->len = mt_malloc(nc * sizeof(size_t));
    gn->need = mt_calloc(nc, sizeof(int));
    gn->left = mt_malloc(nc * sizeof(int));
    gn->done = mt_calloc(nc, 1);
    gn->part = mt_calloc(nc, sizeof(double));
    gn->ready = mt_malloc(nc * sizeof(int));
    gn->b0 = mt_calloc((size_t)MT_MAX(m->nparams, 1), sizeof(int));
    gn->b1 = mt_calloc((size_t)MT_MAX(m->nparams, 1), sizeof(int));
    gn->nrun = 0;  // fill_run counts the runs again as it fills them
    each_run(m, gn, fill_run);
    for (int k = 0; k < m->nparams; k++) {
        const mt_param *p = &m->params[k];
        size_t a, b;
        mt_param_shard(m, p, &a, &b);
        if (!mt_param_counts_in_norm(m, p) || a >= b) continue;
        gn->b0[k] = block_after(gn, a);
        gn->b1[k] = block_after(gn, b - 1) + 1;
        for (int j = gn->b0[k]; j < gn->b1[k]; j++) gn->need[j]++;
    }
    mt_gradnorm_reset(gn);
    // One copy of each gradient: nothing sums or scales it after backward.
    // On a GPU each sum waits for the device, so it stays one pass there.
    int cpu = !m->be->device_memory, on = cpu && !m->cfg->no_grad_norm_fusion;
    gn->early = on && m->par->dp_size * m->par->cp_size == 1;
    // DP > 1: the average's scaling is the gradients' last write.
    gn->fold = on && m->par->dp_size > 1;
    return gn;
}

void mt_gradnorm_free(mt_gradnorm *gn) {
    if (!gn) return;
    void *bufs[] = {gn->run_b0, gn->off, gn->len, gn->b0, gn->b1, gn->need, gn->left, gn->done, gn->part, gn->ready};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(gn);
}

void mt_gradnorm_final(mt_model *m, int k) {
    mt_gradnorm *gn = m->gn;
    if (!gn || !gn->early || mt_param_grad_groups(m, &m->params[k])) return;
    // left[j] only falls, so a block reaches 0 once a step and ready[]
    // (nblock long) cannot overflow, even for a tensor reported twice.
    for (int j = gn->b0[k]; j < gn->b1[k]; j++)
        if (--gn->left[j] == 0) gn->ready[gn->nready++] = j;
}

// Sums blocks list[0..n) (ascending): adjacent blocks of one run are one
// contiguous range, so one sumsq_parts call per stretch of them.
static size_t sum_blocks(mt_model *m, const int *list, int n) {
    mt_gradnorm *gn = m->gn;
    size_t elems = 0;
    for (int i = 0; i < n;) {
        int j0 = list[i], j1 = j0 + 1;
        while (i + (j1 - j0) < n && list[i + (j1 - j0)] == j1 && gn->off[j1] == gn->off[j1 - 1] + gn->len[j1 - 1]) j1++;
        size_t len = gn->off[j1 - 1] + gn->len[j1 - 1] - gn->off[j0];
        m->be->sumsq_parts(m->grad_mem + gn->off[j0], len, gn->part + j0);
        for (int j = j0; j < j1; j++) gn->done[j] = 1;
        elems += len;
        i += j1 - j0;
    }
    return elems;
}

static int by_index(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

void mt_gradnorm_flush(mt_model *m) {
    mt_gradnorm *gn = m->gn;
    if (!gn || !gn->nready) return;
    qsort(gn->ready, (size_t)gn->nready, sizeof(int), by_index);
    gn->early_elems += sum_blocks(m, gn->ready, gn->nready);
    gn->nready = 0;
}

void mt_gradnorm_scale(mt_model *m, real s) {
    mt_gradnorm *gn = m->gn;
    real *g = m->grad_mem;
    size_t pos = m->shard0, end = m->shard0 + m->shard_n;
    // Runs lie inside the shard, in arena order: scale the gaps between
    // them (tensors another rank counts, padding), scale and sum the runs.
    for (int r = 0; gn && gn->fold && r < gn->nrun; r++) {
        int j0 = gn->run_b0[r], j1 = gn->run_b0[r + 1];
        size_t a = gn->off[j0], b = gn->off[j1 - 1] + gn->len[j1 - 1];
        if (pos < a) m->be->scale(g + pos, a - pos, s);
        m->be->scale_sumsq_parts(g + a, b - a, s, gn->part + j0);
        memset(gn->done + j0, 1, (size_t)(j1 - j0));
        gn->avg_elems += b - a;
        pos = b;
    }
    if (pos < end) m->be->scale(g + pos, end - pos, s);
}

double mt_gradnorm_local(mt_model *m) {
    mt_gradnorm *gn = m->gn;
    mt_gradnorm_flush(m);
    // What backward did not sum: reuse the ready list for it.
    int n = 0;
    for (int j = 0; j < gn->nblock; j++)
        if (!gn->done[j]) gn->ready[n++] = j;
    sum_blocks(m, gn->ready, n);
    double ss = 0;
    for (int r = 0; r < gn->nrun; r++) {
        double s = 0;
        for (int j = gn->run_b0[r]; j < gn->run_b0[r + 1]; j++) s += gn->part[j];
        ss += s;
    }
    gn->early_last = gn->early_elems;
    gn->avg_last = gn->avg_elems;
    mt_gradnorm_reset(gn);
    return ss;
}

void mt_gradnorm_reset(mt_gradnorm *gn) {
    if (!gn) return;
    size_t nb = (size_t)gn->nblock;
    memset(gn->done, 0, nb);
    memcpy(gn->left, gn->need, nb * sizeof(int));
    gn->nready = 0;
    gn->early_elems = gn->avg_elems = 0;
}
