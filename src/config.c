// config.c: Megatron-LM flag names, --config files, and every rule between
// flags checked before any work starts (one line, exit 2).
#include "config.h"
#include "flags.h"
#include "input.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NFLAGS mt_nflags
#define FLAGS mt_flags

// How one parse reports a bad flag, passed explicitly (no mutable globals).
// The trainer's path prints one line (on the loud rank) and exits 2 through
// mt_fail; the checked path (mt_config_parse_checked, the fuzzer) copies the
// line into err and longjmps back to its entry point. Either way, what the
// parse owns (an open --config file, its words) is released first, so
// LeakSanitizer sees no leak on a bad flag.
typedef struct {
    int loud;
    volatile int *code;      // the failure's exit code, for mt_config_parse_report
                             // (volatile: read after the longjmp), or NULL
    jmp_buf *jb;             // NULL: exit through mt_fail
    char *err;               // the checked path's message (errlen bytes)
    size_t errlen;
    const char *origin;      // the --config file whose flags are being applied,
                             // so an error names the file as well as the flag
    FILE *fp;                // the --config file being read, or NULL
    char *text;              // its bytes (read whole, bounded), or NULL
    char **words;            // its words (NULL-terminated), or NULL
    int nwords;
    char *line;              // getline's buffer while reading it
    size_t line_cap;
} parse_ctx;

static void release(parse_ctx *p) {
    if (p->fp) fclose(p->fp);
    p->fp = NULL;
    free(p->text);
    p->text = NULL;
    for (int j = 0; p->words && j < p->nwords; j++) free(p->words[j]);
    free(p->words);
    p->words = NULL;
    p->nwords = 0;
    free(p->line);
    p->line = NULL;
    p->line_cap = 0;
}

// Ends the parse with `msg`: exit `code` (mt_fail), or -1 from the checked entry.
static _Noreturn void fail_msg(parse_ctx *p, int code, const char *msg) {
    release(p);
    if (p->jb) {
        if (p->code) *p->code = code;
        if (p->errlen) snprintf(p->err, p->errlen, "%s", msg);
        longjmp(*p->jb, 1);
    }
    mt_fail_all(p->loud, code, "%s", msg);
}

