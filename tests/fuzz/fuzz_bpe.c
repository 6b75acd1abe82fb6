// fuzz_bpe.c: libFuzzer harness of the BPE tokenizer (src/bpe.c), which
// reads a Hugging Face tokenizer.json (tools/prepare_data --tokenizer,
// tools/generate --tokenizer). The input is split at its first NUL byte:
// before it, tokenizer.json; after it, text to encode.
//
// Promises: a rejected tokenizer or text is one non-empty line; a loaded
// tokenizer encodes to ids below its vocabulary size, and decoding them
// gives the text back byte for byte (added tokens included); an id at or
// past the vocabulary (and 2^31, once a crash) decodes to NULL.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe.h"
#include "fuzz_util.h"

// mt_bpe_load takes DIR or a path ending in .json, so not a memfd's
// /proc/self/fd/N: a private directory, on tmpfs when there is one.
static char g_dir[256], g_file[300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_private_dir(g_dir, sizeof g_dir, "bpe");
    snprintf(g_file, sizeof g_file, "%s/tokenizer.json", g_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t a = nul ? (size_t)(nul - data) : size;
    fuzz_put(g_file, data, a);
    char err[1400] = "";
    mt_bpe *t = mt_bpe_load(g_dir, err, sizeof err);
    if (!t) {
        FUZZ_REQUIRE(err[0] && !strchr(err, '\n'), "rejected without one line: '%s'", err);
        return 0;
    }
    int V = mt_bpe_vocab_size(t);
    FUZZ_REQUIRE(V > 0, "vocabulary size %d", V);
    size_t dl;
    FUZZ_REQUIRE(!mt_bpe_decode(t, (uint32_t)V, &dl) && !mt_bpe_decode(t, 0x80000000u, &dl) &&
                     !mt_bpe_decode(t, UINT32_MAX, &dl),
                 "an id outside the vocabulary decoded");
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t len = nul ? size - a - 1 : 0;
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    err[0] = 0;
    if (mt_bpe_encode(t, text, len, &ids, &n, &cap, err, sizeof err)) {
        FUZZ_REQUIRE(err[0] && !strchr(err, '\n'), "encode failed without one line: '%s'", err);
    } else {
        // Round trip: the ids' bytes, in order, are the text.
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            FUZZ_REQUIRE(ids[i] < (uint32_t)V, "id %u of %d", ids[i], V);
            const char *b = mt_bpe_decode(t, ids[i], &dl);
            FUZZ_REQUIRE(b, "id %u (below %d) does not decode", ids[i], V);
            FUZZ_REQUIRE(at + dl <= len && !memcmp(text + at, b, dl), "id %u at byte %zu does not match the text", ids[i], at);
            at += dl;
        }
        FUZZ_REQUIRE(at == len, "the ids cover %zu of %zu bytes", at, len);
    }
    free(ids);
    mt_bpe_free(t);
    return 0;
}
