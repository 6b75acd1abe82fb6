// safetensors.c: the strict reader of safetensors.h (the writer is
// safetensors_write.c), and the helpers both share.
//
// The header parser is schema-directed rather than a general JSON parser:
// the only nesting the format has is header -> tensor -> array, so the parser
// never recurses, has no depth to bound, and refuses any key or value type
// the format does not define. Every read is checked against the end of the
// header buffer, so any bytes (libFuzzer's included) give a clean error.
#include "safetensors_internal.h"
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this file assumes a little-endian host"
#endif

// The reference library refuses headers past 100 MB; so do we, so that a
// corrupt length can never make us parse a huge header.
#define ST_MAX_HEADER 100000000ull

typedef struct { char *key, *val; } st_meta;

struct mt_st_file {
    unsigned char *buf;        // the whole file
    unsigned char *aligned;    // copies of tensors misaligned in buf, or NULL
    int n, nmeta;
    mt_st_tensor *t;           // (n) in data-offset order
    const mt_st_tensor **by_name;  // (n) sorted by name, for mt_st_find
    st_meta *meta;             // (nmeta) sorted by key
};

// ---------------------------------------------------------------- common

int st_fail(const st_ctx *c, const char *fmt, ...) {
    if (c->err && c->errlen) {
        int k = snprintf(c->err, c->errlen, "%s: ", c->src);
        if (k >= 0 && (size_t)k < c->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
        // A name from the file may hold any byte once its JSON escapes are
        // decoded ("\n"): the message stays one printable line (found by
        // tests/fuzz/fuzz_generate.c).
        for (char *q = c->err; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    }
    return -1;
}

size_t mt_st_dtype_size(mt_st_dtype d) {
    return d == MT_ST_F64 || d == MT_ST_I64 ? 8 : d == MT_ST_BF16 || d == MT_ST_F16 ? 2 : 4;
}

static const char *const st_dtype_names[MT_ST_NDTYPES] = {"F32", "F64", "I32", "I64", "BF16", "F16"};

const char *mt_st_dtype_name(mt_st_dtype d) {
    return (unsigned)d < MT_ST_NDTYPES ? st_dtype_names[d] : "?";
}

// IEEE half: sign, 5-bit exponent (bias 15), 10-bit fraction.
static double half_to_double(uint16_t h) {
    int e = h >> 10 & 0x1F, f = h & 0x3FF;
    double v = e == 0 ? ldexp(f, -24) : e == 31 ? (f ? NAN : INFINITY) : ldexp(f + 1024, e - 25);
    return h >> 15 ? -v : v;
}

double mt_st_float_at(const mt_st_tensor *t, size_t i) {
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case MT_ST_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case MT_ST_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case MT_ST_BF16: {  // the high half of an fp32
        uint32_t u = (uint32_t)p[2 * i] << 16 | (uint32_t)p[2 * i + 1] << 24;
        float v;
        memcpy(&v, &u, 4);
        return v;
    }
    case MT_ST_F16: return half_to_double((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    default: return NAN;
    }
}

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF): JSON requires
// it, and PyTorch's reader would refuse a file whose names break it.
int st_utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1
                 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
        if (k == 9 || k > n - i - 1) return 0;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += k + 1;
    }
    return 1;
}

// product(shape) * element size, or -1 on overflow or a negative dim.
int st_shape_bytes(const int64_t *shape, int ndim, mt_st_dtype d, size_t *out) {
    size_t bytes = mt_st_dtype_size(d);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && bytes > SIZE_MAX / (uint64_t)shape[i]) return -1;
        bytes *= (size_t)shape[i];
    }
    *out = bytes;
    return 0;
}

// ---------------------------------------------------------------- JSON lexer

typedef struct {
    const char *p, *beg, *end;  // cursor within the header bytes
    const st_ctx *c;
} st_lex;

static int lx_fail(st_lex *x, const char *what) {
    return st_fail(x->c, "bad header JSON at byte %zu: %s", (size_t)(x->p - x->beg), what);
}

// Next non-whitespace byte (not consumed), or -1 at the end of the header.
static int lx_peek(st_lex *x) {
    while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r'))
        x->p++;
    return x->p < x->end ? (unsigned char)*x->p : -1;
}

static int lx_expect(st_lex *x, char ch, const char *what) {
    if (lx_peek(x) != ch) return lx_fail(x, what);
    x->p++;
    return 0;
}

