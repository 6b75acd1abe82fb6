// tools/metrics-diff: two runs' --metrics-file outputs, loss by loss, so
// "these two layouts agree to 1e-7" is one command, not a Python script.
//
//   tools/metrics-diff A.json B.json [--max-rel X] [--quiet]
//
// Each file holds one JSON object per line (pretrain_gpt --metrics-file);
// lines without "iteration" and "lm_loss" (a configuration record) are
// skipped. Iterations are matched by number. Per iteration it prints both
// losses, |A - B| and |A - B| / |B|, then the worst iteration. Exit 0; with
// --max-rel, 1 when the worst relative difference exceeds X or an iteration
// is in one file only; 2 for bad arguments or an unreadable file.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

typedef struct { long it; double loss; } mt_md_point;
typedef struct { mt_md_point *p; int n, cap; } mt_md_run;

static _Noreturn void mt_md_usage(const char *why) {
    fprintf(stderr, "metrics-diff: error: %s\nusage: tools/metrics-diff A.json B.json [--max-rel X] [--quiet] (--help)\n", why);
    exit(2);
}

// The number after "key": in a JSON line; 0 when absent.
static int mt_md_field(const char *line, const char *key, double *v) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *q = strstr(line, pat);
    if (!q) return 0;
    char *end;
    *v = strtod(q + strlen(pat), &end);
    return end != q + strlen(pat);
}

static mt_md_run mt_md_read(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "metrics-diff: error: cannot read %s: %s\n", path, strerror(errno));
        exit(2);
    }
    mt_md_run r = {0};
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        double it, loss;
        if (!mt_md_field(line, "iteration", &it) || !mt_md_field(line, "lm_loss", &loss)) continue;
        if (r.n == r.cap) {
            r.cap = r.cap ? 2 * r.cap : 64;
            r.p = realloc(r.p, sizeof *r.p * (size_t)r.cap);
            if (!r.p) { fprintf(stderr, "metrics-diff: error: out of memory\n"); exit(1); }
        }
        r.p[r.n++] = (mt_md_point){(long)it, loss};
    }
    fclose(f);
    if (r.n == 0) {
        fprintf(stderr, "metrics-diff: error: %s has no line with \"iteration\" and \"lm_loss\" (a --metrics-file output?)\n", path);
        exit(2);
    }
    return r;
}

static const mt_md_point *mt_md_find(const mt_md_run *r, long it) {
    for (int i = r->n - 1; i >= 0; i--)  // a resumed run appends: the last entry of an iteration wins
        if (r->p[i].it == it) return &r->p[i];
    return NULL;
}

int main(int argc, char **argv) {
    const char *pa = NULL, *pb = NULL;
    double max_rel = -1;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: tools/metrics-diff A.json B.json [--max-rel X] [--quiet]\n"
                   "Per-iteration loss difference of two --metrics-file outputs, and the worst one.\n"
                   "  --max-rel X   exit 1 when some |A - B| / |B| exceeds X, or an iteration is in one file only\n"
                   "  --quiet       only the summary line\n");
            return 0;
        }
        if (!strcmp(argv[i], "--quiet")) { quiet = 1; continue; }
        if (!strcmp(argv[i], "--max-rel")) {
            char *end;
            max_rel = i + 1 < argc ? strtod(argv[i + 1], &end) : -1;
            if (i + 1 >= argc || *end || !(max_rel >= 0)) mt_md_usage("--max-rel needs a number >= 0");
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            char why[256];
            snprintf(why, sizeof why, "unknown flag %s", argv[i]);
            mt_md_usage(why);
        } else if (!pa) pa = argv[i];
        else if (!pb) pb = argv[i];
        else mt_md_usage("more than two files given");
    }
    if (!pb) mt_md_usage("two metrics files are needed");
    mt_md_run a = mt_md_read(pa), b = mt_md_read(pb);
    double worst = 0, worst_abs = 0;
    long worst_it = -1;
    int matched = 0, only = 0;
    if (!quiet) printf("%9s %24s %24s %12s %12s\n", "iteration", "A lm_loss", "B lm_loss", "abs diff", "rel diff");
    for (int i = 0; i < a.n; i++) {
        if (mt_md_find(&a, a.p[i].it) != &a.p[i]) continue;  // a repeated iteration: its last entry only
        const mt_md_point *q = mt_md_find(&b, a.p[i].it);
        if (!q) { only++; continue; }
        double d = fabs(a.p[i].loss - q->loss), r = d / fabs(q->loss);
        if (d == 0) r = 0;
        matched++;
        if (!quiet) printf("%9ld %24.17g %24.17g %12.3e %12.3e\n", a.p[i].it, a.p[i].loss, q->loss, d, r);
        if (r > worst || isnan(r) || worst_it < 0) worst = isnan(r) ? INFINITY : fmax(r, worst), worst_abs = d, worst_it = a.p[i].it;
    }
    for (int i = 0; i < b.n; i++) only += !mt_md_find(&a, b.p[i].it) && mt_md_find(&b, b.p[i].it) == &b.p[i];
    printf("metrics-diff: %d iterations compared, %d in one file only; worst rel diff %.3e (abs %.3e) at iteration %ld\n",
           matched, only, worst, worst_abs, worst_it);
    int fail = max_rel >= 0 && (worst > max_rel || only || matched == 0);
    if (max_rel >= 0) printf("metrics-diff: %s (--max-rel %g)\n", fail ? "FAIL" : "ok", max_rel);
    free(a.p);
    free(b.p);
    return fail;
}
