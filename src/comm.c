// comm.c: the mappings f, f̄, g, ḡ and the gradient collectives, each counted.
#include "comm.h"

#include "backend.h"
#include "trace.h"

#include <stdlib.h>
#include <string.h>

#ifdef MT_FP64
#define MT_MPI_REAL MPI_DOUBLE
#else
#define MT_MPI_REAL MPI_FLOAT
#endif

const char *const mt_coll_names[MT_COLL_N] = {"all-reduce", "all-gather", "reduce-scatter", "send", "recv", "all-to-all"};

static MPI_Comm comm_of(const mt_comm *cm, mt_group g) { return cm->par->comm[g]; }

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
    mt_trace_add_comm(cm->trace, c == MT_COLL_RECV ? MT_EV_IDLE : MT_EV_COMM, g, c, (double)bytes, t0, t1);
}

// ---- host staging ----------------------------------------------------------

#if defined(MT_CUDA) && defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif
#endif

// Open MPI says at run time whether it was built CUDA-aware; others: no.
static int mpi_reads_device_memory(void) {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
    return MPIX_Query_cuda_support() == 1;
#else
    return 0;
#endif
}

int mt_comm_set_backend(mt_comm *cm, const struct mt_backend *be) {
    cm->be = be;
    // MT_COMM_STAGED=1 stages host buffers too, so CI runs the GPU build's
    // staging path on the CPU (tests/suite_backend.sh: results must not move).
    const char *force = getenv("MT_COMM_STAGED");
    if (be && force && !strcmp(force, "1")) return cm->staged = 1, 0;
    if (!be || !be->device_memory) return cm->staged = 0, -1;
    // MT_COMM_DIRECT=1 takes the CUDA-aware path where MPI can read the
    // device buffers anyway (the emulator's are host memory), so that path's
    // waits are tested without a CUDA-aware MPI (suite_backend). Ignored on
    // a GPU, where a plain MPI would fault on device pointers.
    const char *dir = getenv("MT_COMM_DIRECT");
    int direct = mpi_reads_device_memory() || (be->host_addressable && dir && !strcmp(dir, "1"));
    cm->staged = !direct;
    return direct;
}

void mt_comm_free(mt_comm *cm) {
    free(cm->in.buf);
    free(cm->out.buf);
    for (int i = 0; i < cm->nsends; i++) free(cm->sends[i].buf);
    free(cm->sends);
    memset(&cm->in, 0, sizeof cm->in);
    memset(&cm->out, 0, sizeof cm->out);
    cm->sends = NULL;
    cm->nsends = 0;
    mt_comm_coll_free(&cm->tp_gather);
    mt_comm_coll_free(&cm->tp_sum);
}

// A host buffer of at least `bytes`, kept and grown: steady state allocates nothing.
static void *stage_buf(mt_stage *s, size_t bytes) {
    if (bytes > s->cap) {
        free(s->buf);
        s->buf = mt_malloc(bytes);
        s->cap = bytes;
    }
    return s->buf;
}

// A CUDA-aware MPI reads and fills device memory when it is called: it
// does not wait for the kernels queued before it (the staged path's copies
// do, on the same stream). So on that path a device buffer goes to MPI only
// once every queued kernel, the one writing it or still reading it, is done.
static void *direct(mt_comm *cm, const void *x) {
    if (cm->be && cm->be->device_memory) cm->be->sync();
    return (void *)x;
}

// What MPI reads for buffer x: x itself, or its host copy in `s`.
static void *host_view(mt_comm *cm, mt_stage *s, const void *x, size_t bytes) {
    if (!cm->staged) return direct(cm, x);
    void *h = stage_buf(s, bytes);
    cm->be->to_host(h, x, bytes);
    return h;
}

// Where MPI writes a result bound for y: y itself, or a host buffer.
static void *host_dest(mt_comm *cm, void *y, size_t bytes) {
    return cm->staged ? stage_buf(&cm->out, bytes) : direct(cm, y);
}

// Moves a result from MPI's buffer h into y (a no-op when h is y). An h
// other than y is always a host buffer of ours; y is a backend buffer, on
// the device with a GPU even when MPI reads device memory directly (the
// reduce-scatters' parts arrive in host buffers on that path too).
static void land(mt_comm *cm, void *y, const void *h, size_t bytes) {
    if (h == y || !bytes) return;
    if (cm->staged || (cm->be && cm->be->device_memory)) cm->be->to_device(y, h, bytes);
    else memcpy(y, h, bytes);
}