// After an element: ',' (returns 1, more follow) or `close` (returns 0).
static int lx_next(st_lex *x, char close) {
    int ch = lx_peek(x);
    if (ch == ',') { x->p++; return 1; }
    if (ch == close) { x->p++; return 0; }
    return lx_fail(x, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static int lx_hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        unsigned d = h >= '0' && h <= '9' ? (unsigned)(h - '0')
                   : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                   : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10) : 16;
        if (d == 16) return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static size_t lx_put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Decodes a \uXXXX escape (p just past the 'u', q the closing quote),
// pairing surrogates. \u0000 is refused: our strings are C strings.
static int lx_unicode(st_lex *x, const char **pp, const char *q, unsigned *cp) {
    const char *p = *pp;
    if (q - p < 4 || lx_hex4(p, cp)) return lx_fail(x, "bad \\u escape");
    p += 4;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return lx_fail(x, "unpaired surrogate in \\u escape");
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        unsigned lo;
        if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || lx_hex4(p + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return lx_fail(x, "unpaired surrogate in \\u escape");
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    }
    if (*cp == 0) return lx_fail(x, "\\u0000 in a string");
    *pp = p;
    return 0;
}

// A string, decoded into a fresh NUL-terminated allocation (*out).
// Decoding never grows the text, so the raw length bounds the allocation.
static int lx_string(st_lex *x, char **out) {
    *out = NULL;
    if (lx_peek(x) != '"') return lx_fail(x, "expected a string");
    const char *s = ++x->p, *q = s;
    while (q < x->end && *q != '"') {
        if (*q == '\\' && q + 1 >= x->end) { q = x->end; break; }
        q += *q == '\\' ? 2 : 1;
    }
    if (q >= x->end) return lx_fail(x, "unterminated string");
    char *o = malloc((size_t)(q - s) + 1);
    if (!o) return st_fail(x->c, "out of memory");
    size_t n = 0;
    for (const char *p = s; p < q;) {
        unsigned char ch = (unsigned char)*p++;
        x->p = p - 1;
        if (ch < 0x20) { free(o); return lx_fail(x, "control character in a string"); }
        if (ch != '\\') { o[n++] = (char)ch; continue; }
        char e = *p++;  // the scan above guarantees it lies before q
        const char *simple = strchr("\"\\/bfnrt", e), *to = "\"\\/\b\f\n\r\t";
        if (e && simple) { o[n++] = to[simple - "\"\\/bfnrt"]; continue; }
        unsigned cp;
        if (e != 'u') { free(o); return lx_fail(x, "bad escape in a string"); }
        if (lx_unicode(x, &p, q, &cp)) { free(o); return -1; }
        n += lx_put_utf8(o + n, cp);
    }
    o[n] = 0;
    x->p = q + 1;
    *out = o;
    return 0;
}

// A non-negative JSON integer (no sign, fraction, exponent or leading zero:
// offsets and dims are counts, and anything else is a corrupt header).
static int lx_uint(st_lex *x, uint64_t *v) {
    int ch = lx_peek(x);
    if (ch < '0' || ch > '9') return lx_fail(x, "expected a non-negative integer");
    if (ch == '0' && x->p + 1 < x->end && x->p[1] >= '0' && x->p[1] <= '9')
        return lx_fail(x, "integer with a leading zero");
    *v = 0;
    while (x->p < x->end && *x->p >= '0' && *x->p <= '9') {
        unsigned d = (unsigned)(*x->p - '0');
        if (*v > (UINT64_MAX - d) / 10) return lx_fail(x, "integer too large");
        *v = *v * 10 + d;
        x->p++;
    }
    if (x->p < x->end && (*x->p == '.' || *x->p == 'e' || *x->p == 'E'))
        return lx_fail(x, "expected an integer, found a fraction or exponent");
    return 0;
}

// [u, u, ...] with at most `max` entries; *n receives the count.
static int lx_uint_array(st_lex *x, uint64_t *v, int max, int *n, const char *too_many) {
    *n = 0;
    if (lx_expect(x, '[', "expected '['")) return -1;
    if (lx_peek(x) == ']') { x->p++; return 0; }
    for (int more = 1; more == 1;) {
        if (*n == max) return lx_fail(x, too_many);
        if (lx_uint(x, &v[(*n)++])) return -1;
        more = lx_next(x, ']');
        if (more < 0) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- header

typedef struct { uint64_t begin, end; int idx; } st_span;

typedef struct {
    mt_st_tensor *t;
    st_span *span;  // data_offsets of t[i], parallel to t
    int n, cap;
    st_meta *meta;
    int nmeta, meta_cap, have_meta;
} st_header;

static int st_parse_dtype(st_lex *x, const char *name, mt_st_dtype *d) {
    char *s;
    if (lx_string(x, &s)) return -1;
    for (int i = 0; i < MT_ST_NDTYPES; i++)
        if (!strcmp(s, st_dtype_names[i])) { *d = (mt_st_dtype)i; free(s); return 0; }
    st_fail(x->c, "tensor '%s': unsupported dtype '%.32s' (known: F32, F64, I32, I64, BF16, F16)", name, s);
    free(s);
    return -1;
}

// {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, each exactly once.
static int st_parse_tensor(st_lex *x, mt_st_tensor *t, st_span *span) {
    int seen[3] = {0, 0, 0}, more = 1;
    if (lx_expect(x, '{', "expected '{' for a tensor entry")) return -1;
    if (lx_peek(x) == '}') { x->p++; more = 0; }
    while (more == 1) {
        char *key;
        if (lx_string(x, &key)) return -1;
        int k = !strcmp(key, "dtype") ? 0 : !strcmp(key, "shape") ? 1
              : !strcmp(key, "data_offsets") ? 2 : -1;
        if (k < 0 || seen[k]) {
            st_fail(x->c, k < 0 ? "tensor '%s': unknown key '%.32s'" : "tensor '%s': key '%.32s' appears twice",
                    t->name, key);
            free(key);
            return -1;
        }
        free(key);
        seen[k] = 1;
        if (lx_expect(x, ':', "expected ':'")) return -1;
        uint64_t v[MT_ST_MAX_DIMS];
        int nv;
        if (k == 0 && st_parse_dtype(x, t->name, &t->dtype)) return -1;
        if (k == 1) {
            if (lx_uint_array(x, v, MT_ST_MAX_DIMS, &nv, "a shape has more than 4 dims")) return -1;
            t->ndim = nv;
            for (int i = 0; i < nv; i++) {
                if (v[i] > INT64_MAX) return st_fail(x->c, "tensor '%s': dim too large", t->name);
                t->shape[i] = (int64_t)v[i];
            }
        }
        if (k == 2) {
            if (lx_uint_array(x, v, 2, &nv, "data_offsets has more than 2 entries")) return -1;
            if (nv != 2) return st_fail(x->c, "tensor '%s': data_offsets needs 2 entries", t->name);
            span->begin = v[0];
            span->end = v[1];
        }
        if ((more = lx_next(x, '}')) < 0) return -1;
    }
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    for (int k = 0; k < 3; k++)
        if (!seen[k]) return st_fail(x->c, "tensor '%s': missing \"%s\"", t->name, keys[k]);
    return 0;
}

// "__metadata__": {"key": "value", ...}; values must be strings.
static int st_parse_meta(st_lex *x, st_header *h) {
    if (h->have_meta++) return st_fail(x->c, "\"__metadata__\" appears twice");
    if (lx_expect(x, '{', "expected '{' for __metadata__")) return -1;
    if (lx_peek(x) == '}') { x->p++; return 0; }
    for (int more = 1; more == 1;) {
        if (h->nmeta == h->meta_cap) {
            int cap = h->meta_cap ? 2 * h->meta_cap : 8;
            st_meta *m = realloc(h->meta, (size_t)cap * sizeof *m);
            if (!m) return st_fail(x->c, "out of memory");
            h->meta = m;
            h->meta_cap = cap;
        }
        st_meta *m = &h->meta[h->nmeta];
        m->val = NULL;
        if (lx_string(x, &m->key)) return -1;
        h->nmeta++;  // owns key now, so st_header_free releases it
        if (lx_expect(x, ':', "expected ':'")) return -1;
        if (lx_peek(x) != '"')
            return st_fail(x->c, "metadata value for '%.64s' is not a string", m->key);
        if (lx_string(x, &m->val)) return -1;
        if ((more = lx_next(x, '}')) < 0) return -1;
    }
    return 0;
}

static int st_header_grow(st_header *h, const st_ctx *c) {
    if (h->n < h->cap) return 0;
    int cap = h->cap ? 2 * h->cap : 16;
    mt_st_tensor *t = realloc(h->t, (size_t)cap * sizeof *t);
    if (t) h->t = t;
    st_span *s = t ? realloc(h->span, (size_t)cap * sizeof *s) : NULL;
    if (!s) return st_fail(c, "out of memory");
    h->span = s;
    h->cap = cap;
    return 0;
}

static int st_parse_header(st_lex *x, st_header *h) {
    if (lx_expect(x, '{', "the header is not a JSON object")) return -1;
    int more = 1;
    if (lx_peek(x) == '}') { x->p++; more = 0; }
    while (more == 1) {
        char *key;
        if (lx_string(x, &key)) return -1;
        size_t klen = strlen(key);
        int bad = !strcmp(key, "__metadata__") ? 0 : klen == 0 ? 1 : klen >= MT_ST_MAX_NAME ? 2 : 3;
        if (bad == 1) st_fail(x->c, "empty tensor name");
        if (bad == 2) st_fail(x->c, "tensor name '%.40s...' is %zu bytes, over %d", key, klen, MT_ST_MAX_NAME - 1);
        if (bad == 3 && st_header_grow(h, x->c)) bad = 1;
        if (bad == 3) {
            mt_st_tensor *t = &h->t[h->n];
            memset(t, 0, sizeof *t);
            memcpy(t->name, key, klen + 1);
            h->span[h->n] = (st_span){0, 0, h->n};
            h->n++;
        }
        free(key);
        if (bad == 1 || bad == 2 || lx_expect(x, ':', "expected ':'")) return -1;
        if (bad == 0 ? st_parse_meta(x, h)
                     : st_parse_tensor(x, &h->t[h->n - 1], &h->span[h->n - 1]))
            return -1;
        if ((more = lx_next(x, '}')) < 0) return -1;
    }
    if (lx_peek(x) != -1) return lx_fail(x, "bytes after the header object");
    return 0;
}

static void st_header_free(st_header *h) {
    for (int i = 0; i < h->nmeta; i++) { free(h->meta[i].key); free(h->meta[i].val); }
    free(h->meta);
    free(h->t);
    free(h->span);
}

// ---------------------------------------------------------------- validation

static int st_cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;  // ties keep header order
}

static int st_cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const mt_st_tensor *const *)a)->name, (*(const mt_st_tensor *const *)b)->name);
}

