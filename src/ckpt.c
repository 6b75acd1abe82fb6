// ckpt.c: save and load of unsharded checkpoints (see ckpt.h). Rank 0 does
// all file I/O; tensors move through the gathers and scatters of shard.c, so
// the layout that saved never matters to the layout that loads.
#include "ckpt.h"

// Paths come from --save/--load (at most 1023 bytes, checked by the config)
// and fit the 1200-byte buffers below with any suffix used here.
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_meta.h"
#include "input.h"
#include "outfile.h"
#include "safetensors.h"
#include "shard.h"

#define LATEST "latest_checkpointed_iteration.txt"

typedef struct { char path[1200]; } pathbuf;

static pathbuf join(const char *dir, const char *name) {
    pathbuf p;
    snprintf(p.path, sizeof p.path, "%s/%s", dir, name);
    return p;
}

// ---- inside --save: relative to its descriptor, never following a link ----

// Removes the entry `name` of directory dfd. A symlink or a file is unlinked
// itself, never what it points to; a directory loses its non-directory
// entries (a checkpoint holds no subdirectories: anything deeper stays and
// the final rmdir fails) and then itself. Every open is relative to dfd with
// O_NOFOLLOW, so nothing outside --save is ever reached.
static int remove_entry(int dfd, const char *name) {
    struct stat sb;
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW)) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlinkat(dfd, name, 0);
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat eb;
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !fstatat(fd, e->d_name, &eb, AT_SYMLINK_NOFOLLOW) &&
            !S_ISDIR(eb.st_mode))
            unlinkat(fd, e->d_name, 0);
    }
    closedir(d);
    return unlinkat(dfd, name, AT_REMOVEDIR);
}

// Leftovers of a save that was killed: our temporaries (".iter_N.tmp.*",
// which after an exchange hold the replaced checkpoint, never the only copy)
// and an "iter_N.old" whose iter_N is back in place. An "iter_N.old" whose
// iter_N is missing is a re-save killed between its two renames (install,
// without RENAME_EXCHANGE): the complete old checkpoint, which --load reads
// there; it goes back to its name, or it would stay beside the run forever.
// Other names are the user's and stay.
static void remove_stale(int dfd) {
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        int iter = 0, end = 0;
        struct stat sb;
        if ((!strncmp(n, ".iter_", 6) || !strncmp(n, "." LATEST ".tmp.", strlen(LATEST) + 6)) && strstr(n, ".tmp."))
            remove_entry(dfd, n);
        else if (sscanf(n, "iter_%7d.old%n", &iter, &end) == 1 && end == (int)strlen(n)) {
            char live[32];
            snprintf(live, sizeof live, "iter_%07d", iter);
            if (!fstatat(dfd, live, &sb, AT_SYMLINK_NOFOLLOW)) {
                if (S_ISDIR(sb.st_mode)) remove_entry(dfd, n);
            } else if (errno == ENOENT && !fstatat(dfd, n, &sb, AT_SYMLINK_NOFOLLOW) && S_ISDIR(sb.st_mode) &&
                       !renameat(dfd, n, dfd, live)) {
                (void)mt_fsync_dir(dfd);
            }
        }
    }
    closedir(d);
}

// A unique temporary directory name next to `name`, created with mkdirat
// (which fails on any existing entry, a link included).
static int make_tmp_dir(int dfd, const char *name, char *tmp, size_t len) {
    for (unsigned k = 0; k < 100; k++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(tmp, len, ".%s.tmp.%ld.%lx%x", name, (long)getpid(), (unsigned long)ts.tv_nsec, k);
        if (!mkdirat(dfd, tmp, 0755)) return 0;
        if (errno != EEXIST) return -1;
    }
    return -1;
}

// Writes a small text file atomically (outfile.h) in directory dfd.
static int write_small(int dfd, const char *dir, const char *name, const char *text, char *err, size_t errlen) {
    mt_outfile o;
    if (mt_outfile_openat(&o, dfd, name, join(dir, name).path, err, errlen)) return -1;
    fputs(text, o.fp);
    return mt_outfile_commit(&o, err, errlen);
}