// A rule broken: the message as given (config-file errors name the file themselves).
static _Noreturn void fail(parse_ctx *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static _Noreturn void fail(parse_ctx *p, int code, const char *fmt, ...) {
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_msg(p, code, msg);
}

// A bad flag or value: prefixed with "--config FILE: " when read from one.
static _Noreturn void bad_flag(parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void bad_flag(parse_ctx *p, const char *fmt, ...) {
    char msg[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->origin) fail(p, MT_EXIT_USAGE, "--config %s: %s", p->origin, msg);
    fail_msg(p, MT_EXIT_USAGE, msg);
}

// One strict parser (input.h): no leading space, no suffix, in range.
static long parse_long(const char *flag, const char *v, parse_ctx *p) {
    long long x;
    if (mt_parse_ll(v, INT_MIN, INT_MAX, &x)) bad_flag(p, "%s expects an integer, got '%s'", flag, v);
    return (long)x;
}

// Tiny values (1e-310) are finite and accepted; nan, inf and overflow are not.
static double parse_double(const char *flag, const char *v, parse_ctx *p) {
    double x;
    if (mt_parse_double(v, &x)) bad_flag(p, "%s expects a finite number, got '%s'", flag, v);
    return x;
}

// --split a,b,c: strtol, not sscanf("%d"): out-of-range numbers are an
// error, not UB.
static void parse_split(mt_config *c, const char *v, parse_ctx *p) {
    long w[3] = {-1, -1, -1};
    const char *q = v;
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        char *end;
        errno = 0;
        if (*q < '0' || *q > '9') { ok = 0; break; }
        w[i] = strtol(q, &end, 10);
        ok = !errno && w[i] <= INT_MAX && end != q && *end == (i < 2 ? ',' : '\0');
        q = end + (i < 2);
    }
    if (!ok || w[0] == 0)
        bad_flag(p, "--split expects three non-negative weights like 969,30,1 with a non-zero first, got '%s'", v);
    for (int i = 0; i < 3; i++) c->split[i] = (int)w[i];
}

// A choice flag's value: the index of v in "a|b|c", or a line naming them
// ("must be a, b or c").
static int parse_choice(const mt_flag_def *d, const char *v, parse_ctx *p) {
    char names[256] = "";
    size_t o = 0;
    int k = 0, found = -1, count = 1;
    for (const char *q = d->choices; *q; q++) count += *q == '|';
    for (const char *q = d->choices; *q; k++) {
        const char *e = strchr(q, '|');
        size_t len = e ? (size_t)(e - q) : strlen(q);
        if (strlen(v) == len && !strncmp(q, v, len)) found = k;
        o += (size_t)snprintf(names + o, sizeof names - o, "%s%.*s", k == 0 ? "" : k == count - 1 ? " or " : ", ", (int)len, q);
        q += len + (e != NULL);
    }
    if (found < 0) bad_flag(p, "%s must be %s, got '%s'", d->name, names, v);
    return found;
}

// Stores value v of flag d into c (a default or a given value).
static void store(mt_config *c, const mt_flag_def *d, const char *v, parse_ctx *p) {
    const char *f = d->name;
    void *dst = (char *)c + d->off;
    switch (d->type) {
    case MT_F_INT: *(int *)dst = (int)parse_long(f, v, p); break;
    case MT_F_DBL: *(double *)dst = parse_double(f, v, p); break;
    case MT_F_U64: {
        uint64_t x;
        // strtoull alone takes " -1" as 2^64 - 1: the strict parser does not.
        if (mt_parse_u64(v, &x)) bad_flag(p, "%s expects a non-negative integer, got '%s'", f, v);
        *(uint64_t *)dst = x;
        break;
    }
    case MT_F_STR:
        if (strlen(v) >= 1024) bad_flag(p, "%s: path longer than 1023 characters", f);
        strcpy((char *)dst, v);
        break;
    case MT_F_CHOICE: *(int *)dst = parse_choice(d, v, p); break;
    case MT_F_SPECIAL: parse_split(c, v, p); break;
    case MT_F_NOTE_ARG:
        if (p->loud) printf("note: %s: %s (value '%s')\n", f, d->help, v);
        break;
    default: break;
    }
}

// Every flag's default from the table, then what no flag sets.
static void defaults(mt_config *c, parse_ctx *p) {
    memset(c, 0, sizeof *c);
    for (int k = 0; k < NFLAGS; k++)
        if (FLAGS[k].def) store(c, &FLAGS[k], FLAGS[k].def, p);
}

// Applies one flag; returns how many argv entries it consumed (1, 2, or 1 + its integers).
static int apply(mt_config *c, int n, char **av, int i, parse_ctx *p) {
    const char *f = av[i];
    for (int k = 0; k < NFLAGS; k++) {
        const mt_flag_def *d = &FLAGS[k];
        if (strcmp(f, d->name)) continue;
        if (d->type == MT_F_BOOL) { *(int *)((char *)c + d->off) = 1; c->set_mask[k / 64] |= 1ull << (k % 64); return 1; }
        if (d->type == MT_F_REFUSE) bad_flag(p, "%s: %s (docs/megatron-flags.md)", f, d->help);
        if (d->type == MT_F_NOTE) {
            if (p->loud) printf("note: %s: %s\n", f, d->help);
            return 1;
        }
        if (d->type == MT_F_INT2 || d->type == MT_F_INT3) {  // words: "--flag A B [C]"
            int w = d->type == MT_F_INT2 ? 2 : 3, *dst = (int *)((char *)c + d->off);
            for (int j = 1; j <= w; j++)
                if (i + j >= n || !strncmp(av[i + j], "--", 2)) bad_flag(p, "%s needs %s integers", f, w == 2 ? "two" : "three");
            for (int j = 0; j < w; j++) dst[j] = (int)parse_long(f, av[i + 1 + j], p);
            c->set_mask[k / 64] |= 1ull << (k % 64);
            return w + 1;
        }
        if (i + 1 >= n) bad_flag(p, "%s needs a value", f);
        const char *v = av[i + 1];
        // "--save --train-iters 1" would otherwise save into "--train-iters".
        if (!strncmp(v, "--", 2)) bad_flag(p, "%s needs a value, got the flag '%s'", f, v);
        // Megatron's blends ("--data-path 0.7 a 0.3 b", or "a b"): more
        // than one word after a data path.
        if (strstr(f, "data-path") && i + 2 < n && strncmp(av[i + 2], "--", 2))
            bad_flag(p, "%s %s %s: blends of several datasets are not built here; give one token file (or prefix)", f, v, av[i + 2]);
        store(c, d, v, p);
        c->set_mask[k / 64] |= 1ull << (k % 64);
        return 2;
    }
    bad_flag(p, "unknown flag '%s' (see --help)", f);
}

// Splits a config file into words: one flag (and value) per line, '#' starts
// a comment. Leaves them in p->words (NULL-terminated) and p->nwords; the
// caller releases them (release), as does any error on the way.
static void read_config_file(const char *path, parse_ctx *p) {
    // Read whole and bounded (input.h): a FIFO without a writer, /dev/zero or
    // a huge file is one line, never a hang or unbounded memory. Standard
    // input ("-", /dev/stdin) may be a pipe: the flag documents it.
    char why[1400];
    size_t len = 0;
    p->text = mt_input_read_small(path, "--config", MT_CONFIG_MAX_BYTES, 1, &len, why, sizeof why);
    if (!p->text) fail(p, MT_EXIT_USAGE, "%s", why);
    // fmemopen refuses size 0: an empty file is simply no words.
    p->fp = fmemopen(p->text, len ? len : 1, "r");
    if (!len && p->fp) { fclose(p->fp); p->fp = NULL; }
    if (len && !p->fp) fail(p, MT_EXIT_FAIL, "--config %s: cannot read (%s)", path, strerror(errno));
    int cap = 64;
    p->words = mt_malloc(sizeof(char *) * cap);
    p->nwords = 0;
    int lineno = 0;
    ssize_t n;
    // getline, not fgets: it reports the length, so a NUL byte inside a line
    // is named as such instead of cutting the line short.
    while (p->fp && (n = getline(&p->line, &p->line_cap, p->fp)) > 0) {
        char *line = p->line;
        lineno++;
        if (n > 4096 || (n == 4096 && line[4095] != '\n'))
            fail(p, MT_EXIT_USAGE, "--config %s:%d: line longer than 4095 characters", path, lineno);
        if (memchr(line, '\0', (size_t)n))
            fail(p, MT_EXIT_USAGE, "--config %s:%d: contains a NUL byte (a text file of flags expected)", path, lineno);
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        for (char *tok = strtok(line, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
            if (p->nwords + 1 >= cap) {
                char **w = realloc(p->words, sizeof(char *) * (cap *= 2));
                if (!w) fail(p, MT_EXIT_FAIL, "out of memory reading --config");
                p->words = w;
            }
            if (!(p->words[p->nwords] = strdup(tok))) fail(p, MT_EXIT_FAIL, "out of memory reading --config");
            p->nwords++;
        }
    }
    if (p->fp) fclose(p->fp);
    p->fp = NULL;
    free(p->text);
    p->text = NULL;
    free(p->line);
    p->line = NULL;
    p->line_cap = 0;
    p->words[p->nwords] = NULL;
}

static void check(int ok, parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(int ok, parse_ctx *p, const char *fmt, ...) {
    if (ok) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_msg(p, MT_EXIT_USAGE, msg);
}

static void validate(const mt_config *c, parse_ctx *p) {
    // Upper bounds: those of an llm.c model file's header (shard.c), which also
    // keep every size the model computes in int (3h, 4h, s*b) from overflowing.
    check(c->num_layers >= 1 && c->num_layers <= 4096, p, "--num-layers must be in [1, 4096], got %d", c->num_layers);
    check(c->hidden_size >= 1 && c->hidden_size <= 65536, p, "--hidden-size must be in [1, 65536], got %d", c->hidden_size);
    check(c->num_heads >= 1 && c->num_heads < 65536, p, "--num-attention-heads must be in [1, 65535], got %d", c->num_heads);
    check(c->hidden_size % c->num_heads == 0, p, "--hidden-size (%d) must be divisible by --num-attention-heads (%d)", c->hidden_size, c->num_heads);
    check(c->seq_length >= 1 && c->seq_length < 65536, p, "--seq-length must be in [1, 65535], got %d", c->seq_length);
    check(c->max_position_embeddings <= MT_MAX_POSITIONS, p, "--max-position-embeddings must be in [1, %d], got %d", MT_MAX_POSITIONS, c->max_position_embeddings);
    check(c->max_position_embeddings >= c->seq_length, p, "--max-position-embeddings (%d) must be >= --seq-length (%d)", c->max_position_embeddings, c->seq_length);
    check(c->vocab_size >= 2, p, "--vocab-size must be >= 2, got %d", c->vocab_size);
    check(c->vocab_divisor >= 1 && c->vocab_divisor <= 65536, p, "--make-vocab-size-divisible-by must be in [1, 65536], got %d", c->vocab_divisor);
    check(c->init_method_std > 0, p, "--init-method-std must be > 0, got %g", c->init_method_std);
    check(c->hidden_dropout >= 0 && c->hidden_dropout < 1, p, "--hidden-dropout must be in [0, 1), got %g", c->hidden_dropout);
    check(c->attention_dropout >= 0 && c->attention_dropout < 1, p, "--attention-dropout must be in [0, 1), got %g", c->attention_dropout);
    check(c->tp >= 1, p, "--tensor-model-parallel-size must be >= 1, got %d", c->tp);
    check(c->cp >= 1, p, "--context-parallel-size must be >= 1, got %d", c->cp);
    check(c->pp >= 1, p, "--pipeline-model-parallel-size must be >= 1, got %d", c->pp);
    check(c->layers_per_virtual_stage >= 0, p, "--num-layers-per-virtual-pipeline-stage must be >= 1, got %d", c->layers_per_virtual_stage);
    check(c->micro_batch_size >= 1, p, "--micro-batch-size must be >= 1, got %d", c->micro_batch_size);
    check((long long)c->micro_batch_size * c->seq_length <= INT_MAX, p, "--micro-batch-size (%d) x --seq-length (%d) must be < 2^31 tokens per micro-batch", c->micro_batch_size, c->seq_length);
    // 0 is the default's "one micro-batch per DP rank"; given explicitly it is
    // the value the message rules out.
    check(c->global_batch_size >= 1 || (c->global_batch_size == 0 && !mt_config_was_set(c, "--global-batch-size")), p, "--global-batch-size must be >= 1, got %d", c->global_batch_size);
    check(c->train_iters >= 0, p, "--train-iters must be >= 0, got %d", c->train_iters);
    check(c->lr >= 0, p, "--lr must be >= 0, got %g", c->lr);
    check(c->min_lr >= 0 && c->min_lr <= c->lr, p, "--min-lr (%g) must be in [0, --lr (%g)]", c->min_lr, c->lr);
    check(c->lr_warmup_iters >= 0, p, "--lr-warmup-iters must be >= 0, got %d", c->lr_warmup_iters);
    check(c->lr_warmup_init >= 0 && c->lr_warmup_init <= c->lr, p, "--lr-warmup-init (%g) must be in [0, --lr (%g)]", c->lr_warmup_init, c->lr);
    // Megatron's scheduler asserts warm-up < decay: a fraction below 1.
    check(c->lr_warmup_fraction >= 0 && c->lr_warmup_fraction < 1, p, "--lr-warmup-fraction must be in [0, 1), got %g", c->lr_warmup_fraction);
    check(!mt_config_was_set(c, "--lr-warmup-fraction") || (c->lr_warmup_iters == 0 && c->lr_warmup_samples == 0), p,
          "give one of --lr-warmup-fraction and --lr-warmup-%s", c->lr_warmup_iters ? "iters" : "samples");
    check(c->lr_wsd_decay_iters >= 0, p, "--lr-wsd-decay-iters must be >= 0, got %d", c->lr_wsd_decay_iters);
    check(c->lr_decay_iters >= 0, p, "--lr-decay-iters must be >= 0, got %d", c->lr_decay_iters);
    // Megatron asserts a decay of at least one step: an explicit 0 is not "the default".
    check(c->lr_decay_iters >= 1 || !mt_config_was_set(c, "--lr-decay-iters"), p, "--lr-decay-iters must be >= 1, got 0");
    check(c->lr_decay_samples >= 1 || !mt_config_was_set(c, "--lr-decay-samples"), p, "--lr-decay-samples must be >= 1, got 0");
    check(c->train_samples >= 1 || !mt_config_was_set(c, "--train-samples"), p, "--train-samples must be >= 1, got 0");
    check(c->weight_decay >= 0, p, "--weight-decay must be >= 0, got %g", c->weight_decay);
    check(c->adam_beta1 >= 0 && c->adam_beta1 < 1, p, "--adam-beta1 must be in [0, 1), got %g", c->adam_beta1);
    check(c->adam_beta2 >= 0 && c->adam_beta2 < 1, p, "--adam-beta2 must be in [0, 1), got %g", c->adam_beta2);
    check(c->adam_eps > 0, p, "--adam-eps must be > 0, got %g", c->adam_eps);
    check(c->clip_grad >= 0, p, "--clip-grad must be >= 0 (0 disables), got %g", c->clip_grad);
    check(c->log_interval >= 1, p, "--log-interval must be >= 1, got %d", c->log_interval);
    check(c->eval_interval >= 0, p, "--eval-interval must be >= 0 (0 disables), got %d", c->eval_interval);
    check(c->eval_iters >= 1, p, "--eval-iters must be >= 1, got %d", c->eval_iters);
    check(c->save_interval >= 0, p, "--save-interval must be >= 0, got %d", c->save_interval);
    check(c->exit_interval >= 0, p, "--exit-interval must be >= 0, got %d", c->exit_interval);
    // Megatron accepts an interval with nowhere to save (its launch lines
    // often carry one): nothing is saved, said once.
    if (c->save_interval && !c->save[0] && p->loud) printf("note: --save-interval %d without --save DIR: no checkpoint is written\n", c->save_interval);
    check(!c->finetune || c->load[0] || c->pretrained[0], p, "--finetune needs --load DIR: the checkpoint whose weights it starts from");
    check(!c->no_load_optim || c->load[0], p, "--no-load-optim needs --load DIR: the checkpoint it resumes without its optimizer");
    check(c->recompute_num_layers >= 0, p, "--recompute-num-layers must be >= 1, got %d", c->recompute_num_layers);
    check(c->recompute == MT_RECOMPUTE_FULL || (!mt_config_was_set(c, "--recompute-method") && !c->recompute_num_layers), p,
          "--recompute-method and --recompute-num-layers need --recompute-granularity full");
    check(c->dump_step >= 0, p, "--dump-step must be >= 1, got %d", c->dump_step);
    check(!c->dump_step == !c->dump_dir[0], p, "--dump-step N and --dump-dir DIR go together");
    check(c->dump_step <= c->train_iters || c->train_samples, p, "--dump-step %d is beyond --train-iters %d: it would never dump", c->dump_step, c->train_iters);
    check(c->norm_epsilon > 0, p, "--norm-epsilon must be > 0, got %g", c->norm_epsilon);
    check(c->rotary_base > 0, p, "--rotary-base must be > 0, got %g", c->rotary_base);
    check(c->rotary_percent > 0 && c->rotary_percent <= 1, p, "--rotary-percent must be in (0, 1], got %g", c->rotary_percent);
    check(c->ffn_hidden_size >= 0 && c->ffn_hidden_size <= 1 << 20, p, "--ffn-hidden-size must be in [1, 1048576], got %d", c->ffn_hidden_size);
    check(!c->group_query_attention || (c->num_query_groups >= 1 && c->num_query_groups <= c->num_heads), p,
          "--group-query-attention needs --num-query-groups in [1, --num-attention-heads (%d)], got %d", c->num_heads, c->num_query_groups);
    check(c->data_path[0] || c->train_data_path[0], p, "--data-path FILE (or --train-data-path FILE) is required");
    check(!(c->data_path[0] && c->train_data_path[0]), p, "give either --data-path or --train-data-path, not both");
    check(!c->valid_data_path[0] || c->train_data_path[0], p, "--valid-data-path needs --train-data-path");
    check(c->layers_per_virtual_stage == 0 || c->schedule != MT_SCHED_AFAB, p,
          "--num-layers-per-virtual-pipeline-stage needs the 1f1b schedule (interleaved 1F1B), not --pipeline-schedule afab");
}

static void parse(mt_config *c, int argc, char **argv, parse_ctx *p) {
    defaults(c, p);
    // A --config file's flags come first so the command line overrides them.
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config")) continue;
        if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)) fail(p, MT_EXIT_USAGE, "--config needs a file");
        read_config_file(argv[i + 1], p);
        char **w = p->words;
        int n = p->nwords;
        p->origin = argv[i + 1];
        for (int j = 0; j < n;) {
            if (!strcmp(w[j], "--config")) fail(p, MT_EXIT_USAGE, "--config %s: nested --config is not allowed", argv[i + 1]);
            if (strncmp(w[j], "--", 2)) fail(p, MT_EXIT_USAGE, "--config %s: expected a flag, got '%s'", argv[i + 1], w[j]);
            j += apply(c, n, w, j, p);
        }
        p->origin = NULL;
        release(p);
    }
    for (int i = 1; i < argc;) {
        if (!strcmp(argv[i], "--config")) { i += 2; continue; }
        if (strncmp(argv[i], "--", 2)) fail(p, MT_EXIT_USAGE, "unexpected argument '%s' (flags start with --)", argv[i]);
        i += apply(c, argc, argv, i, p);
    }
    if (c->max_position_embeddings == 0) c->max_position_embeddings = c->seq_length;
    // Megatron's older spellings, rewritten as its arguments.py does.
    if (c->recompute_activations) c->recompute = MT_RECOMPUTE_SELECTIVE;
    if (c->use_rotary_legacy) c->position_embedding = MT_POS_ROPE;
    validate(c, p);
    const char *bugs = getenv("MT_INJECT_BUG");
    if (bugs && *bugs) {
        c->bug_no_sp_grad_sync = strstr(bugs, "sp-grad-sync") != NULL;
        c->bug_rank_dropout = strstr(bugs, "rank-dropout") != NULL;
        c->bug_loss_per_stage = strstr(bugs, "loss-per-stage") != NULL;
        c->bug_norm_double = strstr(bugs, "norm-double") != NULL;
        c->bug_die_in_save = strstr(bugs, "die-in-save") != NULL;
        c->bug_rope_local = strstr(bugs, "rope-local") != NULL;
        c->bug_no_cp_grad_sum = strstr(bugs, "cp-grad-sum") != NULL;
        c->bug_cp_local_pos = strstr(bugs, "cp-local-pos") != NULL;
        c->bug_cp_no_causal = strstr(bugs, "cp-no-causal") != NULL;
        c->bug_bf16_off = strstr(bugs, "bf16-off") != NULL;
        c->bug_bf16_weights_only = strstr(bugs, "bf16-weights-only") != NULL;
        c->bug_unfused = strstr(bugs, "unfused") != NULL;
        c->bug_bucket_early = strstr(bugs, "bucket-early") != NULL;
        c->bug_p2p_stale = strstr(bugs, "p2p-stale") != NULL;
        c->bug_tp_async_early = strstr(bugs, "tp-async-early") != NULL;
        c->bug_cp_ag_early = strstr(bugs, "cp-ag-early") != NULL;
        c->bug_no_vocab_mask = strstr(bugs, "no-vocab-mask") != NULL;
        static const char *const sites[] = {"", "fail-alloc@", "fail-write@", "fail-check@"};
        for (int k = 1; k < 4; k++) {
            const char *at = strstr(bugs, sites[k]);
            if (!at) continue;
            c->bug_fail_site = k;
            // The rank number runs to the next ',' (strict: "x" is not rank 0).
            char num[16] = "";
            const char *q = at + strlen(sites[k]);
            snprintf(num, sizeof num, "%.*s", (int)strcspn(q, ","), q);
            if (mt_parse_int(num, 0, INT_MAX, &c->bug_fail_rank)) c->bug_fail_rank = -1;
        }
        if (p->loud) fprintf(stderr, "warning: MT_INJECT_BUG=%s: a deliberate bug is planted (test negative control)\n", bugs);
    }
    if (c->layers_per_virtual_stage) c->schedule = MT_SCHED_INTERLEAVED;
}

