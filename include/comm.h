// comm.h: Megatron's "mappings" (Shoeybi et al. 2019, Korthikanti et al.
// 2022) and the other collectives. The only module that calls MPI
// collectives on activations and gradients.
//
//   f   forward identity            backward all-reduce (TP)
//   f̄   forward all-reduce (TP)     backward identity
//   g   forward all-gather along s  backward reduce-scatter along s
//   ḡ   forward reduce-scatter      backward all-gather along s
//
// A group of size 1 makes no MPI call and counts nothing, so one rank runs
// the same code path. Every call adds to a per-group, per-collective counter.
// Bytes are counted as the size of the full (unsharded) tensor the collective
// produces or reduces, in this build's element size: an all-reduce of n
// elements counts n, an all-gather or reduce-scatter whose full tensor has n
// elements counts n. This is the paper's convention ("SP moves the same bytes
// as TP"); on a ring an all-reduce costs twice an all-gather on the wire.
#ifndef MT_COMM_H
#define MT_COMM_H

#include "common.h"
#include "parallel.h"

typedef enum { MT_COLL_ALLREDUCE, MT_COLL_ALLGATHER, MT_COLL_REDUCE_SCATTER, MT_COLL_SEND, MT_COLL_RECV, MT_COLL_ALLTOALL, MT_COLL_N } mt_coll;

typedef struct {
    uint64_t bytes[MT_GROUP_N][MT_COLL_N];
    uint64_t calls[MT_GROUP_N][MT_COLL_N];
    double seconds;   // time spent inside MPI calls
    // Context parallelism's ring: seconds from posting an exchange to its
    // completion, and of those the seconds spent waiting for it (not hidden
    // behind the block's compute).
    double ring_seconds, ring_wait_seconds;
    // Nonblocking collectives (gradient buckets, the parameter gather):
    // seconds from post to completion summed over requests, and of those the
    // seconds a rank spent waiting in mt_comm_coll_wait (exposed).
    double coll_seconds, coll_wait_seconds;
    int buckets, early_posts;   // gradient buckets, and those posted while backward ran
    // The gradient reduction: first post to last completion, and the wait
    // after backward (its exposed part).
    double grad_span_seconds, grad_wait_seconds;
    // The column-parallel backward's TP collectives posted behind a GEMM
    // (the input gradient's sum, SP's all-gather): post to completion summed,
    // and of it the seconds spent waiting in mt_comm_tp_wait.
    double tp_async_seconds, tp_async_wait_seconds;
    int tp_async_posts;
} mt_comm_stats;

struct mt_trace;
struct mt_backend;

// Host staging for device buffers: MPI runs on host copies when the
// buffers live on a GPU and the MPI library cannot read device memory.
typedef struct { void *buf; size_t cap; const MPI_Request *req; } mt_stage;
#define MT_PP_LIVE 2   // early pipeline receives in flight: one per direction

// Nonblocking collectives over a group g, one request each: posted now,
// progressed by mt_comm_coll_test (from the compute loop) and completed by
// mt_comm_coll_wait, which also lands staged results. The request owns its
// host copies (kept and grown across steps; mt_comm_coll_free frees them).
// Counted at post like their blocking forms: an all-reduce of n elements
// counts n, a reduce-scatter or all-gather counts the full tensor.
typedef struct {
    MPI_Request req;
    mt_group g;
    mt_coll c;
    real *dst;            // where a result lands at completion (x, or a rank's part of it)
    size_t dst_n;         // its elements
    const void *src;      // MPI's result buffer, landed into dst when it is not dst
    double t0, t_done;    // post, completion (when a test or the wait saw it)
    mt_stage in, out;     // host copies of the input and result
} mt_coll_req;

typedef struct {
    const mt_parallel *par;
    mt_comm_stats stats;   // reset by the caller per iteration
    struct mt_trace *trace;  // when recording a timeline: every call is an event
    // Where real-typed buffers live (NULL: host memory). With a device
    // backend, collectives stage through host buffers unless the MPI
    // library is CUDA-aware (mt_comm_set_backend decides once).
    const struct mt_backend *be;
    int staged;
    mt_stage in, out;                      // collectives
    mt_stage *sends;                       // one per pipeline or ring transfer in flight,
    int nsends;                            // grown as needed (AFAB keeps 2 chunks x M in flight)
    // Early pipeline receives in flight (NULL: free), which
    // mt_comm_pp_progress tests from the compute loop.
    MPI_Request *pp_live[MT_PP_LIVE];
    // The column-parallel backward's all-gather and input-gradient sum, in
    // flight behind its GEMMs (mt_comm_tp_isum).
    mt_coll_req tp_gather, tp_sum;
} mt_comm;