// The run's metadata as key/value strings (safetensors __metadata__): what
// the run was, and the model's shape and block family (the family keys are
// absent from checkpoints written before the Llama blocks; a missing one
// means GPT-2's value).
#define NMETA 25
#define NCOMMON 15
typedef struct { char kv[NMETA][2][64]; const char *ptrs[2 * NMETA + 1]; } meta_t;

static void meta_make(meta_t *mt, const mt_config *c, mt_ckpt_state st) {
    const char *keys[NMETA] = {"format", "iteration", "consumed_samples", "seed", "data_order", "num_layers", "hidden_size",
                               "num_attention_heads", "vocab_size", "padded_vocab_size", "max_position_embeddings",
                               "seq_length", "precision", "optimizer_steps", "scheduler_samples", "normalization", "norm_epsilon", "position_embedding_type",
                               "rotary_base", "rotary_percent", "swiglu", "ffn_hidden_size", "num_query_groups",
                               "untie_embeddings_and_output_weights", "disable_bias_linear"};
    char v[NMETA][64];
    int restarted = st.optimizer_steps != st.iteration || st.scheduler_samples != st.consumed_samples;
    snprintf(v[0], 64, "%s", restarted ? MT_CKPT_FORMAT_2 : MT_CKPT_FORMAT);
    snprintf(v[1], 64, "%d", st.iteration);
    snprintf(v[2], 64, "%llu", (unsigned long long)st.consumed_samples);
    snprintf(v[3], 64, "%llu", (unsigned long long)c->seed);
    snprintf(v[4], 64, "%s", c->data_order == MT_ORDER_SEQUENTIAL ? "sequential" : "shuffle");
    snprintf(v[5], 64, "%d", c->num_layers);
    snprintf(v[6], 64, "%d", c->hidden_size);
    snprintf(v[7], 64, "%d", c->num_heads);
    snprintf(v[8], 64, "%d", c->vocab_size);
    snprintf(v[9], 64, "%d", c->file_vocab);  // files hold the TP 1 padding
    snprintf(v[10], 64, "%d", c->max_position_embeddings);
    snprintf(v[11], 64, "%d", c->seq_length);
    snprintf(v[12], 64, "%s", MT_PRECISION_NAME);
    snprintf(v[13], 64, "%d", st.optimizer_steps);
    snprintf(v[14], 64, "%llu", (unsigned long long)st.scheduler_samples);
    snprintf(v[15], 64, "%s", c->normalization == MT_NORM_RMSNORM ? "RMSNorm" : "LayerNorm");
    snprintf(v[16], 64, "%.17g", c->norm_epsilon);
    snprintf(v[17], 64, "%s", c->position_embedding == MT_POS_ROPE ? "rope" : "learned_absolute");
    snprintf(v[18], 64, "%.17g", c->rotary_base);
    snprintf(v[19], 64, "%.17g", c->rotary_percent);
    snprintf(v[20], 64, "%d", c->swiglu);
    snprintf(v[21], 64, "%d", c->ffn_hidden_size);
    snprintf(v[22], 64, "%d", c->num_query_groups);
    snprintf(v[23], 64, "%d", c->untie_embeddings);
    snprintf(v[24], 64, "%d", c->disable_bias_linear);
    for (int i = 0; i < NMETA; i++) {
        snprintf(mt->kv[i][0], 64, "%s", keys[i]);
        snprintf(mt->kv[i][1], 64, "%s", v[i]);
        mt->ptrs[2 * i] = mt->kv[i][0];
        mt->ptrs[2 * i + 1] = mt->kv[i][1];
    }
    mt->ptrs[2 * NMETA] = NULL;
}

static int write_json(int dfd, const char *dir, const meta_t *mt, char *err, size_t errlen) {
    char text[4096];
    size_t o = (size_t)snprintf(text, sizeof text, "{");
    for (int i = 0; i < NMETA; i++) {
        const char *k = mt->kv[i][0];
        int quoted = i == 0 || !strcmp(k, "data_order") || !strcmp(k, "precision") || !strcmp(k, "normalization") ||
                     !strcmp(k, "position_embedding_type");
        o += (size_t)snprintf(text + o, sizeof text - o, "%s\"%s\": %s%s%s", i ? ", " : "", k, quoted ? "\"" : "",
                              mt->kv[i][1], quoted ? "\"" : "");
    }
    snprintf(text + o, sizeof text - o, "}\n");
    return write_small(dfd, dir, "checkpoint.json", text, err, errlen);
}

