// fuzz_config.c: libFuzzer harness of the flag parser (src/config.c):
// mt_config_parse_checked and mt_config_finish_checked, the non-exiting
// twins of what pretrain_gpt runs first.
//
// Input: the bytes before the first NUL are the command line, split into
// argv words at spaces, tabs and newlines; the bytes after it (if there is a
// NUL) are a --config file, and "--config FILE" is appended to argv. Every
// "--config X" the words themselves name is pointed at that same file (empty
// when there is no NUL), so the parser never opens an arbitrary path (a FIFO,
// /dev/stdin) yet nested, repeated and value-less --config stay reachable.
// The world size for finish is 1 + (input length mod 64).
//
// Promises checked beyond "no crash, no leak, no UB": a rejection comes with
// one non-empty line; an accepted config satisfies the invariants the model
// code relies on (config.h, docs/design.md §3).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"

static fuzz_file g_conf;   // the --config file
static FILE *g_null;       // mt_config_print's destination

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_file_open(&g_conf, "fuzz_config");
    g_null = fopen("/dev/null", "w");
    if (!g_null) abort();
    return 0;
}

static int is_sep(uint8_t ch) { return ch == ' ' || ch == '\t' || ch == '\n'; }

static void check_line(const char *err) {
    FUZZ_REQUIRE(err[0], "rejected without a message");
    FUZZ_REQUIRE(!strchr(err, '\n'), "message spans lines: '%s'", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = size ? memchr(data, 0, size) : NULL;
    size_t cmd_len = nul ? (size_t)(nul - data) : size;
    if (nul) fuzz_file_set(&g_conf, nul + 1, size - cmd_len - 1);
    else fuzz_file_set(&g_conf, NULL, 0);

    // argv: "pretrain_gpt", the words, maybe "--config FILE", NULL. Each word
    // is its own allocation so ASan sees a read past any one of them.
    int cap = 4 + (int)cmd_len, argc = 0;
    char **argv = calloc((size_t)cap, sizeof *argv);
    argv[argc++] = strdup("pretrain_gpt");
    for (size_t i = 0; i < cmd_len;) {
        while (i < cmd_len && is_sep(data[i])) i++;
        size_t j = i;
        while (j < cmd_len && !is_sep(data[j])) j++;
        if (j > i) {
            int follows_config = argc > 1 && !strcmp(argv[argc - 1], "--config");
            if (follows_config && !(j - i >= 2 && data[i] == '-' && data[i + 1] == '-')) argv[argc++] = strdup(g_conf.path);
            else argv[argc++] = strndup((const char *)data + i, j - i);
        }
        i = j;
    }
    if (nul) {
        argv[argc++] = strdup("--config");
        argv[argc++] = strdup(g_conf.path);
    }
    argv[argc] = NULL;

    mt_config c;
    char err[2048];
    if (mt_config_parse_checked(&c, argc, argv, err, sizeof err)) {
        check_line(err);
    } else {
        FUZZ_REQUIRE(c.num_layers >= 1 && c.hidden_size >= 1 && c.num_heads >= 1 && c.hidden_size % c.num_heads == 0, "model shape");
        FUZZ_REQUIRE(c.seq_length >= 1 && c.max_position_embeddings >= c.seq_length, "sequence");
        FUZZ_REQUIRE(c.tp >= 1 && c.pp >= 1 && c.micro_batch_size >= 1, "layout");
        FUZZ_REQUIRE(c.data_path[0] || c.train_data_path[0], "no data");
        int world = 1 + (int)(size % 64);
        if (mt_config_finish_checked(&c, world, err, sizeof err)) {
            check_line(err);
        } else {
            FUZZ_REQUIRE((long long)c.tp * c.pp * c.dp == world, "TP %d x PP %d x DP %d != world %d", c.tp, c.pp, c.dp, world);
            FUZZ_REQUIRE(c.padded_vocab >= c.vocab_size && c.padded_vocab % c.vocab_divisor == 0 && c.padded_vocab % c.tp == 0, "padded vocab %d", c.padded_vocab);
            FUZZ_REQUIRE(c.num_heads % c.tp == 0 && c.num_layers % c.pp == 0, "split of heads or layers");
            FUZZ_REQUIRE(!c.sequence_parallel || c.seq_length % c.tp == 0, "sequence parallel split");
            FUZZ_REQUIRE(c.num_micro_batches >= 1, "micro-batches %d", c.num_micro_batches);
            FUZZ_REQUIRE((long long)c.num_micro_batches * c.micro_batch_size * c.dp == c.global_batch_size, "global batch");
            mt_config_print(&c, g_null);
        }
        (void)mt_config_was_set(&c, "--num-layers");
        (void)mt_config_was_set(&c, "--no-such-flag");
    }
    for (int i = 0; i < argc; i++) free(argv[i]);
    free(argv);
    return 0;
}
