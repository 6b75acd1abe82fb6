// params.c: the tables of params.h as data, and the dims and conditions
// their rows are written in.
#include "params.h"

#define X(field, name, r0, r1, r2, cols, split, init, decay, when, llmc, gpt2, tr, llama)                          \
    [MT_LP_##field] = {name, {MT_DIM_##r0, MT_DIM_##r1, MT_DIM_##r2}, MT_DIM_##cols, MT_SPLIT_##split, MT_INIT_##init, \
                       decay, MT_WHEN_##when, MT_AT_FIRST, llmc, gpt2, tr, llama},
const mt_param_def mt_layer_param_defs[MT_LP_N] = {MT_LAYER_PARAMS(X)};
#undef X

#define X(field, name, rows, cols, split, init, decay, when, where, llmc, gpt2, tr, llama)                         \
    [MT_TP_##field] = {name, {MT_DIM_##rows, MT_DIM_NONE, MT_DIM_NONE}, MT_DIM_##cols, MT_SPLIT_##split,            \
                       MT_INIT_##init, decay, MT_WHEN_##when, MT_AT_##where, llmc, gpt2, tr, llama},
const mt_param_def mt_top_param_defs[MT_TP_N] = {MT_TOP_PARAMS(X)};
#undef X

int mt_param_kv_heads(const mt_config *c) { return c->num_query_groups > 0 ? c->num_query_groups : c->num_heads; }

int64_t mt_param_ffn(const mt_config *c) { return c->ffn_hidden_size > 0 ? c->ffn_hidden_size : 4 * (int64_t)c->hidden_size; }

int64_t mt_param_dim(const mt_config *c, mt_dim d) {
    switch (d) {
#define X(name, value) case MT_DIM_##name: return (value);
        MT_PARAM_DIMS(X)
#undef X
    }
    return 0;
}

int mt_param_present(const mt_config *c, const mt_param_def *d) {
    switch (d->when) {
#define X(name, cond) case MT_WHEN_##name: return (cond);
        MT_PARAM_WHEN(X)
#undef X
    }
    return 0;
}
