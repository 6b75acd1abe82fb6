// tools/plan: what a launch line would hold and send, per rank, without
// running it. It builds every pipeline stage's model with mt_model_plan, the
// trainer's own construction with allocation switched off, so its memory is
// what the trainer would allocate, byte for byte, and its communication is
// src/account.c's, which --log-comm checks against the counters.
//
//   tools/plan [--world-size N] [--bf16] LAUNCH FLAGS...
//
// --world-size defaults to TP x PP (DP 1). --bf16 (on the line or in a
// --config file) counts a GPU run's mixed
// precision as the papers do: 2-byte parameters and activations, 4-byte
// gradients (fp32 main grads) and 12 bytes of optimizer state per element
// (fp32 master copy + AdamW m and v). Without it: this build's sizes.
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "schedule.h"
#include "train.h"

static void print_gib(const char *what, double bytes) { printf(" %s %.3f GiB |", what, bytes / (1024.0 * 1024 * 1024)); }

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);  // for mt_fail's clean exit; no communication
    int world = 0, n = 0, has_data = 0;
    char **av = mt_calloc((size_t)argc + 3, sizeof(char *));
    av[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--world-size") && i + 1 < argc) { world = atoi(argv[++i]); continue; }
        if (!strcmp(argv[i], "--data-path") || !strcmp(argv[i], "--train-data-path")) has_data = 1;
        av[n++] = argv[i];
    }
    // Only sizes matter here: the data file is never opened.
    if (!has_data) { av[n++] = "--data-path"; av[n++] = "(planning: not read)"; }
    mt_config c;
    mt_config_parse(&c, n, av, 1);
    if (world <= 0) world = c.tp * c.pp;
    mt_config_finish(&c, world, 1);
    int bf16 = c.bf16;
    mt_elem_bytes eb = bf16 ? (mt_elem_bytes){2, 4, 2, 12}
                            : (mt_elem_bytes){(int)sizeof(real), (int)sizeof(real), (int)sizeof(real), 2 * (int)sizeof(real)};
    printf("plan: world %d = TP %d x PP %d x DP %d%s, %d micro-batches of %d, %s element sizes (param %d, grad %d, "
           "activation %d, optimizer %d bytes per element)\n", world, c.tp, c.pp, c.dp,
           c.sequence_parallel ? " with SP" : "", c.num_micro_batches, c.micro_batch_size,
           bf16 ? "bf16 mixed-precision" : MT_PRECISION_NAME, eb.param, eb.grad, eb.act, eb.optim);
    for (int stage = 0; stage < c.pp; stage++) {
        // TP ranks of a stage are symmetric; DP rank 0 stands for all. The
        // first rank of the stage in the order string: every faster axis 0.
        mt_parallel par = mt_parallel_coords(&c, stage * (world / c.pp));
        mt_model m;
        mt_model_plan(&m, &c, &par, mt_schedule_slots(&c, stage), &eb);
        mt_optimizer_init(&m);
        size_t total = 0;
        for (int k = 0; k < MT_MEM_N; k++) total += m.mem[k];
        printf("memory (stage %d, bytes):", stage);
        for (int k = 0; k < MT_MEM_N; k++) printf(" %s %zu |", mt_mem_names[k], m.mem[k]);
        printf(" total %zu\n ", total);
        for (int k = 0; k < MT_MEM_N; k++) print_gib(mt_mem_names[k], (double)m.mem[k]);
        print_gib("total", (double)total);
        printf("\n  activations: %zu bytes for %d micro-batches in flight; Korthikanti Table 2 (2-byte): %.0f bytes per layer "
               "and micro-batch\n", m.act_layer_bytes, m.chunks[0].nslots, mt_account_paper_layer(&c));
        mt_comm_stats st;
        mt_account_comm(&m, &st);
        printf("  communication per iteration (each rank of stage %d):\n", stage);
        mt_comm_print(&st, stdout, "    ");
        mt_model_free(&m);
    }
    double v = c.layers_per_virtual_stage ? (double)c.num_layers / c.pp / c.layers_per_virtual_stage : 1;
    double M = c.num_micro_batches, p = c.pp;
    printf("pipeline bubble: (p-1)/(v M) = %.4f of the ideal time; idle fraction (p-1)/(v M + p - 1) = %.4f\n",
           (p - 1) / (v * M), (p - 1) / (v * M + p - 1));
    free(av);
    MPI_Finalize();
    return 0;
}
