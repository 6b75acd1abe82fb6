// safetensors_write.c: the atomic writer of safetensors.h. It refuses what
// the reader (safetensors.c) would refuse, so a file it writes always reads
// back, here and in PyTorch.
#include "safetensors_internal.h"

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

static int st_write_all(int fd, const void *p, size_t n) {
    for (const char *q = p; n;) {
        ssize_t k = write(fd, q, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        q += k;
        n -= (size_t)k;
    }
    return 0;
}

// The rename is durable only once its directory entry is on disk.
static int st_fsync_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (len >= sizeof dir) { errno = ENAMETOOLONG; return -1; }
    memcpy(dir, slash ? path : ".", len);
    dir[len] = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc && errno == EINVAL) rc = 0;  // a file system without directory fsync
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int mt_st_write(const char *path, const mt_st_tensor *t, int n, const char *const *meta_kv,
                char *err, size_t errlen) {
    st_ctx c = {path, err, errlen};
    st_buf hdr = {0};
    if (st_check_input(t, n, meta_kv, &c) || st_header_json(&hdr, t, n, meta_kv, &c)) {
        free(hdr.p);
        return -1;
    }
    // rename() would replace a device or an empty directory just as happily.
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        free(hdr.p);
        return st_fail(&c, "exists and is not a regular file; refusing to replace it");
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) { free(hdr.p); return st_fail(&c, "out of memory"); }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.n >> (8 * i));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 || st_write_all(fd, len8, 8) || st_write_all(fd, hdr.p, hdr.n);
    for (int i = 0; !rc && i < n; i++) rc = st_write_all(fd, t[i].data, t[i].nbytes);
    if (!rc) rc = fsync(fd);
    int e = errno;
    if (fd >= 0 && close(fd) && !rc) { rc = -1; e = errno; }  // NFS reports write errors at close
    if (rc) {
        st_ctx ct = {tmp, err, errlen};
        st_fail(&ct, "%s", strerror(e));
        if (fd >= 0) unlink(tmp);
    } else if (rename(tmp, path)) {
        rc = st_fail(&c, "renaming %s over it: %s", tmp, strerror(errno));
        unlink(tmp);
    } else if (st_fsync_dir(path)) {
        rc = st_fail(&c, "written, but fsync of its directory failed (%s): it may not survive a crash",
                     strerror(errno));
    }
    free(tmp);
    free(hdr.p);
    return rc ? -1 : 0;
}