int mt_batch_at(const mt_config *c, uint64_t consumed) {
    if (!c->rampup[0] || consumed > (uint64_t)c->rampup[2]) return c->global_batch_size;
    // Megatron's calculator, in its arithmetic: samples per increment as a
    // float, the increments done truncated.
    double per = (double)c->rampup[2] / (double)((c->global_batch_size - c->rampup[0]) / c->rampup[1]);
    return c->rampup[0] + (int)((double)consumed / per) * c->rampup[1];
}

// --train-samples: the iterations, as Megatron's update_train_iters counts
// them (the ramp stepped through, then whole final batches; a partial last
// batch thrown away), and the LR schedule in samples; --rampup-batch-size's
// rules (Megatron's asserts, and every batch of the ramp a whole number of
// micro-batches on every DP rank, a multiple of PP when interleaving).
static void sample_based(mt_config *c, parse_ctx *p) {
    int ramp = mt_config_was_set(c, "--rampup-batch-size");
    // The other unit's warm-up may be given as 0, its decay not at all (Megatron's asserts).
    if (!c->train_samples) {
        check(c->lr_warmup_samples == 0 && !mt_config_was_set(c, "--lr-decay-samples"), p,
              "--lr-warmup-samples and --lr-decay-samples count samples: they need --train-samples (else --lr-warmup-iters, --lr-decay-iters)");
        check(!ramp, p, "--rampup-batch-size needs --train-samples: Megatron ramps the batch only in sample-based training");
        return;
    }
    check(!mt_config_was_set(c, "--train-iters"), p, "give --train-samples or --train-iters, not both");
    check(c->lr_warmup_iters == 0 && !mt_config_was_set(c, "--lr-decay-iters"), p,
          "--train-samples counts the LR schedule in samples: give --lr-warmup-samples and --lr-decay-samples, not the iteration flags");
    int unit = c->micro_batch_size * c->dp, S = c->rampup[0], inc = c->rampup[1], R = c->rampup[2];
    if (ramp) {
        // (Megatron divides by the samples: 0 is a ZeroDivisionError there.)
        check(S >= 1 && inc >= 1 && R >= 1, p, "--rampup-batch-size %d %d %d: the start, the increment and the samples must be >= 1", S, inc, R);
        check(S < c->global_batch_size && (c->global_batch_size - S) % inc == 0, p,
              "--rampup-batch-size %d %d: --global-batch-size (%d) must exceed the start by a whole number of increments", S, inc, c->global_batch_size);
        check(S % unit == 0 && inc % unit == 0, p,
              "--rampup-batch-size %d %d: the start and the increment must be multiples of --micro-batch-size x data-parallel size (%d), "
              "so every batch of the ramp is whole micro-batches on every DP rank", S, inc, unit);
        check(!c->layers_per_virtual_stage || ((S / unit) % c->pp == 0 && (inc / unit) % c->pp == 0), p,
              "--rampup-batch-size with interleaved 1F1B: every batch of the ramp must hold a multiple of --pipeline-model-parallel-size (%d) micro-batches",
              c->pp);
    }
    // Megatron steps through the ramp one batch at a time; a ramp of more
    // steps than an int counts (or than a second of this loop) is refused.
    const uint64_t max_ramp_steps = 1ull << 26;
    uint64_t ramp_steps = ramp ? (uint64_t)R / (uint64_t)S + 1 : 0;  // at most: every batch at least S
    check(ramp_steps <= max_ramp_steps, p, "--rampup-batch-size %d %d %d: the ramp would take up to %llu iterations; at most %llu are supported",
          S, inc, R, (unsigned long long)ramp_steps, (unsigned long long)max_ramp_steps);
    uint64_t consumed = 0, iters = 0, T = c->train_samples, gbs = (uint64_t)c->global_batch_size;
    // update_train_iters (Megatron's main): the ramp is stepped through
    // until it or --train-samples is passed; then whole final batches (a
    // partial last batch thrown away).
    if (ramp)
        for (; consumed <= (uint64_t)R && consumed <= T; iters++) consumed += (uint64_t)mt_batch_at(c, consumed);
    uint64_t rest = T > consumed ? (T - consumed) / gbs : 0;
    check(rest <= (uint64_t)INT_MAX && iters + rest <= (uint64_t)INT_MAX, p,
          "--train-samples %llu is more than 2^31 - 1 iterations at --global-batch-size %d", (unsigned long long)T, c->global_batch_size);
    long long it = (long long)(iters + rest);
    check(it >= 1, p, "--train-samples %llu gives %lld iterations at --global-batch-size %d: at least 1 needed",
          (unsigned long long)T, it, c->global_batch_size);
    c->train_iters = (int)it;
    if (!c->lr_decay_samples) c->lr_decay_samples = c->train_samples;
    check(c->dump_step <= c->train_iters, p, "--dump-step %d is beyond the %d iterations of --train-samples: it would never dump", c->dump_step, c->train_iters);
}

