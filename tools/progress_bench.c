// tools/progress_bench: how much of a nonblocking transfer completes while a
// rank computes, by who drives MPI's progress (issue 17, "Overlap").
//
//   mpirun -np 2 tools/progress_bench [--bytes B] [--compute-ms C] [--reps K]
//
// Each rank posts a transfer of B bytes (an MPI_Iallreduce of fp32 SUM, then
// separately an MPI_Isend/MPI_Irecv pair with the other rank), computes for
// a fixed amount of work (single-threaded 64x64x64 sgemms, ~C ms alone),
// then waits. Progress modes:
//   none        no MPI call until the wait (what a compute loop without
//               hooks gets: Open MPI 4 has no asynchronous progress on vader)
//   test/N      MPI_Test from the compute loop every N microseconds (the
//               trainer's gradient buckets test once per layer: buckets.c)
//   thread      a progress thread (MPI_THREAD_MULTIPLE) spinning on MPI_Test
//   thread/N    the same thread sleeping N microseconds between tests
// It prints, per mode, the median over K rounds of the exposed time (the
// wait after compute, the slower rank's) and the compute time (the slower
// rank's; copies done inside MPI_Test, or a thread competing for the cores,
// slow compute down), next to the transfer alone and the compute alone. The
// modes alternate within each round, so a shared machine's drift hits all.
#include <cblas.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include <time.h>
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

#define UNIT 64   // sgemm edge of one work unit (~10 us on one core)

typedef struct {
    float *a, *b, *c;     // the work unit's operands
    long units;           // work units of one compute phase
    float *sbuf, *rbuf;   // the transfer's buffers
    int count, peer;
} bench;

typedef enum { OP_ALLREDUCE, OP_SENDRECV } op_kind;
static const char *const op_names[] = {"MPI_Iallreduce", "MPI_Isend+MPI_Irecv"};

// The project's strict parser (input.h): no suffix, no overflow.
static long long arg_ll(const char *flag, const char *v) {
    long long x;
    if (!v || mt_parse_ll(v, 1, LLONG_MAX, &x)) {
        fprintf(stderr, "progress_bench: error: %s needs a positive whole number\n", flag);
        exit(2);
    }
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void unit(bench *b) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, UNIT, UNIT, UNIT, 1.0f, b->a, UNIT, b->b, UNIT, 0.5f, b->c, UNIT);
}

// Posts the transfer into reqs (1 or 2 requests); returns their number.
static int post(bench *b, op_kind op, MPI_Request *reqs) {
    if (op == OP_ALLREDUCE) {
        MPI_Iallreduce(b->sbuf, b->rbuf, b->count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &reqs[0]);
        return 1;
    }
    MPI_Irecv(b->rbuf, b->count, MPI_FLOAT, b->peer, 7, MPI_COMM_WORLD, &reqs[0]);
    MPI_Isend(b->sbuf, b->count, MPI_FLOAT, b->peer, 7, MPI_COMM_WORLD, &reqs[1]);
    return 2;
}

typedef struct {
    MPI_Request *reqs;
    int n;
    long sleep_us;   // 0: spin
    atomic_int done;
} progress_thread;

// The thread owns the requests until they complete: no other thread touches
// them meanwhile (MPI forbids concurrent calls on one request).
static void *progress_main(void *arg) {
    progress_thread *p = arg;
    int flag = 0;
    struct timespec ts = {0, p->sleep_us * 1000};
    while (!flag) {
        MPI_Testall(p->n, p->reqs, &flag, MPI_STATUSES_IGNORE);
        if (!flag && p->sleep_us) nanosleep(&ts, NULL);
    }
    atomic_store(&p->done, 1);
    return NULL;
}

