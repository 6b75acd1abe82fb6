// account_acts.c: one layer's activations by tensor, next to Korthikanti et
// al. 2022's Table 2 (account_acts.h).
#include "account_acts.h"

#include <string.h>

#include "account.h"

// The terms of the paper's §4.1 derivation of sbh(34 + 5as/h) per layer.
// `sbh` and `as2b` are their coefficients in bytes (2-byte activations,
// 1-byte masks); SPLIT_TP terms are divided by t under tensor parallelism,
// SPLIT_SP terms (LayerNorms, dropout masks, residuals) only under SP.
typedef enum { SPLIT_TP, SPLIT_SP } term_split;
typedef enum {
    TM_LN1_IN, TM_QKV_IN, TM_QK, TM_V, TM_SOFTMAX, TM_SOFTMAX_MASK, TM_SOFTMAX_DROP, TM_PROJ_IN, TM_ATT_MASK,
    TM_LN2_IN, TM_FC1_IN, TM_GELU_IN, TM_FC2_IN, TM_MLP_MASK, TM_N
} term_id;
static const struct { const char *name; double sbh, as2b; term_split split; int selective; } TERMS[TM_N] = {
    [TM_LN1_IN] = {"LN1 input 2sbh", 2, 0, SPLIT_SP, 0},
    [TM_QKV_IN] = {"QKV input 2sbh", 2, 0, SPLIT_SP, 0},
    [TM_QK] = {"Q, K 4sbh", 4, 0, SPLIT_TP, 0},
    [TM_V] = {"V 2sbh", 2, 0, SPLIT_TP, 0},
    [TM_SOFTMAX] = {"softmax output 2as^2b", 0, 2, SPLIT_TP, 1},
    [TM_SOFTMAX_MASK] = {"softmax dropout mask as^2b", 0, 1, SPLIT_TP, 1},
    [TM_SOFTMAX_DROP] = {"softmax dropout output 2as^2b", 0, 2, SPLIT_TP, 1},
    [TM_PROJ_IN] = {"projection input 2sbh", 2, 0, SPLIT_TP, 0},
    [TM_ATT_MASK] = {"attention dropout mask sbh", 1, 0, SPLIT_SP, 0},
    [TM_LN2_IN] = {"LN2 input 2sbh", 2, 0, SPLIT_SP, 0},
    [TM_FC1_IN] = {"fc1 input 2sbh", 2, 0, SPLIT_SP, 0},
    [TM_GELU_IN] = {"GeLU input 8sbh", 8, 0, SPLIT_TP, 0},
    [TM_FC2_IN] = {"fc2 input 8sbh", 8, 0, SPLIT_TP, 0},
    [TM_MLP_MASK] = {"MLP dropout mask sbh", 1, 0, SPLIT_SP, 0},
};
#define TB(k) (1u << TM_##k)

// The model's activation table (model.h) with the terms each field stands
// for; a field mapped to no term is outside Table 2 (LayerNorm statistics,
// the blocked kernel's log-sum-exp).
static const struct { const char *name; mt_rows_sym rows; mt_width_sym width; mt_buf_when when; } ACTS[MT_ACT_N] = {
#define X(field, r, w, when) [MT_ACT_##field] = {#field, MT_R_##r, MT_W_##w, MT_BUF_##when},
    MT_LAYER_ACTS(X)
#undef X
};
static const unsigned ACT_TERMS[MT_ACT_N] = {
    [MT_ACT_ln1] = TB(QKV_IN), [MT_ACT_qkv] = TB(QK) | TB(V), [MT_ACT_probs] = TB(SOFTMAX),
    [MT_ACT_atty] = TB(PROJ_IN), [MT_ACT_x2] = TB(LN2_IN), [MT_ACT_ln2] = TB(FC1_IN),
    [MT_ACT_fc1] = TB(GELU_IN), [MT_ACT_act] = TB(FC2_IN),
};
// Terms this build has no tensor for, and why.
static const struct { term_id term; const char *why; } UNSTORED[] = {
    {TM_SOFTMAX_MASK, "never stored: regenerated (Philox)"},
    {TM_SOFTMAX_DROP, "never stored: mask re-applied to probs"},
    {TM_ATT_MASK, "never stored: regenerated (Philox)"},
    {TM_MLP_MASK, "never stored: regenerated (Philox)"},
};

