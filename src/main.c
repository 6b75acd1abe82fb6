// main.c: pretrain_gpt. Config -> parallel state -> data -> model -> train
// loop, with Megatron-style log lines.
#include <malloc.h>
#include <math.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "account.h"
#include "account_acts.h"
#include "backend.h"
#include "buckets.h"
#include "ckpt.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "flags.h"
#include "gradnorm.h"
#include "hf.h"
#include "layers.h"
#include "model.h"
#include "outputs.h"
#include "parallel.h"
#include "schedule.h"
#include "shard.h"
#include "trace.h"
#include "train.h"
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

// OpenMP's idle threads spin by default. With anything else running, or
// several ranks on few cores, a spinning thread takes the core its partner
// needs (a small-shape step: 275 ms spinning against 71 ms passive under
// load; 3-10% the other way on an idle machine; README "OpenMP waiting").
// So the trainer waits passively unless the user chose (OMP_WAIT_POLICY or
// GOMP_SPINCOUNT set). libgomp reads its environment before main, and a
// setenv from .preinit_array is undone by libc's start-up, so the process
// execs itself once with the variable set, before MPI_Init (same PID and
// launcher environment); on any failure it runs on with the default.
// It execs the resolved path, not "/proc/self/exe": the kernel names the
// process after the exec'd path, and every rank would be "exe" to ps, pgrep
// and suite_multihost. Not re-executed: a binary deleted since launch (its
// link reads "PATH (deleted)", which would name another file), an explicit
// dynamic loader (`ld.so ./pretrain_gpt`: AT_BASE is 0, /proc/self/exe is
// ld.so), valgrind (the exec would leave the tool), builds without OpenMP.
typedef enum { WAIT_USER, WAIT_PASSIVE_CHOSEN, WAIT_SPIN_DEFAULT, WAIT_NO_OMP } wait_policy;

// Seconds on the wall clock (CLOCK_REALTIME): comparable across hosts.
static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Returns how this process's OpenMP threads wait, for the banner. The
// re-executed process knows it was re-executed by MT_WAIT_CHOSEN, set for the
// exec to this process's PID (which the exec keeps) and removed at once; a
// stray copy from another process's environment names another PID and is
// dropped, and a user's own OMP_WAIT_POLICY=PASSIVE stays theirs.
static wait_policy default_wait_policy(char **argv) {
#ifdef _OPENMP
    const char *chosen = getenv("MT_WAIT_CHOSEN"), *pol = getenv("OMP_WAIT_POLICY");
    if (chosen) {
        int ours = atol(chosen) == (long)getpid() && pol && !strcmp(pol, "PASSIVE");
        unsetenv("MT_WAIT_CHOSEN");
        if (ours) return WAIT_PASSIVE_CHOSEN;
    }
    if (pol || getenv("GOMP_SPINCOUNT")) return WAIT_USER;
    const char *pre = getenv("LD_PRELOAD");
    if (getauxval(AT_BASE) == 0 || (pre && strstr(pre, "vgpreload"))) return WAIT_SPIN_DEFAULT;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self);
    if (n <= 0 || n >= (ssize_t)sizeof self) return WAIT_SPIN_DEFAULT;
    self[n] = 0;
    const char *gone = " (deleted)";
    size_t lg = strlen(gone);
    if ((size_t)n >= lg && !strcmp(self + n - lg, gone)) return WAIT_SPIN_DEFAULT;
    char pid[24];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (setenv("MT_WAIT_CHOSEN", pid, 1)) return WAIT_SPIN_DEFAULT;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1)) {
        unsetenv("MT_WAIT_CHOSEN");
        return WAIT_SPIN_DEFAULT;
    }
    fflush(NULL);
    execv(self, argv);
    unsetenv("OMP_WAIT_POLICY");  // exec failed: the policy this process already has
    unsetenv("MT_WAIT_CHOSEN");
    return WAIT_SPIN_DEFAULT;
#else
    (void)argv;
    return WAIT_NO_OMP;
#endif
}

// One banner line: how many threads a rank runs and how idle ones wait, the
// setting that moved a step 2-4x on a loaded machine.
static void print_threads(wait_policy w) {
#ifdef _OPENMP
    int t = omp_get_max_threads();
    const char *pol = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if (w == WAIT_PASSIVE_CHOSEN)
        printf("threads: %d per rank, waiting passively (the trainer's default; OMP_WAIT_POLICY=ACTIVE spins)\n", t);
    else if (w == WAIT_USER)
        printf("threads: %d per rank, OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s (from the environment)\n", t, pol ? pol : "(unset)",
               spin ? spin : "(unset)");
    else
        printf("threads: %d per rank, spinning while idle (libgomp's default: the trainer could not re-run "
               "itself passively here; set OMP_WAIT_POLICY)\n", t);
#else
    (void)w;
    printf("threads: built without OpenMP (OpenBLAS's own threads follow OPENBLAS_NUM_THREADS)\n");
#endif
}

// Everything one run holds.
typedef struct {
    mt_config cfg;
    mt_parallel par;
    mt_comm cm;
    size_t rss_before_model;  // bytes resident before any model allocation (libraries, MPI, data)
    mt_model model;
    mt_token_file train_file, valid_file;
    mt_split_view train, valid;
    int has_valid;
    FILE *metrics;
    mt_ckpt_state start;  // where training resumes (0 for a fresh run)
    int adam_offset;      // iteration - AdamW's step count: 0 unless it restarted (--no-load-optim)
    uint64_t sched_offset;  // consumed - the LR scheduler's sample count: likewise
    double t_program;       // wall clock at the earliest rank's start (--exit-duration-in-mins)
} run;

// Per-step context of the fill callback: which split and which global
// samples (docs/design.md §1: samples are keyed by iteration and global index).
typedef struct {
    const run *r;
    const mt_split_view *split;
    uint64_t base;   // first global sample of this step
} fill_ctx;

