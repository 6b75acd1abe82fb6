// outputs.c: output paths checked up front (include/outputs.h).
#include "outputs.h"

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
    char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    const char *base = basename(a);
    if (!realpath(dirname(b), dir)) snprintf(dir, sizeof dir, "%s", path);  // no directory: compared as given
    snprintf(id->where, sizeof id->where, "%s/%s", dir, base);
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

// One output: `is_dir` outputs (--save, --dump-dir, --export-hf) are
// directories made if missing; the others are files written or replaced.
static int check_one(const char *flag, const char *path, int is_dir, char *err, size_t errlen) {
    struct stat sb;
    char why[PATH_MAX + 128] = "";
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

enum { MAX_IDS = 32 };

int mt_outputs_check(const mt_config *c, int argc, char **argv, char *err, size_t errlen) {
    char tl_json[1200] = "";
    if (c->timeline[0]) mt_outputs_timeline_json(c->timeline, tl_json, sizeof tl_json);
    struct { const char *flag, *path; int is_dir; } outs[] = {
        {"--export-llmc", c->export_llmc, 0}, {"--dump-params", c->dump_params, 0}, {"--timeline", c->timeline, 0},
        {"--timeline (its .json)", tl_json, 0}, {"--metrics-file", c->metrics_file, 0},
        {"--save", c->save, 1}, {"--dump-dir", c->dump_dir, 1}, {"--export-hf", c->export_hf, 1},
    };
    enum { NOUT = sizeof outs / sizeof outs[0] };
    ident out_id[NOUT], in_id[MAX_IDS];
    int nin = 0;
    for (int i = 0; i < (int)NOUT; i++) {
        if (!outs[i].path[0]) continue;
        if (check_one(outs[i].flag, outs[i].path, outs[i].is_dir, err, errlen)) return -1;
    }
    // Inputs. --load may equal --save (resuming writes where it reads).
    char hf_cfg[1100], hf_st[1100];
    snprintf(hf_cfg, sizeof hf_cfg, "%s/config.json", c->init_from);
    snprintf(hf_st, sizeof hf_st, "%s/model.safetensors", c->init_from);
    struct { const char *flag, *path; } ins[] = {
        {"--data-path", c->data_path}, {"--train-data-path", c->train_data_path}, {"--valid-data-path", c->valid_data_path},
        {"--init-from", c->init_from}, {"--init-from", hf_cfg}, {"--init-from", hf_st}, {"--load", c->load},
    };
    for (size_t k = 0; k < sizeof ins / sizeof ins[0]; k++) {
        if (!ins[k].path[0] || (ins[k].path == hf_cfg || ins[k].path == hf_st ? !c->init_from[0] : 0)) continue;
        if ((ins[k].path == hf_cfg || ins[k].path == hf_st) && access(ins[k].path, F_OK)) continue;
        ident_of(&in_id[nin++], ins[k].flag, ins[k].path);
    }
    for (int i = 1; i + 1 < argc && nin < MAX_IDS; i++)
        if (!strcmp(argv[i], "--config") && strcmp(argv[i + 1], "-")) ident_of(&in_id[nin++], "--config", argv[i + 1]);
    for (int i = 0; i < (int)NOUT; i++) {
        if (!outs[i].path[0]) continue;
        ident_of(&out_id[i], outs[i].flag, outs[i].path);
        for (int k = 0; k < nin; k++) {
            if (!same(&out_id[i], &in_id[k])) continue;
            if (!strcmp(outs[i].flag, "--save") && !strcmp(in_id[k].flag, "--load")) continue;
            snprintf(err, errlen, "%s %s is the input %s %s: refusing to overwrite an input", outs[i].flag, outs[i].path,
                     in_id[k].flag, in_id[k].path);
            return -1;
        }
        for (int j = 0; j < i; j++) {
            if (!outs[j].path[0] || !same(&out_id[i], &out_id[j])) continue;
            snprintf(err, errlen, "%s %s and %s %s are the same file: one would overwrite the other", outs[j].flag,
                     outs[j].path, outs[i].flag, outs[i].path);
            return -1;
        }
    }
    return 0;
}
