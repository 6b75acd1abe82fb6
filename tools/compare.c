// compare: diffs two safetensors tensor dumps by name (docs/design.md §6), worst
// tensors first, so a porter sees where an implementation departs from the
// oracle rather than only that it does.
//
//   tools/compare A.safetensors B.safetensors [--top K] [--max-abs X]
//                 [--max-rel-rms Y] [--max-rel Z]
//
// B is the reference. Values of any dtype (F32 and F64 mixed freely) are
// compared in double. Per tensor:
//   max_abs  max |a - b|, and the index of that element;
//   rel_rms  sqrt(sum (a - b)^2) / max(sqrt(sum b^2), DBL_MIN): the error
//            relative to the tensor's size, meaningful even where single
//            elements are near zero;
//   max_rel  max |a - b| / max(|a|, |b|): elementwise, at most 2; elements
//            near zero make it large, which is why rel_rms is the default.
// NaN against NaN and equal infinities count as equal; any other pair with
// a non-finite value is an infinite difference.
// Slices whose gradient is identically zero are reported apart, unranked
// and unbounded: the key third of every attn.qkv.bias (and its .grad).
// Softmax is unchanged when every key of a query's row gains the same
// q . b_k, so d loss / d b_k = 0 exactly; what a run computes is round-off,
// which AdamW's m / (sqrt(v) + eps) turns into steps (up to lr once the
// noise exceeds eps), so two correct runs disagree there completely
// (max_rel near 1 or 2, rel_rms huge).
// Exit: 0 when every bound given holds (or none is given: a report only);
// 1 when one is broken, or with a bound given, when a tensor is missing on
// one side or its shape differs; 2 for bad arguments or an unreadable file.
#include "common.h"
#include "safetensors.h"
#include "input.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

typedef struct {
    const mt_st_tensor *a, *b;
    double max_abs, max_rel, rel_rms, a_worst, b_worst;
    size_t worst;       // flat index of the max_abs element
    size_t nonfinite;   // elements non-finite in either file
    size_t lo, hi;      // the elements compared: [lo, hi) ...
    size_t skip_lo, skip_hi;  // ... less [skip_lo, skip_hi)
    const char *part;   // NULL: the whole tensor; else which part this row covers
} mt_cmp_row;

typedef struct {
    int top;
    double bound[3];    // max_abs, max_rel_rms, max_rel; < 0: not given
} mt_cmp_opts;

static const char *const mt_cmp_bound_names[3] = {"max_abs", "rel_rms", "max_rel"};

#define MT_CMP_USAGE_LINE "usage: compare A.safetensors B.safetensors [--top K] [--max-abs X] [--max-rel-rms Y] [--max-rel Z]"
#define MT_CMP_USAGE MT_CMP_USAGE_LINE "\n"

static _Noreturn void mt_cmp_usage(const char *why) {
    // One line (docs/bad-input.md): the error, then the usage in brackets.
    fprintf(stderr, "compare: error: %s (" MT_CMP_USAGE_LINE ")\n", why);
    exit(MT_EXIT_USAGE);
}


// --help: what each flag means, on stdout, exit 0.
static _Noreturn void mt_cmp_help(void) {
    printf(MT_CMP_USAGE
           "Diffs two safetensors dumps by tensor name, worst first; B is the reference.\n"
           "  --top K          rows to print (default 10)\n"
           "  --max-abs X      fail (exit 1) when some tensor's max |a - b| exceeds X\n"
           "  --max-rel-rms Y  fail when some tensor's ||a - b|| / ||b|| exceeds Y\n"
           "  --max-rel Z      fail when some element's |a - b| / max(|a|, |b|) exceeds Z\n"
           "  --help           this text\n"
           "Slices whose gradient is identically zero (the key third of attn.qkv.bias)\n"
           "are listed apart, unranked: their values are round-off in both runs.\n"
           "Exit 0: every bound holds (or none given); 1: a bound broken; 2: bad arguments.\n");
    mt_stdout_done(1);
    exit(0);
}

