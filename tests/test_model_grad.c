// test_model_grad.c: central-difference gradient check of the whole model
// (fp64 build), one rank, with dropout on: the masks are a pure function of
// global indices, so the loss is a deterministic function of the weights and
// the finite differences see the same masks as the backward pass.
// Fourth-order central differences, ~24 elements of every tensor.
// Bound, per tensor: max |analytic - numeric| <= 1e-7 * max |numeric| (the
// error relative to the tensor's gradient scale; an elementwise ratio is
// meaningless for gradients that are zero in exact arithmetic, such as the
// attention key bias, whose numeric value is pure round-off ~1e-11).
#include <mpi.h>

#include "harness.h"
#include "model.h"
#include "schedule.h"
#include "train.h"

#ifdef MT_FP64
typedef struct { int *tok; int T, b, n; } toy_data;

static void toy_fill(void *ctx, int mb, mt_slot *sl, int need) {
    const toy_data *d = ctx;
    sl->sample0 = (uint32_t)(mb * d->b);
    if (!need) return;
    for (int k = 0; k < d->b; k++)
        for (int p = 0; p < d->T; p++) {
            int j = (mb * d->b + k) * 7 + p;  // a deterministic token stream
            sl->tokens[p * d->b + k] = d->tok[j % d->n];
            sl->targets[p * d->b + k] = d->tok[(j + 1) % d->n];
        }
}

static double loss_of(mt_model *m, mt_comm *cm, toy_data *d, int backward) {
    mt_step st = {3, 1};  // iteration 3, dropout on
    if (backward) memset(m->grad_mem, 0, m->nelem * sizeof(real));
    mt_sched_result r = mt_schedule_run(m, cm, &st, backward, toy_fill, d);
    return r.loss_sum / m->cfg->num_micro_batches;
}
#endif

TEST(whole_model_central_differences) {
#ifndef MT_FP64
    printf("  (fp32 build: gradient checks run in the fp64 build)\n");
    return;
#else
    char *argv[] = {"t", "--num-layers", "2", "--hidden-size", "16", "--num-attention-heads", "2",
                    "--seq-length", "6", "--vocab-size", "37", "--make-vocab-size-divisible-by", "8",
                    "--micro-batch-size", "2", "--global-batch-size", "4", "--hidden-dropout", "0.2",
                    "--attention-dropout", "0.3", "--init-method-std", "0.2", "--data-path", "unused"};
    mt_config c;
    mt_config_parse(&c, (int)(sizeof argv / sizeof argv[0]), argv, 1);
    mt_config_finish(&c, 1, 1);
    mt_parallel par;
    mt_parallel_init(&par, MPI_COMM_WORLD, &c);
    mt_comm cm = {.par = &par};
    mt_model m;
    mt_model_init(&m, &c, &par, 1);
    // Non-trivial LayerNorm and bias values so their gradients are generic.
    for (int i = 0; i < m.nparams; i++) {
        const mt_param *p = &m.params[i];
        if (p->std == 0)
            for (size_t j = 0; j < p->n; j++) m.param_mem[p->off + j] += (real)(0.1 * sin(1.0 + 3.7 * (double)(j + 11 * i)));
    }
    int tok[53];
    for (int i = 0; i < 53; i++) tok[i] = (i * 17 + 5) % 37;
    toy_data d = {tok, 6, 2, 53};
    loss_of(&m, &cm, &d, 1);
    real *grad = malloc(m.nelem * sizeof(real));
    memcpy(grad, m.grad_mem, m.nelem * sizeof(real));
    double eps = 1e-4, worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.nparams; i++) {
        const mt_param *p = &m.params[i];
        size_t step = p->n > 24 ? p->n / 24 : 1;  // ~24 elements per tensor
        double num[32], ana[32], big = 0;
        int k = 0;
        for (size_t j = (size_t)i % step; j < p->n && k < 32; j += step, k++) {
            real *w = &m.param_mem[p->off + j], w0 = *w;
            double f[4], off[4] = {eps, -eps, 2 * eps, -2 * eps};
            for (int q = 0; q < 4; q++) { *w = w0 + (real)off[q]; f[q] = loss_of(&m, &cm, &d, 0); }
            *w = w0;
            // Fourth-order central difference: truncation O(eps^4), so the
            // bound is set by round-off (~1e-16 * loss / eps), not by eps.
            num[k] = (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * eps);
            ana[k] = grad[p->off + j];
            if (fabs(num[k]) > big) big = fabs(num[k]);
        }
        for (int q = 0; q < k; q++) {
            double rel = fabs(ana[q] - num[q]) / (big + 1e-300);
            if (rel > worst) { worst = rel; worst_name = p->name; }
            if (getenv("MT_GRAD_VERBOSE")) printf("    %s[%d] ana %.12e num %.12e rel %.2e\n", p->name, q, ana[q], num[q], rel);
        }
    }
    printf("  worst relative error %.3g (%s) over %d tensors\n", worst, worst_name, m.nparams);
    free(grad);
    mt_model_free(&m);
    mt_parallel_free(&par);
    ASSERT(worst <= 1e-7, "worst relative error %.3g in %s", worst, worst_name);
#endif
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int f = mt_test_main(argc, argv);
    MPI_Finalize();
    return f;
}
