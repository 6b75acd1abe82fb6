// input.h: how every input is opened and every number is parsed, so a FIFO,
// a device, a sparse file or a loose number gets one line instead of a hang,
// a huge allocation or a silent wrap-around (issue 13, docs/bad-input.md).
#ifndef MT_INPUT_H
#define MT_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

// ---- strict numbers ---------------------------------------------------------
// The whole string must be the number: no leading or trailing space, no
// suffix ("4abc"), no empty string. Each returns 0, or -1 when s is not such
// a number or lies outside [lo, hi].
int mt_parse_ll(const char *s, long long lo, long long hi, long long *out);
int mt_parse_int(const char *s, int lo, int hi, int *out);
int mt_parse_u64(const char *s, uint64_t *out);       // digits only, no sign
// A finite double. Tiny values that underflow to a subnormal or zero
// (1e-310, 1e-400) are finite and accepted; overflow (1e400), nan and inf
// are not.
int mt_parse_double(const char *s, double *out);

// ---- opening inputs ---------------------------------------------------------
// Opens path read-only without blocking (O_NONBLOCK: a FIFO with no writer
// would otherwise hang open()), fstats the descriptor it got (no race with a
// swapped path) and refuses anything but a regular file, naming it in err as
// "WHAT PATH: reason" (what may be "" for just the path). O_NONBLOCK is
// cleared again before returning, so reads behave as usual. Returns the
// descriptor (close it), or -1 with errno: open's own, EISDIR for a
// directory, ENODEV for anything else that is not a regular file.
int mt_input_open(const char *path, const char *what, struct stat *sb, char *err, size_t errlen);

// Reads a small text input whole: a regular file of at most max bytes, or,
// when allow_stream and path is standard input ("-", /dev/stdin), a pipe,
// FIFO or device read up to max bytes (more is an error, never an
// unbounded allocation). A named FIFO or device is always refused.
// Returns a NUL-terminated malloc'd buffer (length in *len), or NULL with a
// line in err.
char *mt_input_read_small(const char *path, const char *what, size_t max, int allow_stream, size_t *len,
                          char *err, size_t errlen);

// Reads exactly n bytes at offset off of fd (pread, retrying short reads).
// Returns 0, or -1 (errno set; 0 bytes read past the end gives EIO).
int mt_input_pread(int fd, void *buf, size_t n, uint64_t off);

#endif
