// test_comm.c: the mappings f, f̄, g, ḡ and their backwards, exactly, with
// integer-valued data (sums of small integers are exact in float and double),
// plus the counters. Run under mpirun with np = TP size (tests/suite_comm.sh
// uses 2, 3 and 4); with one process every mapping is a copy and counts 0.
// Every rank checks; failures are summed over the world so rank 0's verdict
// covers all ranks.
#include <mpi.h>

#include "comm.h"
#include "harness.h"

typedef struct { mt_config c; mt_parallel par; mt_comm cm; int t, r; } world;

static void setup_into(world *wp) {
    world w;
    memset(&w, 0, sizeof w);
    int n;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    w.c.tp = n; w.c.pp = 1; w.c.dp = 1; w.c.sequence_parallel = 1;
    mt_parallel_init(&w.par, MPI_COMM_WORLD, &w.c);
    w.cm.par = &w.par;
    w.t = w.par.tp_size;
    w.r = w.par.tp_rank;
    *wp = w;
    wp->cm.par = &wp->par;  // the mapping context points at the caller's copy
}

// Fails on every rank if any rank saw a mismatch.
static int all_ok(int ok_here) {
    int bad = !ok_here, sum = 0;
    MPI_Allreduce(&bad, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    return sum == 0;
}

enum { ROWS = 5, H = 3 };  // rows per rank (s/t * b), row width

// f̄ forward / f backward: all-reduce SUM.
TEST(fbar_forward_and_f_backward_allreduce) {
    world w;
    setup_into(&w);
    real x[ROWS * H];
    for (int i = 0; i < ROWS * H; i++) x[i] = (real)((w.r + 1) * (i + 1));
    mt_comm_tp_allreduce(&w.cm, x, ROWS * H);
    int good = 1;
    for (int i = 0; i < ROWS * H; i++) good &= x[i] == (real)((i + 1) * w.t * (w.t + 1) / 2);
    ASSERT(all_ok(good), "all-reduce sum differs from (i+1) t(t+1)/2");
    uint64_t want = w.t > 1 ? ROWS * H * sizeof(real) : 0;
    ASSERT(all_ok(w.cm.stats.bytes[MT_GROUP_TP][MT_COLL_ALLREDUCE] == want &&
                  w.cm.stats.calls[MT_GROUP_TP][MT_COLL_ALLREDUCE] == (w.t > 1)),
           "counter: %llu bytes, want %llu", (unsigned long long)w.cm.stats.bytes[MT_GROUP_TP][MT_COLL_ALLREDUCE],
           (unsigned long long)want);
    mt_parallel_free(&w.par);
}

// MAX all-reduce (vocab-parallel cross-entropy).
TEST(allreduce_max) {
    world w;
    setup_into(&w);
    real x[4];
    for (int i = 0; i < 4; i++) x[i] = (real)(i == w.r % 4 ? 100 + w.r : -w.r);
    mt_comm_tp_allreduce_max(&w.cm, x, 4);
    int good = 1;
    for (int i = 0; i < 4; i++) {
        real want = 0;  // rank 0 contributes -0 = 0 to every slot
        for (int q = 0; q < w.t; q++) want = MT_MAX(want, (real)(i == q % 4 ? 100 + q : -q));
        good &= x[i] == want;
    }
    ASSERT(all_ok(good), "max differs");
    mt_parallel_free(&w.par);
}

// g forward = ḡ backward: all-gather along s. Global row i holds value
// 1000*i + column; rank r holds rows [r*ROWS, (r+1)*ROWS).
TEST(g_forward_and_gbar_backward_allgather) {
    world w;
    setup_into(&w);
    real x[ROWS * H], *y = malloc(sizeof(real) * ROWS * H * (size_t)w.t);
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < H; j++) x[i * H + j] = (real)(1000 * (w.r * ROWS + i) + j);
    mt_comm_sp_all_gather(&w.cm, y, x, ROWS, H);
    int good = 1;
    for (int i = 0; i < ROWS * w.t; i++)
        for (int j = 0; j < H; j++) good &= y[i * H + j] == (real)(1000 * i + j);
    free(y);
    ASSERT(all_ok(good), "gathered rows differ from the global tensor");
    uint64_t want = w.t > 1 ? (uint64_t)ROWS * H * (uint64_t)w.t * sizeof(real) : 0;
    ASSERT(all_ok(w.cm.stats.bytes[MT_GROUP_TP][MT_COLL_ALLGATHER] == want), "all-gather byte count");
    mt_parallel_free(&w.par);
}