// y = x for a group of one, on whatever memory the buffers live in.
static void copy_local(mt_comm *cm, real *y, const real *x, size_t n) {
    if (y == x) return;
    if (cm->be) cm->be->copy(y, x, n);
    else memcpy(y, x, n * sizeof(real));
}

// ---- collectives -----------------------------------------------------------

// dev: x is a backend buffer (real-typed tensors), not host memory (doubles).
static void allreduce(mt_comm *cm, mt_group g, void *x, size_t n, MPI_Datatype type, MPI_Op op, size_t esize, int dev) {
    MPI_Comm c = comm_of(cm, g);
    if (size_of(c) == 1 || n == 0) return;
    double t0 = mt_now();
    void *h = dev ? host_view(cm, &cm->in, x, n * esize) : x;
    // MPI counts are int: large buffers go in chunks.
    for (size_t o = 0; o < n; o += (size_t)1 << 30) {
        int k = (int)MT_MIN(n - o, (size_t)1 << 30);
        MPI_Allreduce(MPI_IN_PLACE, (char *)h + o * esize, k, type, op, c);
    }
    if (dev) land(cm, x, h, n * esize);
    count(cm, g, MT_COLL_ALLREDUCE, n * esize, t0);
}

void mt_comm_tp_allreduce(mt_comm *cm, real *x, size_t n) {
    allreduce(cm, MT_GROUP_TP, x, n, MT_MPI_REAL, MPI_SUM, sizeof(real), 1);
}

void mt_comm_tp_allreduce_max(mt_comm *cm, real *x, size_t n) {
    allreduce(cm, MT_GROUP_TP, x, n, MT_MPI_REAL, MPI_MAX, sizeof(real), 1);
}

void mt_comm_allreduce_group(mt_comm *cm, mt_group g, real *x, size_t n) {
    allreduce(cm, g, x, n, MT_MPI_REAL, MPI_SUM, sizeof(real), 1);
}

void mt_comm_shard_reduce_scatter(mt_comm *cm, mt_group g, real *x, size_t n) {
    MPI_Comm c = comm_of(cm, g);
    int d = size_of(c), rank;
    if (d == 1) return;
    MPI_Comm_rank(c, &rank);
    double t0 = mt_now();
    size_t shard = n / (size_t)d, sb = shard * sizeof(real);
    const void *h = host_view(cm, &cm->in, x, n * sizeof(real));
    real *out = stage_buf(&cm->out, sb);  // MPI forbids in place here: a host buffer either way
    MPI_Reduce_scatter_block(h, out, (int)shard, MT_MPI_REAL, MPI_SUM, c);
    land(cm, x + (size_t)rank * shard, out, sb);
    count(cm, g, MT_COLL_REDUCE_SCATTER, n * sizeof(real), t0);
}

void mt_comm_shard_all_gather(mt_comm *cm, mt_group g, real *x, size_t n) {
    MPI_Comm c = comm_of(cm, g);
    int d = size_of(c);
    if (d == 1) return;
    double t0 = mt_now();
    void *h = host_view(cm, &cm->in, x, n * sizeof(real));
    MPI_Allgather(MPI_IN_PLACE, 0, MT_MPI_REAL, h, (int)(n / (size_t)d), MT_MPI_REAL, c);
    land(cm, x, h, n * sizeof(real));
    count(cm, g, MT_COLL_ALLGATHER, n * sizeof(real), t0);
}

void mt_comm_allreduce_double(mt_comm *cm, mt_group g, double *x, int n) {
    allreduce(cm, g, x, (size_t)n, MPI_DOUBLE, MPI_SUM, sizeof(double), 0);
}