static void fill(void *vctx, int mb, mt_slot *sl, int need_tokens) {
    const fill_ctx *x = vctx;
    const mt_config *c = &x->r->cfg;
    int b = c->micro_batch_size;
    // Megatron's sampler: micro-batch mb of DP rank d takes the mb-th chunk of
    // mbs*dp samples, slice d.
    uint64_t j0 = x->base + (uint64_t)mb * (uint64_t)(b * c->dp) + (uint64_t)x->r->par.dp_rank * (uint64_t)b;
    sl->sample0 = (uint32_t)j0;
    if (!need_tokens) return;
    const mt_model *m = &x->r->model;
    if (m->par->cp_size == 1) {
        for (int k = 0; k < b; k++) mt_split_fill(x->split, j0 + (uint64_t)k, sl->tokens, sl->targets, b, k);
        return;
    }
    // Context parallelism: this rank's positions of each sample only.
    mt_rows seq = mt_model_rows(m, 0, m->s, 0);
    int *pos = mt_malloc(sizeof(int) * (size_t)m->s);
    for (int i = 0; i < m->s; i++) pos[i] = (int)mt_rows_pos(seq, i);
    for (int k = 0; k < b; k++) mt_split_fill_at(x->split, j0 + (uint64_t)k, pos, m->s, sl->tokens, sl->targets, b, k);
    free(pos);
}

// Rank 0 reads and validates, then broadcasts: nothing assumes a shared
// filesystem. On error every rank exits 2 and rank 0 prints one line.
static void read_tokens(run *r, const char *path, mt_token_file *f) {
    char err[1200] = "";
    long long n = 0;
    int rank = r->par.world_rank;
    if (rank == 0) n = mt_token_file_read(f, path, r->cfg.vocab_size, err, sizeof err) ? -1 : (long long)f->ntok;
    MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    if (n < 0) mt_fail_all(rank == 0, MT_EXIT_USAGE, "%s", err);
    if (rank != 0) {
        f->ntok = (size_t)n;
        f->width = mt_token_width(r->cfg.vocab_size);
        f->tok = mt_malloc((size_t)n * (size_t)f->width);
    }
    // As bytes, in the width every rank derived from the same vocabulary.
    size_t bytes = (size_t)n * (size_t)f->width;
    for (size_t o = 0; o < bytes; o += (size_t)1 << 30)
        MPI_Bcast((char *)f->tok + o, (int)MT_MIN(bytes - o, (size_t)1 << 30), MPI_BYTE, 0, MPI_COMM_WORLD);
}

static void setup_data(run *r) {
    mt_config *c = &r->cfg;
    int loud = r->par.world_rank == 0, T = c->seq_length;
    int shuffle = c->data_order == MT_ORDER_SHUFFLE;
    if (c->train_data_path[0]) {
        read_tokens(r, c->train_data_path, &r->train_file);
        r->train = mt_split_make(&r->train_file, 0, r->train_file.ntok, T, shuffle, c->seed);
        if (c->valid_data_path[0]) {
            read_tokens(r, c->valid_data_path, &r->valid_file);
            r->valid = mt_split_make(&r->valid_file, 0, r->valid_file.ntok, T, 0, c->seed);
            r->has_valid = 1;
        }
    } else {
        read_tokens(r, c->data_path, &r->train_file);
        size_t b[3], e[3];
        mt_split_ranges(r->train_file.ntok, c->split, b, e);
        r->train = mt_split_make(&r->train_file, b[0], e[0], T, shuffle, c->seed);
        r->valid = mt_split_make(&r->train_file, b[1], e[1], T, 0, c->seed);
        r->has_valid = c->split[1] > 0;
    }
    const char *tp = c->train_data_path[0] ? c->train_data_path : c->data_path;
    if (r->train.nsamples == 0)
        mt_fail_all(loud, MT_EXIT_USAGE, "%s: the training split has %zu tokens, fewer than --seq-length + 1 (%d)", tp, r->train.ntok, T + 1);
    if (c->eval_interval > 0 && (!r->has_valid || r->valid.nsamples == 0))
        mt_fail_all(loud, MT_EXIT_USAGE, "--eval-interval %d needs a validation split of at least --seq-length + 1 (%d) tokens (%s)",
                    c->eval_interval, T + 1, c->train_data_path[0] ? "--valid-data-path" : "--split");
}

// Output files are checked before any work, not found unwritable after it
// (outputs.h): rank 0 decides, every rank exits on its verdict.
static void check_outputs(const run *r, int argc, char **argv) {
    char err[2600] = "";
    if (r->par.world_rank == 0) mt_outputs_check(&r->cfg, argc, argv, err, sizeof err);
    MPI_Bcast(err, sizeof err, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (err[0]) mt_fail_all(r->par.world_rank == 0, MT_EXIT_USAGE, "%s", err);
}

// Rank 0 alone reads the flags' files (--config; a FIFO or /dev/stdin can
// be read once only) and validates them; the others receive its verdict
// and, on success, the whole config (mt_config holds no pointers).
static void parse_config(mt_config *c, int argc, char **argv, int rank) {
    char err[8192] = "";
    int rc = rank == 0 ? mt_config_parse_report(c, argc, argv, 1, err, sizeof err) : 0;
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc) {
        MPI_Bcast(err, sizeof err, MPI_CHAR, 0, MPI_COMM_WORLD);
        mt_fail_all(rank == 0, -rc, "%s", err);
    }
    MPI_Bcast(c, sizeof *c, MPI_BYTE, 0, MPI_COMM_WORLD);
}

