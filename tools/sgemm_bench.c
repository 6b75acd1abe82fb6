// sgemm_bench.c: the practical ceiling for tools/bench.sh. Times OpenBLAS's
// cblas_sgemm (row-major, single precision) on the GEMM shapes a GPT-2
// trainer runs, best of several repetitions, and prints GFLOP/s per shape
// and layout (the best repetition and the median one), then the maximum of
// the best.
//
//   tools/sgemm_bench [--reps N] [--beta 0|1] [--cold] [--layouts nt,nn,tn] [MxNxK[:LAYOUT] ...]
//   (--beta 1: C += op(A) op(B), as an accumulating weight gradient runs;
//   OpenBLAS then skips the pass that zeroes C first. --cold: every
//   repetition on operands read from memory, as inside a step; past 8
//   repetitions each one first rewrites 64 MiB, untimed)
//   tools/sgemm_bench --core     prints "core NAME" (openblas_get_corename) and exits
//
// A shape with ":LAYOUT" (e.g. 256x768x3072:nn) runs that layout only, so
// tools/bench.sh can list exactly the GEMMs a model runs.
//
// A shape MxNxK is C[M,N] = op(A)[M,K] op(B)[K,N], 2*M*N*K flops. Layouts
// name the transposes the linear layer uses (src/cpu/matmul.c):
//   nt  forward        out  = inp  @ W^T   (n, oc) = (n, c)  (oc, c)^T
//   nn  backward data  dinp = dout @ W     (n, c)  = (n, oc) (oc, c)
//   tn  backward dW    dW  += dout^T @ inp (oc, c) = (n, oc)^T (n, c)
// so for a layer with n tokens, c inputs, oc outputs the three GEMMs are
// n x oc x c (nt), n x c x oc (nn) and oc x c x n (tn). Threads come from
// OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, as for the trainer.
//
// Output: comment lines start with '#'; one line per measurement
//   sgemm M N K LAYOUT BEST_MS GFLOPS MEDIAN_MS MEDIAN_GFLOPS
// (the median: this machine's spread between repetitions of one product
// is 10-20%, and a step runs each product once, not at its best; the
// ceiling stays the best) and last
//   max GFLOPS MxNxK LAYOUT
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Bytes alloc_fill takes for n floats: whole 2 MiB pages.
static size_t padded(size_t n) {
    const size_t huge = (size_t)2 << 20;
    return (n * sizeof(float) + huge - 1) & ~(huge - 1);
}

// Operands of 4 MiB and up sit on 2 MiB pages where the kernel grants
// them, by the trainer's rule for its buffers (src/backend.c cpu_alloc): the
// ceiling is measured on the same kind of memory the model runs on.
static float *alloc_fill(size_t n, unsigned seed) {
    const size_t huge = (size_t)2 << 20;
    size_t bytes = padded(n);
    float *p = NULL;
    if (posix_memalign((void **)&p, huge, bytes) != 0) {
        fprintf(stderr, "sgemm_bench: out of memory (%zu floats)\n", n);
        exit(1);
    }
#ifdef MADV_HUGEPAGE
    if (n * sizeof(float) >= 2 * huge) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    unsigned s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 9) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// --cold: each repetition takes an operand set no call has touched since
// a COLD_BYTES buffer was written over the caches, so its operands come
// from memory as in a training step (which touches every weight and
// activation between two calls of one product). Up to COLD_SETS sets
// (fewer where their memory, each operand on whole 2 MiB pages, would pass
// COLD_SET_BYTES) are filled and the caches flushed once; a repetition
// that comes back to a used set flushes them again first, untimed.
// Without --cold one set stays in cache.
#define COLD_BYTES ((size_t)64 << 20)  // twice the largest L3 a Zen 5 CCD has
#define COLD_SETS 8
#define COLD_SET_BYTES ((size_t)512 << 20)

// Wall times of one GEMM over reps runs (after one untimed warm-up): the
// best into *best, the median (the upper one of an even count) into *median.
// flush: NULL, or --cold's COLD_BYTES buffer.
static void time_gemm(int m, int n, int k, int ta, int tb, int reps, float beta, char *flush, double *best,
                      double *median) {
    int nsets = 1;
    if (flush) {
        size_t set = padded((size_t)m * k) + padded((size_t)k * n) + padded((size_t)m * n);
        size_t most = COLD_SET_BYTES / set < 2 ? 2 : COLD_SET_BYTES / set < COLD_SETS ? COLD_SET_BYTES / set : COLD_SETS;
        nsets = (size_t)reps + 1 < most ? reps + 1 : (int)most;
    }
    float **as = malloc(3 * (size_t)nsets * sizeof *as), **bs = as + nsets, **cs = bs + nsets;
    if (!as) {
        fprintf(stderr, "sgemm_bench: out of memory (%d operand sets)\n", nsets);
        exit(1);
    }
    for (int i = 0; i < nsets; i++) {
        as[i] = alloc_fill((size_t)m * k, 1 + 3 * (unsigned)i);
        bs[i] = alloc_fill((size_t)k * n, 2 + 3 * (unsigned)i);
        cs[i] = alloc_fill((size_t)m * n, 3 + 3 * (unsigned)i);
    }
    if (flush) memset(flush, 1, COLD_BYTES);
    int lda = ta ? m : k, ldb = tb ? k : n;
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) {
        fprintf(stderr, "sgemm_bench: out of memory (%d repetitions)\n", reps);
        exit(1);
    }
    for (int r = -1; r < reps; r++) {
        int i = (r + 1) % nsets;
        if (flush && r + 1 >= nsets) memset(flush, (r & 1) + 2, COLD_BYTES);  // back to a used set
        double t0 = now();
        cblas_sgemm(CblasRowMajor, opa, opb, m, n, k, 1.0f, as[i], lda, bs[i], ldb, beta, cs[i], n);
        if (r >= 0) t[r] = now() - t0;
    }
    volatile float sink = cs[0][0];
    (void)sink;
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *best = t[0];
    *median = t[reps / 2];
    free(t);
    for (int i = 0; i < nsets; i++) free(as[i]), free(bs[i]), free(cs[i]);
    free(as);
}