// ---- save -----------------------------------------------------------------

typedef struct {
    int n;            // parameters
    mt_param *all;    // the whole model's table (TP 1 view: global shapes)
    mt_st_tensor *t;  // 3n tensors: params, then m, then v
    real **buf;
} tensor_set;

static void set_gather(const mt_model *m, tensor_set *s) {
    s->all = mt_params_global(m->cfg, &s->n);
    s->t = mt_calloc(3 * (size_t)s->n, sizeof(mt_st_tensor));
    s->buf = mt_calloc(3 * (size_t)s->n, sizeof(real *));
    int rank = m->par->world_rank;
    static const mt_arena arenas[3] = {MT_ARENA_PARAMS, MT_ARENA_ADAM_M, MT_ARENA_ADAM_V};
    static const char *const sfx[3] = {"", ".exp_avg", ".exp_avg_sq"};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < s->n; i++) {
            const mt_param *p = &s->all[i];
            int k = a * s->n + i;
            size_t sz = (size_t)(p->rows * p->cols);
            s->buf[k] = rank == 0 ? mt_malloc(sz * sizeof(real)) : NULL;
            mt_shard_gather(m, arenas[a], p->name, p->rows, p->cols, s->buf[k]);
            mt_st_tensor *t = &s->t[k];
            snprintf(t->name, sizeof t->name, "%s%s", p->name, sfx[a]);
            t->dtype = sizeof(real) == 8 ? MT_ST_F64 : MT_ST_F32;
            t->ndim = p->ndim;
            t->shape[0] = p->rows;
            t->shape[1] = p->cols;
            t->nbytes = sz * sizeof(real);
            t->data = s->buf[k];
            // Test hook: a rank that dies in the middle of a save (the
            // atomicity test); see README "Tests".
            if (m->cfg->bug_die_in_save && a == 1 && i == 0 && rank == m->par->world_size - 1) raise(SIGKILL);
        }
}

static void set_free(tensor_set *s) {
    for (int k = 0; k < 3 * s->n; k++) free(s->buf[k]);
    free(s->buf);
    free(s->t);
    free(s->all);
}

// Puts the complete temporary directory `tmp` in place as `name`. A first
// save of the iteration is one rename. A rerun's older `name` (or whatever
// entry has that name, a symlink included) is exchanged with the new one in
// one step (RENAME_EXCHANGE), then removed from its temporary name; where
// the file system cannot exchange, the old one moves aside to NAME.old
// (which a --load takes while NAME is missing), the new one moves in, and
// the old one goes. At every instant one complete checkpoint has the name a
// --load looks for.
static int install(int dfd, const char *tmp, const char *name, const char *label, char *err, size_t errlen) {
    struct stat sb;
    int e = 0;
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW)) {
        if (errno != ENOENT || renameat(dfd, tmp, dfd, name)) e = errno;
    } else if (renameat2(dfd, tmp, dfd, name, RENAME_EXCHANGE) == 0) {
        if (mt_fsync_dir(dfd)) e = errno;
        remove_entry(dfd, tmp);  // now the old checkpoint
        if (e) goto out;
        return 0;
    } else if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
        e = errno;
    } else {
        char old[64];
        snprintf(old, sizeof old, "%s.old", name);
        remove_entry(dfd, old);  // a stale one: `name` is in place
        if (renameat(dfd, name, dfd, old)) e = errno;
        else if (renameat(dfd, tmp, dfd, name)) {
            e = errno;
            renameat(dfd, old, dfd, name);
        } else {
            if (mt_fsync_dir(dfd)) e = errno;
            remove_entry(dfd, old);
            if (e) goto out;
            return 0;
        }
    }
    if (!e && mt_fsync_dir(dfd)) e = errno;
out:
    if (e) {
        snprintf(err, errlen, "%s: %s", label, strerror(e));
        remove_entry(dfd, tmp);
    }
    return e ? -1 : 0;
}

