// tools/generate: sample text from a checkpoint, so a learner sees what the
// model learned.
//
//   tools/generate --load DIR [--prompt TEXT] [--tokens N] [--temperature T]
//                  [--top-k K] [--seed S] [--tokenizer DIR]
//
// The checkpoint's metadata gives the shape; the model runs on one rank with
// the trainer's own layers (no dropout). Each new token re-runs the forward
// over the context (at most the model's positions; no KV cache: these
// models are small). Byte-level vocabularies (256) print text; larger ones
// print token ids.
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "ckpt.h"
#include "ckpt_meta.h"
#include "input.h"
#include <limits.h>
#include "chunk.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

typedef struct { const char *load, *prompt, *tokenizer; int tokens, top_k; double temperature; uint64_t seed; } opts;

static _Noreturn void bad_value(const char *flag, const char *v, const char *want) {
    mt_fail_all(1, MT_EXIT_USAGE, "%s expects %s, got '%s'", flag, want, v);
}

static opts parse(int argc, char **argv) {
    opts o = {NULL, "\n", NULL, 200, 40, 0.8, 1234};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) mt_fail_all(1, MT_EXIT_USAGE, "%s needs a value", f);
        if (!strcmp(f, "--load")) o.load = v;
        else if (!strcmp(f, "--prompt")) o.prompt = v;
        // One strict parser (input.h): "abc", "-4" and " 5" are refused.
        else if (!strcmp(f, "--tokens")) { if (mt_parse_int(v, 0, 1 << 24, &o.tokens)) bad_value(f, v, "an integer in [0, 16777216]"); }
        else if (!strcmp(f, "--top-k")) { if (mt_parse_int(v, 0, INT_MAX, &o.top_k)) bad_value(f, v, "an integer >= 0"); }
        else if (!strcmp(f, "--temperature")) { if (mt_parse_double(v, &o.temperature) || o.temperature < 0) bad_value(f, v, "a finite number >= 0"); }
        else if (!strcmp(f, "--seed")) { if (mt_parse_u64(v, &o.seed)) bad_value(f, v, "a non-negative integer"); }
        else if (!strcmp(f, "--tokenizer")) o.tokenizer = v;
        else mt_fail_all(1, MT_EXIT_USAGE, "unknown flag '%s' (--load --prompt --tokens --temperature --top-k --seed --tokenizer)", f);
        i++;
    }
    if (!o.load) mt_fail_all(1, MT_EXIT_USAGE, "--load DIR is required");
    if (o.tokens < 0 || o.top_k < 0 || !(o.temperature >= 0)) mt_fail_all(1, MT_EXIT_USAGE, "--tokens, --top-k and --temperature must be >= 0");
    return o;
}

// The model shape from the latest checkpoint's metadata, parsed strictly
// and validated by the trainer's rules (ckpt_meta.c): a checkpoint with 0
// heads or a 0 vocabulary is one line, not a SIGFPE.
static void shape_from(const char *dir, mt_config *c) {
    char err[1400];
    int it;
    if (mt_ckpt_meta_read_dir(dir, c, &it, err, sizeof err)) mt_fail_all(1, MT_EXIT_USAGE, "%s", err);
}

// Logits of row `row` of the final hidden states: the final norm, then the
// LM head (the embedding when tied).
static void logits_of(mt_model *m, const real *x, int row, real *logits) {
    real mean, rstd, *y = mt_malloc(sizeof(real) * (size_t)m->h);
    mt_norm_forward(y, &mean, &rstd, x + (size_t)row * m->h, m->w.lnfw, m->w.lnfb, m->norm, 1, m->h);
    mt_matmul_forward(logits, y, m->w.lm_head ? m->w.lm_head : m->w.wte, NULL, 1, m->h, m->Vp);
    free(y);
}

static int sample(const real *logits, int V, const opts *o, int step) {
    int best = 0;
    for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    if (o->temperature == 0) return best;
    double *p = mt_malloc(sizeof(double) * (size_t)V), sum = 0;
    // top-k: keep the k largest logits (threshold = k-th largest).
    double thr = -INFINITY;
    if (o->top_k > 0 && o->top_k < V) {
        double *s = mt_malloc(sizeof(double) * (size_t)V);
        for (int i = 0; i < V; i++) s[i] = logits[i];
        for (int k = 0; k < o->top_k; k++) {  // partial selection, small k
            int j = k;
            for (int i = k + 1; i < V; i++) if (s[i] > s[j]) j = i;
            double t = s[k]; s[k] = s[j]; s[j] = t;
        }
        thr = s[o->top_k - 1];
        free(s);
    }
    for (int i = 0; i < V; i++) {
        p[i] = logits[i] >= thr ? exp((logits[i] - logits[best]) / o->temperature) : 0;
        sum += p[i];
    }
    mt_philox_ctr r = mt_philox((mt_philox_key){{(uint32_t)o->seed, (uint32_t)(o->seed >> 32)}}, (mt_philox_ctr){{(uint32_t)step, 7, 0, 0}});
    double u = mt_u01(r.v[0]) * sum, acc = 0;
    int pick = best;
    for (int i = 0; i < V; i++) {
        acc += p[i];
        if (p[i] > 0 && u < acc) { pick = i; break; }
    }
    free(p);
    return pick;
}

