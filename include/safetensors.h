// safetensors.h: a small, strict reader and writer of the safetensors format
// (https://github.com/huggingface/safetensors), used for checkpoints and for
// the oracle's tensor dumps (docs/design.md §6), so PyTorch can read what we write.
//
// Layout: u64 little-endian N, then N bytes of JSON header, then the data
// buffer. The header maps each tensor name to
//   {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]}
// (offsets relative to the data buffer) and may hold "__metadata__", an
// object of string values. The reader refuses anything it cannot vouch for:
// it runs on checkpoints a user hands us and, under libFuzzer, on any bytes.
//
// No MPI, no globals: the fuzzer and the tools link these files alone
// (safetensors.c reads, safetensors_write.c writes).
#ifndef MT_SAFETENSORS_H
#define MT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MT_ST_F32, MT_ST_F64, MT_ST_I32, MT_ST_I64, MT_ST_BF16, MT_ST_F16 } mt_st_dtype;
#define MT_ST_NDTYPES 6

#define MT_ST_MAX_NAME 128  // names hold at most 127 bytes
#define MT_ST_MAX_DIMS 4

typedef struct {
    char name[MT_ST_MAX_NAME];
    mt_st_dtype dtype;
    int ndim;                        // 0 (a scalar) .. MT_ST_MAX_DIMS
    int64_t shape[MT_ST_MAX_DIMS];   // shape[ndim..] are unused
    size_t nbytes;                   // product(shape) * mt_st_dtype_size(dtype)
    const void *data;                // little-endian elements, row-major
} mt_st_tensor;

// Bytes per element, and the format's name of the dtype ("F32", ...).
size_t mt_st_dtype_size(mt_st_dtype dtype);
const char *mt_st_dtype_name(mt_st_dtype dtype);
// Element i of a floating-point tensor (F32, F64, BF16, F16) as a double,
// exactly (every such value is a double).
double mt_st_float_at(const mt_st_tensor *t, size_t i);

// Writes n tensors, in the order given, with optional metadata given as a
// NULL-terminated list key, value, key, value, ..., NULL (or NULL for none).
// Atomic (outfile.h): a unique temporary beside path, every write checked,
// fsync, rename over path, fsync of the directory. Returns 0, or -1 with a
// one-line reason in err (when err is not NULL), e.g. "out/model.safetensors:
// No space left on device". On any failure before the rename, the old file
// at path is untouched and the temporary removed; the one failure after the
// rename is the directory fsync, whose message says so.
int mt_st_write(const char *path, const mt_st_tensor *t, int n,
                const char *const *meta_kv, char *err, size_t errlen);

// The same for the file `name` inside the open directory dirfd (checkpoints
// write relative to --save's descriptor); label names it in messages.
int mt_st_write_at(int dirfd, const char *name, const char *label, const mt_st_tensor *t, int n,
                   const char *const *meta_kv, char *err, size_t errlen);

typedef struct mt_st_file mt_st_file;

// Reads the whole file and validates it: header length within the file,
// valid JSON of the shape above and nothing else, known dtype, at most 4
// dims, names unique, non-empty and < 128 bytes, product(shape) * dtype size
// == end - begin, offsets in range, non-overlapping and covering the data
// buffer without holes. Returns NULL with the reason in err on any problem.
// Tensor data is aligned to its element size, so callers may cast it.
mt_st_file *mt_st_open(const char *path, char *err, size_t errlen);

// The same from memory (the bytes are copied; buf may be freed after).
mt_st_file *mt_st_open_mem(const void *buf, size_t len, char *err, size_t errlen);

int mt_st_count(const mt_st_file *f);
const mt_st_tensor *mt_st_at(const mt_st_file *f, int i);              // file order: by data offset
const mt_st_tensor *mt_st_find(const mt_st_file *f, const char *name); // NULL if absent
const char *mt_st_meta(const mt_st_file *f, const char *key);          // NULL if absent
void mt_st_close(mt_st_file *f);                                       // NULL is fine

#endif
