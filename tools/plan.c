// tools/plan: what a launch line would hold and send, per rank, without
// running it. It builds every pipeline stage's model with mt_model_plan, the
// trainer's own construction with allocation switched off, so its memory is
// what the trainer would allocate, byte for byte, and its communication is
// src/account.c's, which --log-comm checks against the counters.
//
//   tools/plan [--world-size N] LAUNCH FLAGS...
//   tools/plan --sweep --world-size N --memory-gb G [--machine FILE] LAUNCH FLAGS...
//   tools/plan --help
//
// --world-size defaults to TP x PP (DP 1). --bf16 (on the line or in a
// --config file) counts a GPU run's mixed precision as the papers do: 2-byte
// parameters and activations, 4-byte gradients (fp32 main grads) and 12
// bytes of optimizer state per element (fp32 master copy + AdamW m and v).
// Without it: this build's sizes. The data files are never opened.
// --sweep lists every layout of the world size (src/plan_sweep.c).
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "account_acts.h"
#include "flags.h"
#include "input.h"
#include "plan_sweep.h"
#include "schedule.h"
#include "train.h"
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

typedef struct {
    int world, sweep;
    double memory_gib;
    const char *machine;
} plan_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: tools/plan [--world-size N] LAUNCH FLAGS...\n"
            "       tools/plan --sweep --world-size N --memory-gb G [--machine FILE] LAUNCH FLAGS...\n"
            "What a launch line would allocate and send on every pipeline stage, without running it (the\n"
            "trainer's own construction, allocation switched off), and each layer's activations by tensor\n"
            "next to Korthikanti et al. 2022 Table 2. LAUNCH FLAGS are pretrain_gpt's (below); a launch is\n"
            "required, e.g. tools/plan --config configs/demo.conf. --bf16 counts GPU mixed precision.\n"
            "\nplan's own flags:\n"
            "  %-44s %s\n  %-44s %s\n  %-44s %s\n  %-44s %s\n  %-44s %s\n",
            "--world-size N", "ranks (default TP x PP, i.e. DP 1)",
            "--sweep", "list every TP x PP x DP x CP x SP x recompute layout of --world-size, fits first, by estimated step time",
            "--memory-gb G", "with --sweep: memory per device in GiB (2^30 bytes); a layout fits when its largest stage does",
            "--machine FILE", "with --sweep: the link and compute model (default configs/machines/laptop.txt; see docs/tutorial.md)",
            "--help", "this text");
    fprintf(f, "\nlaunch flags (pretrain_gpt's table):\n");
    mt_flags_help(f);
}

static _Noreturn void fail(const char *msg) {
    fprintf(stderr, "plan: error: %s (tools/plan --help)\n", msg);
    MPI_Finalize();
    exit(MT_EXIT_USAGE);
}


static double number(const char *flag, const char *v) {
    char msg[200];
    double x = 0;
    // One strict parser (input.h): no leading space, no suffix, finite.
    if (!v || mt_parse_double(v, &x) || !(x > 0) || x > 1e12) {
        snprintf(msg, sizeof msg, "%s needs a number > 0, got '%s'", flag, v ? v : "(nothing)");
        fail(msg);
    }
    return x;
}

// Splits plan's own flags from the launch's; the launch's go to av.
static plan_opts parse_own(int argc, char **argv, char **av, int *n) {
    plan_opts o = {0, 0, 0, NULL};
    av[(*n)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); mt_stdout_done(1); MPI_Finalize(); exit(0); }
        if (!strcmp(a, "--sweep")) { o.sweep = 1; continue; }
        if (!strcmp(a, "--world-size")) {
            if (!v || mt_parse_int(v, 1, INT_MAX, &o.world)) {
                char msg[200];
                snprintf(msg, sizeof msg, "--world-size needs a whole number >= 1, got '%s'", v ? v : "(nothing)");
                fail(msg);
            }
            i++;
        } else if (!strcmp(a, "--memory-gb")) o.memory_gib = number(a, v), i++;
        else if (!strcmp(a, "--machine")) { if (!v) fail("--machine needs a file"); o.machine = v, i++; }
        else av[(*n)++] = argv[i];
    }
    if (*n == 1) fail("no launch given: pass the flags of a pretrain_gpt launch, e.g. --config configs/demo.conf");
    if (o.sweep && (o.world <= 0 || o.memory_gib <= 0)) fail("--sweep needs --world-size N and --memory-gb G");
    if (!o.sweep && (o.memory_gib > 0 || o.machine)) fail("--memory-gb and --machine go with --sweep");
    return o;
}

// Parses the launch. Only sizes matter, so a launch without a data file
// (on the line or in its --config file) gets a placeholder that is never read.
static void parse_launch(mt_config *c, int n, char **av) {
    char err[1400];
    if (mt_config_parse_checked(c, n, av, err, sizeof err) && strstr(err, "is required") && strstr(err, "--data-path")) {
        av[n++] = "--data-path";
        av[n++] = "(planning: not read)";
    }
    mt_config_parse(c, n, av, 1);  // exits 2 with the trainer's one line on a bad flag
}

