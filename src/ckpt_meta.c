// ckpt_meta.c: checkpoint metadata, strictly (include/ckpt_meta.h).
#include "ckpt_meta.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "input.h"

// Values echoed from a file may hold control bytes: the line stays one
// printable line (found by tests/fuzz/fuzz_ckpt_meta.c).
static int one_line(int rc, char *err) {
    for (char *q = err; rc && *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    return rc;
}

static int meta_state(const mt_st_file *f, const char *path, mt_ckpt_state *st, char *err, size_t errlen) {
    const char *it = mt_st_meta(f, "iteration"), *cs = mt_st_meta(f, "consumed_samples");
    if (!it || !cs) { snprintf(err, errlen, "%s: metadata lacks iteration or consumed_samples", path); return -1; }
    long long iv;
    uint64_t cv;
    if (mt_parse_ll(it, 1, 1000000000, &iv) || mt_parse_u64(cs, &cv)) {
        snprintf(err, errlen, "%s: metadata iteration '%.40s' or consumed_samples '%.40s' is not a non-negative integer", path, it, cs);
        return -1;
    }
    st->iteration = (int)iv;
    st->consumed_samples = cv;
    // AdamW's step count: absent before it was recorded (then the
    // iteration); never past the iteration (a restart only lowers it).
    const char *os = mt_st_meta(f, "optimizer_steps");
    long long ov = iv;
    if (os && mt_parse_ll(os, 0, iv, &ov)) {
        snprintf(err, errlen, "%s: metadata optimizer_steps '%.40s' is not an integer in [0, iteration %lld]", path, os, iv);
        return -1;
    }
    st->optimizer_steps = (int)ov;
    // The scheduler's sample count, likewise: absent is consumed_samples,
    // and never past it.
    const char *ss = mt_st_meta(f, "scheduler_samples");
    uint64_t sv = cv;
    if (ss && (mt_parse_u64(ss, &sv) || sv > cv)) {
        snprintf(err, errlen, "%s: metadata scheduler_samples '%.40s' is not an integer in [0, consumed_samples %llu]", path, ss,
                 (unsigned long long)cv);
        return -1;
    }
    st->scheduler_samples = sv;
    return 0;
}

// Metadata key -> the trainer's flag. Booleans ("0"/"1") become the bare flag.
typedef struct { const char *key, *flag; int boolean, required; } meta_flag;
static const meta_flag MAP[] = {
    {"num_layers", "--num-layers", 0, 1},
    {"hidden_size", "--hidden-size", 0, 1},
    {"num_attention_heads", "--num-attention-heads", 0, 1},
    {"vocab_size", "--vocab-size", 0, 1},
    {"max_position_embeddings", "--max-position-embeddings", 0, 1},
    {"normalization", "--normalization", 0, 0},
    {"norm_epsilon", "--norm-epsilon", 0, 0},
    {"position_embedding_type", "--position-embedding-type", 0, 0},
    {"rotary_base", "--rotary-base", 0, 0},
    {"rotary_percent", "--rotary-percent", 0, 0},
    {"swiglu", "--swiglu", 1, 0},
    {"ffn_hidden_size", "--ffn-hidden-size", 0, 0},
    {"untie_embeddings_and_output_weights", "--untie-embeddings-and-output-weights", 1, 0},
    {"disable_bias_linear", "--disable-bias-linear", 1, 0},
};
enum { NMAP = sizeof MAP / sizeof MAP[0] };

static int meta_config(const mt_st_file *f, const char *path, mt_config *c, char *err, size_t errlen) {
    const char *fmt = mt_st_meta(f, "format");
    if (!mt_ckpt_format_known(fmt)) {
        snprintf(err, errlen, "%s: not a megatron.c checkpoint (format '%.60s')", path, fmt ? fmt : "missing");
        return -1;
    }
    char *av[2 * NMAP + 16];
    int n = 0;
    av[n++] = "generate";
    for (int i = 0; i < NMAP; i++) {
        const char *v = mt_st_meta(f, MAP[i].key);
        if (!v) {
            if (MAP[i].required) { snprintf(err, errlen, "%s: metadata lacks %s", path, MAP[i].key); return -1; }
            continue;
        }
        // A value that looks like a flag would be taken as one by the parser.
        if (!strncmp(v, "--", 2)) { snprintf(err, errlen, "%s: metadata %s is '%.40s'", path, MAP[i].key, v); return -1; }
        if (MAP[i].boolean) {
            if (strcmp(v, "0") && strcmp(v, "1")) { snprintf(err, errlen, "%s: metadata %s must be 0 or 1, got '%.40s'", path, MAP[i].key, v); return -1; }
            if (!strcmp(v, "1")) av[n++] = (char *)MAP[i].flag;
            continue;
        }
        av[n++] = (char *)MAP[i].flag;
        av[n++] = (char *)v;
    }
    // num_query_groups: GQA when it differs from the heads.
    const char *g = mt_st_meta(f, "num_query_groups"), *h = mt_st_meta(f, "num_attention_heads");
    if (g && strcmp(g, h)) {
        if (!strncmp(g, "--", 2)) { snprintf(err, errlen, "%s: metadata num_query_groups is '%.40s'", path, g); return -1; }
        av[n++] = "--group-query-attention";
        av[n++] = "--num-query-groups";
        av[n++] = (char *)g;
    }
    // One rank, the model's full context, no dropout; the data is unused.
    const char *mp = mt_st_meta(f, "max_position_embeddings");
    av[n++] = "--seq-length";
    av[n++] = (char *)mp;
    av[n++] = "--hidden-dropout"; av[n++] = "0";
    av[n++] = "--attention-dropout"; av[n++] = "0";
    av[n++] = "--data-path"; av[n++] = "(unused)";
    av[n] = NULL;
    char why[1200];
    if (mt_config_parse_checked(c, n, av, why, sizeof why)) {
        snprintf(err, errlen, "%s: metadata: %s", path, why);
        return -1;
    }
    // The padded vocabulary: Vp itself divides Vp (config.c's divisor bound
    // is for the flag, not for a file's Vp).
    const char *pv = mt_st_meta(f, "padded_vocab_size");
    int vp = c->vocab_size;
    if (pv && (mt_parse_int(pv, c->vocab_size, INT_MAX, &vp) || vp - c->vocab_size > (1 << 20))) {
        snprintf(err, errlen, "%s: metadata padded_vocab_size '%.40s' must be in [vocab_size %d, vocab_size + 2^20]", path, pv, c->vocab_size);
        return -1;
    }
    c->vocab_divisor = vp;
    if (mt_config_finish_checked(c, 1, why, sizeof why)) {
        snprintf(err, errlen, "%s: metadata: %s", path, why);
        return -1;
    }
    return 0;
}

int mt_ckpt_meta_state(const mt_st_file *f, const char *path, mt_ckpt_state *st, char *err, size_t errlen) {
    return one_line(meta_state(f, path, st, err, errlen), err);
}

int mt_ckpt_meta_config(const mt_st_file *f, const char *path, mt_config *c, char *err, size_t errlen) {
    return one_line(meta_config(f, path, c, err, errlen), err);
}

int mt_ckpt_latest(const char *flag, const char *dir, int *iter, char *err, size_t errlen) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s %s: %s", flag, dir, strerror(errno)), -1);
    if (!S_ISDIR(sb.st_mode)) { snprintf(err, errlen, "%s %s: not a directory", flag, dir); return -1; }
    char lp[1200];
    snprintf(lp, sizeof lp, "%s/%s", dir, MT_CKPT_LATEST);
    if (access(lp, F_OK) != 0 && errno == ENOENT) return 0;
    // Bounded and non-blocking (input.h): a FIFO or a device is refused.
    char why[1400];
    size_t len = 0;
    char *line = mt_input_read_small(lp, flag, 64, 0, &len, why, sizeof why);
    if (!line) { snprintf(err, errlen, "%s", why); return -1; }
    if (len && line[len - 1] == '\n') line[len - 1] = 0;
    long long v;
    int bad = mt_parse_ll(line, 1, 1000000000, &v);
    free(line);
    if (bad) { snprintf(err, errlen, "%s %s/%s: expected a positive iteration number", flag, dir, MT_CKPT_LATEST); return -1; }
    *iter = (int)v;
    return 1;
}

int mt_ckpt_meta_read_dir(const char *dir, mt_config *c, int *iter, char *err, size_t errlen) {
    int rc = mt_ckpt_latest("--load", dir, iter, err, errlen);
    if (rc == 0) snprintf(err, errlen, "%s holds no checkpoint", dir);
    if (rc != 1) return -1;
    char path[1300];
    snprintf(path, sizeof path, "%s/iter_%07d/model.safetensors", dir, *iter);
    mt_st_file *f = mt_st_open(path, err, errlen);
    if (!f) return -1;
    mt_ckpt_state st;
    int bad = mt_ckpt_meta_config(f, path, c, err, errlen) || mt_ckpt_meta_state(f, path, &st, err, errlen);
    if (!bad && st.iteration != *iter) {
        snprintf(err, errlen, "%s: holds iteration %d, the latest file says %d", path, st.iteration, *iter);
        bad = 1;
    }
    mt_st_close(f);
    return bad ? -1 : 0;
}