static int st_cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

// Each tensor's bytes match its shape and lie inside the data buffer.
static int st_check_sizes(const st_header *h, uint64_t data_len, const st_ctx *c) {
    for (int i = 0; i < h->n; i++) {
        const mt_st_tensor *t = &h->t[i];
        const st_span *s = &h->span[i];
        size_t need;
        if (s->begin > s->end)
            return st_fail(c, "tensor '%s': data_offsets [%llu, %llu] end before they begin", t->name,
                           (unsigned long long)s->begin, (unsigned long long)s->end);
        if (s->end > data_len)
            return st_fail(c, "tensor '%s': data_offsets [%llu, %llu] out of range of the %llu-byte data buffer",
                           t->name, (unsigned long long)s->begin, (unsigned long long)s->end,
                           (unsigned long long)data_len);
        if (st_shape_bytes(t->shape, t->ndim, t->dtype, &need) || need != s->end - s->begin) {
            char shape[128] = "", *p = shape;  // 4 dims of <= 20 digits fit
            for (int d = 0; d < t->ndim; d++)
                p += snprintf(p, sizeof shape - (size_t)(p - shape), "%s%lld", d ? "," : "", (long long)t->shape[d]);
            return st_fail(c, "tensor '%s': shape [%s] of %s does not match data_offsets spanning %llu bytes",
                           t->name, shape, mt_st_dtype_name(t->dtype), (unsigned long long)(s->end - s->begin));
        }
    }
    return 0;
}

