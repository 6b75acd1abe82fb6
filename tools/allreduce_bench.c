// tools/allreduce_bench: MPI all-reduce bandwidth over whatever transport
// mpirun chose (shared memory, TCP, ...), in nccl-tests' terms.
//
//   mpirun -np N tools/allreduce_bench [--min-bytes B] [--max-bytes B] [--iters K]
//
// For each size (doubling from --min-bytes to --max-bytes, fp32 SUM over
// MPI_COMM_WORLD) it prints the median time of K calls after 2 warm-up calls,
// the algorithm bandwidth (bytes / time) and the bus bandwidth
// (2 (n-1)/n x algorithm bandwidth: what each link carries in a ring, the
// figure the planner's machine files use, configs/machines/). One line of
// hosts first, so a log shows where the ranks ran.
#include <malloc.h>
#include <mpi.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The project's strict parser (input.h): no suffix, no overflow.
static long long arg_ll(const char *flag, const char *v) {
    long long x;
    if (!v || mt_parse_ll(v, 1, LLONG_MAX, &x)) {
        fprintf(stderr, "allreduce_bench: error: %s needs a positive whole number\n", flag);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv) {
    long long lo = 4096, hi = 64ll << 20, iters = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mpirun -np N tools/allreduce_bench [--min-bytes B (4096)] [--max-bytes B (67108864)] [--iters K (10)]\n");
            return 0;
        }
        if (i + 1 >= argc) { fprintf(stderr, "allreduce_bench: error: %s needs a value (see --help)\n", argv[i]); return 2; }
        if (!strcmp(argv[i], "--min-bytes")) lo = arg_ll(argv[i], argv[i + 1]);
        else if (!strcmp(argv[i], "--max-bytes")) hi = arg_ll(argv[i], argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = arg_ll(argv[i], argv[i + 1]);
        else { fprintf(stderr, "allreduce_bench: error: unknown flag %s (see --help)\n", argv[i]); return 2; }
        i++;
    }
    // As the trainer does (src/main.c): Open MPI mallocs large temporary
    // buffers per call, and returning them to the kernel each time turns
    // every call into a page-fault storm.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    MPI_Init(&argc, &argv);
    int rank, n, len;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    char host[MPI_MAX_PROCESSOR_NAME], *hosts = rank ? NULL : malloc((size_t)n * MPI_MAX_PROCESSOR_NAME);
    MPI_Get_processor_name(host, &len);
    MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("allreduce_bench: %d ranks on", n);
        for (int r = 0; r < n; r++) printf(" %s", hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME);
        printf("\nsizes %lld to %lld bytes, median of %lld calls each (--min-bytes, --max-bytes, --iters; --help)\n", lo, hi, iters);
        printf("%12s %12s %14s %14s\n", "bytes", "median us", "algbw GB/s", "busbw GB/s");
    }
    float *buf = malloc((size_t)hi), *out = malloc((size_t)hi);
    double *t = malloc(sizeof(double) * (size_t)iters);
    if (!buf || !out || !t) { fprintf(stderr, "allreduce_bench: error: out of memory\n"); MPI_Abort(MPI_COMM_WORLD, 1); }
    memset(buf, 0, (size_t)hi);
    for (long long bytes = lo; bytes <= hi; bytes *= 2) {
        int count = (int)(bytes / 4);
        for (long long k = -2; k < iters; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(buf, out, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0;
            MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest rank's time
            if (k >= 0) t[k] = dt;
        }
        qsort(t, (size_t)iters, sizeof(double), cmp_double);
        double med = t[iters / 2], alg = (double)bytes / med;
        if (rank == 0) printf("%12lld %12.1f %14.3f %14.3f\n", bytes, 1e6 * med, alg / 1e9, alg * 2.0 * (n - 1) / n / 1e9);
    }
    free(buf); free(out); free(t); free(hosts);
    MPI_Finalize();
    return 0;
}
