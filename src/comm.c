// comm.c: the mappings f, f̄, g, ḡ and the gradient collectives, each counted.
#include "comm.h"

#include "trace.h"

#include <stdlib.h>
#include <string.h>

#ifdef MT_FP64
#define MT_MPI_REAL MPI_DOUBLE
#else
#define MT_MPI_REAL MPI_FLOAT
#endif

const char *const mt_group_names[MT_GROUP_N] = {"tp", "dp", "pp", "embd", "mp"};
const char *const mt_coll_names[MT_COLL_N] = {"all-reduce", "all-gather", "reduce-scatter", "send", "recv"};

static MPI_Comm comm_of(const mt_comm *cm, mt_group g) {
    const mt_parallel *p = cm->par;
    switch (g) {
    case MT_GROUP_TP: return p->tp;
    case MT_GROUP_DP: return p->dp;
    case MT_GROUP_PP: return p->pp;
    case MT_GROUP_EMBD: return p->embd;
    default: return p->mp;
    }
}

static int size_of(MPI_Comm c) {
    if (c == MPI_COMM_NULL) return 1;
    int n;
    MPI_Comm_size(c, &n);
    return n;
}

static void count(mt_comm *cm, mt_group g, mt_coll c, size_t bytes, double t0) {
    double t1 = mt_now();
    cm->stats.bytes[g][c] += bytes;
    cm->stats.calls[g][c] += 1;
    cm->stats.seconds += t1 - t0;
    // A pipeline receive is time spent waiting for the neighbour: idle.
    mt_trace_add(cm->trace, c == MT_COLL_RECV ? MT_EV_IDLE : MT_EV_COMM, g, c, t0, t1);
}

static void allreduce(mt_comm *cm, mt_group g, void *x, size_t n, MPI_Datatype type, MPI_Op op, size_t esize) {
    MPI_Comm c = comm_of(cm, g);
    if (size_of(c) == 1 || n == 0) return;
    double t0 = mt_now();
    // MPI counts are int: large buffers go in chunks.
    for (size_t o = 0; o < n; o += (size_t)1 << 30) {
        int k = (int)MT_MIN(n - o, (size_t)1 << 30);
        MPI_Allreduce(MPI_IN_PLACE, (char *)x + o * esize, k, type, op, c);
    }
    count(cm, g, MT_COLL_ALLREDUCE, n * esize, t0);
}

void mt_comm_tp_allreduce(mt_comm *cm, real *x, size_t n) {
    allreduce(cm, MT_GROUP_TP, x, n, MT_MPI_REAL, MPI_SUM, sizeof(real));
}

void mt_comm_tp_allreduce_max(mt_comm *cm, real *x, size_t n) {
    allreduce(cm, MT_GROUP_TP, x, n, MT_MPI_REAL, MPI_MAX, sizeof(real));
}

void mt_comm_allreduce_group(mt_comm *cm, mt_group g, real *x, size_t n) {
    allreduce(cm, g, x, n, MT_MPI_REAL, MPI_SUM, sizeof(real));
}

void mt_comm_dp_reduce_scatter(mt_comm *cm, real *x, size_t n) {
    int d = cm->par->dp_size;
    if (d == 1) return;
    double t0 = mt_now();
    size_t shard = n / (size_t)d;
    real *tmp = mt_malloc(shard * sizeof(real));
    MPI_Reduce_scatter_block(x, tmp, (int)shard, MT_MPI_REAL, MPI_SUM, cm->par->dp);
    memcpy(x + (size_t)cm->par->dp_rank * shard, tmp, shard * sizeof(real));
    free(tmp);
    count(cm, MT_GROUP_DP, MT_COLL_REDUCE_SCATTER, n * sizeof(real), t0);
}

void mt_comm_dp_all_gather(mt_comm *cm, real *x, size_t n) {
    int d = cm->par->dp_size;
    if (d == 1) return;
    double t0 = mt_now();
    MPI_Allgather(MPI_IN_PLACE, 0, MT_MPI_REAL, x, (int)(n / (size_t)d), MT_MPI_REAL, cm->par->dp);
    count(cm, MT_GROUP_DP, MT_COLL_ALLGATHER, n * sizeof(real), t0);
}

void mt_comm_allreduce_double(mt_comm *cm, mt_group g, double *x, int n) {
    allreduce(cm, g, x, (size_t)n, MPI_DOUBLE, MPI_SUM, sizeof(double));
}


void mt_comm_sp_all_gather(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems) {
    size_t n = rows_local * row_elems;
    int t = cm->par->tp_size;
    if (t == 1) {
        if (y != x) memcpy(y, x, n * sizeof(real));
        return;
    }
    double t0 = mt_now();
    MPI_Allgather(x, (int)n, MT_MPI_REAL, y, (int)n, MT_MPI_REAL, cm->par->tp);
    count(cm, MT_GROUP_TP, MT_COLL_ALLGATHER, n * (size_t)t * sizeof(real), t0);
}

void mt_comm_sp_reduce_scatter(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems) {
    size_t n = rows_local * row_elems;
    int t = cm->par->tp_size;
    if (t == 1) {
        if (y != x) memcpy(y, x, n * sizeof(real));
        return;
    }
    double t0 = mt_now();
    MPI_Reduce_scatter_block(x, y, (int)n, MT_MPI_REAL, MPI_SUM, cm->par->tp);
    count(cm, MT_GROUP_TP, MT_COLL_REDUCE_SCATTER, n * (size_t)t * sizeof(real), t0);
}

void mt_comm_pp_isend(mt_comm *cm, const real *x, size_t n, int dst_stage, int tag, MPI_Request *req) {
    double t0 = mt_now();
    MPI_Isend(x, (int)n, MT_MPI_REAL, dst_stage, tag, cm->par->pp, req);
    count(cm, MT_GROUP_PP, MT_COLL_SEND, n * sizeof(real), t0);
}

void mt_comm_wait(mt_comm *cm, MPI_Request *req) {
    if (*req == MPI_REQUEST_NULL) return;
    double t0 = mt_now();
    MPI_Wait(req, MPI_STATUS_IGNORE);
    cm->stats.seconds += mt_now() - t0;
}

void mt_comm_pp_recv(mt_comm *cm, real *x, size_t n, int src_stage, int tag) {
    double t0 = mt_now();
    MPI_Recv(x, (int)n, MT_MPI_REAL, src_stage, tag, cm->par->pp, MPI_STATUS_IGNORE);
    count(cm, MT_GROUP_PP, MT_COLL_RECV, n * sizeof(real), t0);
}

void mt_comm_print(const mt_comm_stats *s, FILE *f, const char *prefix) {
    for (int g = 0; g < MT_GROUP_N; g++)
        for (int c = 0; c < MT_COLL_N; c++)
            if (s->calls[g][c])
                fprintf(f, "%s%-4s %-14s calls %6llu  bytes %12llu\n", prefix, mt_group_names[g], mt_coll_names[c],
                        (unsigned long long)s->calls[g][c], (unsigned long long)s->bytes[g][c]);
}

void mt_comm_report_sum(const mt_parallel *p, double *x, int n) {
    if (p->world_size > 1) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, p->world);
}