// ḡ forward = g backward: reduce-scatter along s. Rank q holds the full
// tensor (q+1)*(1000*i + j); rank r gets its rows of the sum.
TEST(gbar_forward_and_g_backward_reduce_scatter) {
    world w;
    setup_into(&w);
    size_t full = (size_t)ROWS * H * (size_t)w.t;
    real *x = malloc(sizeof(real) * full), y[ROWS * H];
    for (int i = 0; i < ROWS * w.t; i++)
        for (int j = 0; j < H; j++) x[i * H + j] = (real)((w.r + 1) * (1000 * i + j));
    mt_comm_sp_reduce_scatter(&w.cm, y, x, ROWS, H);
    int good = 1;
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < H; j++)
            good &= y[i * H + j] == (real)((1000 * (w.r * ROWS + i) + j) * w.t * (w.t + 1) / 2);
    free(x);
    ASSERT(all_ok(good), "reduce-scattered rows differ from the sum");
    uint64_t want = w.t > 1 ? (uint64_t)full * sizeof(real) : 0;
    ASSERT(all_ok(w.cm.stats.bytes[MT_GROUP_TP][MT_COLL_REDUCE_SCATTER] == want), "reduce-scatter byte count");
    mt_parallel_free(&w.par);
}

// g followed by its backward is the identity times t on summed gradients:
// reduce-scatter(all-gather(x)) = t * x (each rank contributes the same copy).
TEST(g_then_backward_round_trip) {
    world w;
    setup_into(&w);
    real x[ROWS * H], back[ROWS * H], *y = malloc(sizeof(real) * ROWS * H * (size_t)w.t);
    for (int i = 0; i < ROWS * H; i++) x[i] = (real)(7 * w.r + i);
    mt_comm_sp_all_gather(&w.cm, y, x, ROWS, H);
    mt_comm_sp_reduce_scatter(&w.cm, back, y, ROWS, H);
    int good = 1;
    for (int i = 0; i < ROWS * H; i++) good &= back[i] == (real)w.t * x[i];
    free(y);
    ASSERT(all_ok(good), "reduce_scatter(all_gather(x)) != t x");
    mt_parallel_free(&w.par);
}

// ---- context parallelism's exchanges: the same world as a CP group ----------

static void setup_cp(world *wp) {
    memset(wp, 0, sizeof *wp);
    int n;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    wp->c.tp = 1; wp->c.cp = n; wp->c.pp = 1; wp->c.dp = 1;
    mt_parallel_init(&wp->par, MPI_COMM_WORLD, &wp->c);
    wp->cm.par = &wp->par;
    wp->t = wp->par.cp_size;
    wp->r = wp->par.cp_rank;
}

// The ring: C-1 steps carry every rank's block to every other rank, the
// block of rank (r - k) mod C arriving at step k; its payload is exact.
TEST(cp_ring_carries_every_block_around) {
    world w;
    setup_cp(&w);
    enum { N = 7 };
    real cur[N], next[N];
    for (int i = 0; i < N; i++) cur[i] = (real)(1000 * w.r + i);
    int good = 1;
    for (int k = 1; k < w.t; k++) {
        mt_cp_ring ring;
        mt_comm_cp_ring_start(&w.cm, MT_GROUP_CP, &ring, next, cur, N);
        mt_comm_cp_ring_wait(&w.cm, &ring);
        int src = (w.r - k + w.t) % w.t;
        for (int i = 0; i < N; i++) good &= next[i] == (real)(1000 * src + i);
        memcpy(cur, next, sizeof cur);
    }
    ASSERT(all_ok(good), "a block arrived from the wrong rank or changed on the way");
    uint64_t want = (uint64_t)(w.t - 1) * N * sizeof(real);
    ASSERT(all_ok(w.cm.stats.bytes[MT_GROUP_CP][MT_COLL_SEND] == want && w.cm.stats.bytes[MT_GROUP_CP][MT_COLL_RECV] == want),
           "counters: %llu bytes sent, want %llu", (unsigned long long)w.cm.stats.bytes[MT_GROUP_CP][MT_COLL_SEND],
           (unsigned long long)want);
    mt_parallel_free(&w.par);
}

// The all-to-all: block d of rank r lands as block r on rank d, exactly;
// doing it twice (its own backward) restores the input.
TEST(cp_all_to_all_transposes_blocks) {
    world w;
    setup_cp(&w);
    enum { B = 5 };
    size_t n = (size_t)B * w.t;
    real *x = calloc(n, sizeof(real)), *y = calloc(n, sizeof(real)), *z = calloc(n, sizeof(real));
    for (int d = 0; d < w.t; d++)
        for (int i = 0; i < B; i++) x[d * B + i] = (real)(10000 * w.r + 100 * d + i);
    mt_comm_cp_all_to_all(&w.cm, MT_GROUP_CP, y, x, n);
    int good = 1;
    for (int s = 0; s < w.t; s++)
        for (int i = 0; i < B; i++) good &= y[s * B + i] == (real)(10000 * s + 100 * w.r + i);
    mt_comm_cp_all_to_all(&w.cm, MT_GROUP_CP, z, y, n);
    for (size_t i = 0; i < n; i++) good &= z[i] == x[i];
    ASSERT(all_ok(good), "the all-to-all misplaced a block");
    free(x); free(y); free(z);
    mt_parallel_free(&w.par);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    // Only rank 0 reports; every rank runs every case (they are collective).
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 1;
    int f = mt_test_main(argc, argv);
    MPI_Finalize();
    return f;
}