static void usage(void) {
    fprintf(stderr, "usage: tools/sgemm_bench [--core] [--reps N] [--beta 0|1] [--cold] [--layouts nt,nn,tn] [MxNxK[:LAYOUT] ...]\n");
    exit(2);
}

int main(int argc, char **argv) {
    // GPT-2 124M at B*T = 256 tokens (bench.sh's shape): QKV, the LM head,
    // the MLP; 512 tokens x 768 x 768 (attention projection at B*T = 512);
    // and a large square GEMM, the easiest case for any BLAS.
    static const char *defaults[] = {"512x768x768", "256x2304x768", "256x3072x768", "256x768x3072",
                                     "256x50304x768", "2048x2048x2048"};
    const char *shapes[64];
    int nshapes = 0, reps = 5;
    float beta = 0;
    int cold = 0;
    char layouts[64] = "nt,nn,tn";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--core")) {
            // The kernel set OpenBLAS picked (OPENBLAS_CORETYPE, or the CPU's own).
            printf("core %s\n", openblas_get_corename());
            return 0;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            char *end;
            long r = strtol(argv[++i], &end, 10);
            reps = *argv[i] >= '0' && *argv[i] <= '9' && !*end && r >= 1 && r <= 1000000 ? (int)r : -1;
            if (reps < 1) usage();
        } else if (!strcmp(argv[i], "--beta") && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "0") && strcmp(argv[i], "1")) usage();
            beta = argv[i][0] == '1' ? 1.0f : 0.0f;
        } else if (!strcmp(argv[i], "--cold")) {
            cold = 1;
        } else if (!strcmp(argv[i], "--layouts") && i + 1 < argc) {
            snprintf(layouts, sizeof layouts, "%s", argv[++i]);
        } else if (argv[i][0] == '-') {
            usage();
        } else if (nshapes < 64) {
            shapes[nshapes++] = argv[i];
        }
    }
    if (nshapes == 0)
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) shapes[nshapes++] = defaults[i];

    char *flush = NULL;
    if (cold && !(flush = malloc(COLD_BYTES))) {
        fprintf(stderr, "sgemm_bench: out of memory (--cold's %zu MiB)\n", COLD_BYTES >> 20);
        return 1;
    }
    printf("# sgemm_bench: cblas_sgemm row-major fp32, %d threads, best and median of %d (+1 warm-up), beta %g%s\n",
           openblas_get_num_threads(), reps, (double)beta, cold ? ", cold operands (none touched since the caches were flushed)" : "");
    printf("# OpenBLAS: %s (core %s)\n", openblas_get_config(), openblas_get_corename());
    printf("# sgemm M N K layout best_ms GFLOP/s median_ms median_GFLOP/s\n");
    double max_gf = 0;
    int first = 1;  // the first product (see --cold below)
    char max_shape[64] = "", max_layout[4] = "";
    for (int s = 0; s < nshapes; s++) {
        int m, n, k, used = 0;
        if (sscanf(shapes[s], "%dx%dx%d%n", &m, &n, &k, &used) != 3 || m < 1 || n < 1 || k < 1 ||
            (shapes[s][used] && shapes[s][used] != ':')) {
            fprintf(stderr, "sgemm_bench: bad shape '%s' (want MxNxK or MxNxK:LAYOUT)\n", shapes[s]);
            return 2;
        }
        char lay[64];
        snprintf(lay, sizeof lay, "%s", shapes[s][used] == ':' ? shapes[s] + used + 1 : layouts);
        for (char *tok = strtok(lay, ","); tok; tok = strtok(NULL, ",")) {
            if (strlen(tok) != 2 || !strchr("nt", tok[0]) || !strchr("nt", tok[1])) {
                fprintf(stderr, "sgemm_bench: bad layout '%s' (want nn, nt, tn or tt)\n", tok);
                return 2;
            }
            double t, tm;
            // The first --cold product of a process ran at under half its
            // rate in every run here (the same product next ran at full
            // rate; not the flush buffer's first touch, not mmap'd memory):
            // measured twice, the second reported.
            if (flush && first) time_gemm(m, n, k, tok[0] == 't', tok[1] == 't', reps, beta, flush, &t, &tm);
            first = 0;
            time_gemm(m, n, k, tok[0] == 't', tok[1] == 't', reps, beta, flush, &t, &tm);
            double gf = 2.0 * m * n * k / t / 1e9;
            printf("sgemm %d %d %d %s %.3f %.1f %.3f %.1f\n", m, n, k, tok, 1e3 * t, gf, 1e3 * tm, 2.0 * m * n * k / tm / 1e9);
            fflush(stdout);
            if (gf > max_gf) {
                max_gf = gf;
                snprintf(max_shape, sizeof max_shape, "%dx%dx%d", m, n, k);
                snprintf(max_layout, sizeof max_layout, "%s", tok);
            }
        }
    }
    printf("max %.1f %s %s\n", max_gf, max_shape, max_layout);
    free(flush);
    return 0;
}
