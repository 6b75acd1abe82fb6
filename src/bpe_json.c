// bpe_json.c: a small JSON reader for tokenizer.json (bpe.h): the whole
// document as a tree of values, strings unescaped to UTF-8. Depth is
// bounded; errors carry the byte offset. No dependency beyond libc, so
// tools/prepare_data still builds from its own sources (tools/get-data.sh).
#include "bpe_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *p, *end, *start; char *err; size_t errlen; } jctx;

static int jfail(jctx *c, const char *what) {
    if (!c->err[0]) snprintf(c->err, c->errlen, "JSON: %s at byte %ld", what, (long)(c->p - c->start));
    return -1;
}

static void jws(jctx *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) { o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 63)); o[2] = (char)(0x80 | (cp & 63)); return 3; }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

static int hex4(jctx *c, unsigned *v) {
    if (c->end - c->p < 4) return jfail(c, "short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = c->p[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return jfail(c, "bad \\u escape");
        *v = *v * 16 + (unsigned)d;
    }
    c->p += 4;
    return 0;
}

// A string after its opening quote; the result is NUL-terminated, len kept.
static int jstring(jctx *c, char **out, size_t *len) {
    const char *q = c->p;
    size_t n = 0;
    while (q < c->end && *q != '"') n++, q += *q == '\\' ? 2 : 1;
    char *s = malloc(n * 2 + 8), *o = s;  // \uXXXX (6 bytes) -> at most 4; a surrogate pair (12) -> 4
    if (!s) return jfail(c, "out of memory");
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20) { free(s); return jfail(c, "control character in a string"); }
        if (ch != '\\') { *o++ = (char)ch; continue; }
        if (c->p >= c->end) break;
        char e = *c->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple && e) { *o++ = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]; continue; }
        unsigned cp, lo;
        if (e != 'u' || hex4(c, &cp)) { free(s); return jfail(c, "bad escape"); }
        if (cp >= 0xD800 && cp < 0xDC00) {
            if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u') { free(s); return jfail(c, "lone surrogate"); }
            c->p += 2;
            if (hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF) { free(s); return jfail(c, "bad surrogate pair"); }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) { free(s); return jfail(c, "lone surrogate"); }
        o += put_utf8(o, cp);
    }
    if (c->p >= c->end) { free(s); return jfail(c, "unterminated string"); }
    c->p++;
    *o = 0;
    *out = s;
    *len = (size_t)(o - s);
    return 0;
}

static int jvalue(jctx *c, mt_json *v, int depth);

static int push(jctx *c, mt_json *v, int *cap) {
    if (v->n < *cap) return 0;
    *cap = *cap ? 2 * *cap : 8;
    mt_json *items = realloc(v->items, sizeof *items * (size_t)*cap);
    char **keys = v->type == MT_J_OBJ ? realloc(v->keys, sizeof *keys * (size_t)*cap) : v->keys;
    if (items) v->items = items;
    if (keys) v->keys = keys;
    return items && (keys || v->type != MT_J_OBJ) ? 0 : jfail(c, "out of memory");
}

static int jcontainer(jctx *c, mt_json *v, int depth, char close) {
    int cap = 0;
    jws(c);
    if (c->p < c->end && *c->p == close) { c->p++; return 0; }
    for (;;) {
        if (push(c, v, &cap)) return -1;
        jws(c);
        if (close == '}') {
            size_t kl;
            if (c->p >= c->end || *c->p != '"') return jfail(c, "expected a key");
            c->p++;
            if (jstring(c, &v->keys[v->n], &kl)) return -1;
            jws(c);
            if (c->p >= c->end || *c->p != ':') { free(v->keys[v->n]); return jfail(c, "expected ':'"); }
            c->p++;
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->n++;
        if (jvalue(c, &v->items[v->n - 1], depth + 1)) return -1;
        jws(c);
        if (c->p < c->end && *c->p == ',') { c->p++; continue; }
        if (c->p < c->end && *c->p == close) { c->p++; return 0; }
        return jfail(c, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int jvalue(jctx *c, mt_json *v, int depth) {
    if (depth > 64) return jfail(c, "nested too deeply");
    jws(c);
    if (c->p >= c->end) return jfail(c, "unexpected end");
    char ch = *c->p;
    if (ch == '{' || ch == '[') {
        c->p++;
        v->type = ch == '{' ? MT_J_OBJ : MT_J_ARR;
        return jcontainer(c, v, depth, ch == '{' ? '}' : ']');
    }
    if (ch == '"') { c->p++; v->type = MT_J_STR; return jstring(c, &v->str, &v->len); }
    static const char *const words[3] = {"null", "true", "false"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(words[k]);
        if ((size_t)(c->end - c->p) >= l && !memcmp(c->p, words[k], l)) {
            c->p += l;
            v->type = k ? MT_J_BOOL : MT_J_NULL;
            v->num = k == 1;
            return 0;
        }
    }
    char buf[64];
    size_t l = 0;
    while (c->p + l < c->end && l < sizeof buf - 1 && strchr("+-0123456789.eE", c->p[l])) buf[l] = c->p[l], l++;
    buf[l] = 0;
    char *end;
    v->num = strtod(buf, &end);
    if (!l || *end) return jfail(c, "bad value");
    c->p += l;
    v->type = MT_J_NUM;
    return 0;
}

int mt_json_parse(const char *text, size_t len, mt_json *root, char *err, size_t errlen) {
    jctx c = {text, text + len, text, err, errlen};
    err[0] = 0;
    memset(root, 0, sizeof *root);
    if (jvalue(&c, root, 0)) return -1;
    jws(&c);
    return c.p == c.end ? 0 : jfail(&c, "trailing characters");
}

void mt_json_free(mt_json *v) {
    for (int i = 0; i < v->n; i++) {
        mt_json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const mt_json *mt_json_get(const mt_json *obj, const char *key) {
    if (!obj || obj->type != MT_J_OBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}