// One round: post, compute b->units work units, wait. test_us > 0: MPI_Test
// from the compute loop every test_us; thread: a progress thread owns the
// requests (spinning, or sleeping thread_sleep_us between tests). out: the
// slower rank's compute and exposed (wait) seconds.
static void round_once(bench *b, op_kind op, long test_us, int thread, long thread_sleep_us, double out[2]) {
    MPI_Request reqs[2];
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    int n = post(b, op, reqs);
    progress_thread pt = {reqs, n, thread_sleep_us, 0};
    pthread_t th;
    if (thread) pthread_create(&th, NULL, progress_main, &pt);
    double next = t0 + test_us * 1e-6;
    int flag = 0;
    for (long u = 0; u < b->units; u++) {
        unit(b);
        if (test_us > 0 && !flag && MPI_Wtime() >= next) {
            MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE);
            next = MPI_Wtime() + test_us * 1e-6;
        }
    }
    double t1 = MPI_Wtime();
    if (thread) pthread_join(th, NULL);
    else MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE);
    double t2 = MPI_Wtime();
    double mine[2] = {t1 - t0, t2 - t1};
    MPI_Allreduce(mine, out, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int main(int argc, char **argv) {
    long long bytes = 64ll << 20, reps = 5;
    double compute_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mpirun -np 2 tools/progress_bench [--bytes B (67108864)] [--compute-ms C (default: 1.5 x the slower "
                   "transfer alone)] [--reps K (5)]\n");
            return 0;
        }
        if (i + 1 >= argc) { fprintf(stderr, "progress_bench: error: %s needs a value (see --help)\n", argv[i]); return 2; }
        if (!strcmp(argv[i], "--bytes")) bytes = arg_ll(argv[i], argv[i + 1]);
        else if (!strcmp(argv[i], "--compute-ms")) compute_ms = (double)arg_ll(argv[i], argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = arg_ll(argv[i], argv[i + 1]);
        else { fprintf(stderr, "progress_bench: error: unknown flag %s (see --help)\n", argv[i]); return 2; }
        i++;
    }
    int provided, rank, n;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (n != 2) {
        if (rank == 0) fprintf(stderr, "progress_bench: error: run on exactly 2 ranks (got %d)\n", n);
        MPI_Finalize();
        return 2;
    }
    bench b = {.count = (int)(bytes / 4), .peer = 1 - rank};
    b.a = malloc(sizeof(float) * UNIT * UNIT), b.b = malloc(sizeof(float) * UNIT * UNIT), b.c = calloc(UNIT * UNIT, sizeof(float));
    b.sbuf = malloc((size_t)b.count * 4), b.rbuf = malloc((size_t)b.count * 4);
    if (!b.a || !b.b || !b.c || !b.sbuf || !b.rbuf) { fprintf(stderr, "progress_bench: error: out of memory\n"); MPI_Abort(MPI_COMM_WORLD, 1); }
    for (int i = 0; i < UNIT * UNIT; i++) b.a[i] = b.b[i] = 1e-3f * (float)(i % 97);
    for (int i = 0; i < b.count; i++) b.sbuf[i] = (float)(i % 13);

    // Work units for the compute phase, calibrated alone.
    for (int k = 0; k < 200; k++) unit(&b);
    double c0 = MPI_Wtime();
    for (int k = 0; k < 2000; k++) unit(&b);
    double per_unit = (MPI_Wtime() - c0) / 2000;
    MPI_Allreduce(MPI_IN_PLACE, &per_unit, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    long units = compute_ms > 0 ? (long)(compute_ms * 1e-3 / per_unit) + 1 : 0;
    if (!units) {
        // 1.5 x the slower transfer alone (after one warm-up each).
        double worst = 0, out[2];
        b.units = 0;
        for (int op = 0; op < 2; op++)
            for (int k = 0; k < 3; k++) {
                round_once(&b, (op_kind)op, -1, 0, 0, out);
                if (k > 0 && out[1] > worst) worst = out[1];
            }
        units = (long)(1.5 * worst / per_unit) + 1;
    }
    if (rank == 0) {
        const char *lv[] = {"SINGLE", "FUNNELED", "SERIALIZED", "MULTIPLE"};
        printf("progress_bench: 2 ranks, %lld bytes per transfer, %ld work units of %d^3 sgemm (%.1f us each alone), "
               "median of %lld rounds (modes interleaved in each round); thread level granted %s\n",
               bytes, units, UNIT, per_unit * 1e6, reps, provided >= 0 && provided <= 3 ? lv[provided] : "?");
    }
    // Rows: the transfer alone (no compute), compute alone (no transfer),
    // then compute with the transfer under each progress mode.
    struct { const char *name; long test_us; int thread; long sleep_us; } modes[] = {
        {"transfer alone", -1, 0, 0}, {"compute alone", -1, 0, 0},  {"none", -1, 0, 0},
        {"test/30us", 30, 0, 0},     {"test/300us", 300, 0, 0},    {"test/3000us", 3000, 0, 0},
        {"thread (spin)", -1, 1, 0},  {"thread/100us", -1, 1, 100},
    };
    enum { NMODES = sizeof modes / sizeof modes[0] };
    double *res = calloc(2 * NMODES * 2 * (size_t)reps, sizeof(double));   // [op][mode][compute|exposed][rep]
    if (!res) MPI_Abort(MPI_COMM_WORLD, 1);
#define RES(op, mi, w, k) res[(((size_t)(op) * NMODES + (size_t)(mi)) * 2 + (w)) * (size_t)reps + (size_t)(k)]
    for (long long k = -1; k < reps; k++)   // round -1: warm-up
        for (int op = 0; op < 2; op++)
            for (int mi = 0; mi < NMODES; mi++) {
                if (modes[mi].thread && provided < MPI_THREAD_MULTIPLE) continue;
                double out[2] = {0, 0};
                b.units = mi == 0 ? 0 : units;
                if (mi == 1) {
                    MPI_Barrier(MPI_COMM_WORLD);
                    double s = MPI_Wtime();
                    for (long u = 0; u < b.units; u++) unit(&b);
                    double mine = MPI_Wtime() - s;
                    MPI_Allreduce(&mine, &out[0], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                } else {
                    round_once(&b, (op_kind)op, modes[mi].test_us, modes[mi].thread, modes[mi].sleep_us, out);
                }
                if (k >= 0) RES(op, mi, 0, k) = out[0], RES(op, mi, 1, k) = out[1];
            }
    for (int op = 0; op < 2; op++) {
        if (rank == 0) printf("%s\n  %-16s %12s %12s %12s\n", op_names[op], "progress", "compute ms", "exposed ms", "total ms");
        for (int mi = 0; mi < NMODES; mi++) {
            if (modes[mi].thread && provided < MPI_THREAD_MULTIPLE) continue;
            double cm = median(&RES(op, mi, 0, 0), (int)reps), em = median(&RES(op, mi, 1, 0), (int)reps);
            if (rank == 0) printf("  %-16s %12.2f %12.2f %12.2f\n", modes[mi].name, 1e3 * cm, 1e3 * em, 1e3 * (cm + em));
        }
    }
    free(res);
    free(b.a), free(b.b), free(b.c), free(b.sbuf), free(b.rbuf);
    MPI_Finalize();
    return 0;
}