// g and ḡ's collective over TP: the full tensor has t * n elements, each
// rank's part n. gather: all-gather x (n) into y (t n); else reduce-scatter
// x (t n) into y (n). One rank: a copy.
static void sp_collective(mt_comm *cm, real *y, const real *x, size_t n, int gather) {
    int t = cm->par->tp_size;
    if (t == 1) {
        copy_local(cm, y, x, n);
        return;
    }
    double t0 = mt_now();
    size_t part = n * sizeof(real), full = part * (size_t)t;
    const void *h = host_view(cm, &cm->in, x, gather ? part : full);
    void *o = host_dest(cm, y, gather ? full : part);
    MPI_Comm c = comm_of(cm, MT_GROUP_TP);
    if (gather) MPI_Allgather(h, (int)n, MT_MPI_REAL, o, (int)n, MT_MPI_REAL, c);
    else MPI_Reduce_scatter_block(h, o, (int)n, MT_MPI_REAL, MPI_SUM, c);
    land(cm, y, o, gather ? full : part);
    count(cm, MT_GROUP_TP, gather ? MT_COLL_ALLGATHER : MT_COLL_REDUCE_SCATTER, full, t0);
}

void mt_comm_sp_all_gather(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems) {
    sp_collective(cm, y, x, rows_local * row_elems, 1);
}

void mt_comm_sp_reduce_scatter(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems) {
    sp_collective(cm, y, x, rows_local * row_elems, 0);
}

// The staging buffer of the send (or receive) completing through `req`: a
// transfer in flight holds its own (released by mt_comm_wait), so it is
// never overwritten. The pool grows when every entry is in flight: the
// schedule decides how many transfers wait at once (all-forward-all-backward
// keeps every micro-batch's). Entries move when it grows; their buffers do
// not, and callers keep only the buffer.
static mt_stage *send_stage(mt_comm *cm, const MPI_Request *req) {
    for (int i = 0; i < cm->nsends; i++)
        if (cm->sends[i].req == req) return &cm->sends[i];
    for (int i = 0; i < cm->nsends; i++)
        if (!cm->sends[i].req) {
            cm->sends[i].req = req;
            return &cm->sends[i];
        }
    int n = cm->nsends ? 2 * cm->nsends : 16;
    mt_stage *grown = mt_calloc((size_t)n, sizeof *grown);
    if (cm->nsends) memcpy(grown, cm->sends, (size_t)cm->nsends * sizeof *grown);
    free(cm->sends);
    cm->sends = grown;
    mt_stage *s = &cm->sends[cm->nsends];
    cm->nsends = n;
    s->req = req;
    return s;
}

void mt_comm_pp_isend(mt_comm *cm, const real *x, size_t n, int dst_stage, int tag, MPI_Request *req) {
    double t0 = mt_now();
    const void *h = cm->staged ? host_view(cm, send_stage(cm, req), x, n * sizeof(real)) : direct(cm, x);
    MPI_Isend(h, (int)n, MT_MPI_REAL, dst_stage, tag, comm_of(cm, MT_GROUP_PP), req);
    count(cm, MT_GROUP_PP, MT_COLL_SEND, n * sizeof(real), t0);
}

// The transfer's staging buffer is free again (kept for the next one).
static void release_stage(mt_comm *cm, const MPI_Request *req) {
    for (int i = 0; i < cm->nsends; i++)
        if (cm->sends[i].req == req) cm->sends[i].req = NULL;
}

void mt_comm_wait(mt_comm *cm, MPI_Request *req) {
    if (*req == MPI_REQUEST_NULL) return;
    double t0 = mt_now();
    MPI_Wait(req, MPI_STATUS_IGNORE);
    cm->stats.seconds += mt_now() - t0;
    release_stage(cm, req);
}

void mt_comm_pp_recv(mt_comm *cm, real *x, size_t n, int src_stage, int tag) {
    double t0 = mt_now();
    void *h = host_dest(cm, x, n * sizeof(real));
    MPI_Recv(h, (int)n, MT_MPI_REAL, src_stage, tag, comm_of(cm, MT_GROUP_PP), MPI_STATUS_IGNORE);
    land(cm, x, h, n * sizeof(real));
    count(cm, MT_GROUP_PP, MT_COLL_RECV, n * sizeof(real), t0);
}

void mt_comm_pp_irecv(mt_comm *cm, mt_pp_recv *r, real *x, size_t n, int src_stage, int tag) {
    r->x = x;
    r->n = n;
    r->h = cm->staged ? stage_buf(send_stage(cm, &r->req), n * sizeof(real)) : direct(cm, x);
    MPI_Irecv(r->h, (int)n, MT_MPI_REAL, src_stage, tag, comm_of(cm, MT_GROUP_PP), &r->req);
    for (int i = 0; i < MT_PP_LIVE; i++)
        if (!cm->pp_live[i]) {
            cm->pp_live[i] = &r->req;
            return;
        }
    mt_fail_local(MT_EXIT_FAIL, "more than %d early pipeline receives in flight on one rank", MT_PP_LIVE);
}