// Declares where the buffers passed to this comm live; call once after the
// model is built. Prints nothing; returns 1 when MPI sees device memory
// directly (CUDA-aware), 0 when it stages, -1 for host buffers.
int mt_comm_set_backend(mt_comm *cm, const struct mt_backend *be);
void mt_comm_free(mt_comm *cm);

extern const char *const mt_coll_names[MT_COLL_N];

// f̄ forward and f backward: SUM all-reduce over TP, in place.
// Example: row-parallel projection output (s, b, h) partial sums.
void mt_comm_tp_allreduce(mt_comm *cm, real *x, size_t n);
// MAX all-reduce over TP (vocab-parallel cross-entropy's row max).
void mt_comm_tp_allreduce_max(mt_comm *cm, real *x, size_t n);

// g forward (Korthikanti et al. 2022, Fig. 5): all-gather along s.
//   x (s/tp, b, h) on each TP rank -> y (s, b, h) on every TP rank.
// Backward: mt_comm_sp_reduce_scatter (ḡ forward).
// rows_local = s/tp * b, row_elems = h. One rank: a copy.
void mt_comm_sp_all_gather(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems);
// ḡ forward: reduce-scatter along s.
//   x (s, b, h) partial sums -> y (s/tp, b, h) rank's rows of the sum.
// Backward: mt_comm_sp_all_gather (g forward).
void mt_comm_sp_reduce_scatter(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems);

// Gradient synchronisation: SUM over a group, in place (DP, embedding group).
void mt_comm_allreduce_group(mt_comm *cm, mt_group g, real *x, size_t n);
// Distributed optimizer, over the group g holding every copy of the
// parameters (DP, or dp-cp with context parallelism; mt_grad_group):
// reduce-scatter the gradient arena x (n elements, n divisible by the group
// size G) so that group rank d's shard [d*n/G, (d+1)*n/G) of x holds the sum
// (the rest of x is left unspecified), and all-gather the parameter arena
// from every rank's shard, in place.
void mt_comm_shard_reduce_scatter(mt_comm *cm, mt_group g, real *x, size_t n);
void mt_comm_shard_all_gather(mt_comm *cm, mt_group g, real *x, size_t n);
// SUM of doubles over a group (the squared gradient norm).
void mt_comm_allreduce_double(mt_comm *cm, mt_group g, double *x, int n);


// Pipeline point-to-point between stages of this PP group. Sends are
// nonblocking (complete them with mt_comm_wait before reusing x) so that two
// neighbours sending to each other at once cannot deadlock; receives block
// (or, early, complete at a wait).
void mt_comm_pp_isend(mt_comm *cm, const real *x, size_t n, int dst_stage, int tag, MPI_Request *req);
void mt_comm_pp_recv(mt_comm *cm, real *x, size_t n, int src_stage, int tag);
// Completes a send; a no-op on MPI_REQUEST_NULL.
void mt_comm_wait(mt_comm *cm, MPI_Request *req);
// An early receive (--overlap-p2p-communication): posted into x (or its
// host stage) long before the data is needed, completed by
// mt_comm_pp_recv_wait, after which x holds it. x must not be read or
// written in between; r must stay at one address while in flight.
typedef struct { MPI_Request req; real *x; void *h; size_t n; } mt_pp_recv;
void mt_comm_pp_irecv(mt_comm *cm, mt_pp_recv *r, real *x, size_t n, int src_stage, int tag);
void mt_comm_pp_recv_wait(mt_comm *cm, mt_pp_recv *r);
// MPI_Test on the early receives in flight: Open MPI moves data only inside
// MPI calls (no asynchronous progress over shared memory), so the compute
// loop calls this between layers to let them, and the sends they pair
// with, advance (docs/design.md, "Progress"). A no-op when none is posted.
void mt_comm_pp_progress(mt_comm *cm);

