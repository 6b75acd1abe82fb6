// fuzz_safetensors.c: libFuzzer harness of the safetensors reader
// (src/safetensors.c): mt_st_open_mem on the input (length prefix, the
// schema-directed JSON header parser, size/tiling checks), then every
// accessor on what it accepts: mt_st_at, mt_st_find, mt_st_meta with the
// keys the checkpoint loader and tools/generate read.
//
// Promises checked on an accepted file (safetensors.h): each tensor's bytes
// match its shape and dtype, lie in the file and are aligned to the element
// size; names are unique and findable; and the writer accepts it back:
// mt_st_write of the tensors and the metadata found re-opens to the same
// (a reader/writer disagreement is what makes a checkpoint unloadable).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "safetensors.h"

static char g_out[256];   // the round trip's file (tmpfs when there is one)
static volatile unsigned g_sink;  // keeps the reads of every data byte

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_out, sizeof g_out, "%s/mt_fuzz_st.%d.safetensors", dir, (int)getpid());
    return 0;
}

static const char *const META_KEYS[] = {
    "format", "num_layers", "hidden_size", "num_attention_heads", "vocab_size", "padded_vocab_size",
    "max_position_embeddings", "iteration", "consumed_samples", "", "__metadata__"};

static void same_tensor(const mt_st_tensor *a, const mt_st_tensor *b) {
    FUZZ_REQUIRE(b, "round trip lost tensor '%s'", a->name);
    FUZZ_REQUIRE(!strcmp(a->name, b->name) && a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes,
                 "round trip changed tensor '%s'", a->name);
    for (int d = 0; d < a->ndim; d++) FUZZ_REQUIRE(a->shape[d] == b->shape[d], "round trip changed the shape of '%s'", a->name);
    FUZZ_REQUIRE(!a->nbytes || !memcmp(a->data, b->data, a->nbytes), "round trip changed the data of '%s'", a->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024] = "";
    mt_st_file *f = mt_st_open_mem(data, size, err, sizeof err);
    if (!f) {
        FUZZ_REQUIRE(err[0], "rejected without a message");
        return 0;
    }
    int n = mt_st_count(f);
    FUZZ_REQUIRE(n >= 0 && !mt_st_at(f, -1) && !mt_st_at(f, n), "count %d", n);
    mt_st_tensor *copy = calloc((size_t)(n ? n : 1), sizeof *copy);
    size_t total = 0;
    unsigned sum = 0;
    for (int i = 0; i < n; i++) {
        const mt_st_tensor *t = mt_st_at(f, i);
        size_t es = mt_st_dtype_size(t->dtype), want = es;
        FUZZ_REQUIRE(t->ndim >= 0 && t->ndim <= MT_ST_MAX_DIMS && strlen(t->name) > 0, "tensor %d", i);
        for (int d = 0; d < t->ndim; d++) want *= (size_t)t->shape[d];
        FUZZ_REQUIRE(want == t->nbytes, "'%s': %zu bytes for its shape, %zu given", t->name, want, t->nbytes);
        FUZZ_REQUIRE((uintptr_t)t->data % es == 0, "'%s' misaligned", t->name);
        for (size_t k = 0; k < t->nbytes; k++) sum += ((const unsigned char *)t->data)[k];  // ASan: in bounds
        FUZZ_REQUIRE(mt_st_find(f, t->name) == t, "'%s' not found by name", t->name);
        copy[i] = *t;
        total += t->nbytes;
    }
    FUZZ_REQUIRE(total <= size, "tensors hold %zu bytes of a %zu-byte file", total, size);
    FUZZ_REQUIRE(!mt_st_find(f, ""), "found the empty name");
    for (size_t k = 0; k < sizeof META_KEYS / sizeof META_KEYS[0]; k++) {
        const char *v = mt_st_meta(f, META_KEYS[k]);
        if (v) sum += (unsigned)strlen(v);
    }
    g_sink = sum;
    // The metadata the reader exposes (there is no way to list keys: those
    // of META_KEYS that are present) goes back through the writer too.
    const char *kv[2 * (sizeof META_KEYS / sizeof META_KEYS[0]) + 1];
    int nkv = 0;
    for (size_t k = 0; k < sizeof META_KEYS / sizeof META_KEYS[0]; k++) {
        const char *v = mt_st_meta(f, META_KEYS[k]);
        if (v) { kv[nkv++] = META_KEYS[k]; kv[nkv++] = v; }
    }
    kv[nkv] = NULL;
    if (mt_st_write(g_out, copy, n, kv, err, sizeof err) == 0) {
        mt_st_file *g = mt_st_open(g_out, err, sizeof err);
        FUZZ_REQUIRE(g, "the writer's file does not re-open: %s", err);
        FUZZ_REQUIRE(mt_st_count(g) == n, "round trip: %d tensors, had %d", mt_st_count(g), n);
        for (int i = 0; i < n; i++) same_tensor(mt_st_at(f, i), mt_st_find(g, mt_st_at(f, i)->name));
        for (int k = 0; k < nkv; k += 2) {
            const char *v = mt_st_meta(g, kv[k]);
            FUZZ_REQUIRE(v && !strcmp(v, kv[k + 1]), "round trip changed metadata '%s'", kv[k]);
        }
        mt_st_close(g);
    } else {
        FUZZ_REQUIRE(0, "the writer refuses what the reader accepted: %s", err);
    }
    unlink(g_out);
    free(copy);
    mt_st_close(f);
    return 0;
}