// Rank 0: everything after the gathers, relative to --save's descriptor.
static int save_files(const tensor_set *s, const char *dir, mt_ckpt_state st, const mt_config *c, char *err, size_t errlen) {
    char name[64], tmp[128];
    snprintf(name, sizeof name, "iter_%07d", st.iteration);
    pathbuf final = join(dir, name);
    if (mkdir(dir, 0755) && errno != EEXIST) { snprintf(err, errlen, "--save %s: %s", dir, strerror(errno)); return -1; }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) { snprintf(err, errlen, "--save %s: %s", dir, strerror(errno)); return -1; }
    remove_stale(dfd);
    int tfd = -1, rc = make_tmp_dir(dfd, name, tmp, sizeof tmp);
    if (!rc && (tfd = openat(dfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) rc = -1;
    if (rc) snprintf(err, errlen, "--save %s: creating a temporary directory: %s", dir, strerror(errno));
    meta_t mt;
    meta_make(&mt, c, st);
    if (!rc) rc = mt_st_write_at(tfd, "model.safetensors", join(final.path, "model.safetensors").path, s->t, s->n, mt.ptrs, err, errlen);
    if (!rc) rc = mt_st_write_at(tfd, "optimizer.safetensors", join(final.path, "optimizer.safetensors").path, s->t + s->n,
                                 2 * s->n, mt.ptrs, err, errlen);
    if (!rc) rc = write_json(tfd, final.path, &mt, err, errlen);
    if (!rc && mt_fsync_dir(tfd)) { snprintf(err, errlen, "%s: fsync: %s", final.path, strerror(errno)); rc = -1; }
    if (tfd >= 0) close(tfd);
    if (rc) remove_entry(dfd, tmp);
    if (!rc) rc = install(dfd, tmp, name, final.path, err, errlen);
    if (!rc) {
        char text[32];
        snprintf(text, sizeof text, "%d\n", st.iteration);
        rc = write_small(dfd, dir, LATEST, text, err, errlen);
    }
    close(dfd);
    return rc;
}

// Rank 0: the first non-finite value among the tensors to save, as "tensor
// NAME holds a non-finite value at element I" (a checkpoint or an export of
// such weights would not load, or would load garbage).
static int check_finite(const mt_st_tensor *t, int n, char *err, size_t errlen) {
    for (int k = 0; k < n; k++) {
        long long i = mt_first_nonfinite(t[k].data, t[k].nbytes / sizeof(real));
        if (i >= 0) {
            snprintf(err, errlen, "tensor %s holds a non-finite value at element %lld; nothing written", t[k].name, i);
            return -1;
        }
    }
    return 0;
}

int mt_ckpt_save(const mt_model *m, const char *dir, mt_ckpt_state st, char *err, size_t errlen) {
    tensor_set s;
    set_gather(m, &s);
    int rc = 0;
    if (m->par->world_rank == 0) rc = check_finite(s.t, 3 * s.n, err, errlen) || save_files(&s, dir, st, m->cfg, err, errlen);
    set_free(&s);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(err, (int)errlen, MPI_CHAR, 0, MPI_COMM_WORLD);
    return rc ? -1 : 0;
}

// ---- load -----------------------------------------------------------------

// Rank 0: the iteration named by DIR's latest file; 0 when there is none
// yet (ckpt_meta.c: strict, bounded, never blocks on a FIFO).
static int find_latest(const char *flag, const char *dir, int *iter, char *err, size_t errlen) {
    return mt_ckpt_latest(flag, dir, iter, err, errlen);
}

// Rank 0: the metadata must describe the model the flags describe.
static int check_meta(const mt_st_file *f, const char *path, const mt_config *c, mt_ckpt_state *st, char *err, size_t errlen) {
    const char *fmt = mt_st_meta(f, "format");
    if (!mt_ckpt_format_known(fmt)) { snprintf(err, errlen, "%s: not a megatron.c checkpoint (format '%s')", path, fmt ? fmt : "missing"); return -1; }
    struct { const char *key, *flag; long want; } rules[] = {
        {"num_layers", "--num-layers", c->num_layers},
        {"hidden_size", "--hidden-size", c->hidden_size},
        {"num_attention_heads", "--num-attention-heads", c->num_heads},
        {"vocab_size", "--vocab-size", c->vocab_size},
        {"padded_vocab_size", "--make-vocab-size-divisible-by (padded vocabulary)", c->file_vocab},
        {"max_position_embeddings", "--max-position-embeddings", c->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const char *v = mt_st_meta(f, rules[i].key);
        if (!v) { snprintf(err, errlen, "%s: metadata lacks %s", path, rules[i].key); return -1; }
        long long got;
        // Strict (input.h): "4abc" is not 4.
        if (mt_parse_ll(v, 0, INT_MAX, &got) || got != rules[i].want) {
            snprintf(err, errlen, "%s: checkpoint has %s %s but %s is %ld", path, rules[i].key, v, rules[i].flag, rules[i].want);
            return -1;
        }
    }
    // The block family: a key written as this run would write it, or absent
    // (a checkpoint from before the family keys: GPT-2's values).
    meta_t want;
    meta_make(&want, c, (mt_ckpt_state){0, 0, 0, 0});
    static const char *const gpt2[NMETA - NCOMMON] = {"LayerNorm", NULL, "learned_absolute", NULL, NULL, "0", NULL, NULL, "0", "0"};
    for (int i = NCOMMON; i < NMETA; i++) {
        const char *key = want.kv[i][0], *v = mt_st_meta(f, key), *def = gpt2[i - NCOMMON];
        if (!v && (!def || !strcmp(def, want.kv[i][1]))) continue;
        if (!v || strcmp(v, want.kv[i][1])) {
            snprintf(err, errlen, "%s: checkpoint has %s %s but this run's flags give %s", path, key, v ? v : "(absent)",
                     want.kv[i][1]);
            return -1;
        }
    }
    return mt_ckpt_meta_state(f, path, st, err, errlen);
}

// Rank 0: the tensor `name` of file f with the parameter's shape, finite.
static const mt_st_tensor *check_tensor(const mt_st_file *f, const char *path, const char *name, const mt_param *p,
                                        char *err, size_t errlen) {
    const mt_st_tensor *t = mt_st_find(f, name);
    if (!t) { snprintf(err, errlen, "%s: tensor %s is missing", path, name); return NULL; }
    int64_t n = t->ndim >= 1 ? t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1) : 1;
    if (t->ndim != p->ndim || t->shape[0] != p->rows || (t->ndim == 2 && t->shape[1] != p->cols) || n != p->rows * p->cols) {
        snprintf(err, errlen, "%s: tensor %s has the wrong shape (want %lld x %lld)", path, name, (long long)p->rows, (long long)p->cols);
        return NULL;
    }
    if (t->dtype != MT_ST_F32 && t->dtype != MT_ST_F64) { snprintf(err, errlen, "%s: tensor %s is not F32 or F64", path, name); return NULL; }
    // Every value must survive the load: finite, finite after narrowing to
    // the build's precision (an fp64 file into an fp32 build), and a second
    // moment never negative (AdamW takes its square root).
    int second_moment = strlen(name) > 11 && !strcmp(name + strlen(name) - 11, ".exp_avg_sq");
    for (int64_t i = 0; i < n; i++) {
        double v = t->dtype == MT_ST_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
        const char *why = !isfinite(v) ? "a non-finite value"
                          : !isfinite((real)v) ? "a value that overflows this build's " MT_PRECISION_NAME
                          : second_moment && v < 0 ? "a negative AdamW second moment"
                                                   : NULL;
        if (why) { snprintf(err, errlen, "%s: tensor %s holds %s at element %lld", path, name, why, (long long)i); return NULL; }
    }
    return t;
}

typedef struct { mt_st_file *model, *optim; char mpath[1200], opath[1200]; } open_ckpt;

// Rank 0: opens and validates everything before any rank changes a weight.
static int open_all(open_ckpt *o, const char *dir, int iter, int weights_only, const mt_config *c, const mt_param *all, int n,
                    mt_ckpt_state *st, char *err, size_t errlen) {
    char name[64];
    snprintf(name, sizeof name, "iter_%07d", iter);
    pathbuf d = join(dir, name);
    // A re-save without RENAME_EXCHANGE killed between its two renames left
    // the complete old checkpoint as iter_N.old (see install).
    struct stat sb;
    if (lstat(d.path, &sb) && errno == ENOENT) {
        pathbuf old;
        snprintf(old.path, sizeof old.path, "%s.old", d.path);
        if (!lstat(old.path, &sb) && S_ISDIR(sb.st_mode)) d = old;
    }
    snprintf(o->mpath, sizeof o->mpath, "%s/model.safetensors", d.path);
    snprintf(o->opath, sizeof o->opath, "%s/optimizer.safetensors", d.path);
    if (!(o->model = mt_st_open(o->mpath, err, errlen))) return -1;
    if (check_meta(o->model, o->mpath, c, st, err, errlen)) return -1;
    if (st->iteration != iter) { snprintf(err, errlen, "%s: holds iteration %d, the latest file says %d", o->mpath, st->iteration, iter); return -1; }
    if (weights_only) {  // the optimizer file is not read, so not required
        for (int i = 0; i < n; i++)
            if (!check_tensor(o->model, o->mpath, all[i].name, &all[i], err, errlen)) return -1;
        return 0;
    }
    if (!(o->optim = mt_st_open(o->opath, err, errlen))) return -1;
    // One save writes the same metadata into both files: an optimizer file
    // of another run, seed or iteration (copied in by hand) would resume
    // with moments that do not belong to these weights.
    meta_t keys;
    meta_make(&keys, c, *st);
    for (int i = 0; i < NMETA; i++) {
        const char *k = keys.kv[i][0], *a = mt_st_meta(o->model, k), *b = mt_st_meta(o->optim, k);
        if (!a != !b || (a && strcmp(a, b))) {
            snprintf(err, errlen, "%s: %s %s differs from %s's %s: the two files are not from one save", o->opath, k,
                     b ? b : "(absent)", o->mpath, a ? a : "(absent)");
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        char nm[160];
        if (!check_tensor(o->model, o->mpath, all[i].name, &all[i], err, errlen)) return -1;
        snprintf(nm, sizeof nm, "%s.exp_avg", all[i].name);
        if (!check_tensor(o->optim, o->opath, nm, &all[i], err, errlen)) return -1;
        snprintf(nm, sizeof nm, "%s.exp_avg_sq", all[i].name);
        if (!check_tensor(o->optim, o->opath, nm, &all[i], err, errlen)) return -1;
    }
    return 0;
}

static void to_real(real *dst, const mt_st_tensor *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = t->dtype == MT_ST_F32 ? (real)((const float *)t->data)[i] : (real)((const double *)t->data)[i];
}

int mt_ckpt_load(mt_model *m, const char *flag, const char *dir, int weights_only, mt_ckpt_state *st, char *err, size_t errlen) {
    int rank = m->par->world_rank, n, iter = 0, rc = 0;
    mt_param *all = mt_params_global(m->cfg, &n);
    open_ckpt o = {0};
    if (rank == 0) {
        rc = find_latest(flag, dir, &iter, err, errlen);
        if (rc == 1 && open_all(&o, dir, iter, weights_only, m->cfg, all, n, st, err, errlen)) rc = -1;
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(err, (int)errlen, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rc == 1) {
        MPI_Bcast(st, sizeof *st, MPI_BYTE, 0, MPI_COMM_WORLD);
        size_t maxn = 0;
        for (int i = 0; i < n; i++) maxn = MT_MAX(maxn, (size_t)(all[i].rows * all[i].cols));
        real *full = mt_malloc(maxn * sizeof(real));
        static const mt_arena arenas[3] = {MT_ARENA_PARAMS, MT_ARENA_ADAM_M, MT_ARENA_ADAM_V};
        static const char *const sfx[3] = {"", ".exp_avg", ".exp_avg_sq"};
        for (int a = 0; a < (weights_only ? 1 : 3); a++)
            for (int i = 0; i < n; i++) {
                if (rank == 0) {
                    char nm[160];
                    snprintf(nm, sizeof nm, "%s%s", all[i].name, sfx[a]);
                    to_real(full, mt_st_find(a ? o.optim : o.model, nm), (size_t)(all[i].rows * all[i].cols));
                }
                mt_shard_scatter(m, arenas[a], all[i].name, all[i].rows, all[i].cols, full);
            }
        free(full);
    }
    if (o.model) mt_st_close(o.model);
    if (o.optim) mt_st_close(o.optim);
    free(all);
    return rc;
}