// The LR's WSD phase and the weight decay's schedule, by Megatron's rules:
// WSD needs its annealing length, in the run's unit; the start and end
// decay go with a rising style, and only with it.
static void schedules(mt_config *c, parse_ctx *p) {
    int wsd_it = mt_config_was_set(c, "--lr-wsd-decay-iters"), wsd_s = mt_config_was_set(c, "--lr-wsd-decay-samples");
    if (c->lr_style == MT_LR_WSD) {
        check(!wsd_s || c->train_samples, p, "--lr-wsd-decay-samples counts samples: it needs --train-samples (else --lr-wsd-decay-iters)");
        check(!wsd_it || !c->train_samples, p, "--train-samples counts the LR schedule in samples: give --lr-wsd-decay-samples, not --lr-wsd-decay-iters");
        check(c->train_samples ? wsd_s : wsd_it, p, "--lr-decay-style WSD needs the annealing phase's length: --lr-wsd-decay-%s N",
              c->train_samples ? "samples" : "iters");
    } else if ((wsd_it || wsd_s || mt_config_was_set(c, "--lr-wsd-decay-style")) && p->loud)
        printf("note: --lr-wsd-decay-style, --lr-wsd-decay-iters and --lr-wsd-decay-samples are read only with --lr-decay-style WSD; ignored (as Megatron does)\n");
    // Megatron's scheduler asserts warm-up < decay (every style). A decay
    // given no longer than the warm-up is refused; the default decay (the
    // whole run) under a longer warm-up is a run that never leaves it: a note.
    int in_s = c->train_samples != 0;
    uint64_t warm = in_s ? c->lr_warmup_samples : (uint64_t)c->lr_warmup_iters;
    uint64_t decay = in_s ? c->lr_decay_samples : (uint64_t)c->lr_decay_iters;
    const char *unit = in_s ? "samples" : "iters";
    if (c->train_iters > 0 && warm > 0 && warm >= decay) {
        check(!mt_config_was_set(c, in_s ? "--lr-decay-samples" : "--lr-decay-iters"), p,
              "--lr-decay-%s (%llu) must exceed --lr-warmup-%s (%llu)", unit, (unsigned long long)decay, unit, (unsigned long long)warm);
        if (p->loud)
            printf("note: the warm-up (--lr-warmup-%s %llu) is as long as the run (%llu): the LR never reaches --lr; Megatron's scheduler refuses this (warm-up >= decay)\n",
                   unit, (unsigned long long)warm, (unsigned long long)decay);
    }
    // --decoupled-lr: Megatron's decoupled group (its floor defaults to
    // --min-lr); --decoupled-min-lr alone is not read there either.
    c->decoupled_lr_set = mt_config_was_set(c, "--decoupled-lr");
    if (c->decoupled_lr_set) {
        if (!mt_config_was_set(c, "--decoupled-min-lr")) c->decoupled_min_lr = c->min_lr;
        // (Megatron asserts nothing more of them.)
        check(c->decoupled_lr >= 0 && c->decoupled_min_lr >= 0, p, "--decoupled-lr (%g) and --decoupled-min-lr (%g) must be >= 0",
              c->decoupled_lr, c->decoupled_min_lr);
    } else if (mt_config_was_set(c, "--decoupled-min-lr") && p->loud)
        printf("note: --decoupled-min-lr is read only with --decoupled-lr; ignored (as Megatron does)\n");
    int given = mt_config_was_set(c, "--start-weight-decay") + mt_config_was_set(c, "--end-weight-decay");
    if (c->wd_incr_style == MT_WD_CONSTANT) {
        check(!given, p, "--start-weight-decay and --end-weight-decay need --weight-decay-incr-style linear or cosine (constant decays by --weight-decay)");
        c->start_weight_decay = c->end_weight_decay = c->weight_decay;
        return;
    }
    check(given == 2, p, "--weight-decay-incr-style %s needs --start-weight-decay and --end-weight-decay",
          c->wd_incr_style == MT_WD_LINEAR ? "linear" : "cosine");
    check(c->start_weight_decay >= 0 && c->end_weight_decay >= c->start_weight_decay, p,
          "--end-weight-decay (%g) must be >= --start-weight-decay (%g) >= 0", c->end_weight_decay, c->start_weight_decay);
}