void mt_comm_pp_progress(mt_comm *cm) {
    for (int i = 0; i < MT_PP_LIVE; i++)
        if (cm->pp_live[i] && *cm->pp_live[i] != MPI_REQUEST_NULL) {
            double t0 = mt_now();
            int done;
            MPI_Test(cm->pp_live[i], &done, MPI_STATUS_IGNORE);
            cm->stats.seconds += mt_now() - t0;
        }
}

void mt_comm_pp_recv_wait(mt_comm *cm, mt_pp_recv *r) {
    // Counted here, once, as the blocking receive is: calls and bytes match
    // the formulas, and only the wait shows as idle on the timeline.
    // (A receive mt_comm_pp_progress completed is MPI_REQUEST_NULL by now:
    // the wait returns at once, and the data lands here all the same.)
    double t0 = mt_now();
    MPI_Wait(&r->req, MPI_STATUS_IGNORE);
    land(cm, r->x, r->h, r->n * sizeof(real));
    release_stage(cm, &r->req);
    for (int i = 0; i < MT_PP_LIVE; i++)
        if (cm->pp_live[i] == &r->req) cm->pp_live[i] = NULL;
    count(cm, MT_GROUP_PP, MT_COLL_RECV, r->n * sizeof(real), t0);
}

// ---- context parallelism --------------------------------------------------------

void mt_comm_cp_ring_start(mt_comm *cm, mt_group g, mt_cp_ring *ring, real *y, const real *x, size_t n) {
    MPI_Comm c = comm_of(cm, g);
    int C = mt_comm_group_size(cm, g), r = mt_comm_group_rank(cm, g), next = (r + 1) % C, prev = (r + C - 1) % C;
    ring->g = g;
    double t0 = mt_now();
    ring->y = y;
    ring->n = n;
    ring->t0 = t0;
    const void *h = cm->staged ? host_view(cm, send_stage(cm, &ring->req[0]), x, n * sizeof(real)) : direct(cm, x);
    // Its own staging buffer per ring in flight: the backward runs two rings
    // at once (K | V and their gradients), and one shared buffer let the
    // second message overwrite the first before it landed.
    void *dst = cm->staged ? stage_buf(send_stage(cm, &ring->req[1]), n * sizeof(real)) : direct(cm, y);
    MPI_Irecv(dst, (int)n, MT_MPI_REAL, prev, 77, c, &ring->req[1]);
    MPI_Isend(h, (int)n, MT_MPI_REAL, next, 77, c, &ring->req[0]);
    count(cm, g, MT_COLL_SEND, n * sizeof(real), t0);
    count(cm, g, MT_COLL_RECV, n * sizeof(real), t0);
}

void mt_comm_cp_ring_wait(mt_comm *cm, mt_cp_ring *ring) {
    double t0 = mt_now();
    MPI_Waitall(2, ring->req, MPI_STATUSES_IGNORE);
    if (cm->staged) land(cm, ring->y, send_stage(cm, &ring->req[1])->buf, ring->n * sizeof(real));
    release_stage(cm, &ring->req[0]);
    release_stage(cm, &ring->req[1]);
    double t1 = mt_now();
    cm->stats.seconds += t1 - t0;
    cm->stats.ring_wait_seconds += t1 - t0;
    cm->stats.ring_seconds += t1 - ring->t0;
    // The timeline shows each ring step: the block in flight from post to
    // arrival (comm), and the part of it nobody computed through (idle).
    double bytes = (double)(ring->n * sizeof(real));
    mt_trace_add_comm(cm->trace, MT_EV_COMM, ring->g, MT_COLL_SEND, bytes, ring->t0, t1);
    mt_trace_add_comm(cm->trace, MT_EV_IDLE, ring->g, MT_COLL_RECV, bytes, t0, t1);
}

