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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "input.h"
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

// One metrics line: its iteration, loss, and line number (the order of the
// file: a resumed run appends, and the last entry of an iteration wins).
typedef struct { long it; double loss; size_t line; } mt_md_point;
typedef struct { mt_md_point *p; size_t n, cap; } mt_md_run;

// One error line on stderr, whatever a path holds (a newline in a file name
// becomes '?', as in the trainer's lines), then exit with `code`.
static _Noreturn __attribute__((format(printf, 2, 3))) void mt_md_fail(int code, const char *fmt, ...) {
    char line[1024];
    int o = snprintf(line, sizeof line, "metrics-diff: error: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + o, sizeof line - (size_t)o, fmt, ap);
    va_end(ap);
    for (char *q = line; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    fprintf(stderr, "%s\n", line);
    exit(code);
}

static _Noreturn void mt_md_usage(const char *why) {
    mt_md_fail(MT_EXIT_USAGE, "%s (usage: tools/metrics-diff A.json B.json [--max-rel X] [--quiet]; --help)", why);
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

static void mt_md_push(mt_md_run *r, mt_md_point p) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->p = realloc(r->p, sizeof *r->p * r->cap);
        if (!r->p) mt_md_fail(MT_EXIT_FAIL, "out of memory");
    }
    r->p[r->n++] = p;
}

// Metrics lines are a few hundred bytes: a longer one (or a file of binary
// junk without newlines) is no metrics line; its rest is read and dropped,
// so it never yields a second, misparsed "line".
static int mt_md_skip_long(FILE *f, const char *line) {
    if (strchr(line, '\n') || feof(f)) return 0;
    int ch;
    while ((ch = getc(f)) != EOF && ch != '\n') {}
    return 1;
}

// A regular file only (input.h): a FIFO or /dev/zero would block or never
// end, a directory is no metrics file. A bad file is exit 2, a read error 1.
static mt_md_run mt_md_read(const char *path) {
    char err[1200];
    struct stat sb;
    int fd = mt_input_open(path, "", &sb, err, sizeof err);
    if (fd < 0) mt_md_fail(MT_EXIT_USAGE, "%s", err);
    FILE *f = fdopen(fd, "r");
    if (!f) mt_md_fail(MT_EXIT_FAIL, "%s: %s", path, strerror(errno));
    mt_md_run r = {0};
    char line[8192];
    for (size_t no = 1; fgets(line, sizeof line, f); no++) {
        double it, loss;
        if (mt_md_skip_long(f, line)) continue;
        if (!mt_md_field(line, "iteration", &it) || !mt_md_field(line, "lm_loss", &loss)) continue;
        // The cast below is undefined for nan or 1e300: refuse such a number.
        if (!(it >= 0 && it <= 1e15 && it == floor(it)))
            mt_md_fail(MT_EXIT_USAGE, "%s:%zu: iteration %g is not a whole number in [0, 1e15]", path, no, it);
        mt_md_push(&r, (mt_md_point){(long)it, loss, no});
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) mt_md_fail(MT_EXIT_FAIL, "%s: read error", path);
    if (r.n == 0)
        mt_md_fail(MT_EXIT_USAGE, "%s has no line with \"iteration\" and \"lm_loss\" (a --metrics-file output?)", path);
    return r;
}

static int mt_md_by_it_then_line(const void *x, const void *y) {
    const mt_md_point *a = x, *b = y;
    if (a->it != b->it) return a->it < b->it ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

static int mt_md_by_line(const void *x, const void *y) {
    const mt_md_point *a = x, *b = y;
    return a->line < b->line ? -1 : a->line > b->line;
}

// Sorts by iteration and keeps each iteration's last entry (a resumed run
// appends): afterwards lookups are binary searches, so matching two files
// of n lines is n log n, not n^2.
static void mt_md_last_per_iteration(mt_md_run *r) {
    qsort(r->p, r->n, sizeof *r->p, mt_md_by_it_then_line);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (k && r->p[k - 1].it == r->p[i].it) k--;  // a later entry of the same iteration replaces it
        r->p[k++] = r->p[i];
    }
    r->n = k;
}

static const mt_md_point *mt_md_find(const mt_md_run *r, long it) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->p[mid].it < it) lo = mid + 1;
        else hi = mid;
    }
    return lo < r->n && r->p[lo].it == it ? &r->p[lo] : NULL;
}

MT_PROGRAM_NAME("metrics-diff");  // its error lines read "metrics-diff: error: ..."

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
            mt_stdout_done(1);
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
    mt_md_last_per_iteration(&a);
    mt_md_last_per_iteration(&b);
    // A's rows print in its file's order, as the run logged them.
    mt_md_point *rows = malloc(sizeof *rows * a.n);
    if (!rows) mt_md_fail(MT_EXIT_FAIL, "out of memory");
    memcpy(rows, a.p, sizeof *rows * a.n);
    qsort(rows, a.n, sizeof *rows, mt_md_by_line);
    double worst = 0, worst_abs = 0;
    long worst_it = -1;
    size_t matched = 0, only = 0;
    if (!quiet) printf("%9s %24s %24s %12s %12s\n", "iteration", "A lm_loss", "B lm_loss", "abs diff", "rel diff");
    for (size_t i = 0; i < a.n; i++) {
        const mt_md_point *p = &rows[i], *q = mt_md_find(&b, p->it);
        if (!q) { only++; continue; }
        double d = fabs(p->loss - q->loss), r = d / fabs(q->loss);
        if (d == 0) r = 0;
        matched++;
        if (!quiet) printf("%9ld %24.17g %24.17g %12.3e %12.3e\n", p->it, p->loss, q->loss, d, r);
        if (r > worst || isnan(r) || worst_it < 0) worst = isnan(r) ? INFINITY : fmax(r, worst), worst_abs = d, worst_it = p->it;
    }
    for (size_t i = 0; i < b.n; i++) only += !mt_md_find(&a, b.p[i].it);
    printf("metrics-diff: %zu iterations compared, %zu in one file only; worst rel diff %.3e (abs %.3e) at iteration %ld\n",
           matched, only, worst, worst_abs, worst_it);
    int fail = max_rel >= 0 && (worst > max_rel || only || matched == 0);
    if (max_rel >= 0) printf("metrics-diff: %s (--max-rel %g)\n", fail ? "FAIL" : "ok", max_rel);
    free(rows);
    free(a.p);
    free(b.p);
    mt_stdout_done(1);
    return fail;
}