// Context parallelism (Megatron's cp group, or a2a+p2p's two levels: g is
// MT_GROUP_CP, or MT_GROUP_CPP2P for the ring and MT_GROUP_CPA2A for the
// all-to-all). The ring: send x (n elements) to the next rank of g and
// receive the previous one's into y, both in flight
// until mt_comm_cp_ring_wait (so the caller computes meanwhile); its
// backward is the same ring in reverse direction of travel of the gradients
// it carries (layers_cp.c). Counted as one send and one receive.
typedef struct { MPI_Request req[2]; real *y; size_t n; double t0; mt_group g; } mt_cp_ring;
void mt_comm_cp_ring_start(mt_comm *cm, mt_group g, mt_cp_ring *ring, real *y, const real *x, size_t n);
void mt_comm_cp_ring_wait(mt_comm *cm, mt_cp_ring *ring);
// The all-to-all of DeepSpeed-Ulysses over CP: block d of x (n/C elements)
// goes to CP rank d, y's block s comes from rank s. Its backward is the
// all-to-all of the gradients the other way (the same call).
void mt_comm_cp_all_to_all(mt_comm *cm, mt_group g, real *y, const real *x, size_t n);

// Nonblocking collectives (mt_coll_req above). SUM all-reduce of x (n
// elements), in place: MPI_Iallreduce.
void mt_comm_iallreduce(mt_comm *cm, mt_group g, real *x, size_t n, mt_coll_req *r);
// SUM reduce-scatter of x (counts[0] + ... + counts[G-1] elements, group rank
// d's part starting at displs[d]): rank d's sum lands in x + displs[d] at
// completion, the rest of x is left unspecified. MPI_Ireduce_scatter.
void mt_comm_ireduce_scatter(mt_comm *cm, mt_group g, real *x, const int *counts, const int *displs, mt_coll_req *r);
// All-gather of x (n elements) from every rank of g into y (group rank d's
// at y + d n), MPI_Iallgather: x stays readable while in flight, y not.
void mt_comm_iall_gather(mt_comm *cm, mt_group g, real *y, const real *x, size_t n, mt_coll_req *r);
// All-gather in place: every rank's part x + displs[d] (counts[d] elements)
// reaches every rank. MPI_Iallgatherv. Moves values only: bitwise exact.
void mt_comm_iallgatherv(mt_comm *cm, mt_group g, real *x, const int *counts, const int *displs, mt_coll_req *r);
// The column-parallel linear's backward over TP (layers.c, column_backward),
// nonblocking so that its GEMMs run while the data travels. SP's all-gather
// of x (rows_local rows of row_elems) into y (tp times that), MPI_Iallgather;
// and the SUM of a partial input gradient x (rows rows): with scatter, SP's
// reduce-scatter (MPI_Ireduce_scatter_block: rank d's rows / tp rows land in
// x's block d at completion), else the all-reduce in place (MPI_Iallreduce).
// Returns where this rank's sum lands. The same calls whether or not a GEMM
// runs before the wait, so the overlap moves no bit. Counted like their
// blocking forms.
void mt_comm_sp_iall_gather(mt_comm *cm, real *y, const real *x, size_t rows_local, size_t row_elems, mt_coll_req *r);
real *mt_comm_tp_isum(mt_comm *cm, real *x, size_t rows, size_t row_elems, int scatter, mt_coll_req *r);
// Completes one of those that a GEMM ran behind: counted in the stats' tp_async
// fields with its time in flight and its wait (mt_comm_coll_wait: one that
// nothing ran behind).
void mt_comm_tp_wait(mt_comm *cm, mt_coll_req *r);
// Progress: 1 when the request has completed (a no-op after that).
int mt_comm_coll_test(mt_comm *cm, mt_coll_req *r);
void mt_comm_coll_wait(mt_comm *cm, mt_coll_req *r);
void mt_comm_coll_free(mt_coll_req *r);
// Size and this rank's index in group g (1 and 0 without a communicator).
int mt_comm_group_size(const mt_comm *cm, mt_group g);
int mt_comm_group_rank(const mt_comm *cm, mt_group g);

// SUM over the world of a few doubles, for logging only (not counted).
void mt_comm_report_sum(const mt_parallel *p, double *x, int n);

// One line per (group, collective) with calls and bytes, rank 0's view.
void mt_comm_print(const mt_comm_stats *s, FILE *f, const char *prefix);

#endif