static double mt_cmp_get(const mt_st_tensor *t, size_t i) {
    switch (t->dtype) {
    case MT_ST_F32: return ((const float *)t->data)[i];
    case MT_ST_F64: return ((const double *)t->data)[i];
    case MT_ST_I32: return ((const int32_t *)t->data)[i];
    case MT_ST_I64: return (double)((const int64_t *)t->data)[i];
    case MT_ST_BF16:
    case MT_ST_F16: return mt_st_float_at(t, i);
    }
    return NAN;
}

static void mt_cmp_stats(mt_cmp_row *r) {
    size_t n = 0;
    double ssd = 0, ssb = 0;
    r->max_abs = -1;
    for (size_t i = r->lo; i < r->hi; i++) {
        if (i >= r->skip_lo && i < r->skip_hi) continue;
        n++;
        double a = mt_cmp_get(r->a, i), b = mt_cmp_get(r->b, i), d = 0, rel = 0;
        r->nonfinite += !isfinite(a) || !isfinite(b);
        if (!(a == b || (isnan(a) && isnan(b)))) {
            d = fabs(a - b);
            d = isfinite(d) ? d : INFINITY;
            rel = isfinite(d) ? d / fmax(fabs(a), fabs(b)) : INFINITY;
        }
        ssd += d * d;
        if (isfinite(b)) ssb += b * b;
        if (d > r->max_abs) { r->max_abs = d; r->worst = i; r->a_worst = a; r->b_worst = b; }
        if (rel > r->max_rel) r->max_rel = rel;
    }
    if (n == 0) r->max_abs = 0;
    r->rel_rms = ssd == 0 ? 0 : isfinite(ssd) ? sqrt(ssd) / fmax(sqrt(ssb), DBL_MIN) : INFINITY;
}

// The key third of attn.qkv.bias (rows [q; k; v], thirds when they are
// equal): 1 and its element range, or 0.
static int mt_cmp_zero_grad_slice(const mt_st_tensor *t, size_t *lo, size_t *hi) {
    size_t n = t->nbytes / mt_st_dtype_size(t->dtype), len = strlen(t->name);
    static const char *const suffix[2] = {"attn.qkv.bias", "attn.qkv.bias.grad"};
    for (int k = 0; k < 2; k++) {
        size_t sl = strlen(suffix[k]);
        if (len >= sl && !strcmp(t->name + len - sl, suffix[k]) && t->ndim == 1 && n % 3 == 0 && n) {
            *lo = n / 3, *hi = 2 * n / 3;
            return 1;
        }
    }
    return 0;
}

static int mt_cmp_same_shape(const mt_st_tensor *a, const mt_st_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static const char *mt_cmp_shape(const mt_st_tensor *t, char *buf, size_t len) {
    int k = snprintf(buf, len, "(");
    for (int d = 0; d < t->ndim; d++)
        k += snprintf(buf + k, len - (size_t)k, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    snprintf(buf + k, len - (size_t)k, ")");
    return buf;
}

// The flat index as a row-major multi-index, e.g. [3,17].
static const char *mt_cmp_index(const mt_st_tensor *t, size_t flat, char *buf, size_t len) {
    size_t idx[MT_ST_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] ? flat % (size_t)t->shape[d] : 0;
        flat = t->shape[d] ? flat / (size_t)t->shape[d] : 0;
    }
    int k = snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim; d++) k += snprintf(buf + k, len - (size_t)k, "%s%zu", d ? "," : "", idx[d]);
    snprintf(buf + k, len - (size_t)k, "]");
    return buf;
}

// Worst first; ties (often exact zeros) by name, so the report is stable.
static int mt_cmp_by_rel_rms(const void *x, const void *y) {
    const mt_cmp_row *a = x, *b = y;
    if (a->rel_rms != b->rel_rms) return a->rel_rms < b->rel_rms ? 1 : -1;
    if (a->max_abs != b->max_abs) return a->max_abs < b->max_abs ? 1 : -1;
    return strcmp(a->a->name, b->a->name);
}

static double mt_cmp_number(const char *flag, const char *s) {
    double v = NAN;
    if (!s || mt_parse_double(s, &v) || !(v >= 0)) {
        char why[256];
        snprintf(why, sizeof why, "%s needs a finite number >= 0, got '%s'", flag, s ? s : "(nothing)");
        mt_cmp_usage(why);
    }
    return v;
}

