// outputs.c: output paths checked up front (include/outputs.h).
#include "outputs.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// A path's identity: device and inode when it exists; else the resolved
// directory and the last component, so "x.json" and "./x.json" match too.
typedef struct {
    const char *flag, *path;
    int exists;
    dev_t dev;
    ino_t ino;
    char where[PATH_MAX + 256];
} ident;

// path's directory resolved, its last name kept: the name a writer
// replaces (a link there is replaced, not followed).
static void resolve_name(const char *path, char *out, size_t outlen) {
    char r[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    const char *base = basename(a);
    if (realpath(dirname(b), r)) snprintf(out, outlen, "%s/%s", r, base);
    else snprintf(out, outlen, "%s", path);  // no directory: compared as given
}

static void ident_of(ident *id, const char *flag, const char *path) {
    struct stat sb;
    memset(id, 0, sizeof *id);
    id->flag = flag;
    id->path = path;
    if (stat(path, &sb) == 0) {
        id->exists = 1;
        id->dev = sb.st_dev;
        id->ino = sb.st_ino;
        return;
    }
    resolve_name(path, id->where, sizeof id->where);
}

static int same(const ident *x, const ident *y) {
    if (x->exists != y->exists) return 0;
    return x->exists ? x->dev == y->dev && x->ino == y->ino : !strcmp(x->where, y->where);
}

// Whether a new file can be made in dir. First an unnamed O_TMPFILE file:
// it never has a name, so a run killed here leaves nothing behind. Where the
// file system lacks O_TMPFILE, a fresh name created with O_EXCL (mkstemp)
// and removed; nothing that was there before is touched either way.
static int probe_dir(const char *dir, char *why, size_t whylen) {
#ifdef O_TMPFILE
    int tfd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (tfd >= 0) { close(tfd); return 0; }
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        snprintf(why, whylen, "cannot create files in %s (%s)", dir, strerror(errno));
        return -1;
    }
#endif
    char name[PATH_MAX];
    if ((size_t)snprintf(name, sizeof name, "%s/.mt-probe-XXXXXX", dir) >= sizeof name) {
        snprintf(why, whylen, "path too long");
        return -1;
    }
    int fd = mkstemp(name);
    if (fd < 0) { snprintf(why, whylen, "cannot create files in %s (%s)", dir, strerror(errno)); return -1; }
    close(fd);
    unlink(name);
    return 0;
}

// Whether dir is top or inside it (by component: /devel is not /dev).
static int under(const char *dir, const char *top) {
    size_t n = strlen(top);
    return !strncmp(dir, top, n) && (dir[n] == 0 || dir[n] == '/');
}