// A resumed run that trains nothing must say so (it is no silent no-op):
// at exactly --train-iters it goes on to write the outputs (exporting a
// checkpoint is a use), beyond it is a mistake; a --dump-step the
// checkpoint already passed would never dump.
static void check_resume(const run *r) {
    const mt_config *c = &r->cfg;
    int loud = r->par.world_rank == 0, at = r->start.iteration;
    if (at > c->train_iters && c->train_samples)
        mt_fail_all(loud, MT_EXIT_USAGE, "--train-samples %llu makes %d iterations, below the iteration %d of the checkpoint in --load %s: nothing to train",
                    (unsigned long long)c->train_samples, c->train_iters, at, c->load);
    if (at > c->train_iters)
        mt_fail_all(loud, MT_EXIT_USAGE, "--train-iters %d is below the iteration %d of the checkpoint in --load %s: nothing to train",
                    c->train_iters, at, c->load);
    if (c->dump_step && c->dump_step <= at)
        mt_fail_all(loud, MT_EXIT_USAGE, "--dump-step %d: the checkpoint in --load %s is already at iteration %d, so it would never dump",
                    c->dump_step, c->load, at);
    if (at == c->train_iters && loud)
        printf("nothing to train: the checkpoint in %s is at --train-iters %d already; writing the requested outputs only\n", c->load, at);
}

// --load, or --pretrained-checkpoint when --load holds none (Megatron's
// rule: a fine-tuning run that saves into --load resumes there when
// relaunched). Returns 1 when weights came from a checkpoint; *resumed
// when the run continues that checkpoint's run (not when fine-tuning).
static int load_checkpoint(run *r, int *resumed) {
    const mt_config *c = &r->cfg;
    int loud = r->par.world_rank == 0, finetune = c->finetune, loaded = 0;
    const char *dir = c->load;
    char err[1400];
    if (c->load[0]) {
        loaded = mt_ckpt_load(&r->model, "--load", c->load, c->finetune || c->no_load_optim, &r->start, err, sizeof err);
        if (loaded < 0) mt_fail_all(loud, MT_EXIT_USAGE, "%s", err);
    }
    if (!loaded && c->pretrained[0]) {
        dir = c->pretrained, finetune = 1;
        loaded = mt_ckpt_load(&r->model, "--pretrained-checkpoint", dir, 1, &r->start, err, sizeof err);
        if (loaded < 0) mt_fail_all(loud, MT_EXIT_USAGE, "%s", err);
        if (!loaded) mt_fail_all(loud, MT_EXIT_USAGE, "--pretrained-checkpoint %s holds no checkpoint to fine-tune from", dir);
    }
    // Fine-tuning from nothing would train from random weights and say so
    // in one easily missed line.
    if (!loaded && finetune)
        mt_fail_all(loud, MT_EXIT_USAGE, "--finetune: --load %s holds no checkpoint to fine-tune from", c->load);
    if (!c->load[0] && !loaded) return 0;
    if (loud && loaded && finetune)
        printf("loaded the weights of iteration %d from %s for fine-tuning (%s): iteration 0, no samples consumed, a fresh AdamW\n",
               r->start.iteration, dir, c->finetune ? "--finetune" : "--pretrained-checkpoint, --load holding none");
    else if (loud && loaded)
        printf("loaded checkpoint from %s at iteration %d (%llu samples consumed)%s\n", dir, r->start.iteration,
               (unsigned long long)r->start.consumed_samples, c->no_load_optim ? "; AdamW and the LR schedule restart (--no-load-optim)" : "");
    if (loud && !loaded) printf("no checkpoint in %s yet: starting fresh\n", c->load);
    // Megatron's --finetune: the weights, and nothing of the run that made
    // them; --no-load-optim keeps the run's place but not AdamW's moments or
    // step count (its bias corrections restart at t = 1), nor the LR
    // scheduler's count, which Megatron keeps with the optimizer (the
    // warm-up runs again from the resumed step).
    if (loaded && finetune) r->start = (mt_ckpt_state){0, 0, 0, 0};
    if (loaded && c->no_load_optim) r->start.optimizer_steps = 0, r->start.scheduler_samples = 0;
    *resumed = loaded && !finetune;
    r->adam_offset = r->start.iteration - r->start.optimizer_steps;
    r->sched_offset = r->start.consumed_samples - r->start.scheduler_samples;
    check_resume(r);
    return loaded;
}

