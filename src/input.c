// input.c: strict numbers and safe opening of inputs (include/input.h).
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// strtoll and strtod skip leading white space; " -1" must not become -1
// (and must not wrap around in strtoull), so the first character is checked.
static int starts_like_number(const char *s, int allow_sign) {
    if (!s || !*s) return 0;
    if (allow_sign && (*s == '-' || *s == '+')) s++;
    return (*s >= '0' && *s <= '9') || *s == '.';
}

int mt_parse_ll(const char *s, long long lo, long long hi, long long *out) {
    if (!starts_like_number(s, 1) || strchr(s, '.')) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

int mt_parse_int(const char *s, int lo, int hi, int *out) {
    long long x;
    if (mt_parse_ll(s, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

int mt_parse_u64(const char *s, uint64_t *out) {
    if (!starts_like_number(s, 0) || strchr(s, '.')) return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = x;
    return 0;
}

int mt_parse_double(const char *s, double *out) {
    if (!starts_like_number(s, 1)) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || !isfinite(x)) return -1;
    // ERANGE is both overflow (HUGE_VAL, caught by isfinite above) and
    // underflow (a subnormal or 0): a tiny value is a finite value.
    if (errno == ERANGE && fabs(x) > DBL_MIN) return -1;
    *out = x;
    return 0;
}

static void say(char *err, size_t errlen, const char *what, const char *path, const char *why) {
    snprintf(err, errlen, "%s%s%s: %s", what, *what ? " " : "", path, why);
}

int mt_input_open(const char *path, const char *what, struct stat *sb, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        char why[160];
        snprintf(why, sizeof why, "cannot open (%s)", strerror(e));
        say(err, errlen, what, path, why);
        errno = e;
        return -1;
    }
    const char *why = NULL;
    int e = 0;
    if (fstat(fd, sb)) why = "cannot stat", e = errno;
    else if (S_ISDIR(sb->st_mode)) why = "is a directory, expected a file", e = EISDIR;
    else if (!S_ISREG(sb->st_mode)) why = "not a regular file (a FIFO, device or socket is refused)", e = ENODEV;
    else {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) why = "cannot clear O_NONBLOCK", e = errno;
    }
    if (why) {
        say(err, errlen, what, path, why);
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int mt_input_pread(int fd, void *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) { errno = EIO; return -1; }
        got += (size_t)k;
    }
    return 0;
}

// A stream (pipe, FIFO, terminal): read until EOF, at most max bytes. The
// descriptor was opened blocking here on purpose: the flag names a stream.
static char *read_stream(int fd, const char *what, const char *path, size_t max, size_t *len, char *err, size_t errlen) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap > max) break;
            char *b = realloc(buf, (cap *= 2) + 1);
            if (!b) { free(buf); buf = NULL; break; }
            buf = b;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { free(buf); say(err, errlen, what, path, "read error"); return NULL; }
        if (k == 0) break;
        n += (size_t)k;
    }
    if (!buf) { say(err, errlen, what, path, "out of memory"); return NULL; }
    if (n > max) {
        free(buf);
        char why[96];
        snprintf(why, sizeof why, "more than %zu bytes", max);
        say(err, errlen, what, path, why);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *mt_input_read_small(const char *path, const char *what, size_t max, int allow_stream, size_t *len,
                          char *err, size_t errlen) {
    struct stat sb;
    // Only standard input may be a stream: a named FIFO or a device given as
    // a path is refused like any other non-regular file.
    int is_stdin = !strcmp(path, "-") || !strcmp(path, "/dev/stdin") || !strcmp(path, "/proc/self/fd/0") || !strcmp(path, "/dev/fd/0");
    if (allow_stream && is_stdin) {
        int fd = dup(0);
        if (fd >= 0 && fstat(fd, &sb) == 0 && (S_ISFIFO(sb.st_mode) || S_ISCHR(sb.st_mode) || S_ISSOCK(sb.st_mode))) {
            // Standard input may have been left non-blocking by whoever
            // started us; reading blocking is what "a stream" means.
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            char *b = read_stream(fd, what, path, max, len, err, errlen);
            close(fd);
            return b;
        }
        if (fd >= 0) close(fd);
        if (!strcmp(path, "-")) {
            if (fd < 0) { say(err, errlen, what, path, "standard input is not readable"); return NULL; }
            path = "/dev/stdin";  // a regular file on standard input
        }
    }
    int fd = mt_input_open(path, what, &sb, err, errlen);
    if (fd < 0) return NULL;
    if ((uint64_t)sb.st_size > max) {
        char why[128];
        snprintf(why, sizeof why, "%lld bytes, more than the %zu allowed", (long long)sb.st_size, max);
        say(err, errlen, what, path, why);
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf || mt_input_pread(fd, buf, (size_t)sb.st_size, 0)) {
        say(err, errlen, what, path, buf ? "read error (the file shrank?)" : "out of memory");
        free(buf);
        close(fd);
        return NULL;
    }
    close(fd);
    buf[sb.st_size] = 0;
    *len = (size_t)sb.st_size;
    return buf;
}