static mt_st_file *mt_cmp_open(const char *path) {
    char err[512];
    mt_st_file *f = mt_st_open(path, err, sizeof err);
    if (!f) {
        fprintf(stderr, "compare: error: %s\n", err);
        exit(MT_EXIT_USAGE);
    }
    return f;
}

// Counts tensors of `x` missing from `y`, listing at most 20 when `print`.
static int mt_cmp_only_in(const mt_st_file *x, const mt_st_file *y, const char *side, int print) {
    int missing = 0;
    for (int i = 0; i < mt_st_count(x); i++) {
        const mt_st_tensor *t = mt_st_at(x, i);
        if (mt_st_find(y, t->name)) continue;
        if (print && missing < 20) printf("only in %s: %s\n", side, t->name);
        missing++;
    }
    if (print && missing > 20) printf("only in %s: ... and %d more\n", side, missing - 20);
    return missing;
}

static void mt_cmp_print(const mt_cmp_row *rows, int n, int top) {
    if (n == 0 || top == 0) return;
    printf("  %-10s %-10s %-10s %-14s %-14s %-14s %-16s %s\n", "rel_rms", "max_abs", "max_rel", "worst", "a", "b",
           "shape", "name");
    for (int i = 0; i < n && i < top; i++) {
        const mt_cmp_row *r = &rows[i];
        char shape[128], idx[128];
        printf("  %-10.3e %-10.3e %-10.3e %-14s %-14.7g %-14.7g %-16s %s%s%s%s\n", r->rel_rms, r->max_abs, r->max_rel,
               mt_cmp_index(r->a, r->worst, idx, sizeof idx), r->a_worst, r->b_worst,
               mt_cmp_shape(r->a, shape, sizeof shape), r->a->name, r->part ? " " : "", r->part ? r->part : "",
               r->nonfinite ? "  (non-finite values)" : "");
    }
}

// Prints each broken bound; returns how many (tensor, bound) pairs broke.
static int mt_cmp_check(const mt_cmp_row *rows, int n, const mt_cmp_opts *o) {
    int broken = 0;
    for (int i = 0; i < n; i++) {
        double got[3] = {rows[i].max_abs, rows[i].rel_rms, rows[i].max_rel};
        for (int k = 0; k < 3; k++) {
            if (o->bound[k] < 0 || got[k] <= o->bound[k]) continue;
            char idx[128];
            printf("FAIL %s: %s %.3e > %.3e (worst element %s)\n", rows[i].a->name, mt_cmp_bound_names[k], got[k],
                   o->bound[k], mt_cmp_index(rows[i].a, rows[i].worst, idx, sizeof idx));
            broken++;
        }
    }
    return broken;
}

static mt_cmp_opts mt_cmp_parse(int argc, char **argv, const char **pa, const char **pb) {
    mt_cmp_opts o = {10, {-1, -1, -1}};
    static const char *const flags[3] = {"--max-abs", "--max-rel-rms", "--max-rel"};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) mt_cmp_help();
        int k = 0;
        while (k < 3 && strcmp(argv[i], flags[k])) k++;
        if (k < 3) { o.bound[k] = mt_cmp_number(argv[i], argv[i + 1]); i++; continue; }
        if (!strcmp(argv[i], "--top")) {
            double v = mt_cmp_number("--top", argv[i + 1]);
            if (v != floor(v) || v > 1e9) mt_cmp_usage("--top needs a whole number");
            o.top = (int)v;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            char why[256];
            snprintf(why, sizeof why, "unknown flag %s", argv[i]);
            mt_cmp_usage(why);
        } else if (npos < 2) {
            (npos++ ? pb : pa)[0] = argv[i];
        } else {
            mt_cmp_usage("more than two files given");
        }
    }
    if (npos != 2) mt_cmp_usage("two files are needed");
    return o;
}

