// fuzz_llmc.c: libFuzzer harness of the llm.c model-file header reader
// mt_llmc_read_header (src/shard.c), which --init-from runs before any rank
// allocates a model from the header's sizes. The input is the file. The
// rest of src/shard.c (and the library it pulls in) needs MPI only when
// called, so no MPI_Init here.
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "shard.h"

static fuzz_file g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_file_open(&g_file, "fuzz_llmc");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_file_set(&g_file, data, size);
    mt_llmc_header h;
    char err[1024] = "";
    if (mt_llmc_read_header(g_file.path, &h, err, sizeof err)) {
        FUZZ_REQUIRE(err[0] && !strchr(err, '\n'), "rejected without one line: '%s'", err);
        return 0;
    }
    // Accepted: sizes the model can be built from (config.c's bounds), and
    // the file holds exactly the weights they imply.
    FUZZ_REQUIRE(h.max_seq >= 1 && h.max_seq <= 65535, "max_seq %d", h.max_seq);
    FUZZ_REQUIRE(h.layers >= 1 && h.layers <= 4096, "layers %d", h.layers);
    FUZZ_REQUIRE(h.channels >= 1 && h.channels <= 65536 && h.heads >= 1 && h.channels % h.heads == 0, "channels %d heads %d", h.channels, h.heads);
    FUZZ_REQUIRE(h.vocab >= 2 && h.padded_vocab >= h.vocab, "vocab %d padded %d", h.vocab, h.padded_vocab);
    size_t C = (size_t)h.channels, L = (size_t)h.layers;
    size_t floats = (size_t)h.padded_vocab * C + (size_t)h.max_seq * C + L * (12 * C * C + 13 * C) + 2 * C;
    FUZZ_REQUIRE(size == 1024 + 4 * floats, "size %zu for %zu weights", size, floats);
    return 0;
}
