// safetensors_internal.h: what the reader (safetensors.c) and the writer
// (safetensors_write.c) share; not part of the public interface.
#ifndef MT_SAFETENSORS_INTERNAL_H
#define MT_SAFETENSORS_INTERNAL_H

#include "safetensors.h"

// Where errors go, and what they are about (a path, or "<memory>").
typedef struct { const char *src; char *err; size_t errlen; } st_ctx;

// Writes "SRC: message" into c->err and returns -1.
__attribute__((format(printf, 2, 3)))
int st_fail(const st_ctx *c, const char *fmt, ...);

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
int st_utf8_valid(const unsigned char *s, size_t n);

// product(shape) * element size into *out, or -1 on overflow or a negative dim.
int st_shape_bytes(const int64_t *shape, int ndim, mt_st_dtype d, size_t *out);

#endif
