// json.c: the strict JSON reader of json.h, recursive descent over a
// bounded depth.
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end, *start;
    char *err;
    size_t errlen;
    int failed;
} lex;

static int fail(lex *x, const char *fmt, ...) {
    if (x->failed) return -1;
    x->failed = 1;
    int line = 1;
    for (const char *q = x->start; q < x->p && q < x->end; q++) line += *q == '\n';
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->errlen) snprintf(x->err, x->errlen, "line %d: %s", line, msg);
    return -1;
}

static void skip_ws(lex *x) {
    while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r')) x->p++;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// A string after its opening quote; raw bytes must be valid UTF-8 (checked
// by the lead byte's length and continuation bytes), escapes decoded.
static int string(lex *x, char **out, size_t *outlen) {
    const char *q = x->p;
    size_t cap = 16;
    char *s = malloc(cap), *o;
    size_t n = 0;
    if (!s) return fail(x, "out of memory");
    for (;;) {
        if (q >= x->end) { free(s); return fail(x, "unterminated string"); }
        if (n + 8 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) { free(s); return fail(x, "out of memory"); }
            s = t;
        }
        o = s + n;
        unsigned char c = (unsigned char)*q;
        if (c == '"') { q++; break; }
        if (c < 0x20) { free(s); x->p = q; return fail(x, "control character in a string"); }
        if (c == '\\') {
            if (q + 1 >= x->end) { free(s); return fail(x, "unterminated escape"); }
            char e = q[1];
            q += 2;
            const char *map = "\"\\/bfnrt", *rep = "\"\\/\b\f\n\r\t", *at = strchr(map, e);
            if (e && at) { *o = rep[at - map]; n++; continue; }
            if (e != 'u' || q + 4 > x->end) { free(s); x->p = q; return fail(x, "bad escape"); }
            unsigned cp, lo;
            if (hex4(q, &cp)) { free(s); return fail(x, "bad \\u escape"); }
            q += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (q + 6 > x->end || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    free(s);
                    return fail(x, "unpaired surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += 6;
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                free(s);
                return fail(x, "unpaired surrogate");
            }
            n += put_utf8(o, cp);
            continue;
        }
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 && c >= 0xC2 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || q + len > x->end) { free(s); x->p = q; return fail(x, "invalid UTF-8"); }
        for (int k = 1; k < len; k++)
            if (((unsigned char)q[k] & 0xC0) != 0x80) { free(s); x->p = q; return fail(x, "invalid UTF-8"); }
        memcpy(o, q, (size_t)len);
        n += (size_t)len;
        q += len;
    }
    s[n] = 0;
    x->p = q;
    *out = s;
    if (outlen) *outlen = n;
    return 0;
}

static int number(lex *x, double *v) {
    const char *q = x->p;
    if (q < x->end && *q == '-') q++;
    if (q >= x->end || *q < '0' || *q > '9') return fail(x, "expected a value");
    if (*q == '0') q++;
    else while (q < x->end && *q >= '0' && *q <= '9') q++;
    if (q < x->end && *q == '.') {
        q++;
        if (q >= x->end || *q < '0' || *q > '9') return fail(x, "bad number");
        while (q < x->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < x->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < x->end && (*q == '+' || *q == '-')) q++;
        if (q >= x->end || *q < '0' || *q > '9') return fail(x, "bad number");
        while (q < x->end && *q >= '0' && *q <= '9') q++;
    }
    char buf[64];
    size_t len = (size_t)(q - x->p);
    if (len >= sizeof buf) return fail(x, "number too long");
    memcpy(buf, x->p, len);
    buf[len] = 0;
    errno = 0;
    *v = strtod(buf, NULL);
    if (!isfinite(*v)) return fail(x, "number out of range");
    x->p = q;
    return 0;
}

static int value(lex *x, mt_json *j, int depth);

static int grow(lex *x, mt_json *j, int *cap, int object) {
    if (j->n < *cap) return 0;
    *cap = *cap ? 2 * *cap : 8;
    mt_json *it = realloc(j->items, sizeof(mt_json) * (size_t)*cap);
    if (!it) return fail(x, "out of memory");
    j->items = it;
    if (object) {
        char **k = realloc(j->keys, sizeof(char *) * (size_t)*cap);
        if (!k) return fail(x, "out of memory");
        j->keys = k;
    }
    return 0;
}