// Sorted by offset, the spans must tile [0, data_len) exactly, as the
// format requires: no overlap (two tensors aliasing bytes) and no holes.
static int st_check_tiling(st_header *h, uint64_t data_len, const st_ctx *c) {
    st_span *s = h->span;
    if (h->n) qsort(s, (size_t)h->n, sizeof *s, st_cmp_span);  // qsort(NULL, 0) is UB
    uint64_t pos = 0;
    for (int i = 0; i < h->n; i++) {
        if (s[i].begin < pos)
            return st_fail(c, "tensors '%s' and '%s' overlap in the data buffer",
                           h->t[s[i - 1].idx].name, h->t[s[i].idx].name);
        if (s[i].begin > pos)
            return st_fail(c, "hole in the data buffer at bytes [%llu, %llu) before tensor '%s'",
                           (unsigned long long)pos, (unsigned long long)s[i].begin, h->t[s[i].idx].name);
        pos = s[i].end;
    }
    if (pos != data_len)
        return st_fail(c, "the data buffer has %llu bytes but the tensors cover %llu",
                       (unsigned long long)data_len, (unsigned long long)pos);
    return 0;
}

// Moves the parsed header into f: tensors in offset order with data
// pointers, a by-name index (which also finds duplicates), sorted metadata.
static int st_build(mt_st_file *f, st_header *h, const unsigned char *data, const st_ctx *c) {
    f->t = malloc((size_t)(h->n ? h->n : 1) * sizeof *f->t);
    f->by_name = malloc((size_t)(h->n ? h->n : 1) * sizeof *f->by_name);
    if (!f->t || !f->by_name) return st_fail(c, "out of memory");
    size_t extra = 0;  // bytes of aligned copies for misaligned tensors
    for (int i = 0; i < h->n; i++) {
        f->t[i] = h->t[h->span[i].idx];
        f->t[i].nbytes = (size_t)(h->span[i].end - h->span[i].begin);
        // An empty tensor may sit at any offset; give it an aligned pointer.
        f->t[i].data = f->t[i].nbytes ? data + h->span[i].begin : (const void *)f->buf;
        if ((uintptr_t)f->t[i].data % mt_st_dtype_size(f->t[i].dtype))
            extra += (f->t[i].nbytes + 15) & ~(size_t)15;
        f->by_name[i] = &f->t[i];
    }
    f->n = h->n;
    if (f->n) qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, st_cmp_tensor_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name))
            return st_fail(c, "duplicate tensor name '%s'", f->by_name[i]->name);
    // Another writer may leave an F64 at an offset that is 4 mod 8; callers
    // cast data to double *, so such tensors get an aligned copy (malloc
    // aligns to 16).
    if (extra && !(f->aligned = malloc(extra))) return st_fail(c, "out of memory");
    size_t off = 0;
    for (int i = 0; extra && i < f->n; i++) {
        if ((uintptr_t)f->t[i].data % mt_st_dtype_size(f->t[i].dtype) == 0) continue;
        memcpy(f->aligned + off, f->t[i].data, f->t[i].nbytes);
        f->t[i].data = f->aligned + off;
        off += (f->t[i].nbytes + 15) & ~(size_t)15;
    }
    if (h->nmeta) qsort(h->meta, (size_t)h->nmeta, sizeof *h->meta, st_cmp_meta);
    for (int i = 1; i < h->nmeta; i++)
        if (!strcmp(h->meta[i - 1].key, h->meta[i].key))
            return st_fail(c, "duplicate metadata key '%.64s'", h->meta[i].key);
    f->meta = h->meta;
    f->nmeta = h->nmeta;
    h->meta = NULL;
    h->nmeta = 0;
    return 0;
}

