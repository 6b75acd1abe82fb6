// fuzz_ckpt_meta.c: libFuzzer harness of checkpoint metadata
// (src/ckpt_meta.c): mt_ckpt_meta_config, which turns a checkpoint's
// __metadata__ into the config the trainer's own rules accept (the path of
// tools/generate), and mt_ckpt_meta_state (iteration, consumed_samples, the
// path of --load). The input is a safetensors file (mt_st_open_mem); seeds
// hold metadata only.
//
// Promises beyond "no crash, no leak, no UB": a rejection is one non-empty
// line; an accepted config is one a model can be built from (whole heads,
// vocabulary >= 2 and padded >= it, seq = positions, no dropout, one rank,
// finite epsilons) with a shape table whose every size is positive and
// whose total fits in 63 bits; an accepted state has iteration >= 1.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ckpt_meta.h"
#include "fuzz_util.h"
#include "model.h"

// The checks shared with fuzz_generate.c.
static void check_config(const mt_config *c) {
    FUZZ_REQUIRE(c->num_layers >= 1 && c->num_layers <= 4096, "layers %d", c->num_layers);
    FUZZ_REQUIRE(c->num_heads >= 1 && c->hidden_size >= 1 && c->hidden_size % c->num_heads == 0, "hidden %d heads %d",
                 c->hidden_size, c->num_heads);
    FUZZ_REQUIRE(c->vocab_size >= 2 && c->padded_vocab >= c->vocab_size, "vocab %d padded %d", c->vocab_size, c->padded_vocab);
    FUZZ_REQUIRE(c->seq_length == c->max_position_embeddings && c->seq_length >= 1, "seq %d positions %d", c->seq_length,
                 c->max_position_embeddings);
    FUZZ_REQUIRE(c->tp == 1 && c->pp == 1 && c->dp == 1 && c->hidden_dropout == 0 && c->attention_dropout == 0, "layout or dropout");
    FUZZ_REQUIRE(isfinite(c->norm_epsilon) && c->norm_epsilon > 0, "eps %g", c->norm_epsilon);
    FUZZ_REQUIRE(c->num_query_groups >= 1 && c->num_heads % c->num_query_groups == 0, "groups %d", c->num_query_groups);
    int n = 0;
    mt_param *all = mt_params_global(c, &n);
    long double total = 0;
    for (int i = 0; i < n; i++) {
        FUZZ_REQUIRE(all[i].rows >= 1 && all[i].cols >= 1, "%s: %lld x %lld", all[i].name, (long long)all[i].rows,
                     (long long)all[i].cols);
        total += (long double)all[i].rows * (long double)all[i].cols;
    }
    FUZZ_REQUIRE(n > 0 && total < 9.2e18L, "%d tensors, %Lg elements", n, total);
    free(all);
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1400] = "";
    mt_st_file *f = mt_st_open_mem(data, size, err, sizeof err);
    if (!f) return 0;  // the reader's own harness (fuzz_safetensors) covers this
    mt_config c;
    if (mt_ckpt_meta_config(f, "model.safetensors", &c, err, sizeof err)) {
        FUZZ_REQUIRE(err[0] && !strchr(err, '\n'), "rejected without one line: '%s'", err);
    } else {
        check_config(&c);
    }
    mt_ckpt_state st;
    err[0] = 0;
    if (mt_ckpt_meta_state(f, "model.safetensors", &st, err, sizeof err))
        FUZZ_REQUIRE(err[0] && !strchr(err, '\n'), "state rejected without one line: '%s'", err);
    else
        FUZZ_REQUIRE(st.iteration >= 1, "iteration %d", st.iteration);
    mt_st_close(f);
    return 0;
}
#endif