static void plan_one(const mt_config *c, int world, const mt_elem_bytes *eb) {
    for (int stage = 0; stage < c->pp; stage++) {
        mt_parallel par = mt_parallel_coords(c, stage * (world / c->pp));
        mt_model m;
        mt_model_plan(&m, c, &par, mt_schedule_slots(c, stage), eb);
        mt_optimizer_init(&m);
        size_t total = 0;
        for (int k = 0; k < MT_MEM_N; k++) total += m.mem[k];
        printf("memory (stage %d, bytes):", stage);
        for (int k = 0; k < MT_MEM_N; k++) printf(" %s %zu |", mt_mem_names[k], m.mem[k]);
        printf(" total %zu\n ", total);
        for (int k = 0; k < MT_MEM_N; k++) printf(" %s %.3f GiB |", mt_mem_names[k], m.mem[k] / (1024.0 * 1024 * 1024));
        printf(" total %.3f GiB |\n", total / (1024.0 * 1024 * 1024));
        printf("  activations: %zu bytes for %d micro-batches in flight; Korthikanti Table 2 (2-byte): %.0f bytes per layer "
               "and micro-batch\n", m.act_layer_bytes, m.chunks[0].nslots, mt_account_paper_layer(c));
        if (stage == 0) mt_account_act_print(&m, stdout);
        mt_comm_stats st;
        mt_account_comm(&m, &st);
        printf("  communication per iteration (each rank of stage %d):\n", stage);
        mt_comm_print(&st, stdout, "    ");
        mt_model_free(&m);
    }
    double v = c->layers_per_virtual_stage ? (double)c->num_layers / c->pp / c->layers_per_virtual_stage : 1;
    double M = c->num_micro_batches, p = c->pp;
    printf("pipeline bubble: (p-1)/(v M) = %.4f of the ideal time; idle fraction (p-1)/(v M + p - 1) = %.4f\n",
           (p - 1) / (v * M), (p - 1) / (v * M + p - 1));
}

// The default machine file: beside the working directory's configs/, else
// the binary's checkout (tools/plan -> ../configs).
static const char *default_machine(const char *argv0, char *buf, size_t len) {
    const char *rel = "configs/machines/laptop.txt";
    if (access(rel, R_OK) == 0) return rel;
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(buf, len, "%s/../%s", exe, rel);
        if (access(buf, R_OK) == 0) return buf;
    }
    (void)argv0;
    return rel;
}

MT_PROGRAM_NAME("plan");  // its error lines read "plan: error: ..."

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);  // for mt_fail's clean exit; no communication
    int n = 0;
    char **av = mt_calloc((size_t)argc + 3, sizeof(char *));
    plan_opts o = parse_own(argc, argv, av, &n);
    mt_config c;
    parse_launch(&c, n, av);
    int bf16 = c.bf16;
    mt_elem_bytes eb = mt_elem_bytes_of(&c);
    const char *prec = bf16 ? "bf16 mixed-precision" : MT_PRECISION_NAME;
    if (o.sweep) {
        char buf[1200], err[1400];
        const char *path = o.machine ? o.machine : default_machine(argv[0], buf, sizeof buf);
        mt_machine mc;
        if (mt_machine_read(path, &mc, err, sizeof err)) fail(err);
        if (!c.global_batch_size) {
            c.global_batch_size = c.micro_batch_size * o.world;
            printf("note: no --global-batch-size: the sweep uses micro-batch x world = %d for every layout\n", c.global_batch_size);
        }
        printf("plan --sweep: model layers %d, hidden %d, heads %d, seq %d, vocab %d; global batch %d, micro-batch %d; %s "
               "element sizes; machine %s%s\n", c.num_layers, c.hidden_size, c.num_heads, c.seq_length, c.vocab_size,
               c.global_batch_size, c.micro_batch_size, prec, path, o.machine ? "" : " (default; --machine FILE for another)");
        mt_plan_sweep(&c, o.world, o.memory_gib * 1024 * 1024 * 1024, &eb, &mc, stdout);
    } else {
        int world = o.world > 0 ? o.world : c.tp * c.pp;
        mt_config_finish(&c, world, 1);
        printf("plan: world %d = TP %d x PP %d x DP %d%s, %d micro-batches of %d, %s element sizes (param %d, grad %d, "
               "activation %d, optimizer %d bytes per element)\n", world, c.tp, c.pp, c.dp,
               c.sequence_parallel ? " with SP" : "", c.num_micro_batches, c.micro_batch_size, prec, eb.param, eb.grad,
               eb.act, eb.optim);
        plan_one(&c, world, &eb);
    }
    free(av);
    mt_stdout_done(1);
    MPI_Finalize();
    return 0;
}