// A file output named by a symbolic link: the writer makes the file beside
// the path and renames it over the link, so the link is replaced and what it
// points to never written (suite_save_faults). Refused where that is not
// what anyone means: a link to a device, FIFO or socket; a link into /proc
// or one living in /dev or /proc (/dev/stdout -> /proc/self/fd/1: replacing
// it would change the system, whatever stdout is). (--metrics-file, appended
// in place, takes no link at all: mt_outputs_check.)
static int link_refused(const char *flag, const char *path, const struct stat *target, char *err, size_t errlen) {
    if (S_ISDIR(target->st_mode)) return 0;  // check_one says "is a directory"
    char to[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    ssize_t n = readlink(path, to, sizeof to - 1);
    to[n > 0 ? n : 0] = 0;
    snprintf(b, sizeof b, "%s", path);
    if (!realpath(dirname(b), dir)) dir[0] = 0;
    const char *why = !S_ISREG(target->st_mode) ? "a symbolic link to a device, FIFO or socket (never replaced)"
                      : !strncmp(to, "/proc/", 6) || under(dir, "/proc") || under(dir, "/dev")
                          ? "a system link to a file descriptor or device (never replaced)"
                          : NULL;
    if (why) snprintf(err, errlen, "%s %s: %s", flag, path, why);
    return why != NULL;
}

// One output: `is_dir` outputs (--save, --dump-dir, --export-hf) are
// directories made if missing; the others are files written or replaced.
static int check_one(const char *flag, const char *path, int is_dir, char *err, size_t errlen) {
    struct stat sb, lsb;
    char why[PATH_MAX + 128] = "";
    // lstat("link/") follows the link: look at the name without its slashes.
    char bare[PATH_MAX];
    snprintf(bare, sizeof bare, "%s", path);
    for (size_t n = strlen(bare); n > 1 && bare[n - 1] == '/'; n--) bare[n - 1] = 0;
    int linked = lstat(bare, &lsb) == 0 && S_ISLNK(lsb.st_mode);
    if (linked && stat(path, &sb) != 0) {
        // mkdir or the writer's rename would meet the link itself: refused
        // before any work, not after the run.
        snprintf(err, errlen, "%s %s: a symbolic link to nothing (%s)", flag, path, strerror(errno));
        return -1;
    }
    if (linked && !is_dir && link_refused(flag, path, &sb, err, errlen)) return -1;
    if (stat(path, &sb) == 0) {
        if (is_dir && !S_ISDIR(sb.st_mode)) snprintf(why, sizeof why, "exists and is not a directory");
        else if (!is_dir && S_ISDIR(sb.st_mode)) snprintf(why, sizeof why, "is a directory, expected a file name");
        else if (!is_dir && !S_ISREG(sb.st_mode))
            snprintf(why, sizeof why, "exists and is not a regular file (a device, FIFO or socket is never replaced)");
        else if (is_dir) probe_dir(path, why, sizeof why);
    } else if (errno != ENOENT) {
        snprintf(why, sizeof why, "%s", strerror(errno));
    }
    if (!why[0] && (is_dir ? stat(path, &sb) != 0 : 1)) {
        // The file (or the directory to make) goes into its parent.
        char b[PATH_MAX];
        snprintf(b, sizeof b, "%s", path);
        const char *dir = dirname(b);
        if (stat(dir, &sb) != 0) snprintf(why, sizeof why, "its directory %s does not exist", dir);
        else if (!S_ISDIR(sb.st_mode)) snprintf(why, sizeof why, "%s is not a directory", dir);
        else probe_dir(dir, why, sizeof why);
    }
    if (why[0]) { snprintf(err, errlen, "%s %s: %s", flag, path, why); return -1; }
    return 0;
}

void mt_outputs_timeline_json(const char *path, char *out, size_t outlen) {
    snprintf(out, outlen, "%s", path);
    char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".svg")) snprintf(dot, outlen - (size_t)(dot - out), ".json");
    else strncat(out, ".json", outlen - strlen(out) - 1);
}

// ---- directories and the files they own ---------------------------------------
// A directory input or output owns names inside it: a checkpoint (--load,
// --save) its latest file and iter_* (and the save's dot-temporaries), a
// Hugging Face directory (--init-from DIR, --export-hf) config.json and its
// .safetensors files, --dump-dir its step_*.safetensors. No file output, no
// file input of an output directory, and no other output directory may
// sit on such a name: metrics appended to latest_checkpointed_iteration.txt
// or an export over iter_N/model.safetensors lose the checkpoint.
typedef enum { OWN_CKPT, OWN_HF, OWN_DUMP } own_kind;
typedef struct {
    const char *flag, *path;
    own_kind kind;
    int output;
    char dir[PATH_MAX];  // resolved
} owner;

// path resolved through every link when it exists (what is read, or the
// directory written into), else as resolve_name.
static void resolve(const char *path, char *out, size_t outlen) {
    char r[PATH_MAX];
    if (realpath(path, r)) snprintf(out, outlen, "%s", r);
    else resolve_name(path, out, outlen);
}

static int starts(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

// Whether the resolved path `p` is a name `o` owns.
static int owned(const owner *o, const char *p) {
    size_t n = strlen(o->dir);
    if (strncmp(p, o->dir, n) || p[n] != '/' || !p[n + 1]) return 0;
    const char *rel = p + n + 1;
    int top = !strchr(rel, '/');
    const char *dot = strrchr(rel, '.');
    switch (o->kind) {
    case OWN_CKPT:
        return (starts(rel, "iter_") && rel[5] >= '0' && rel[5] <= '9') || starts(rel, ".iter_") ||
               starts(rel, "latest_checkpointed_iteration.txt") ||
               starts(rel, ".latest_checkpointed_iteration.txt");
    case OWN_HF:
        return top && (!strcmp(rel, "config.json") || (dot && !strcmp(dot, ".safetensors")) ||
                       !strcmp(rel, "model.safetensors.index.json"));
    case OWN_DUMP:
        return top && starts(rel, "step_") && dot && !strcmp(dot, ".safetensors");
    }
    return 0;
}

static int add_owner(owner *o, const char *flag, const char *path, own_kind kind, int output) {
    struct stat sb;
    if (!path[0] || (!output && (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)))) return 0;
    o->flag = flag, o->path = path, o->kind = kind, o->output = output;
    resolve(path, o->dir, sizeof o->dir);
    return 1;
}