// --init-from's kind (a Hugging Face directory or an llm.c file), decided by
// rank 0, the only rank that reads it (docs/cluster.md: on several hosts the
// others may not see the path at all), and broadcast: ranks deciding apart
// would enter different collectives and hang.
static int init_from_is_hf(const char *path, int world_rank) {
    int hf = world_rank == 0 ? mt_hf_is_dir(path) : 0;
    MPI_Bcast(&hf, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return hf;
}

// --init-from: the llm.c file's header or the Hugging Face directory's
// config.json gives the shape; an explicit flag that disagrees is an error,
// not silently overridden. Rank 0 reads, every rank applies the same values.
static void apply_init_header(run *r, int world_rank) {
    mt_config *c = &r->cfg;
    int loud = world_rank == 0;
    char err[1200] = "";
    int rc = 0;
    if (init_from_is_hf(c->init_from, world_rank)) {
        mt_hf_config h;
        if (world_rank == 0) rc = mt_hf_read_config(c->init_from, &h, err, sizeof err);
        MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Bcast(err, sizeof err, MPI_CHAR, 0, MPI_COMM_WORLD);
        if (rc) mt_fail_all(loud, MT_EXIT_USAGE, "--init-from %s", err);
        MPI_Bcast(&h, sizeof h, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (mt_hf_apply_config(c, &h, c->init_from, err, sizeof err)) mt_fail_all(loud, MT_EXIT_USAGE, "%s", err);
        return;
    }
    mt_llmc_header h;
    if (world_rank == 0) rc = mt_llmc_read_header(c->init_from, &h, err, sizeof err);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc) mt_fail_all(loud, MT_EXIT_USAGE, "--init-from %s", err);
    MPI_Bcast(&h, sizeof h, MPI_BYTE, 0, MPI_COMM_WORLD);
    struct { const char *flag; int *field; int value; } map[] = {
        {"--num-layers", &c->num_layers, h.layers},
        {"--hidden-size", &c->hidden_size, h.channels},
        {"--num-attention-heads", &c->num_heads, h.heads},
        {"--max-position-embeddings", &c->max_position_embeddings, h.max_seq},
        {"--vocab-size", &c->vocab_size, h.vocab},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (mt_config_was_set(c, map[i].flag) && *map[i].field != map[i].value)
            mt_fail_all(loud, MT_EXIT_USAGE, "%s %d disagrees with --init-from %s, whose header says %d", map[i].flag, *map[i].field, c->init_from, map[i].value);
        *map[i].field = map[i].value;
    }
    if (c->seq_length > c->max_position_embeddings)
        mt_fail_all(loud, MT_EXIT_USAGE, "--seq-length %d exceeds the %d positions of --init-from %s", c->seq_length, c->max_position_embeddings, c->init_from);
    if (mt_llmc_supports(c, err, sizeof err)) mt_fail_all(loud, MT_EXIT_USAGE, "--init-from %s: %s", c->init_from, err);
}

// Every size product checked before any allocation: the parameters,
// gradients and two AdamW moments this rank will hold (a rough share, 1 /
// (TP x PP) of the model) must fit in the machine's memory, or the run is
// refused with one line naming where the sizes came from, instead of an
// out-of-memory failure (a huge padded vocabulary in an llm.c header, a
// huge --max-position-embeddings).
static void check_memory_fits(const run *r) {
    const mt_config *c = &r->cfg;
    int n = 0;
    mt_param *all = mt_params_global(c, &n);
    long double elems = 0;
    for (int i = 0; i < n; i++) elems += (long double)all[i].rows * (long double)all[i].cols;
    free(all);
    long double need = elems * 4 * sizeof(real) / ((long double)c->tp * c->pp);
    // Every rank must reach the same verdict (mt_fail_all is collective): hosts
    // of a multi-host job can differ in memory, so all judge by the smallest.
    double mine = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE), least;
    if (!(mine > 0)) mine = INFINITY;  // unknown here: judged by the others
    MPI_Allreduce(&mine, &least, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    long double have = least;
    if (isfinite(least) && need > have)
        mt_fail_all(r->par.world_rank == 0, MT_EXIT_USAGE,
                    "%s%s: the model's %.4Lg parameters need about %.1Lf GiB per rank (weights, gradients, AdamW moments; TP %d x PP %d), "
                    "more than the %.1Lf GiB of the job's smallest machine",
                    c->init_from[0] ? "--init-from " : "the model flags (--vocab-size, --hidden-size, --num-layers, --max-position-embeddings)",
                    c->init_from, elems, need / (1024.0L * 1024 * 1024), c->tp, c->pp, have / (1024.0L * 1024 * 1024));
}

// The file formats the outputs need must fit the model: refused before any work.
static void check_formats(const run *r) {
    const mt_config *c = &r->cfg;
    char err[512];
    int loud = r->par.world_rank == 0;
    if (c->export_llmc[0] && mt_llmc_supports(c, err, sizeof err)) mt_fail_all(loud, MT_EXIT_USAGE, "--export-llmc: %s", err);
    if (c->export_hf[0] && mt_hf_arch_of(c, err, sizeof err) < 0) mt_fail_all(loud, MT_EXIT_USAGE, "--export-hf: %s", err);
}

static double evaluate(run *r, int iter) {
    mt_config *c = &r->cfg;
    // Whole --global-batch-size batches whatever the ramp (Megatron's
    // evaluate); the next step sets its own count again.
    c->num_micro_batches = c->global_batch_size / (c->micro_batch_size * c->dp);
    mt_step st = {(uint32_t)iter, 0};
    double sum = 0;
    for (int e = 0; e < c->eval_iters; e++) {
        fill_ctx x = {r, &r->valid, (uint64_t)e * (uint64_t)c->global_batch_size};
        mt_sched_result res = mt_schedule_run(&r->model, &r->cm, &st, 0, fill, &x);
        sum += res.loss_sum;
    }
    // Only the last stage's TP rank 0 reports; DP ranks average.
    double v = (r->model.chunks[r->model.nchunks - 1].has_head && r->par.tp_rank == 0)
                   ? sum / ((double)c->eval_iters * c->num_micro_batches * c->dp) : 0;
    mt_comm_report_sum(&r->par, &v, 1);
    return v;
}

// The test hook of config.h's bug_fail_*: whether this rank meets the
// planted fault `site` at iteration it.
static int injected_fault(const run *r, int it, mt_fault site) {
    const mt_config *c = &r->cfg;
    return c->bug_fail_site == (int)site && c->bug_fail_rank == r->par.world_rank && it == r->start.iteration + 2;
}

// Faults planted mid-step (allocation, internal check): the rank is inside
// the step's collectives while the others wait for it.
static void inject_step_faults(const run *r, int it) {
    if (injected_fault(r, it, MT_FAULT_ALLOC)) {
        void *p = mt_malloc((size_t)1 << 62);  // a real allocation failure: mt_malloc ends the job
        free(p);
    }
    if (injected_fault(r, it, MT_FAULT_CHECK))
        mt_fail_local(MT_EXIT_FAIL, "internal check failed on rank %d at iteration %d (planted by MT_INJECT_BUG)", r->par.world_rank, it);
}

static void log_iteration(run *r, int it, double loss, double norm, const mt_sched *s, double ms, int gbs, uint64_t consumed) {
    const mt_config *c = &r->cfg;
    double tokens = (double)gbs * c->seq_length;
    double tps = tokens / (ms / 1000.0);
    if (r->par.world_rank != 0) return;
    char pn[48] = "", dl[48] = "";
    if (c->log_params_norm) snprintf(pn, sizeof pn, "params norm: %.3f | ", s->params_norm);
    // Megatron's log line names the decoupled group's LR beside the other.
    if (c->decoupled_lr_set) snprintf(dl, sizeof dl, "decoupled learning rate: %.6E | ", s->lr_decoupled);
    if (it % c->log_interval == 0 || it == c->train_iters)
        printf(" iteration %8d/%8d | consumed samples: %12lld | elapsed time per iteration (ms): %.1f | learning rate: %.6E | %s"
               "global batch size: %5d | lm loss: %.6E | grad norm: %.3f | %stokens per second: %.1f |\n",
               it, c->train_iters, (long long)consumed, ms, s->lr, dl, gbs, loss, norm, pn, tps);
    // llm.c's line, its step counted from 0, so its log and this one line up.
    if (c->log_llmc_steps) printf("step %d: train loss %f (took %f ms)\n", it - 1, loss, ms);
    if (r->metrics) {
        // The decoupled LR and the weight decay only when they are their own
        // (older readers see the old line).
        char extra[160] = "";
        int o = 0;
        if (c->decoupled_lr_set) o += snprintf(extra + o, sizeof extra - o, ", \"decoupled_lr\": %.17g", s->lr_decoupled);
        if (c->wd_incr_style != MT_WD_CONSTANT) o += snprintf(extra + o, sizeof extra - o, ", \"weight_decay\": %.17g", s->weight_decay);
        if (c->log_params_norm) snprintf(extra + o, sizeof extra - o, ", \"params_norm\": %.17g", s->params_norm);
        fprintf(r->metrics, "{\"iteration\": %d, \"lm_loss\": %.17g, \"grad_norm\": %.17g, \"lr\": %.17g%s, \"tokens_per_s\": %.3f, \"ms_per_iter\": %.3f}\n",
                it, loss, norm, s->lr, extra, tps, ms);
        // Only rank 0 writes: a full disk here is its failure alone, so it
        // ends the job (the others would wait in the next step's collectives).
        int failed = fflush(r->metrics) != 0 || ferror(r->metrics);
        if (injected_fault(r, it, MT_FAULT_WRITE)) failed = 1, errno = ENOSPC;
        if (failed) mt_fail_local(MT_EXIT_FAIL, "--metrics-file %s: write failed at iteration %d (%s)", c->metrics_file, it, strerror(errno));
    }
    fflush(stdout);
}

// Every rank's measured counters next to the formulas, printed in rank
// order by rank 0 (gathered, so lines never interleave).
static void log_comm(const run *r, int it, double step_ms) {
    mt_comm_stats pred;
    mt_account_comm(&r->model, &pred);
    char buf[4096];
    FILE *mf = fmemopen(buf, sizeof buf, "w");
    fprintf(mf, "comm rank %d (tp %d, cp %d, dp %d, pp %d), iteration %d:\n", r->par.world_rank, r->par.tp_rank,
            r->par.cp_rank, r->par.dp_rank, r->par.pp_rank, it);
    int bad = mt_account_comm_print(&r->cm.stats, &pred, mf);
    fprintf(mf, "comm check rank %d: %s\n", r->par.world_rank, bad ? "MISMATCH with the formulas" : "measured == predicted");
    // Context parallelism's ring: how much of the blocks' travel the
    // attention's compute hid (forward overlaps; backward sends after it).
    const mt_comm_stats *st = &r->cm.stats;
    if (st->ring_seconds > 0)
        fprintf(mf, "ring rank %d: K/V blocks in flight %.3f ms, waited for %.3f ms: %.1f%% hidden behind compute\n",
                r->par.world_rank, 1e3 * st->ring_seconds, 1e3 * st->ring_wait_seconds,
                100.0 * (1.0 - st->ring_wait_seconds / st->ring_seconds));
    // Gradient buckets and the parameter gather (buckets.h): their time in
    // flight, the part nobody computed through, and every second this rank
    // spent inside MPI (blocking calls, posts, tests and waits) as a share
    // of the step: the exposed-communication fraction.
    if (st->grad_span_seconds > 0)
        fprintf(mf, "overlap rank %d: %d gradient buckets, %d posted during backward; reduction in flight %.3f ms, "
                "waited for after backward %.3f ms: exposed fraction %.3f\n",
                r->par.world_rank, st->buckets, st->early_posts, 1e3 * st->grad_span_seconds, 1e3 * st->grad_wait_seconds,
                st->grad_wait_seconds / st->grad_span_seconds);
    // TP's column-parallel backward (layers.c, column_backward): the
    // collectives posted behind a GEMM, and how much of their travel it hid.
    if (st->tp_async_posts > 0)
        fprintf(mf, "tp overlap rank %d: %d collectives posted behind a GEMM, in flight %.3f ms, waited for %.3f ms: "
                "%.1f%% hidden behind compute\n", r->par.world_rank, st->tp_async_posts, 1e3 * st->tp_async_seconds,
                1e3 * st->tp_async_wait_seconds,
                st->tp_async_seconds > 0 ? 100.0 * (1.0 - st->tp_async_wait_seconds / st->tp_async_seconds) : 0.0);
    // The gradient norm's sum (gradnorm.h): the share done during backward,
    // layer by layer, or in DP's averaging pass, instead of in a pass of its own.
    const mt_gradnorm *gn = r->model.gn;
    fprintf(mf, "grad norm rank %d: %zu of %zu elements summed during backward, %zu in DP's averaging pass (%.1f%% without a pass of their own)\n",
            r->par.world_rank, gn->early_last, gn->elems, gn->avg_last,
            gn->elems ? 100.0 * (double)(gn->early_last + gn->avg_last) / (double)gn->elems : 0.0);
    fprintf(mf, "exposed communication rank %d: %.3f ms in MPI of %.3f ms = %.1f%% of the step\n", r->par.world_rank,
            1e3 * st->seconds, step_ms, 100.0 * 1e3 * st->seconds / step_ms);
    fclose(mf);
    buf[sizeof buf - 1] = 0;
    mt_parallel_print_gathered(&r->par, buf, sizeof buf, stdout);
}

// Pipeline bubble measured from timestamps: the time each rank spent blocked
// in pipeline receives, as a fraction of its forward-backward time, next to
// the schedule's formula (Narayanan et al. 2021): bubble/ideal = (p-1)/(v M),
// i.e. an idle fraction of (p-1)/(v M + p - 1).
static void log_pipeline(const run *r, int it, const mt_sched_result *res, double t_sched) {
    const mt_config *c = &r->cfg;
    double mine[2] = {res->t_wait, t_sched}, *all = NULL;
    if (r->par.world_rank == 0) all = mt_malloc(sizeof(double) * 2 * (size_t)r->par.world_size);
    MPI_Gather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (!all) return;
    double v = r->model.nchunks, M = c->num_micro_batches, p = c->pp;
    printf("pipeline iteration %d: formula idle fraction (p-1)/(vM+p-1) = %.3f (bubble/ideal (p-1)/(vM) = %.3f)\n", it,
           (p - 1) / (v * M + p - 1), (p - 1) / (v * M));
    for (int i = 0; i < r->par.world_size; i++)
        printf("  rank %d: waited %.1f ms of %.1f ms = idle fraction %.3f\n", i, 1e3 * all[2 * i], 1e3 * all[2 * i + 1],
               all[2 * i] / all[2 * i + 1]);
    free(all);
}

// The oracle interface for GPU ports: every parameter (before this
// iteration's update) and its gradient (summed over all ranks, before
// clipping) as DIR/step_N.safetensors, names "<param>" and "<param>.grad".
static void dump_step(run *r, int it) {
    char path[1200], err[1400] = "";
    snprintf(path, sizeof path, "%s/step_%d.safetensors", r->cfg.dump_dir, it);
    if (r->par.world_rank == 0) mkdir(r->cfg.dump_dir, 0755);
    if (mt_dump_tensors(&r->model, path, 1, err, sizeof err))
        mt_fail_all(r->par.world_rank == 0, MT_EXIT_FAIL, "--dump-dir: %s", err);
    if (r->par.world_rank == 0) printf(" dumped parameters and gradients of iteration %d to %s\n", it, path);
}

static void write_timeline(const run *r, mt_trace *t, int it) {
    const mt_config *c = &r->cfg;
    char title[256], err[1400] = "";
    snprintf(title, sizeof title, "iteration %d, TP %d x PP %d x DP %d%s, M %d%s", it, c->tp, c->pp, c->dp,
             c->sequence_parallel ? " SP" : "", c->num_micro_batches,
             c->schedule == MT_SCHED_INTERLEAVED ? " interleaved 1F1B" : c->schedule == MT_SCHED_AFAB ? " AFAB" : " 1F1B");
    // The memory lane: what one micro-batch's slot holds on one chunk.
    t->act_bytes = (double)r->model.mem[MT_MEM_ACTS] / (r->model.nchunks * r->model.chunks[0].nslots);
    int rc = mt_trace_write(t, &r->par, c, c->timeline, title, err, sizeof err);
    mt_trace_free(t);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc) mt_fail_all(r->par.world_rank == 0, MT_EXIT_FAIL, "%s", err);
    if (r->par.world_rank == 0) printf(" timeline of iteration %d written to %s (and .json for chrome://tracing)\n", it, c->timeline);
}