// The paper's bytes for a set of terms on this rank, in this mode.
static double paper_bytes(const mt_model *m, unsigned terms, mt_layer_kind kind) {
    const mt_config *c = m->cfg;
    double s = c->seq_length, b = c->micro_batch_size, h = c->hidden_size, a = c->num_heads, t = c->tp, sum = 0;
    // Full recomputation: Table 2's row is the layer input alone, 2sbh.
    if (c->recompute == MT_RECOMPUTE_FULL) return (terms & TB(LN1_IN)) ? 2 * s * b * h : 0;
    for (int k = 0; k < TM_N; k++) {
        if (!(terms & (1u << k))) continue;
        if (TERMS[k].selective && c->recompute == MT_RECOMPUTE_SELECTIVE) continue;
        double div = TERMS[k].split == SPLIT_TP || c->sequence_parallel ? t : 1;
        sum += (TERMS[k].sbh * s * b * h + TERMS[k].as2b * a * s * s * b) / div;
    }
    (void)kind;
    return sum;
}

static void term_names(unsigned terms, char *out, size_t len) {
    size_t o = 0;
    out[0] = 0;
    for (int k = 0; k < TM_N; k++)
        if (terms & (1u << k)) o += (size_t)snprintf(out + o, len - o, "%s%s", o ? " + " : "", TERMS[k].name);
    if (!o) snprintf(out, len, "(not in Table 2)");
}

static mt_act_row row(const mt_model *m, const char *tensor, size_t r, size_t w, int kept, const char *status,
                      unsigned terms, mt_layer_kind kind) {
    mt_act_row x = {tensor, r, w, kept ? r * w * (size_t)m->eb.act : 0, status, "", paper_bytes(m, terms, kind)};
    term_names(terms, x.terms, sizeof x.terms);
    return x;
}

int mt_account_act_rows(const mt_model *m, mt_layer_kind kind, mt_act_row *rows) {
    const mt_config *c = m->cfg;
    int n = 0, sel = c->recompute == MT_RECOMPUTE_SELECTIVE;
    const char *full = "recomputed (full)";
    rows[n++] = row(m, "x", (size_t)m->n_l, (size_t)m->h, kind != MT_LAYER_GROUP_INNER,
                    kind == MT_LAYER_STORED ? "stored" : kind == MT_LAYER_GROUP_FIRST ? "stored (group input)" : full,
                    TB(LN1_IN), kind);
    for (int a = 0; a < MT_ACT_N; a++) {
        // A buffer the config leaves out (the plain kernel's lse, RMSNorm's
        // mean), except the probabilities, listed to say why they are not kept.
        if (a != MT_ACT_probs && !mt_model_buf_wanted(m, ACTS[a].when)) continue;
        const char *st = "stored";
        int kept = kind == MT_LAYER_STORED;
        if (!kept) st = full;
        else if (a == MT_ACT_probs && !mt_model_buf_wanted(m, ACTS[a].when)) st = "not kept: blocked kernel", kept = 0;
        else if (a == MT_ACT_probs && sel) st = "recomputed (selective)", kept = 0;
        rows[n++] = row(m, ACTS[a].name, mt_model_rows_sym(m, ACTS[a].rows), mt_model_width_sym(m, ACTS[a].width), kept, st,
                        ACT_TERMS[a], kind);
    }
    for (size_t u = 0; u < sizeof UNSTORED / sizeof UNSTORED[0]; u++)
        rows[n++] = row(m, "-", 0, 0, 0, UNSTORED[u].why, 1u << UNSTORED[u].term, kind);
    return n;
}