// Refuses `path` (given as flag) when a directory owns it: any directory
// for outputs, output directories for inputs. `self` is path's own entry.
// A file output is judged by its name (the writer replaces that name, link
// or not), an output directory by where it leads, an input both ways (its
// name may be replaced under it, or what it leads to).
static int check_owned(const owner *own, int nown, const owner *self, const char *flag, const char *path, int output,
                       int is_dir, char *err, size_t errlen) {
    char p[PATH_MAX + 256], q[PATH_MAX + 256];
    resolve_name(path, p, sizeof p);
    resolve(path, q, sizeof q);
    for (int k = 0; k < nown; k++) {
        if (&own[k] == self || (!output && !own[k].output)) continue;
        int hit = output ? owned(&own[k], is_dir ? q : p) : owned(&own[k], p) || owned(&own[k], q);
        if (!hit) continue;
        snprintf(err, errlen, "%s %s is inside %s %s, among the files it %s: refusing to %s", flag, path, own[k].flag,
                 own[k].path, own[k].output ? "writes" : "reads", output ? "overwrite them" : "let the output overwrite an input");
        return -1;
    }
    return 0;
}

int mt_outputs_check(const mt_config *c, int argc, char **argv, char *err, size_t errlen) {
    char tl_json[1200] = "";
    if (c->timeline[0]) mt_outputs_timeline_json(c->timeline, tl_json, sizeof tl_json);
    struct { const char *flag, *path; int is_dir; } outs[] = {
        {"--export-llmc", c->export_llmc, 0}, {"--dump-params", c->dump_params, 0}, {"--timeline", c->timeline, 0},
        {"--timeline (its .json)", tl_json, 0}, {"--metrics-file", c->metrics_file, 0},
        {"--save", c->save, 1}, {"--dump-dir", c->dump_dir, 1}, {"--export-hf", c->export_hf, 1},
    };
    enum { NOUT = sizeof outs / sizeof outs[0] };
    for (int i = 0; i < (int)NOUT; i++) {
        if (!outs[i].path[0]) continue;
        if (check_one(outs[i].flag, outs[i].path, outs[i].is_dir, err, errlen)) return -1;
    }
    // A resumed run appends to --metrics-file in place, so through a link it
    // would write where the link points: name the file itself.
    struct stat lsb;
    if (c->metrics_file[0] && lstat(c->metrics_file, &lsb) == 0 && S_ISLNK(lsb.st_mode)) {
        snprintf(err, errlen, "--metrics-file %s: a symbolic link; a resumed run appends in place, through the link: "
                              "name the file itself", c->metrics_file);
        return -1;
    }
    // An export beside a sharded model would leave its index, which readers
    // prefer to model.safetensors: the old model would load.
    char idx[1200];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", c->export_hf);
    if (c->export_hf[0] && access(idx, F_OK) == 0) {
        snprintf(err, errlen, "--export-hf %s: holds a sharded model (model.safetensors.index.json) that the export "
                              "would not replace; export into an empty directory", c->export_hf);
        return -1;
    }
    // Inputs. --load may equal --save (resuming writes where it reads).
    char hf_cfg[1100], hf_st[1100];
    snprintf(hf_cfg, sizeof hf_cfg, "%s/config.json", c->init_from);
    snprintf(hf_st, sizeof hf_st, "%s/model.safetensors", c->init_from);
    struct { const char *flag, *path; } ins[] = {
        {"--data-path", c->data_path}, {"--train-data-path", c->train_data_path}, {"--valid-data-path", c->valid_data_path},
        {"--init-from", c->init_from}, {"--init-from", hf_cfg}, {"--init-from", hf_st}, {"--load", c->load},
        {"--pretrained-checkpoint", c->pretrained},
    };
    enum { NINS = sizeof ins / sizeof ins[0] };
    int nconf = 0;
    for (int i = 1; i + 1 < argc; i++) nconf += !strcmp(argv[i], "--config") && strcmp(argv[i + 1], "-");
    ident *in_id = mt_malloc((NINS + (size_t)nconf) * sizeof *in_id), out_id[NOUT];
    int nin = 0, bad = -1;
    for (size_t k = 0; k < NINS; k++) {
        if (!ins[k].path[0] || (ins[k].path == hf_cfg || ins[k].path == hf_st ? !c->init_from[0] : 0)) continue;
        if ((ins[k].path == hf_cfg || ins[k].path == hf_st) && access(ins[k].path, F_OK)) continue;
        ident_of(&in_id[nin++], ins[k].flag, ins[k].path);
    }
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") && strcmp(argv[i + 1], "-")) ident_of(&in_id[nin++], "--config", argv[i + 1]);
    for (int i = 0; i < (int)NOUT; i++) {
        if (!outs[i].path[0]) continue;
        ident_of(&out_id[i], outs[i].flag, outs[i].path);
        for (int k = 0; k < nin; k++) {
            if (!same(&out_id[i], &in_id[k])) continue;
            // Resuming saves where it loaded; a run that loads the weights
            // alone must not: relaunched, it would read its own checkpoint
            // as the one to start from (fine-tuning again from iteration 0,
            // or AdamW restarted again), and a --finetune save replaces the
            // checkpoint it started from.
            if (!strcmp(outs[i].flag, "--save") && !strcmp(in_id[k].flag, "--load") && !c->finetune && !c->no_load_optim) continue;
            if (!strcmp(outs[i].flag, "--save") && !strcmp(in_id[k].flag, "--load")) {
                snprintf(err, errlen, "--save %s is --load's directory: with %s a relaunch would start again from this run's own "
                                      "checkpoint; save elsewhere (and resume from there without the flag), or give "
                                      "--pretrained-checkpoint DIR with --load and --save the same",
                         outs[i].path, c->finetune ? "--finetune" : "--no-load-optim");
                goto out;
            }
            snprintf(err, errlen, "%s %s is the input %s %s: refusing to overwrite an input", outs[i].flag, outs[i].path,
                     in_id[k].flag, in_id[k].path);
            goto out;
        }
        for (int j = 0; j < i; j++) {
            if (!outs[j].path[0] || !same(&out_id[i], &out_id[j])) continue;
            snprintf(err, errlen, "%s %s and %s %s are the same file: one would overwrite the other", outs[j].flag,
                     outs[j].path, outs[i].flag, outs[i].path);
            goto out;
        }
    }
    // Names owned by directories (see owned()).
    owner own[6];
    int nown = 0;
    nown += add_owner(&own[nown], "--load", c->load, OWN_CKPT, 0);
    nown += add_owner(&own[nown], "--pretrained-checkpoint", c->pretrained, OWN_CKPT, 0);
    nown += add_owner(&own[nown], "--init-from", c->init_from, OWN_HF, 0);
    nown += add_owner(&own[nown], "--save", c->save, OWN_CKPT, 1);
    nown += add_owner(&own[nown], "--export-hf", c->export_hf, OWN_HF, 1);
    nown += add_owner(&own[nown], "--dump-dir", c->dump_dir, OWN_DUMP, 1);
    for (int i = 0; i < (int)NOUT; i++) {
        if (!outs[i].path[0]) continue;
        const owner *self = NULL;
        for (int k = 0; k < nown; k++)
            if (own[k].output && own[k].path == outs[i].path) self = &own[k];
        if (check_owned(own, nown, self, outs[i].flag, outs[i].path, 1, outs[i].is_dir, err, errlen)) goto out;
    }
    for (int k = 0; k < nin; k++)
        if (check_owned(own, nown, NULL, in_id[k].flag, in_id[k].path, 0, 0, err, errlen)) goto out;
    bad = 0;
out:
    free(in_id);
    return bad;
}