// Parses f->buf (len bytes, owned by f) of a file of file_len bytes: when
// len < file_len, f->buf holds only the length and the header, which are
// checked against file_len (sizes, tiling) without the data (mt_st_open's
// first pass: a huge or sparse file is refused before it is read).
// Returns 0 or -1 with err set.
static int st_parse(mt_st_file *f, size_t len, size_t file_len, const st_ctx *c) {
    const unsigned char *b = f->buf;
    int header_only = len < file_len;
    len = file_len;
    if (len == 0) return st_fail(c, "empty file (0 bytes)");
    if (len < 8) return st_fail(c, "truncated: %zu bytes, fewer than the 8-byte header length", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > len - 8)
        return st_fail(c, "header length %llu exceeds the %zu bytes after it (truncated or not safetensors)",
                       (unsigned long long)hlen, len - 8);
    if (hlen > ST_MAX_HEADER)
        return st_fail(c, "header length %llu exceeds the %llu-byte limit", (unsigned long long)hlen, ST_MAX_HEADER);
    if (!st_utf8_valid(b + 8, (size_t)hlen)) return st_fail(c, "header is not valid UTF-8");
    st_lex x = {(const char *)b + 8, (const char *)b + 8, (const char *)b + 8 + hlen, c};
    st_header h = {0};
    uint64_t data_len = len - 8 - hlen;
    int rc = st_parse_header(&x, &h);
    if (!rc) rc = st_check_sizes(&h, data_len, c);
    if (!rc) rc = st_check_tiling(&h, data_len, c);
    if (!rc && !header_only) rc = st_build(f, &h, b + 8 + hlen, c);
    st_header_free(&h);
    return rc;
}