static void save(run *r, int it, uint64_t consumed) {
    char err[1400] = "";
    double t0 = mt_now();
    mt_ckpt_state st = {it, consumed, it - r->adam_offset, consumed - r->sched_offset};
    mt_buckets_gather_finish(&r->model, &r->cm);
    if (mt_ckpt_save(&r->model, r->cfg.save, st, err, sizeof err))
        mt_fail_all(r->par.world_rank == 0, MT_EXIT_FAIL, "saving the checkpoint of iteration %d failed: %s (the previous checkpoint in %s is intact)",
                it, err, r->cfg.save);
    if (r->par.world_rank == 0)
        printf(" saved checkpoint at iteration %d to %s (%.1f ms)\n", it, r->cfg.save, 1e3 * (mt_now() - t0));
}

static void train(run *r) {
    mt_config *c = &r->cfg;
    mt_model *m = &r->model;
    int loud = r->par.world_rank == 0;
    uint64_t consumed = r->start.consumed_samples;  // before this iteration
    // Seconds in a "minute" of --exit-duration-in-mins: 60, or a test's
    // MT_TEST_SECONDS_PER_MINUTE (the flag takes whole minutes).
    const char *spm = getenv("MT_TEST_SECONDS_PER_MINUTE");
    double minute = spm && atof(spm) > 0 ? atof(spm) : 60.0;
    for (int it = r->start.iteration + 1; it <= c->train_iters; it++) {
        double t0 = mt_now();
        // This step's batch (--rampup-batch-size grows it): the schedule,
        // the loss's 1/M and the formulas read the config's micro-batch count.
        int gbs = mt_batch_at(c, consumed);
        c->num_micro_batches = gbs / (c->micro_batch_size * c->dp);
        memset(&r->cm.stats, 0, sizeof r->cm.stats);
        mt_grad_zero(m);
        mt_step st = {(uint32_t)(it - 1), 1};
        // --timeline records the last iteration (warm caches, steady state).
        mt_trace trace = {0};
        if (c->timeline[0] && it == c->train_iters) {
            mt_trace_start(&trace, &r->par);
            r->cm.trace = &trace;
            t0 = mt_now();
        }
        fill_ctx x = {r, &r->train, consumed};
        mt_sched_result res = mt_schedule_run(m, &r->cm, &st, 1, fill, &x);
        inject_step_faults(r, it);
        double t_sched = mt_now() - t0;
        mt_grad_sync(m, &r->cm);
        double norm = mt_grad_norm(m, &r->cm);
        double loss = (m->chunks[m->nchunks - 1].has_head && r->par.tp_rank == 0)
                          ? res.loss_sum / ((double)c->num_micro_batches * c->dp) : 0;
        mt_comm_report_sum(&r->par, &loss, 1);
        if (!isfinite(loss) || !isfinite(norm))
            mt_fail_all(loud, MT_EXIT_FAIL, "iteration %d: non-finite %s (loss %g, grad norm %g); parameters of iteration %d kept",
                    it, isfinite(loss) ? "gradient norm" : "loss", loss, norm, it - 1);
        if (c->dump_step == it) {
            m->be->sync();
            dump_step(r, it);
        }
        mt_sched sched = mt_sched_at(c, consumed - r->sched_offset);
        double t_opt = mt_now();
        mt_optimizer_step(m, &r->cm, norm, &sched, it - r->adam_offset);
        m->be->sync();  // the step time includes the last kernels
        double ms = 1000.0 * (mt_now() - t0);
        if (r->cm.trace) {
            mt_trace_add(&trace, MT_EV_OPTIM, 0, 0, t_opt, mt_now());
            r->cm.trace = NULL;
            write_timeline(r, &trace, it);
        }
        consumed += (uint64_t)gbs;
        // After the step, as Megatron's training loop computes it (every
        // rank takes part in the model-parallel sum).
        if (c->log_params_norm) sched.params_norm = mt_params_norm(m, &r->cm);
        log_iteration(r, it, loss, norm, &sched, ms, gbs, consumed);
        if (c->log_comm) log_comm(r, it, ms);
        if (c->log_pipeline && (it % c->log_interval == 0 || it == c->train_iters)) log_pipeline(r, it, &res, t_sched);
        if (c->eval_interval > 0 && it % c->eval_interval == 0) {
            double v = evaluate(r, it);
            if (loud) printf(" validation loss at iteration %d | lm loss value: %.6E | lm loss PPL: %.6E |\n", it, v, exp(v));
        }
        // Megatron's rules: save every --save-interval, at the end, and before
        // leaving at an --exit-interval.
        // --exit-duration-in-mins: every rank leaves if any rank's clock has
        // passed it (Megatron all-reduces the decision with MAX).
        int leaving = c->exit_interval && it % c->exit_interval == 0, out_of_time = 0;
        double minutes = 0;
        if (c->exit_duration_set) {
            minutes = (wall_now() - r->t_program) / minute;
            out_of_time = minutes > c->exit_duration_mins;
            MPI_Allreduce(MPI_IN_PLACE, &out_of_time, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        }
        leaving |= out_of_time;
        if (c->save[0] && ((c->save_interval && it % c->save_interval == 0) || it == c->train_iters || leaving))
            save(r, it, consumed);
        if (leaving) {
            if (loud && out_of_time) printf(" exiting at iteration %d after %.2f minutes since the start (--exit-duration-in-mins %d)\n", it, minutes, c->exit_duration_mins);
            else if (loud) printf(" exiting at iteration %d (--exit-interval %d)\n", it, c->exit_interval);
            break;
        }
    }
}

// Bytes allocated per category on every rank (gathered, printed by rank 0).
// Activations are the slots the schedule keeps in flight (its peak).
static void print_memory(const run *r) {
    const mt_model *m = &r->model;
    char line[512];
    size_t total = 0, o = 0;
    for (int k = 0; k < MT_MEM_N; k++) total += m->mem[k];
    o += (size_t)snprintf(line + o, sizeof line - o, "memory (rank %d, tp %d, cp %d, dp %d, pp %d, bytes):",
                          r->par.world_rank, r->par.tp_rank, r->par.cp_rank, r->par.dp_rank, r->par.pp_rank);
    for (int k = 0; k < MT_MEM_N; k++) o += (size_t)snprintf(line + o, sizeof line - o, " %s %zu |", mt_mem_names[k], m->mem[k]);
    snprintf(line + o, sizeof line - o, " total %zu | activation slots %d per chunk x %d chunks | process RSS before the model %zu\n",
             total, m->chunks[0].nslots, m->nchunks, r->rss_before_model);
    mt_parallel_print_gathered(&r->par, line, sizeof line, stdout);
    if (r->par.world_rank == 0) {
        int layers = 0;
        for (int k = 0; k < m->nchunks; k++) layers += m->chunks[k].nlayers;
        double per = (double)m->act_layer_bytes / (layers * m->chunks[0].nslots);
        printf("activations of rank 0's transformer layers: measured %zu bytes, formula %zu bytes (%d layers x %d micro-batches "
               "in flight; %.0f bytes per layer and micro-batch, %zu-byte elements, no stored masks); Korthikanti et al. "
               "Table 2 for this mode at 2-byte activations: %.0f bytes per layer\n",
               m->act_layer_bytes, mt_account_act_layers(m), layers, m->chunks[0].nslots, per, sizeof(real),
               mt_account_paper_layer(&r->cfg));
        if (r->cfg.verbose) mt_account_act_print(m, stdout);
    }
}

// CUDA builds: one GPU per rank (local rank modulo the GPUs this node has),
// or one line and exit 2 when there is none.
static void init_device(int loud, int bf16, int tf32) {
#ifdef MT_CUDA
    MPI_Comm node;
    int local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    char msg[256];
    if (mt_cuda_init(local, bf16, tf32, msg, sizeof msg)) mt_fail_all(loud, MT_EXIT_USAGE, "%s", msg);
    if (loud) {
        mt_cuda_describe(msg, sizeof msg);
        printf("backend: cuda (%s)%s\n", msg, tf32 ? ", fp32 products in TF32 (--tf32)" : "");
    }
#else
    // TF32 is a GPU tensor-core format: a CPU build has no such products,
    // and running on silently in fp32 would report a speed --tf32 never had.
    if (tf32)
        mt_fail_all(loud, MT_EXIT_USAGE,
                    "--tf32: TF32 is a GPU math mode (cuBLAS); this CPU build computes in %s (make CUDA=1 builds ./pretrain_gpt_cuda)",
                    MT_PRECISION_NAME);
    (void)bf16;
#endif
}

// Peak resident memory of every rank (VmHWM) next to its accounted total,
// printed after training so the peak includes every step.
static void print_peak_rss(const run *r) {
    size_t hwm = mt_peak_rss_bytes(), total = 0;
    for (int k = 0; k < MT_MEM_N; k++) total += r->model.mem[k];
    char line[256];
    snprintf(line, sizeof line, "peak RSS (rank %d): %zu bytes; accounted %zu, before the model %zu; RSS / accounted %.3f\n",
             r->par.world_rank, hwm, total, r->rss_before_model, total ? (double)hwm / (double)total : 0.0);
    mt_parallel_print_gathered(&r->par, line, sizeof line, stdout);
}

int main(int argc, char **argv) {
    // --exit-duration-in-mins counts from here, on the wall clock (hosts'
    // monotonic clocks do not compare), as Megatron's _TRAIN_START_TIME.
    double t_program = wall_now();
    wait_policy wait = default_wait_policy(argv);
    // Large MPI buffers are malloc'd per collective call; keeping freed memory
    // in the heap avoids a page-fault storm (2x faster reduce-scatter here).
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    // A full disk or a file-size limit must surface as an error from write(),
    // reported with the path, not as a silent SIGXFSZ death.
    signal(SIGXFSZ, SIG_IGN);
    MPI_Init(&argc, &argv);
    static run r;
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int loud = rank == 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (loud) {
                printf("usage: pretrain_gpt [--config FILE] [FLAGS...]   (under mpirun for several ranks)\n"
                       "Megatron-LM's flag names; --config FILE reads the same flags, one per line, '#' comments;\n"
                       "the command line overrides it.\n");
                mt_flags_help(stdout);
            }
            MPI_Finalize();
            mt_stdout_done(1);  // after MPI_Finalize: no rank waits on this one
            return 0;
        }
    // The earliest rank's start (Megatron all-reduces it with MIN).
    MPI_Allreduce(&t_program, &r.t_program, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    mt_config *c = &r.cfg;
    parse_config(c, argc, argv, rank);
    if (c->init_from[0]) apply_init_header(&r, rank);
    mt_config_finish(c, world, loud);
    init_device(loud, c->bf16, c->tf32);
    mt_parallel_init(&r.par, MPI_COMM_WORLD, c);
    r.cm.par = &r.par;
    if (loud) {
        mt_config_print(c, stdout);
        print_threads(wait);
    }
    if (c->log_layout) mt_parallel_print_layout(&r.par, c, stdout);
    if (c->dry_run) {
        if (loud) printf("dry run: flags and layout are consistent; nothing allocated\n");
        mt_parallel_free(&r.par);
        MPI_Finalize();
        mt_stdout_done(1);  // after MPI_Finalize: no rank waits on this one
        return 0;
    }
    check_formats(&r);
    check_memory_fits(&r);
    check_outputs(&r, argc, argv);
    setup_data(&r);
    r.rss_before_model = mt_rss_bytes();
    mt_model_init(&r.model, c, &r.par, mt_schedule_slots(c, r.par.pp_rank));
    mt_optimizer_init(&r.model);
    int direct = mt_comm_set_backend(&r.cm, r.model.be);
    static mt_buckets buckets;
    mt_buckets_init(&buckets, &r.model, &r.cm);
    r.model.gb = &buckets;
    if (loud && direct >= 0)
        printf("comm: MPI on %s\n", direct ? "device buffers (CUDA-aware MPI)" : "host-staged copies");
    char err[1400];
    int resumed = 0, loaded = load_checkpoint(&r, &resumed);
    // A checkpoint found by --load wins over --init-from (Megatron's rule),
    // so one command line both starts and resumes a run.
    if (!loaded && c->init_from[0]) {
        int bad = init_from_is_hf(c->init_from, r.par.world_rank) ? mt_hf_load(&r.model, c->init_from, err, sizeof err)
                                             : mt_llmc_load(&r.model, c->init_from, err, sizeof err);
        if (bad) mt_fail_all(loud, MT_EXIT_USAGE, "--init-from %s", err);
    }
    mt_optimizer_publish(&r.model, &r.cm);  // --bf16: the weights from what was loaded
    // Loading freed its file buffers (the largest tensor, 154 MB at 124M);
    // hand them back, since the mallopt above keeps freed memory otherwise.
    malloc_trim(0);
    if (c->log_memory) print_memory(&r);
    if (c->metrics_file[0] && loud) {
        // A fresh run starts a fresh file; a run resumed from a checkpoint
        // continues its curve. Each start records the configuration first.
        r.metrics = fopen(c->metrics_file, resumed ? "a" : "w");
        if (!r.metrics) fprintf(stderr, "pretrain_gpt: error: --metrics-file %s: cannot open\n", c->metrics_file);
        else mt_config_write_json(c, r.par.world_size, resumed ? r.start.iteration : 0, r.metrics);
    }
    int bad_metrics = c->metrics_file[0] && loud && !r.metrics;
    MPI_Bcast(&bad_metrics, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (bad_metrics) mt_fail_all(0, MT_EXIT_USAGE, "--metrics-file");
    train(&r);
    // --overlap-param-gather: the last step's parameters are complete before
    // anything reads them.
    mt_buckets_gather_finish(&r.model, &r.cm);
    if (c->log_memory) print_peak_rss(&r);
    if (c->export_llmc[0] && mt_llmc_save(&r.model, c->export_llmc, err, sizeof err))
        mt_fail_all(loud, MT_EXIT_FAIL, "--export-llmc %s", err);
    if (c->export_hf[0] && mt_hf_save(&r.model, c->export_hf, err, sizeof err))
        mt_fail_all(loud, MT_EXIT_FAIL, "--export-hf %s", err);
    if (c->dump_params[0] && mt_dump_tensors(&r.model, c->dump_params, 0, err, sizeof err))
        mt_fail_all(loud, MT_EXIT_FAIL, "--dump-params %s", err);
    // The last lines reach the disk at fclose: a full disk there is a failure too.
    if (r.metrics && fclose(r.metrics))
        mt_fail_local(MT_EXIT_FAIL, "--metrics-file %s: write failed at close (%s)", c->metrics_file, strerror(errno));
    mt_buckets_free(&buckets);
    r.model.gb = NULL;
    mt_model_free(&r.model);
    mt_comm_free(&r.cm);
    mt_token_file_free(&r.train_file);
    mt_token_file_free(&r.valid_file);
    mt_parallel_free(&r.par);
    MPI_Finalize();
    mt_stdout_done(1);  // after MPI_Finalize: no rank waits on this one
    return 0;
}
