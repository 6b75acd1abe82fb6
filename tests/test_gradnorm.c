// test_gradnorm.c: the gradient norm's sum (src/gradnorm.c) against the
// formula it replaced, written out here independently of its block plan:
// the counted tensors' shard parts merged into runs of adjacent ranges, one
// mt_sumsq per run, the runs added in order. Bitwise, on ranks whose runs
// are cut in awkward places: TP rank 1 (the replicated tensors are counted
// on rank 0 only, so its runs are short), every DP rank of the distributed
// optimizer at DP 3 (shards cut tensors), the last PP stage (its copy of the
// tied embedding is not counted), and one rank at h 128 (many blocks). Then
// the blocks summed during backward, tensors reported final in a scrambled
// order with flushes in between, must give the same bits; and a tensor
// reported final twice must not change them. Last, DP's average: the
// shard scaled as mt_scale scales it, the blocks summed in that pass under
// DP, and the norm of the scaled gradients equal to the formula's.
#include <mpi.h>

#include "gradnorm.h"
#include "harness.h"
#include "model.h"
#include "train.h"

// The replaced formula (train.c before the fusion), kept as the oracle.
static double runs_formula(const mt_model *m) {
    double ss = 0;
    size_t ra = 0, rb = 0;
    for (int i = 0; i < m->nparams; i++) {
        const mt_param *p = &m->params[i];
        size_t a = MT_MAX(p->off, m->shard0), b = MT_MIN(p->off + p->n, m->shard0 + m->shard_n);
        if (!mt_param_counts_in_norm(m, p) || a >= b) continue;
        if (a != rb) {
            if (ra < rb) ss += mt_sumsq(m->grad_mem + ra, rb - ra);
            ra = a;
        }
        rb = b;
    }
    if (ra < rb) ss += mt_sumsq(m->grad_mem + ra, rb - ra);
    return ss;
}

static int bits_equal(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

// Every rank of one layout: the plan's sum against the formula, after
// backward and with early reports; *early_ranks: the ranks whose early
// path ran; *folded_ranks: those whose norm was summed in DP's average.
static void check_layout(int *mt_failed_, const char *name, int world, char **flags, int nflags, int *early_ranks,
                         int *folded_ranks) {
    char *argv[40] = {"t", "--num-layers", "3", "--num-attention-heads", "4", "--seq-length", "8", "--vocab-size", "200",
                      "--make-vocab-size-divisible-by", "8", "--micro-batch-size", "1", "--data-path", "unused"};
    int argc = 15;
    for (int i = 0; i < nflags; i++) argv[argc++] = flags[i];
    *early_ranks = *folded_ranks = 0;
    for (int r = 0; r < world; r++) {
        mt_config c;
        mt_config_parse(&c, argc, argv, 0);
        mt_config_finish(&c, world, 0);
        mt_parallel par = mt_parallel_coords(&c, r);
        mt_model m;
        mt_model_init(&m, &c, &par, 1);
        mt_optimizer_init(&m);
        for (size_t i = 0; i < m.nelem_pad; i++) m.grad_mem[i] = (real)sin(0.37 * (double)i + 0.1 * r);
        double want = runs_formula(&m), got = mt_gradnorm_local(&m);
        int ok = bits_equal(want, got);
        // Early reports: tensors in a scrambled order (a stride prime to the
        // count), each twice, with a flush after every third.
        int n = m.nparams, stride = 7;
        while (n % stride == 0) stride += 2;
        for (int q = 0; q < 2 * n; q++) {
            mt_gradnorm_final(&m, (q * stride) % n);
            if (q % 3 == 2) mt_gradnorm_flush(&m);
        }
        int early = m.gn->early && m.gn->early_elems > 0;
        double fused = mt_gradnorm_local(&m);
        *early_ranks += early;
        ok = ok && bits_equal(want, fused);
        // DP's average (mt_gradnorm_scale): the shard scaled exactly as
        // mt_scale scales it, and under DP the blocks summed in that pass.
        const real sc = (real)1 / (real)3;
        size_t bytes = m.nelem_pad * sizeof(real);
        real *ref = malloc(bytes);
        mt_scale(m.grad_mem + m.shard0, m.shard_n, sc);
        double want_avg = runs_formula(&m);
        memcpy(ref, m.grad_mem, bytes);
        for (size_t i = 0; i < m.nelem_pad; i++) m.grad_mem[i] = (real)sin(0.37 * (double)i + 0.1 * r);
        mt_gradnorm_scale(&m, sc);
        int folded = m.gn->fold && m.gn->avg_elems == m.gn->elems;
        double got_avg = mt_gradnorm_local(&m);
        int same_grads = memcmp(ref, m.grad_mem, bytes) == 0;
        free(ref);
        *folded_ranks += folded;
        printf("  %s rank %d: %d blocks in %d runs, Σ g² %.17g (formula %.17g), %s%s\n", name, r, m.gn->nblock, m.gn->nrun,
               got, want, early ? "summed early too" : "no early sums", folded ? ", summed in the average's pass" : "");
        mt_model_free(&m);
        ASSERT(ok, "%s rank %d: plan %.17g, early %.17g, formula %.17g", name, r, got, fused, want);
        ASSERT(same_grads, "%s rank %d: mt_gradnorm_scale scaled the gradients unlike mt_scale", name, r);
        ASSERT(bits_equal(want_avg, got_avg), "%s rank %d: after the average %.17g, formula %.17g", name, r, got_avg, want_avg);
    }
}

TEST(norm_plan_equals_the_run_formula) {
    char *one[] = {"--hidden-size", "128"};
    char *tp[] = {"--hidden-size", "128", "--tensor-model-parallel-size", "2", "--sequence-parallel"};
    char *dp[] = {"--hidden-size", "128", "--use-distributed-optimizer"};
    char *tpdp[] = {"--hidden-size", "128", "--tensor-model-parallel-size", "2"};
    char *pp[] = {"--hidden-size", "128", "--pipeline-model-parallel-size", "2", "--num-layers", "4"};
    int e1 = 0, e2 = 0, e3 = 0, e4 = 0, e5 = 0, f1, f2, f3, f4, f5;
#define N(a) (int)(sizeof a / sizeof a[0])
    check_layout(mt_failed_, "1 rank", 1, one, N(one), &e1, &f1);
    check_layout(mt_failed_, "TP 2 + SP", 2, tp, N(tp), &e2, &f2);
    check_layout(mt_failed_, "DP 3 distributed optimizer", 3, dp, N(dp), &e3, &f3);
    check_layout(mt_failed_, "PP 2", 2, pp, N(pp), &e4, &f4);
    // TP rank 1 of TP 2 x DP 2: gaps between its runs (tensors TP rank 0
    // counts) that the average scales without summing.
    check_layout(mt_failed_, "TP 2 x DP 2", 4, tpdp, N(tpdp), &e5, &f5);
#undef N
    if (*mt_failed_) return;
    // The early path ran where one copy of each gradient exists, and only there.
    ASSERT(e1 == 1 && e2 == 2 && e3 == 0 && e4 == 2 && e5 == 0, "early sums on %d, %d, %d, %d, %d ranks; want 1, 2, 0, 2, 0",
           e1, e2, e3, e4, e5);
    // ... and the average's pass summed it under DP, and only there.
    ASSERT(f1 + f2 + f4 == 0 && f3 == 3 && f5 == 4, "sums in the average on %d, %d, %d, %d, %d ranks; want 0, 0, 3, 0, 4",
           f1, f2, f3, f4, f5);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int f = mt_test_main(argc, argv);
    MPI_Finalize();
    return f;
}