void mt_comm_cp_all_to_all(mt_comm *cm, mt_group g, real *y, const real *x, size_t n) {
    MPI_Comm c = comm_of(cm, g);
    int C = size_of(c);
    if (C == 1) { copy_local(cm, y, x, n); return; }
    double t0 = mt_now();
    size_t blk = n / (size_t)C;
    const void *h = host_view(cm, &cm->in, x, n * sizeof(real));
    void *o = host_dest(cm, y, n * sizeof(real));
    MPI_Alltoall(h, (int)blk, MT_MPI_REAL, o, (int)blk, MT_MPI_REAL, c);
    land(cm, y, o, n * sizeof(real));
    count(cm, g, MT_COLL_ALLTOALL, n * sizeof(real), t0);
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

// ---- nonblocking collectives -----------------------------------------------

int mt_comm_group_size(const mt_comm *cm, mt_group g) { return size_of(comm_of(cm, g)); }

int mt_comm_group_rank(const mt_comm *cm, mt_group g) {
    MPI_Comm c = comm_of(cm, g);
    if (c == MPI_COMM_NULL) return 0;
    int r;
    MPI_Comm_rank(c, &r);
    return r;
}

// Starts request r's bookkeeping: counted now, timed until completion.
static void coll_begin(mt_comm *cm, mt_coll_req *r, mt_group g, mt_coll c, size_t bytes, double t0) {
    r->g = g;
    r->c = c;
    r->t0 = t0;
    r->t_done = 0;
    cm->stats.bytes[g][c] += bytes;
    cm->stats.calls[g][c] += 1;
    cm->stats.seconds += mt_now() - t0;   // the post itself
}

void mt_comm_iallreduce(mt_comm *cm, mt_group g, real *x, size_t n, mt_coll_req *r) {
    double t0 = mt_now();
    size_t b = n * sizeof(real);
    if (n > (size_t)INT32_MAX) mt_fail_local(MT_EXIT_FAIL, "gradient bucket of %zu elements: over MPI's int count", n);
    void *h = host_view(cm, &r->in, x, b);
    r->dst = x, r->dst_n = n, r->src = h;
    MPI_Iallreduce(MPI_IN_PLACE, h, (int)n, MT_MPI_REAL, MPI_SUM, comm_of(cm, g), &r->req);
    coll_begin(cm, r, g, MT_COLL_ALLREDUCE, b, t0);
}

void mt_comm_ireduce_scatter(mt_comm *cm, mt_group g, real *x, const int *counts, const int *displs, mt_coll_req *r) {
    double t0 = mt_now();
    int G = size_of(comm_of(cm, g)), d = mt_comm_group_rank(cm, g);
    size_t n = 0;
    for (int i = 0; i < G; i++) n += (size_t)counts[i];
    const void *h = host_view(cm, &r->in, x, n * sizeof(real));
    // MPI reads the whole bucket and writes this rank's part elsewhere (no
    // aliasing); the part lands in x at completion.
    void *o = stage_buf(&r->out, MT_MAX((size_t)counts[d], 1) * sizeof(real));
    r->dst = x + displs[d], r->dst_n = (size_t)counts[d], r->src = o;
    MPI_Ireduce_scatter(h, o, counts, MT_MPI_REAL, MPI_SUM, comm_of(cm, g), &r->req);
    coll_begin(cm, r, g, MT_COLL_REDUCE_SCATTER, n * sizeof(real), t0);
}

void mt_comm_iallgatherv(mt_comm *cm, mt_group g, real *x, const int *counts, const int *displs, mt_coll_req *r) {
    double t0 = mt_now();
    int G = size_of(comm_of(cm, g));
    size_t n = 0;
    for (int i = 0; i < G; i++) n += (size_t)counts[i];
    void *h = host_view(cm, &r->in, x, n * sizeof(real));
    r->dst = x, r->dst_n = n, r->src = h;
    MPI_Iallgatherv(MPI_IN_PLACE, 0, MT_MPI_REAL, h, counts, displs, MT_MPI_REAL, comm_of(cm, g), &r->req);
    coll_begin(cm, r, g, MT_COLL_ALLGATHER, n * sizeof(real), t0);
}

void mt_comm_iall_gather(mt_comm *cm, mt_group g, real *y, const real *x, size_t n, mt_coll_req *r) {
    double t0 = mt_now();
    size_t full = n * (size_t)mt_comm_group_size(cm, g);
    if (n > (size_t)INT32_MAX) mt_fail_local(MT_EXIT_FAIL, "all-gather of %zu elements: over MPI's int count", n);
    const void *h = host_view(cm, &r->in, x, n * sizeof(real));
    void *o = cm->staged ? stage_buf(&r->out, full * sizeof(real)) : direct(cm, y);
    r->dst = y, r->dst_n = full, r->src = o;
    MPI_Iallgather(h, (int)n, MT_MPI_REAL, o, (int)n, MT_MPI_REAL, comm_of(cm, g), &r->req);
    coll_begin(cm, r, g, MT_COLL_ALLGATHER, full * sizeof(real), t0);
}

void mt_comm_sp_iall_gather(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems, mt_coll_req *r) {
    mt_comm_iall_gather(cm, MT_GROUP_TP, y, x, rows_local * row_elems, r);
}

real *mt_comm_tp_isum(mt_comm *cm, real *x, size_t rows, size_t row_elems, int scatter, mt_coll_req *r) {
    size_t t = (size_t)cm->par->tp_size, n = rows * row_elems;
    if (!scatter) {
        mt_comm_iallreduce(cm, MT_GROUP_TP, x, n, r);
        return x;
    }
    double t0 = mt_now();
    size_t part = n / t;  // rows is a multiple of t under SP (config.c)
    if (part > (size_t)INT32_MAX) mt_fail_local(MT_EXIT_FAIL, "reduce-scatter of %zu elements: over MPI's int count", n);
    const void *h = host_view(cm, &r->in, x, n * sizeof(real));
    // MPI writes this rank's sum apart from the input it still reads; it
    // lands in x's own rows at completion.
    void *o = stage_buf(&r->out, part * sizeof(real));
    r->dst = x + (size_t)cm->par->tp_rank * part, r->dst_n = part, r->src = o;
    MPI_Ireduce_scatter_block(h, o, (int)part, MT_MPI_REAL, MPI_SUM, comm_of(cm, MT_GROUP_TP), &r->req);
    coll_begin(cm, r, MT_GROUP_TP, MT_COLL_REDUCE_SCATTER, n * sizeof(real), t0);
    return r->dst;
}

void mt_comm_tp_wait(mt_comm *cm, mt_coll_req *r) {
    double w0 = cm->stats.coll_wait_seconds;
    mt_comm_coll_wait(cm, r);
    cm->stats.tp_async_wait_seconds += cm->stats.coll_wait_seconds - w0;
    cm->stats.tp_async_seconds += r->t_done - r->t0;
    cm->stats.tp_async_posts++;
}

// After MPI completed r: its result into dst, its time into the stats and
// (in flight from post to completion) onto the timeline's comm lane.
static void coll_done(mt_comm *cm, mt_coll_req *r, double t) {
    r->t_done = t;
    if (r->src != r->dst) land(cm, r->dst, r->src, r->dst_n * sizeof(real));
    cm->stats.coll_seconds += t - r->t0;
    mt_trace_add_comm(cm->trace, MT_EV_COMM, r->g, r->c, (double)(r->dst_n * sizeof(real)), r->t0, t);
}

int mt_comm_coll_test(mt_comm *cm, mt_coll_req *r) {
    if (r->req == MPI_REQUEST_NULL) return 1;
    double t0 = mt_now();
    int done = 0;
    MPI_Test(&r->req, &done, MPI_STATUS_IGNORE);
    double t1 = mt_now();
    cm->stats.seconds += t1 - t0;
    if (done) coll_done(cm, r, t1);
    return done;
}

void mt_comm_coll_wait(mt_comm *cm, mt_coll_req *r) {
    if (r->req == MPI_REQUEST_NULL) return;
    double t0 = mt_now();
    MPI_Wait(&r->req, MPI_STATUS_IGNORE);
    double t1 = mt_now();
    cm->stats.seconds += t1 - t0;
    cm->stats.coll_wait_seconds += t1 - t0;
    // The part of the collective nobody computed through.
    mt_trace_add_comm(cm->trace, MT_EV_IDLE, r->g, r->c, (double)(r->dst_n * sizeof(real)), t0, t1);
    coll_done(cm, r, t1);
}

void mt_comm_coll_free(mt_coll_req *r) {
    free(r->in.buf);
    free(r->out.buf);
    memset(&r->in, 0, sizeof r->in);
    memset(&r->out, 0, sizeof r->out);
}
