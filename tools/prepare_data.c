// prepare_data: turns a text file into llm.c's token files (docs/design.md §6).
//
//   tools/prepare_data INPUT.txt OUTPREFIX [--val-fraction 0.1]
//
// writes OUTPREFIX_train.bin and OUTPREFIX_val.bin: a header of 256
// little-endian int32 (magic 20240520, version 1 = uint16 tokens, token
// count), then the tokens as little-endian uint16. The tokenizer is bytes:
// token = byte value, vocabulary 256, so any file (UTF-8 or not) works and
// nothing needs downloading. Validation is the last fraction of the text,
// the convention of llm.c's tinyshakespeare split.
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MT_DATA_MAGIC 20240520
#define MT_DATA_HEADER_INTS 256

__attribute__((format(printf, 2, 3)))
static _Noreturn void mt_prep_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "prepare_data: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

static unsigned char *mt_prep_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) mt_prep_fail(MT_EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t k = 1; buf && k > 0;) {
        if (n == cap) {
            unsigned char *p = realloc(buf, cap *= 2);
            if (!p) free(buf);
            buf = p;
            if (!buf) break;
        }
        k = fread(buf + n, 1, cap - n, f);
        n += k;
    }
    if (!buf) mt_prep_fail(MT_EXIT_FAIL, "out of memory reading %s", path);
    if (ferror(f)) mt_prep_fail(MT_EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    *len = n;
    return buf;
}

static void mt_prep_put_i32(unsigned char *p, int32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)((uint32_t)v >> (8 * i));
}

static int mt_prep_write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

// One token file, written to path.tmp, fsynced and renamed: a crash or a
// full disk never leaves a truncated .bin that a training run would read.
static void mt_prep_write_tokens(const char *path, const unsigned char *bytes, size_t n) {
    unsigned char header[MT_DATA_HEADER_INTS * 4] = {0}, chunk[1 << 16];
    mt_prep_put_i32(header + 0, MT_DATA_MAGIC);
    mt_prep_put_i32(header + 4, 1);
    mt_prep_put_i32(header + 8, (int32_t)n);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        mt_prep_fail(MT_EXIT_USAGE, "output path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) mt_prep_fail(MT_EXIT_USAGE, "cannot create %s: %s", tmp, strerror(errno));
    int bad = mt_prep_write_all(fd, header, sizeof header);
    for (size_t i = 0; !bad && i < n; i += sizeof chunk / 2) {
        size_t m = MT_MIN(n - i, sizeof chunk / 2);
        for (size_t j = 0; j < m; j++) { chunk[2 * j] = bytes[i + j]; chunk[2 * j + 1] = 0; }
        bad = mt_prep_write_all(fd, chunk, 2 * m);
    }
    if (!bad) bad = fsync(fd);
    int e = errno;
    if (close(fd) && !bad) { bad = 1; e = errno; }  // NFS reports write errors at close
    if (bad) {
        unlink(tmp);
        mt_prep_fail(MT_EXIT_FAIL, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        e = errno;
        unlink(tmp);
        mt_prep_fail(MT_EXIT_FAIL, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
}

static double mt_prep_parse_fraction(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0 && v < 1))
        mt_prep_fail(MT_EXIT_USAGE, "--val-fraction must be a number in (0, 1), got '%s'", s);
    return v;
}

int main(int argc, char **argv) {
    const char *usage = "usage: prepare_data INPUT.txt OUTPREFIX [--val-fraction 0.1]";
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    double frac = 0.1;
    // Over a file-size limit, fail with EFBIG and remove the tmp file
    // rather than die by signal and leave it behind.
    signal(SIGXFSZ, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--val-fraction")) {
            if (i + 1 >= argc) mt_prep_fail(MT_EXIT_USAGE, "--val-fraction needs a value; %s", usage);
            frac = mt_prep_parse_fraction(argv[++i]);
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s\n", usage);
            return MT_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            mt_prep_fail(MT_EXIT_USAGE, "unknown flag %s; %s", argv[i], usage);
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            mt_prep_fail(MT_EXIT_USAGE, "unexpected argument %s; %s", argv[i], usage);
        }
    }
    if (npos != 2) mt_prep_fail(MT_EXIT_USAGE, "%s", usage);

    size_t n;
    unsigned char *text = mt_prep_read(pos[0], &n);
    if (n == 0) mt_prep_fail(MT_EXIT_USAGE, "%s is empty", pos[0]);
    if (n > INT32_MAX) mt_prep_fail(MT_EXIT_USAGE, "%s has %zu bytes; the header counts tokens in int32", pos[0], n);
    size_t nval = (size_t)((double)n * frac), ntrain = n - nval;
    // A split of one token has no (input, target) pair to train or score.
    if (ntrain < 2 || nval < 2)
        mt_prep_fail(MT_EXIT_USAGE, "%s has %zu tokens: train %zu and val %zu; each split needs at least 2",
                     pos[0], n, ntrain, nval);

    char path[4096];
    snprintf(path, sizeof path, "%s_train.bin", pos[1]);
    mt_prep_write_tokens(path, text, ntrain);
    snprintf(path, sizeof path, "%s_val.bin", pos[1]);
    mt_prep_write_tokens(path, text + ntrain, nval);
    printf("prepare_data: %s: %zu train tokens -> %s_train.bin, %zu val tokens -> %s_val.bin (byte tokens, vocab 256)\n",
           pos[0], ntrain, pos[1], nval, pos[1]);
    free(text);
    return MT_EXIT_OK;
}