static int cmp_key(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Duplicate keys are refused (a config's would be ambiguous): sorted copies
// of the key pointers, neighbours compared, so a tokenizer's 100k-entry
// vocabulary costs n log n, not n².
static int unique_keys(lex *x, const mt_json *j) {
    if (j->n < 2) return 0;
    char **k = malloc(sizeof(char *) * (size_t)j->n);
    if (!k) return fail(x, "out of memory");
    memcpy(k, j->keys, sizeof(char *) * (size_t)j->n);
    qsort(k, (size_t)j->n, sizeof(char *), cmp_key);
    int dup = -1;
    for (int i = 1; i < j->n && dup < 0; i++)
        if (!strcmp(k[i - 1], k[i])) dup = i;
    int rc = dup < 0 ? 0 : fail(x, "duplicate key \"%.40s\"", k[dup]);
    free(k);
    return rc;
}

static int members(lex *x, mt_json *j, int depth, int object) {
    char close = object ? '}' : ']';
    int cap = 0;
    skip_ws(x);
    if (x->p < x->end && *x->p == close) { x->p++; return 0; }
    for (;;) {
        if (grow(x, j, &cap, object)) return -1;
        skip_ws(x);
        if (object) {
            if (x->p >= x->end || *x->p != '"') return fail(x, "expected a key");
            x->p++;
            if (string(x, &j->keys[j->n], NULL)) return -1;
            skip_ws(x);
            if (x->p >= x->end || *x->p != ':') { free(j->keys[j->n]); return fail(x, "expected ':'"); }
            x->p++;
        }
        memset(&j->items[j->n], 0, sizeof(mt_json));
        j->n++;
        if (value(x, &j->items[j->n - 1], depth + 1)) return -1;
        skip_ws(x);
        if (x->p < x->end && *x->p == ',') { x->p++; continue; }
        if (x->p < x->end && *x->p == close) { x->p++; return object ? unique_keys(x, j) : 0; }
        return fail(x, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(lex *x, mt_json *j, int depth) {
    if (depth > 64) return fail(x, "nested deeper than 64");
    skip_ws(x);
    if (x->p >= x->end) return fail(x, "unexpected end");
    char c = *x->p;
    if (c == '{' || c == '[') {
        x->p++;
        j->type = c == '{' ? MT_JSON_OBJECT : MT_JSON_ARRAY;
        return members(x, j, depth, c == '{');
    }
    if (c == '"') {
        x->p++;
        j->type = MT_JSON_STRING;
        return string(x, &j->string, &j->length);
    }
    static const struct { const char *word; mt_json_type t; double v; } lits[] = {
        {"true", MT_JSON_BOOL, 1}, {"false", MT_JSON_BOOL, 0}, {"null", MT_JSON_NULL, 0}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i].word);
        if ((size_t)(x->end - x->p) >= n && !memcmp(x->p, lits[i].word, n)) {
            j->type = lits[i].t;
            j->number = lits[i].v;
            x->p += n;
            return 0;
        }
    }
    j->type = MT_JSON_NUMBER;
    return number(x, &j->number);
}

static void free_members(mt_json *j) {
    for (int i = 0; i < j->n; i++) {
        free_members(&j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->string);
}

mt_json *mt_json_parse(const char *text, size_t len, char *err, size_t errlen) {
    lex x = {text, text + len, text, err, errlen, 0};
    mt_json *j = calloc(1, sizeof *j);
    if (!j) { if (errlen) snprintf(err, errlen, "out of memory"); return NULL; }
    if (memchr(text, 0, len)) fail(&x, "NUL byte in the text");
    if (!x.failed && !value(&x, j, 0)) {
        skip_ws(&x);
        if (x.p != x.end) fail(&x, "text after the value");
    }
    if (x.failed) { mt_json_free(j); return NULL; }
    return j;
}

void mt_json_free(mt_json *j) {
    if (!j) return;
    free_members(j);
    free(j);
}

const mt_json *mt_json_get(const mt_json *j, const char *key) {
    if (!j || j->type != MT_JSON_OBJECT) return NULL;
    for (int i = 0; i < j->n; i++)
        if (!strcmp(j->keys[i], key)) return &j->items[i];
    return NULL;
}
