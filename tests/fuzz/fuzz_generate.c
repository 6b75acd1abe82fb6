// fuzz_generate.c: libFuzzer harness of tools/generate's loader,
// mt_ckpt_meta_read_dir (src/ckpt_meta.c): a checkpoint directory's latest
// file, then its iter_N/model.safetensors, opened by the non-blocking,
// header-first reader and validated by the trainer's flag rules. The input
// is split at its first NUL byte: before it, the latest file; after it, the
// model file, always written as iter_0000001 (the fuzzer finds "1").
// The directory is private to the process, on tmpfs when there is one.
//
// Promises: a rejection is one non-empty line naming what it refuses; an
// acceptance means the latest file said 1 and the config passes
// fuzz_ckpt_meta.c's checks (a model can be built from it).
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#define FUZZ_NO_MAIN
#include "fuzz_ckpt_meta.c"

static char g_dir[256], g_latest[300], g_model[320];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_private_dir(g_dir, sizeof g_dir, "gen");
    char it[300];
    snprintf(it, sizeof it, "%s/iter_0000001", g_dir);
    if (mkdir(it, 0700) && errno != EEXIST) { perror(it); abort(); }
    snprintf(g_latest, sizeof g_latest, "%s/latest_checkpointed_iteration.txt", g_dir);
    snprintf(g_model, sizeof g_model, "%s/model.safetensors", it);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t a = nul ? (size_t)(nul - data) : size;
    fuzz_put(g_latest, data, a);
    fuzz_put(g_model, nul ? nul + 1 : data, nul ? size - a - 1 : 0);
    mt_config c;
    char err[1400] = "";
    int it = 0;
    if (mt_ckpt_meta_read_dir(g_dir, &c, &it, err, sizeof err)) {
        FUZZ_REQUIRE(err[0] && !strchr(err, '\n'), "rejected without one line: '%s'", err);
        return 0;
    }
    FUZZ_REQUIRE(it == 1, "accepted iteration %d", it);
    check_config(&c);
    return 0;
}