static void finish(mt_config *c, int world, parse_ctx *p) {
    long long mp = (long long)c->tp * c->cp * c->pp;   // each may be up to INT_MAX
    if (c->cp > 1)
        check(world % mp == 0, p, "world size %d must be a multiple of --tensor-model-parallel-size (%d) x --context-parallel-size (%d) x --pipeline-model-parallel-size (%d); data-parallel size = world / (TP x CP x PP)", world, c->tp, c->cp, c->pp);
    check(world % mp == 0, p, "world size %d must be a multiple of --tensor-model-parallel-size (%d) x --pipeline-model-parallel-size (%d); data-parallel size = world / (TP x PP)", world, c->tp, c->pp);
    c->dp = (int)(world / mp);
    // Megatron's padding (_vocab_size_with_padding): a multiple of the divisor
    // times TP, so every TP rank holds an equal slice. Padded logits are
    // masked and padded rows get no gradient, so the padding never changes
    // the math; files store the TP 1 padding, so they do not depend on the
    // layout that wrote them.
    long long file = ((long long)c->vocab_size + c->vocab_divisor - 1) / c->vocab_divisor * c->vocab_divisor;
    long long unit = (long long)c->vocab_divisor * c->tp;
    long long padded = ((long long)c->vocab_size + unit - 1) / unit * unit;
    check(padded <= INT_MAX, p, "padded vocabulary %lld (--vocab-size %d rounded up to --make-vocab-size-divisible-by %d x --tensor-model-parallel-size %d) must be < 2^31", padded, c->vocab_size, c->vocab_divisor, c->tp);
    c->padded_vocab = (int)padded;
    c->file_vocab = (int)file;
    // --kv-channels: Megatron's head size; only its default is built.
    check(!mt_config_was_set(c, "--kv-channels") || (long long)c->kv_channels * c->num_heads == c->hidden_size, p,
          "--kv-channels %d: only --hidden-size / --num-attention-heads (%d) is built here (a head size of its own would change every attention shape)",
          c->kv_channels, c->num_heads ? c->hidden_size / c->num_heads : 0);
    // Megatron tests the value (`if args.exit_duration_in_mins:`): 0 is off.
    c->exit_duration_set = c->exit_duration_mins > 0;
    check(c->exit_duration_mins >= 0, p, "--exit-duration-in-mins must be >= 0, got %d", c->exit_duration_mins);
    check(c->num_heads % c->tp == 0, p, "--num-attention-heads (%d) must be divisible by --tensor-model-parallel-size (%d): each rank holds whole heads", c->num_heads, c->tp);
    // The block family's derived sizes (Megatron's rules, arguments.py).
    if (!c->ffn_hidden_size)
        c->ffn_hidden_size = c->swiglu ? (int)((4.0 * c->hidden_size * 2 / 3) / 64) * 64 : 4 * c->hidden_size;
    check(c->ffn_hidden_size >= 1, p, "--swiglu's default MLP size int(8h/3 / 64) * 64 is 0 for --hidden-size %d: give --ffn-hidden-size", c->hidden_size);
    // Megatron reads --num-query-groups only under --group-query-attention
    // (arguments.py and its FLOP and memory formulas set the groups to the
    // heads otherwise): the count alone is ignored, said once.
    if (!c->group_query_attention && mt_config_was_set(c, "--num-query-groups") && c->num_query_groups != c->num_heads && p->loud)
        printf("note: --num-query-groups %d without --group-query-attention is ignored: every head has its own key/value (as Megatron does)\n",
               c->num_query_groups);
    if (!c->group_query_attention) c->num_query_groups = c->num_heads;
    check(c->num_heads % c->num_query_groups == 0, p, "--num-attention-heads (%d) must be divisible by --num-query-groups (%d)", c->num_heads, c->num_query_groups);
    check(c->num_query_groups % c->tp == 0, p,
          "--num-query-groups (%d) must be divisible by --tensor-model-parallel-size (%d): each rank holds whole KV groups (Megatron's rule; KV heads are not replicated)",
          c->num_query_groups, c->tp);
    check(c->ffn_hidden_size % c->tp == 0, p, "--ffn-hidden-size (%d) must be divisible by --tensor-model-parallel-size (%d)", c->ffn_hidden_size, c->tp);
    int rot = (int)(c->hidden_size / c->num_heads * c->rotary_percent);
    // Here as well as in validate(): a Hugging Face config.json sets the
    // fraction after validate() ran, and a rotation wider than the head
    // would index past each row.
    check(c->rotary_percent > 0 && c->rotary_percent <= 1, p, "--rotary-percent must be in (0, 1], got %g", c->rotary_percent);
    check(c->position_embedding != MT_POS_ROPE || (rot >= 2 && rot % 2 == 0), p,
          "--rotary-percent %g of head dim %d gives %d rotated dims: RoPE needs an even number >= 2", c->rotary_percent, c->hidden_size / c->num_heads, rot);
    if (c->tp == 1 && c->sequence_parallel) {
        if (p->loud) printf("note: --sequence-parallel with --tensor-model-parallel-size 1 has nothing to split; running without it (as Megatron does)\n");
        c->sequence_parallel = 0;
    }
#ifdef MT_FP64
    check(!c->bf16, p, "--bf16: the fp64 build is the exact oracle and does not emulate bf16; run pretrain_gpt (fp32) for bf16");
#endif
    // Context parallelism cuts the sequence into 2C chunks: rank r holds
    // chunks r and 2C-1-r (the causal load balance of Megatron and TE).
    check(c->cp == 1 || c->seq_length % (2 * c->cp) == 0, p,
          "--seq-length (%d) must be a multiple of 2 x --context-parallel-size (%d): the sequence is cut into %d chunks, CP rank r holding chunks r and %d-r",
          c->seq_length, 2 * c->cp, 2 * c->cp, 2 * c->cp - 1);
    check(!c->sequence_parallel || (c->seq_length / c->cp) % c->tp == 0, p,
          c->cp > 1 ? "--sequence-parallel needs each CP rank's %d positions divisible by --tensor-model-parallel-size (%d)"
                    : "--sequence-parallel needs --seq-length (%d) divisible by --tensor-model-parallel-size (%d)",
          c->seq_length / c->cp, c->tp);
    check(c->cp == 1 || c->cp_comm != MT_CP_A2A || ((c->num_heads / c->tp) % c->cp == 0 && (c->num_query_groups / c->tp) % c->cp == 0), p,
          "--cp-comm-type a2a needs the heads (%d) and key/value groups (%d) of each TP rank divisible by --context-parallel-size (%d): the all-to-all splits them over CP",
          c->num_heads / c->tp, c->num_query_groups / c->tp, c->cp);
    // a2a+p2p (Megatron's hierarchical CP): all-to-alls within groups of A
    // adjacent CP ranks, a ring of P such groups' ranks. Megatron checks the
    // sizes' product whenever they are given, and reads them only here.
    int hier = c->cp > 1 && c->cp_comm == MT_CP_A2A_P2P, sizes = mt_config_was_set(c, "--hierarchical-context-parallel-sizes");
    int A = c->hcp_sizes[0], P = c->hcp_sizes[1];
    // (Set by the flag, or by tools/plan --sweep trying each split.)
    check(!hier || sizes || A || P, p,
          "--cp-comm-type a2a+p2p needs --hierarchical-context-parallel-sizes A P: the all-to-all groups' size and the ring's, A x P = --context-parallel-size (%d)", c->cp);
    check(!(hier || sizes) || (A >= 1 && P >= 1 && (long long)A * P == c->cp), p,
          "--hierarchical-context-parallel-sizes %d %d: the product must be --context-parallel-size (%d), each >= 1", A, P, c->cp);
    check(!hier || ((c->num_heads / c->tp) % A == 0 && (c->num_query_groups / c->tp) % A == 0), p,
          "--cp-comm-type a2a+p2p needs the heads (%d) and key/value groups (%d) of each TP rank divisible by the all-to-all size (%d)",
          c->num_heads / c->tp, c->num_query_groups / c->tp, A);
    if (!hier && sizes && p->loud)
        printf("note: --hierarchical-context-parallel-sizes is read only with --cp-comm-type a2a+p2p and --context-parallel-size > 1; ignored (as Megatron does)\n");
    check(c->num_layers % c->pp == 0, p, "--num-layers (%d) must be divisible by --pipeline-model-parallel-size (%d)", c->num_layers, c->pp);
    long long per_step = (long long)c->micro_batch_size * c->dp;   // samples of one micro-batch, all DP ranks
    check(per_step <= INT_MAX, p, "--micro-batch-size (%d) x data-parallel size (%d) must be < 2^31", c->micro_batch_size, c->dp);
    if (c->global_batch_size == 0) c->global_batch_size = (int)per_step;
    check(c->global_batch_size % per_step == 0, p, "--global-batch-size (%d) must be divisible by --micro-batch-size (%d) x data-parallel size (%d)", c->global_batch_size, c->micro_batch_size, c->dp);
    c->num_micro_batches = c->global_batch_size / (c->micro_batch_size * c->dp);
    if (c->layers_per_virtual_stage) {
        int per_stage = c->num_layers / c->pp;
        check(c->pp > 1, p, "--num-layers-per-virtual-pipeline-stage needs --pipeline-model-parallel-size > 1");
        check(per_stage % c->layers_per_virtual_stage == 0, p, "layers per pipeline stage (%d) must be divisible by --num-layers-per-virtual-pipeline-stage (%d)", per_stage, c->layers_per_virtual_stage);
        check(c->num_micro_batches % c->pp == 0, p, "interleaved 1F1B needs the number of micro-batches (%d) divisible by --pipeline-model-parallel-size (%d)", c->num_micro_batches, c->pp);
    }
    sample_based(c, p);
    if (c->lr_decay_iters == 0) c->lr_decay_iters = c->train_iters;
    schedules(c, p);
    if (c->recompute == MT_RECOMPUTE_FULL) {
        int per_chunk = c->layers_per_virtual_stage ? c->layers_per_virtual_stage : c->num_layers / c->pp;
        if (!c->recompute_num_layers) c->recompute_num_layers = 1;
        check(c->recompute_method != MT_RECOMPUTE_UNIFORM || per_chunk % c->recompute_num_layers == 0, p,
              "--recompute-num-layers (%d) must divide the layers per pipeline chunk (%d) with --recompute-method uniform",
              c->recompute_num_layers, per_chunk);
        // Megatron's block method checkpoints the first N layers of each
        // chunk and takes no offence at N past the chunk (NeMo's guide: N =
        // every layer of the model recomputes them all, with PP too): so
        // here, with a note, instead of a refusal.
        if (c->recompute_method == MT_RECOMPUTE_BLOCK && c->recompute_num_layers > per_chunk && p->loud)
            printf("note: --recompute-num-layers %d with --recompute-method block: each pipeline chunk has %d layers, "
                   "all recomputed (as Megatron does)\n", c->recompute_num_layers, per_chunk);
    }
    // Megatron's rules (arguments.py, distributed_data_parallel.py): the
    // param gather overlaps only the distributed optimizer's all-gather; the
    // default bucket is max(40M, 1M x data-parallel size) elements.
    check(!c->overlap_param_gather || c->use_distributed_optimizer, p,
          "--overlap-param-gather overlaps the distributed optimizer's all-gather: it needs --use-distributed-optimizer");
    check(!mt_config_was_set(c, "--ddp-bucket-size") || c->ddp_bucket_size >= 1, p, "--ddp-bucket-size must be >= 1 (got %d)", c->ddp_bucket_size);
    if (!c->ddp_bucket_size) c->ddp_bucket_size = MT_MAX(40000000, 1000000 * c->dp * c->cp);
}