// One process samples; more ranks would each read the checkpoint and could
// wait on each other in a collective of a failure path (a hang), so a
// world size > 1 is refused before anything is read, by every rank alike.
static void one_rank_only(void) {
    int world = 1, rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (world > 1)
        mt_fail_all(rank == 0, MT_EXIT_USAGE, "a one-rank tool: run it without mpirun (world size %d)", world);
}


// --help: every flag, its default and meaning, on stdout; exit 0 before MPI.
static int help_asked(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help")) return 1;
    return 0;
}

static void print_help(void) {
    printf("usage: tools/generate --load DIR [FLAGS...]\n"
           "Samples text from the latest checkpoint in DIR (shape from its metadata, one rank, no dropout).\n"
           "  --load DIR          checkpoint directory written by pretrain_gpt --save (required)\n"
           "  --prompt TEXT       text to continue (default: a newline)\n"
           "  --tokens N          tokens to sample (default 200)\n"
           "  --temperature T     softmax temperature; 0 takes the most likely token (default 0.8)\n"
           "  --top-k K           sample among the K most likely tokens; 0 = all (default 40)\n"
           "  --seed S            sampling seed (default 1234)\n"
           "  --tokenizer DIR     a Hugging Face tokenizer.json directory to encode and decode with\n"
           "                      (default: bytes, for a vocabulary of 256)\n"
           "  --help              this text\n");
}

MT_PROGRAM_NAME("generate");  // its error lines read "generate: error: ..."

int main(int argc, char **argv) {
    if (help_asked(argc, argv)) { print_help(); mt_stdout_done(1); return 0; }
    MPI_Init(&argc, &argv);
    one_rank_only();
    opts o = parse(argc, argv);
    mt_config c;
    shape_from(o.load, &c);
    mt_parallel par;
    mt_parallel_init(&par, MPI_COMM_WORLD, &c);
    mt_comm cm = {.par = &par};
    mt_model m;
    mt_model_init(&m, &c, &par, 1);
    mt_ckpt_state st;
    char err[1400];
    // The weights alone: no AdamW moments allocated, none read.
    if (mt_ckpt_load(&m, "--load", o.load, 1, &st, err, sizeof err) != 1) mt_fail_all(1, MT_EXIT_USAGE, "%s", err[0] ? err : "no checkpoint");
    int T = c.seq_length, len = 0, cap = (int)strlen(o.prompt) + o.tokens + 1;
    int *ctx = mt_malloc(sizeof(int) * (size_t)cap);
    // --tokenizer: the prompt's BPE ids, and text out; else bytes in.
    mt_bpe *tk = NULL;
    if (o.tokenizer) {
        uint32_t *ids = NULL;
        size_t n = 0, icap = 0;
        tk = mt_bpe_load(o.tokenizer, err, sizeof err);
        if (!tk) mt_fail_all(1, MT_EXIT_USAGE, "--tokenizer %s", err);
        if (mt_bpe_vocab_size(tk) > c.vocab_size)
            mt_fail_all(1, MT_EXIT_USAGE, "--tokenizer %s has %d ids, the model's vocabulary %d", o.tokenizer,
                        mt_bpe_vocab_size(tk), c.vocab_size);
        if (mt_bpe_encode(tk, o.prompt, strlen(o.prompt), &ids, &n, &icap, err, sizeof err))
            mt_fail_all(1, MT_EXIT_USAGE, "--prompt: %s", err);
        for (size_t k = 0; k < n && len < cap; k++) ctx[len++] = (int)ids[k];
        free(ids);
    } else
        for (const unsigned char *q = (const unsigned char *)o.prompt; *q; q++) ctx[len++] = *q % c.vocab_size;
    if (len == 0) ctx[len++] = '\n' % c.vocab_size;
    fprintf(stderr, "generate: %d layers, hidden %d, vocab %d, iteration %d of %s\n", c.num_layers, c.hidden_size,
            c.vocab_size, st.iteration, o.load);
    real *logits = mt_malloc(sizeof(real) * (size_t)c.padded_vocab);
    mt_slot *sl = &m.chunks[0].slots[0];
    mt_step step = {0, 0};
    if (c.vocab_size <= 256 || tk) fputs(o.prompt, stdout);
    for (int i = 0; i < o.tokens; i++) {
        int from = len > T ? len - T : 0, n = len - from;
        for (int p = 0; p < T; p++) sl->tokens[p] = p < n ? ctx[from + p] : 0;  // causal: padding never looks back
        sl->sample0 = 0;
        logits_of(&m, mt_model_hidden(&m, &cm, &step, sl), n - 1, logits);
        int tok = sample(logits, c.vocab_size, &o, i);
        ctx[len++] = tok;
        size_t nb;
        const char *b = tk ? mt_bpe_decode(tk, (uint32_t)tok, &nb) : NULL;
        if (tk && b) fwrite(b, 1, nb, stdout);
        else if (c.vocab_size <= 256) putchar(tok); else printf("%d ", tok);
        mt_stdout_done(0);  // each token as it comes; a full disk stops the run here
    }
    putchar('\n');
    mt_stdout_done(1);
    free(ctx); free(logits);
    mt_bpe_free(tk);
    mt_model_free(&m);
    mt_parallel_free(&par);
    MPI_Finalize();
    return 0;
}