static size_t kind_bytes(const mt_model *m, mt_layer_kind kind) {
    mt_act_row rows[MT_ACT_ROWS_MAX];
    int n = mt_account_act_rows(m, kind, rows);
    size_t sum = 0;
    for (int i = 0; i < n; i++) sum += rows[i].bytes;
    return sum;
}

static mt_layer_kind kind_of(const mt_chunk *ch, int l) {
    int g0 = ch->rc_group0[l];
    return g0 < 0 ? MT_LAYER_STORED : g0 == l ? MT_LAYER_GROUP_FIRST : MT_LAYER_GROUP_INNER;
}

size_t mt_account_act_rows_total(const mt_model *m) {
    size_t total = 0;
    for (int k = 0; k < m->nchunks; k++) {
        const mt_chunk *ch = &m->chunks[k];
        for (int l = 0; l < ch->nlayers; l++) total += (size_t)ch->nslots * kind_bytes(m, kind_of(ch, l));
    }
    return total;
}

static void print_kind(const mt_model *m, mt_layer_kind kind, FILE *f) {
    mt_act_row rows[MT_ACT_ROWS_MAX];
    int n = mt_account_act_rows(m, kind, rows);
    double sbh = (double)m->s * m->b * m->h, ours = 0, paper = 0;
    fprintf(f, "  %-9s %-13s %13s  %-38s %-30s %13s\n", "tensor", "rows x width", "this build B", "status",
            "Table 2 term", "paper B");
    for (int i = 0; i < n; i++) {
        char shape[48] = "-";
        if (rows[i].rows) snprintf(shape, sizeof shape, "%zu x %zu", rows[i].rows, rows[i].width);
        fprintf(f, "  %-9s %-13s %13zu  %-38s %-30s %13.0f\n", rows[i].tensor, shape, rows[i].bytes, rows[i].status,
                rows[i].terms, rows[i].paper_bytes);
        ours += (double)rows[i].bytes;
        paper += rows[i].paper_bytes;
    }
    fprintf(f, "  per layer: this build %.0f B = %.2f sbh at %d-byte elements (%.2f sbh at 2 bytes); paper %.0f B = %.2f sbh "
            "(Table 2 for this mode: %.0f B)\n", ours, ours / sbh, m->eb.act, ours / sbh * 2 / m->eb.act, paper,
            paper / sbh, mt_account_paper_layer(m->cfg));
}

int mt_account_act_print(const mt_model *m, FILE *f) {
    const mt_config *c = m->cfg;
    fprintf(f, "activation breakdown per layer and micro-batch (rank %d; s %d, b %d, h %d, a %d, t %d%s%s; paper: "
            "Korthikanti et al. 2022 Table 2, 2-byte activations, 1-byte masks):\n", m->par->world_rank, m->s, m->b, m->h,
            c->num_heads, m->par->tp_size, c->sequence_parallel ? ", SP" : "",
            c->recompute == MT_RECOMPUTE_SELECTIVE ? ", selective recomputation"
            : c->recompute == MT_RECOMPUTE_FULL ? ", full recomputation" : "");
    int layers = 0, first = 0, inner = 0;
    for (int k = 0; k < m->nchunks; k++)
        for (int l = 0; l < m->chunks[k].nlayers; l++) {
            mt_layer_kind kd = kind_of(&m->chunks[k], l);
            layers++;
            first += kd == MT_LAYER_GROUP_FIRST;
            inner += kd == MT_LAYER_GROUP_INNER;
        }
    if (first + inner < layers) print_kind(m, MT_LAYER_STORED, f);
    if (first) {
        fprintf(f, " the first layer of each recompute group (%d of %d layers; the other %d keep nothing):\n", first, layers, inner);
        print_kind(m, MT_LAYER_GROUP_FIRST, f);
    }
    size_t total = mt_account_act_rows_total(m);
    int same = total == m->act_layer_bytes;
    fprintf(f, "  all layers: %zu B summed over %d layers x %d micro-batches in flight; measured (allocator) %zu B: %s\n",
            total, layers, m->chunks[0].nslots, m->act_layer_bytes, same ? "equal" : "DIFFER");
    return same ? 0 : -1;
}