// Shape mismatches, listed after the header line; returns their count.
static int mt_cmp_shapes(const mt_st_file *fa, const mt_st_file *fb, int print) {
    int bad = 0;
    for (int i = 0; i < mt_st_count(fa); i++) {
        const mt_st_tensor *a = mt_st_at(fa, i), *b = mt_st_find(fb, a->name);
        if (!b || mt_cmp_same_shape(a, b)) continue;
        char sa[128], sb[128];
        if (print) printf("shape mismatch: %s: A %s, B %s\n", a->name, mt_cmp_shape(a, sa, sizeof sa),
                          mt_cmp_shape(b, sb, sizeof sb));
        bad++;
    }
    return bad;
}

MT_PROGRAM_NAME("compare");  // its error lines read "compare: error: ..."

int main(int argc, char **argv) {
    const char *pa = NULL, *pb = NULL;
    mt_cmp_opts o = mt_cmp_parse(argc, argv, &pa, &pb);
    mt_st_file *fa = mt_cmp_open(pa), *fb = mt_cmp_open(pb);
    int na = mt_st_count(fa), nrows = 0;
    mt_cmp_row *rows = calloc((size_t)(na ? na : 1), sizeof *rows);
    if (!rows) { fprintf(stderr, "compare: error: out of memory\n"); return MT_EXIT_FAIL; }
    mt_cmp_row *zero = calloc((size_t)(na ? na : 1), sizeof *zero);
    int nzero = 0;
    if (!zero) { fprintf(stderr, "compare: error: out of memory\n"); return MT_EXIT_FAIL; }
    for (int i = 0; i < na; i++) {
        const mt_st_tensor *a = mt_st_at(fa, i), *b = mt_st_find(fb, a->name);
        if (!b || !mt_cmp_same_shape(a, b)) continue;
        size_t n = a->nbytes / mt_st_dtype_size(a->dtype), lo, hi;
        rows[nrows] = (mt_cmp_row){.a = a, .b = b, .hi = n};
        if (mt_cmp_zero_grad_slice(a, &lo, &hi)) {
            rows[nrows].skip_lo = lo, rows[nrows].skip_hi = hi, rows[nrows].part = "(q, v)";
            zero[nzero] = (mt_cmp_row){.a = a, .b = b, .lo = lo, .hi = hi, .part = "(k)"};
            mt_cmp_stats(&zero[nzero++]);
        }
        mt_cmp_stats(&rows[nrows++]);
    }
    qsort(rows, (size_t)nrows, sizeof *rows, mt_cmp_by_rel_rms);
    int only_a = mt_cmp_only_in(fa, fb, "A", 0), only_b = mt_cmp_only_in(fb, fa, "B", 0);
    int shapes = mt_cmp_shapes(fa, fb, 0);
    printf("compare: A %s (%d tensors) vs B %s (%d tensors): %d compared, %d only in A, %d only in B, "
           "%d shape mismatches\n", pa, na, pb, mt_st_count(fb), nrows, only_a, only_b, shapes);
    mt_cmp_only_in(fa, fb, "A", 1);
    mt_cmp_only_in(fb, fa, "B", 1);
    mt_cmp_shapes(fa, fb, 1);
    mt_cmp_print(rows, nrows, o.top);
    if (nzero) {
        printf("identically zero gradient (not ranked, not bounded): the key third of attn.qkv.bias. Softmax ignores a "
               "constant added to all of a query's scores, so d loss / d b_k = 0 exactly; the runs computed round-off, "
               "which AdamW's m / (sqrt(v) + eps) turns into steps (up to lr): these values differ between correct runs.\n");
        qsort(zero, (size_t)nzero, sizeof *zero, mt_cmp_by_rel_rms);
        mt_cmp_print(zero, nzero, nzero);
    }
    int failed = 0;
    if (o.bound[0] >= 0 || o.bound[1] >= 0 || o.bound[2] >= 0) {
        int broken = mt_cmp_check(rows, nrows, &o);
        failed = broken + only_a + only_b + shapes;
        if (failed)
            printf("compare: FAIL: %d bounds broken, %d only in A, %d only in B, %d shape mismatches\n",
                   broken, only_a, only_b, shapes);
        else
            printf("compare: ok, every bound holds for all %d tensors\n", nrows);
    }
    free(rows);
    free(zero);
    mt_st_close(fa);
    mt_st_close(fb);
    mt_stdout_done(1);
    return failed ? MT_EXIT_FAIL : MT_EXIT_OK;
}
