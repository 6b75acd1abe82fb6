// fuzz_tokens.c: libFuzzer harness of the token-file reader
// mt_token_file_read (src/data.c): the input is the file. The vocabulary is
// 2 + the little-endian uint16 at byte 12 (a reserved header word), so the
// "id >= vocabulary" check is reachable from both sides. An accepted file
// then goes through the sample order (mt_split_ranges, mt_split_make,
// mt_split_fill) as pretrain_gpt uses it, so ASan sees any window that would
// leave the token array.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fuzz_util.h"

static fuzz_file g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_file_open(&g_file, "fuzz_tokens");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_file_set(&g_file, data, size);
    int vocab = size >= 14 ? 2 + (data[12] | data[13] << 8) : 50257;
    mt_token_file f;
    char err[1024] = "";
    if (mt_token_file_read(&f, g_file.path, vocab, err, sizeof err)) {
        FUZZ_REQUIRE(err[0] && !strchr(err, '\n'), "rejected without one line: '%s'", err);
        FUZZ_REQUIRE(!f.tok && !f.ntok, "a rejected file left tokens behind");
        return 0;
    }
    FUZZ_REQUIRE(f.ntok >= 2, "%zu tokens", f.ntok);
    for (size_t i = 0; i < f.ntok; i++) FUZZ_REQUIRE(mt_token_at(f.tok, f.width, i) < (uint32_t)vocab, "token %zu", i);
    // The sample order: a small T and split weights from the header's
    // reserved words, the way main.c carves train/valid/test.
    int T = 1 + data[16] % 8;
    int split[3] = {1 + data[17], data[18], data[19]};
    size_t begin[3], end[3];
    mt_split_ranges(f.ntok, split, begin, end);
    for (int s = 0; s < 3; s++) {
        FUZZ_REQUIRE(begin[s] <= end[s] && end[s] <= f.ntok && (s == 0 || begin[s] == end[s - 1]), "split %d", s);
        mt_split_view v = mt_split_make(&f, begin[s], end[s], T, s == 0, 1234);
        if (!v.nsamples) continue;
        int in[8], tg[8];
        for (uint64_t j = 0; j < 3 * v.nsamples && j < 64; j++) {
            mt_split_fill(&v, j, in, tg, 1, 0);
            for (int p = 0; p < T; p++) FUZZ_REQUIRE(in[p] >= 0 && in[p] < vocab && tg[p] >= 0 && tg[p] < vocab, "sample %llu", (unsigned long long)j);
        }
    }
    mt_token_file_free(&f);
    return 0;
}