void mt_config_parse(mt_config *c, int argc, char **argv, int loud) {
    parse_ctx p = {.loud = loud};
    parse(c, argc, argv, &p);
}

void mt_config_finish(mt_config *c, int world, int loud) {
    parse_ctx p = {.loud = loud};
    finish(c, world, &p);
}

// The checked entries: a bad flag longjmps back here (fail_msg) after the
// message is in err and everything the parse owned is freed. Nothing that
// setjmp's caller reads after the jump changes in between.
int mt_config_parse_checked(mt_config *c, int argc, char **argv, char *err, size_t errlen) {
    jmp_buf jb;
    parse_ctx p = {.jb = &jb, .err = err, .errlen = errlen};
    if (errlen) err[0] = 0;
    if (setjmp(jb)) return -1;
    parse(c, argc, argv, &p);
    return 0;
}

int mt_config_parse_report(mt_config *c, int argc, char **argv, int loud, char *err, size_t errlen) {
    jmp_buf jb;
    volatile int code = MT_EXIT_USAGE;
    parse_ctx p = {.loud = loud, .jb = &jb, .err = err, .errlen = errlen, .code = &code};
    if (errlen) err[0] = 0;
    if (setjmp(jb)) return -code;
    parse(c, argc, argv, &p);
    return 0;
}

