// safetensors_write.c: the atomic writer of safetensors.h. It refuses what
// the reader (safetensors.c) would refuse, so a file it writes always reads
// back, here and in PyTorch.
#include "safetensors_internal.h"
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// A growing string; `oom` latches so callers check once at the end.
typedef struct { char *p; size_t n, cap; int oom; } st_buf;

static void sb_put(st_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(st_buf *b, const char *s) { sb_put(b, s, strlen(s)); }

// A JSON string literal: quotes, backslashes and control bytes escaped.
static void sb_json(st_buf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') { esc[0] = '\\'; esc[1] = (char)ch; sb_put(b, esc, 2); }
        else if (ch < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", ch); sb_put(b, esc, 6); }
        else sb_put(b, s, 1);
    }
    sb_put(b, "\"", 1);
}

static int st_check_string(const char *s, const char *what, const st_ctx *c) {
    if (!s) return st_fail(c, "%s is NULL", what);
    if (!st_utf8_valid((const unsigned char *)s, strlen(s))) return st_fail(c, "%s is not valid UTF-8", what);
    return 0;
}

// Refuses what the reader would refuse, so we never write a file we (or
// PyTorch) cannot read back.
static int st_check_input(const mt_st_tensor *t, int n, const char *const *kv, const st_ctx *c) {
    if (n < 0 || (n > 0 && !t)) return st_fail(c, "bad tensor list (n = %d)", n);
    for (int i = 0; i < n; i++) {
        size_t len = strnlen(t[i].name, MT_ST_MAX_NAME), need;
        if (len == 0 || len == MT_ST_MAX_NAME) return st_fail(c, "tensor %d: name empty or over %d bytes", i, MT_ST_MAX_NAME - 1);
        if (st_check_string(t[i].name, "a tensor name", c)) return -1;
        if (!strcmp(t[i].name, "__metadata__")) return st_fail(c, "'__metadata__' is not a tensor name");
        if ((unsigned)t[i].dtype >= MT_ST_NDTYPES) return st_fail(c, "tensor '%s': bad dtype %d", t[i].name, (int)t[i].dtype);
        if (t[i].ndim < 0 || t[i].ndim > MT_ST_MAX_DIMS) return st_fail(c, "tensor '%s': %d dims", t[i].name, t[i].ndim);
        if (st_shape_bytes(t[i].shape, t[i].ndim, t[i].dtype, &need) || need != t[i].nbytes)
            return st_fail(c, "tensor '%s': nbytes %zu does not match its shape and dtype", t[i].name, t[i].nbytes);
        if (t[i].nbytes && !t[i].data) return st_fail(c, "tensor '%s': data is NULL", t[i].name);
        for (int j = 0; j < i; j++)  // O(n^2), but n is a model's tensor count
            if (!strcmp(t[i].name, t[j].name)) return st_fail(c, "duplicate tensor name '%s'", t[i].name);
    }
    for (int i = 0; kv && kv[i]; i += 2) {
        if (!kv[i + 1]) return st_fail(c, "metadata key '%s' has no value", kv[i]);
        if (st_check_string(kv[i], "a metadata key", c) || st_check_string(kv[i + 1], "a metadata value", c)) return -1;
        for (int j = 0; j < i; j += 2)
            if (!strcmp(kv[i], kv[j])) return st_fail(c, "duplicate metadata key '%s'", kv[i]);
    }
    return 0;
}

// The JSON header, padded with spaces so the data starts 8-byte aligned.
static int st_header_json(st_buf *b, const mt_st_tensor *t, int n, const char *const *kv, const st_ctx *c) {
    sb_str(b, "{");
    if (kv && kv[0]) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; kv[i]; i += 2) {
            if (i) sb_str(b, ",");
            sb_json(b, kv[i]);
            sb_str(b, ":");
            sb_json(b, kv[i + 1]);
        }
        sb_str(b, n ? "}," : "}");
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        char num[64];
        sb_json(b, t[i].name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, mt_st_dtype_name(t[i].dtype));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            sb_str(b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}%s", off, off + t[i].nbytes, i + 1 < n ? "," : "");
        sb_str(b, num);
        off += t[i].nbytes;
    }
    sb_str(b, "}");
    while (b->n % 8) sb_str(b, " ");
    return b->oom ? st_fail(c, "out of memory") : 0;
}

// The header and the tensors through mt_outfile (outfile.h): a temporary
// created with O_EXCL beside the target, every write checked, fsync, rename,
// fsync of the directory; a failure leaves the old file untouched.
static int st_write_body(mt_outfile *o, const st_buf *hdr, const mt_st_tensor *t, int n, char *err, size_t errlen) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr->n >> (8 * i));
    // A failed write latches in o; commit then reports it with its errno.
    if (!mt_outfile_write(o, len8, 8) && !mt_outfile_write(o, hdr->p, hdr->n))
        for (int i = 0; i < n && !mt_outfile_write(o, t[i].data, t[i].nbytes); i++) {}
    return mt_outfile_commit(o, err, errlen);
}

int mt_st_write_at(int dirfd, const char *name, const char *label, const mt_st_tensor *t, int n,
                   const char *const *meta_kv, char *err, size_t errlen) {
    st_ctx c = {label, err, errlen};
    st_buf hdr = {0};
    if (st_check_input(t, n, meta_kv, &c) || st_header_json(&hdr, t, n, meta_kv, &c)) {
        free(hdr.p);
        return -1;
    }
    char e2[1400] = "";
    mt_outfile o;
    int rc = dirfd == AT_FDCWD ? mt_outfile_open(&o, label, e2, sizeof e2)
                               : mt_outfile_openat(&o, dirfd, name, label, e2, sizeof e2);
    if (!rc) rc = st_write_body(&o, &hdr, t, n, e2, sizeof e2);
    if (rc && err) snprintf(err, errlen, "%s", e2);
    free(hdr.p);
    return rc ? -1 : 0;
}

int mt_st_write(const char *path, const mt_st_tensor *t, int n, const char *const *meta_kv,
                char *err, size_t errlen) {
    return mt_st_write_at(AT_FDCWD, path, path, t, n, meta_kv, err, errlen);
}