// ---------------------------------------------------------------- reader API

void mt_st_close(mt_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nmeta; i++) { free(f->meta[i].key); free(f->meta[i].val); }
    free(f->meta);
    free(f->by_name);
    free(f->t);
    free(f->aligned);
    free(f->buf);
    free(f);
}

static mt_st_file *st_open_owned(unsigned char *buf, size_t len, size_t file_len, const st_ctx *c) {
    mt_st_file *f = calloc(1, sizeof *f);
    if (!f) { free(buf); st_fail(c, "out of memory"); return NULL; }
    f->buf = buf;
    if (st_parse(f, len, file_len, c)) { mt_st_close(f); return NULL; }
    return f;
}

mt_st_file *mt_st_open_mem(const void *buf, size_t len, char *err, size_t errlen) {
    st_ctx c = {"<memory>", err, errlen};
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) { st_fail(&c, "out of memory for %zu bytes", len); return NULL; }
    if (len) memcpy(copy, buf, len);
    return st_open_owned(copy, len, len, &c);
}

// The length prefix and the header of fd's file (size bytes), checked
// against the file's size before any data is read. Returns 0 or -1.
static int st_check_header_first(int fd, size_t size, const st_ctx *c) {
    unsigned char len8[8];
    if (size < 8) return 0;  // st_parse names it
    if (mt_input_pread(fd, len8, 8, 0)) return st_fail(c, "%s", strerror(errno));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > size - 8 || hlen > ST_MAX_HEADER) return 0;  // st_parse names it, from the 8 bytes alone
    unsigned char *buf = malloc(8 + (size_t)hlen);
    if (!buf) return st_fail(c, "out of memory");
    if (mt_input_pread(fd, buf, 8 + (size_t)hlen, 0)) { free(buf); return st_fail(c, "%s", strerror(errno)); }
    mt_st_file *f = st_open_owned(buf, 8 + (size_t)hlen, size, c);
    if (!f) return -1;
    mt_st_close(f);
    return 0;
}

mt_st_file *mt_st_open(const char *path, char *err, size_t errlen) {
    st_ctx c = {path, err, errlen};
    struct stat st;
    char why[1400];
    // Non-blocking open, regular files only (input.h): a FIFO would block.
    int fd = mt_input_open(path, "", &st, why, sizeof why);
    if (fd < 0) {
        if (err && errlen) snprintf(err, errlen, "%s", why);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    if (st_check_header_first(fd, size, &c)) { close(fd); return NULL; }
    // The 8-byte prefix alone is enough for st_parse to refuse a bad length.
    size_t want = size;
    if (size >= 8) {
        unsigned char len8[8];
        uint64_t hlen = 0;
        if (!mt_input_pread(fd, len8, 8, 0))
            for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
        if (hlen > size - 8 || hlen > ST_MAX_HEADER) want = 8;
    }
    unsigned char *buf = malloc(want ? want : 1);
    if (!buf) st_fail(&c, "out of memory for %zu bytes", want);
    else if (want && mt_input_pread(fd, buf, want, 0)) {
        st_fail(&c, "%s", errno == EIO ? "file shrank while being read" : strerror(errno));
        free(buf);
        buf = NULL;
    }
    close(fd);
    return buf ? st_open_owned(buf, want, size, &c) : NULL;
}

int mt_st_count(const mt_st_file *f) { return f->n; }

const mt_st_tensor *mt_st_at(const mt_st_file *f, int i) {
    return i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const mt_st_tensor *mt_st_find(const mt_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, r = strcmp(name, f->by_name[mid]->name);
        if (!r) return f->by_name[mid];
        if (r < 0) hi = mid - 1; else lo = mid + 1;
    }
    return NULL;
}

const char *mt_st_meta(const mt_st_file *f, const char *key) {
    st_meta k = {(char *)key, NULL};
    const st_meta *m = f->nmeta ? bsearch(&k, f->meta, (size_t)f->nmeta, sizeof k, st_cmp_meta) : NULL;
    return m ? m->val : NULL;
}