int mt_config_finish_checked(mt_config *c, int world, char *err, size_t errlen) {
    jmp_buf jb;
    parse_ctx p = {.jb = &jb, .err = err, .errlen = errlen};
    if (errlen) err[0] = 0;
    if (setjmp(jb)) return -1;
    finish(c, world, &p);
    return 0;
}

void mt_config_print(const mt_config *c, FILE *f) {
    char files[48] = "";
    if (c->file_vocab != c->padded_vocab) snprintf(files, sizeof files, ", %d in files", c->file_vocab);
    fprintf(f, "model: layers %d, hidden %d, heads %d, seq %d, vocab %d (padded %d%s), %s\n", c->num_layers,
            c->hidden_size, c->num_heads, c->seq_length, c->vocab_size, c->padded_vocab, files, MT_PRECISION_NAME);
    char cp[64] = "";
    if (c->cp > 1 && c->cp_comm == MT_CP_A2A_P2P) snprintf(cp, sizeof cp, " x CP %d (a2a %d x p2p %d)", c->cp, c->hcp_sizes[0], c->hcp_sizes[1]);
    else if (c->cp > 1) snprintf(cp, sizeof cp, " x CP %d (%s)", c->cp, c->cp_comm == MT_CP_A2A ? "a2a" : c->cp_comm == MT_CP_ALLGATHER ? "allgather" : "p2p");
    fprintf(f, "layout: TP %d%s x PP %d x DP %d%s%s, micro-batch %d, global batch %d, %d micro-batches per step\n",
            c->tp, cp, c->pp, c->dp, c->sequence_parallel ? ", sequence parallel" : "",
            c->use_distributed_optimizer ? ", distributed optimizer" : "",
            c->micro_batch_size, c->global_batch_size, c->num_micro_batches);
    if (c->no_bias_gelu_fusion || c->no_bias_dropout_fusion || c->no_grad_norm_fusion)
        fprintf(f, "fusions off (same bits):%s%s%s\n", c->no_bias_gelu_fusion ? " bias-gelu" : "",
                c->no_bias_dropout_fusion ? " bias-dropout-add" : "", c->no_grad_norm_fusion ? " grad-norm" : "");
}

int mt_config_was_set(const mt_config *c, const char *flag) {
    for (int k = 0; k < NFLAGS; k++)
        if (!strcmp(FLAGS[k].name, flag)) return (int)(c->set_mask[k / 64] >> (k % 64) & 1);
    return 0;
}
