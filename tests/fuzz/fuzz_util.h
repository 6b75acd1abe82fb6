// fuzz_util.h: what the libFuzzer harnesses share. The readers under test
// take a path, so each harness keeps one memfd (an anonymous in-memory file,
// a regular file to stat) and hands them /proc/self/fd/N: no disk I/O, no
// temporary file left behind by a crash.
#ifndef MT_FUZZ_UTIL_H
#define MT_FUZZ_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct { int fd; char path[64]; } fuzz_file;

static inline void fuzz_file_open(fuzz_file *f, const char *name) {
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) { perror("memfd_create"); abort(); }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

// Replaces the file's contents with data[0, n).
static inline void fuzz_file_set(fuzz_file *f, const uint8_t *data, size_t n) {
    if (ftruncate(f->fd, 0)) { perror("ftruncate"); abort(); }
    for (size_t at = 0; at < n;) {
        ssize_t k = pwrite(f->fd, data + at, n - at, (off_t)at);
        if (k <= 0) { perror("pwrite"); abort(); }
        at += (size_t)k;
    }
}

// A broken promise of the code under test: libFuzzer records the input.
#define FUZZ_REQUIRE(cond, ...)                                                   \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
            abort();                                                              \
        }                                                                         \
    } while (0)

// For readers that take a directory (tools/generate's, the tokenizer's):
// DIR = a private directory named after `tag` and the PID, on tmpfs when
// there is one (out must hold 256 bytes).
static inline void fuzz_private_dir(char *out, size_t outlen, const char *tag) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(out, outlen, "%s/mt_fuzz_%s.%d", base, tag, (int)getpid());
    if (mkdir(out, 0700) && errno != EEXIST) { perror(out); abort(); }
}

// Writes data[0, n) to path (replacing it).
static inline void fuzz_put(const char *path, const uint8_t *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f)) { perror(path); abort(); }
}

#endif
