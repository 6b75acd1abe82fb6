// model.c: a stage's parameter table, arenas, initialisation and activation
// slots. Every allocation goes through alloc_kind so --log-memory reports what
// was really allocated, per category.
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "rng.h"

const char *const mt_mem_names[MT_MEM_N] = {"parameters", "gradients", "optimizer", "activations", "workspace"};

static real *alloc_kind(mt_model *m, mt_mem_kind k, size_t n) {
    size_t e = k == MT_MEM_PARAMS ? (size_t)m->eb.param : k == MT_MEM_GRADS ? (size_t)m->eb.grad : (size_t)m->eb.act;
    m->mem[k] += n * e;
    return m->dry ? NULL : m->be->alloc(n * sizeof(real));
}

// Parameter table ------------------------------------------------------------

typedef struct { mt_param *v; int n, cap; size_t nelem; } ptable;

static mt_param *add(ptable *t, const mt_model *m, const char *name, int layer, int64_t rows, int64_t cols,
                     mt_split split, double std, double init_value) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = realloc(t->v, sizeof(mt_param) * (size_t)t->cap);
        if (!t->v) mt_fail(1, MT_EXIT_FAIL, "out of memory building the parameter table");
    }
    mt_param *p = &t->v[t->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    int tp = m->par->tp_size;
    p->layer = layer;
    p->ndim = cols > 1 ? 2 : 1;
    p->rows = rows; p->cols = cols;
    p->lrows = rows; p->lcols = cols;
    p->split = split;
    if (split == MT_SPLIT_ROWS || split == MT_SPLIT_QKV) p->lrows = rows / tp;
    if (split == MT_SPLIT_COLS) p->lcols = cols / tp;
    p->tp_replicated = split == MT_SPLIT_NONE;
    p->decay = p->ndim == 2;
    p->std = std;
    p->init_value = init_value;
    p->n = (size_t)(p->lrows * p->lcols);
    p->off = t->nelem;
    t->nelem += p->n;
    return p;
}

void mt_param_global_index(const mt_param *pr, int r, int64_t i, int64_t j, int64_t *gi, int64_t *gj) {
    *gi = i;
    *gj = j;
    switch (pr->split) {
    case MT_SPLIT_ROWS: *gi = r * pr->lrows + i; break;
    case MT_SPLIT_COLS: *gj = r * pr->lcols + j; break;
    case MT_SPLIT_QKV: {
        int64_t part = pr->lrows / 3, blk = i / part;   // Q, K or V block
        *gi = blk * (pr->rows / 3) + r * part + i % part;
        break;
    }
    default: break;
    }
}

static void add_layer(ptable *t, const mt_model *m, int l) {
    const mt_config *c = m->cfg;
    int64_t h = m->h;
    // Output projections scaled by 1/sqrt(2L) (GPT-2, Megatron's scaled init).
    double std = c->init_method_std, ostd = std / sqrt(2.0 * c->num_layers);
    char nm[64];
#define P(suffix, rows, cols, split, sd, v)                        \
    do {                                                           \
        snprintf(nm, sizeof nm, "h.%d." suffix, l);               \
        add(t, m, nm, l, rows, cols, split, sd, v);                \
    } while (0)
    P("ln_1.weight", h, 1, MT_SPLIT_NONE, 0, 1);
    P("ln_1.bias", h, 1, MT_SPLIT_NONE, 0, 0);
    P("attn.qkv.weight", 3 * h, h, MT_SPLIT_QKV, std, 0);
    P("attn.qkv.bias", 3 * h, 1, MT_SPLIT_QKV, 0, 0);
    P("attn.proj.weight", h, h, MT_SPLIT_COLS, ostd, 0);
    P("attn.proj.bias", h, 1, MT_SPLIT_NONE, 0, 0);
    P("ln_2.weight", h, 1, MT_SPLIT_NONE, 0, 1);
    P("ln_2.bias", h, 1, MT_SPLIT_NONE, 0, 0);
    P("mlp.fc1.weight", 4 * h, h, MT_SPLIT_ROWS, std, 0);
    P("mlp.fc1.bias", 4 * h, 1, MT_SPLIT_ROWS, 0, 0);
    P("mlp.fc2.weight", h, 4 * h, MT_SPLIT_COLS, ostd, 0);
    P("mlp.fc2.bias", h, 1, MT_SPLIT_NONE, 0, 0);
#undef P
}

// Fills the chunk list: which layers this stage holds, virtual stage by
// virtual stage (Narayanan et al. 2021, interleaved schedule).
static void plan_chunks(mt_model *m) {
    const mt_config *c = m->cfg;
    int pp = c->pp, r = m->par->pp_rank;
    int per = c->layers_per_virtual_stage ? c->layers_per_virtual_stage : c->num_layers / pp;
    m->nchunks = c->num_layers / pp / per;
    m->chunks = mt_calloc((size_t)m->nchunks, sizeof(mt_chunk));
    for (int k = 0; k < m->nchunks; k++) {
        mt_chunk *ch = &m->chunks[k];
        ch->layer0 = (k * pp + r) * per;
        ch->nlayers = per;
        ch->has_embed = r == 0 && k == 0;
        ch->has_head = r == pp - 1 && k == m->nchunks - 1;
    }
}

static void build_table(mt_model *m) {
    const mt_config *c = m->cfg;
    ptable t = {0};
    int first = m->chunks[0].has_embed, last = m->chunks[m->nchunks - 1].has_head;
    if (first || last) add(&t, m, "wte.weight", -1, m->Vp, m->h, MT_SPLIT_ROWS, c->init_method_std, 0);
    if (first) add(&t, m, "wpe.weight", -1, c->max_position_embeddings, m->h, MT_SPLIT_NONE, c->init_method_std, 0);
    for (int k = 0; k < m->nchunks; k++)
        for (int l = 0; l < m->chunks[k].nlayers; l++) add_layer(&t, m, m->chunks[k].layer0 + l);
    if (last) {
        add(&t, m, "ln_f.weight", -1, m->h, 1, MT_SPLIT_NONE, 0, 1);
        add(&t, m, "ln_f.bias", -1, m->h, 1, MT_SPLIT_NONE, 0, 0);
    }
    for (int i = 0; i < t.n; i++) {
        mt_param *p = &t.v[i];
        // Under SP these see only s/t tokens per rank (Megatron #1446): LN
        // weights and biases, row-parallel biases, and the position table.
        p->sp_partial = c->sequence_parallel && p->split == MT_SPLIT_NONE;
    }
    m->params = t.v;
    m->nparams = t.n;
    m->nelem = t.nelem;
}

const mt_param *mt_model_find(const mt_model *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

static void init_params(mt_model *m) {
    uint64_t seed = m->cfg->seed;
    for (int k = 0; k < m->nparams; k++) {
        const mt_param *p = &m->params[k];
        real *dst = m->param_mem + p->off;
        uint64_t hname = mt_hash_str(p->name);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < p->lrows; i++)
            for (int64_t j = 0; j < p->lcols; j++) {
                int64_t gi, gj;
                mt_param_global_index(p, m->par->tp_rank, i, j, &gi, &gj);
                dst[i * p->lcols + j] = p->std > 0 ? (real)(p->std * mt_rng_normal(seed, hname, (uint64_t)gi, (uint64_t)gj))
                                                   : (real)p->init_value;
            }
    }
}

// Points the per-layer weight tables at the arenas.
static void bind(mt_model *m, real *base, real **wte, real **wpe, real **lnfw, real **lnfb, int grads) {
    const mt_param *p;
    *wte = (p = mt_model_find(m, "wte.weight")) ? base + p->off : NULL;
    *wpe = (p = mt_model_find(m, "wpe.weight")) ? base + p->off : NULL;
    *lnfw = (p = mt_model_find(m, "ln_f.weight")) ? base + p->off : NULL;
    *lnfb = (p = mt_model_find(m, "ln_f.bias")) ? base + p->off : NULL;
    for (int k = 0; k < m->nchunks; k++) {
        mt_chunk *ch = &m->chunks[k];
        mt_layer_w *lw = grads ? ch->dw : ch->w;
        for (int l = 0; l < ch->nlayers; l++) {
            char nm[64];
            real **slots[12] = {&lw[l].ln1w, &lw[l].ln1b, &lw[l].qkvw, &lw[l].qkvb, &lw[l].projw, &lw[l].projb,
                                &lw[l].ln2w, &lw[l].ln2b, &lw[l].fc1w, &lw[l].fc1b, &lw[l].fc2w, &lw[l].fc2b};
            static const char *const sfx[12] = {"ln_1.weight", "ln_1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                                "attn.proj.weight", "attn.proj.bias", "ln_2.weight", "ln_2.bias",
                                                "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"};
            for (int i = 0; i < 12; i++) {
                snprintf(nm, sizeof nm, "h.%d.%s", ch->layer0 + l, sfx[i]);
                *slots[i] = base + mt_model_find(m, nm)->off;
            }
        }
    }
}

// One layer's saved activations, from `kind` (slots: activations; the
// shared recompute set: workspace). Under selective recomputation the
// probabilities are never kept: every layer points at the one w_probs.
// Saved attention state per layer: the (b, a/t, s, s) probabilities, or with
// the blocked kernel only each row's log-sum-exp (b, a/t, s).
static size_t probs_elems(const mt_model *m) {
    return (size_t)m->b * (size_t)m->nh_l * (size_t)m->s * (m->cfg->flash_attn ? 1 : (size_t)m->s);
}

static void alloc_acts(mt_model *m, mt_layer_acts *a, mt_mem_kind kind) {
    size_t n = (size_t)m->n, nl = (size_t)m->n_l, h = (size_t)m->h;
    size_t probs = probs_elems(m);
    a->ln1 = alloc_kind(m, kind, nl * h);
    a->ln1_mean = alloc_kind(m, kind, nl);
    a->ln1_rstd = alloc_kind(m, kind, nl);
    a->qkv = alloc_kind(m, kind, n * 3 * (size_t)m->h_l);
    a->probs = m->cfg->recompute == MT_RECOMPUTE_SELECTIVE && !m->cfg->flash_attn ? m->w_probs : alloc_kind(m, kind, probs);
    a->atty = alloc_kind(m, kind, n * (size_t)m->h_l);
    a->x2 = alloc_kind(m, kind, nl * h);
    a->ln2 = alloc_kind(m, kind, nl * h);
    a->ln2_mean = alloc_kind(m, kind, nl);
    a->ln2_rstd = alloc_kind(m, kind, nl);
    a->fc1 = alloc_kind(m, kind, n * (size_t)m->ff_l);
    a->gelu = alloc_kind(m, kind, n * (size_t)m->ff_l);
}

static void free_acts(const mt_model *m, mt_layer_acts *a) {
    real *bufs[] = {a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->atty, a->x2,
                    a->ln2, a->ln2_mean, a->ln2_rstd, a->fc1, a->gelu};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) m->be->free(bufs[i]);
    if (a->probs != m->w_probs) m->be->free(a->probs);
}

static void alloc_slot(mt_model *m, const mt_chunk *ch, mt_slot *sl) {
    size_t n = (size_t)m->n, nl = (size_t)m->n_l, h = (size_t)m->h;
    if (ch->has_embed || ch->has_head) {
        m->mem[MT_MEM_ACTS] += 2 * n * sizeof(int);
        sl->tokens = m->dry ? NULL : m->be->alloc(n * sizeof(int));
        sl->targets = m->dry ? NULL : m->be->alloc(n * sizeof(int));
    }
    // Pipeline send buffer for this slot's input gradient: counted as
    // workspace, it is communication staging, not a saved activation.
    if (!ch->has_embed && m->par->pp_size > 1) sl->dsend = alloc_kind(m, MT_MEM_WORK, nl * h);
    // x[l] is layer l's input; a recomputed layer inside a group keeps
    // neither its input nor its activations (the shared set has them).
    sl->x = mt_calloc((size_t)ch->nlayers + 1, sizeof(real *));
    sl->acts = mt_calloc((size_t)ch->nlayers, sizeof(mt_layer_acts));
    size_t before = m->mem[MT_MEM_ACTS];
    for (int l = 0; l < ch->nlayers; l++) {
        int g0 = ch->rc_group0[l];
        sl->x[l] = g0 < 0 || g0 == l ? alloc_kind(m, MT_MEM_ACTS, nl * h) : m->rc_x[l - g0];
        if (g0 < 0) alloc_acts(m, &sl->acts[l], MT_MEM_ACTS);
        else sl->acts[l] = m->rc_acts[l - g0];
    }
    m->act_layer_bytes += m->mem[MT_MEM_ACTS] - before;
    sl->x[ch->nlayers] = alloc_kind(m, MT_MEM_ACTS, nl * h);  // the chunk's output
}

static void alloc_workspace(mt_model *m) {
    size_t n = (size_t)m->n, nl = (size_t)m->n_l, h = (size_t)m->h;
    // The blocked kernel needs no (s, s) gradient workspace either.
    size_t probs = m->cfg->flash_attn ? 0 : (size_t)m->b * (size_t)m->nh_l * (size_t)m->s * (size_t)m->s;
    m->w_gath = alloc_kind(m, MT_MEM_WORK, n * h);
    m->w_part = alloc_kind(m, MT_MEM_WORK, n * h);
    m->w_dres = alloc_kind(m, MT_MEM_WORK, nl * h);
    m->w_dtmp = alloc_kind(m, MT_MEM_WORK, nl * h);
    m->w_dqkv = alloc_kind(m, MT_MEM_WORK, n * 3 * (size_t)m->h_l);
    m->w_datty = alloc_kind(m, MT_MEM_WORK, n * (size_t)m->h_l);
    m->w_dff = alloc_kind(m, MT_MEM_WORK, n * (size_t)m->ff_l);
    m->w_dprobs = alloc_kind(m, MT_MEM_WORK, probs);
    if (m->chunks[m->nchunks - 1].has_head) {
        m->w_logits = alloc_kind(m, MT_MEM_WORK, n * (size_t)m->v_l);
        m->w_lnf = alloc_kind(m, MT_MEM_WORK, nl * h);
        m->w_lnf_mean = alloc_kind(m, MT_MEM_WORK, nl);
        m->w_lnf_rstd = alloc_kind(m, MT_MEM_WORK, nl);
        m->w_xent = alloc_kind(m, MT_MEM_WORK, 4 * n);
    }
}

// Which layers of each chunk recompute, and the shared set they refill:
// uniform: every layer, in groups of --recompute-num-layers; block: the
// first --recompute-num-layers layers of each chunk, one at a time.
static void plan_recompute(mt_model *m) {
    const mt_config *c = m->cfg;
    size_t nl = (size_t)m->n_l, h = (size_t)m->h;
    int uniform = c->recompute_method == MT_RECOMPUTE_UNIFORM;
    // Selective recomputation re-forms the probabilities in one shared
    // buffer; the blocked kernel keeps none, so it has nothing to recompute.
    if (c->recompute == MT_RECOMPUTE_SELECTIVE && !c->flash_attn)
        m->w_probs = alloc_kind(m, MT_MEM_WORK, probs_elems(m));
    m->rc_len = c->recompute == MT_RECOMPUTE_FULL ? (uniform ? c->recompute_num_layers : 1) : 0;
    for (int k = 0; k < m->nchunks; k++) {
        mt_chunk *ch = &m->chunks[k];
        ch->rc_group0 = mt_malloc(sizeof(int) * (size_t)ch->nlayers);
        for (int l = 0; l < ch->nlayers; l++) {
            int on = m->rc_len && (uniform || l < c->recompute_num_layers);
            ch->rc_group0[l] = on ? (uniform ? l / m->rc_len * m->rc_len : l) : -1;
        }
    }
    if (!m->rc_len) return;
    m->rc_acts = mt_calloc((size_t)m->rc_len, sizeof(mt_layer_acts));
    m->rc_x = mt_calloc((size_t)m->rc_len, sizeof(real *));
    for (int i = 0; i < m->rc_len; i++) {
        alloc_acts(m, &m->rc_acts[i], MT_MEM_WORK);
        if (i > 0) m->rc_x[i] = alloc_kind(m, MT_MEM_WORK, nl * h);
    }
    m->w_xscratch = alloc_kind(m, MT_MEM_WORK, nl * h);
}

static void build(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk, int dry, const mt_elem_bytes *eb);

void mt_model_init(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk) {
    build(m, c, p, slots_per_chunk, 0, NULL);
}

void mt_model_plan(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk, const mt_elem_bytes *eb) {
    build(m, c, p, slots_per_chunk, 1, eb);
}

static void build(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk, int dry, const mt_elem_bytes *eb) {
    memset(m, 0, sizeof *m);
    m->be = mt_backend_default();
    m->cfg = c;
    m->par = p;
    m->dry = dry;
    m->eb = eb ? *eb : (mt_elem_bytes){(int)sizeof(real), (int)sizeof(real), (int)sizeof(real), 2 * (int)sizeof(real)};
    int t = p->tp_size;
    m->h = c->hidden_size; m->nh = c->num_heads; m->hd = c->hidden_size / c->num_heads;
    m->s = c->seq_length; m->b = c->micro_batch_size;
    m->V = c->vocab_size; m->Vp = c->padded_vocab;
    m->nh_l = m->nh / t; m->h_l = m->h / t; m->ff_l = 4 * m->h / t;
    m->v_l = m->Vp / t; m->v0 = p->tp_rank * m->v_l;
    m->s_l = c->sequence_parallel ? m->s / t : m->s;
    m->pos0 = c->sequence_parallel ? p->tp_rank * m->s_l : 0;
    m->n = m->s * m->b; m->n_l = m->s_l * m->b;
    plan_chunks(m);
    build_table(m);
    // The distributed optimizer splits the arenas into dp equal shards.
    size_t dp = (size_t)p->dp_size;
    m->nelem_pad = (m->nelem + dp - 1) / dp * dp;
    m->shard_n = c->use_distributed_optimizer ? m->nelem_pad / dp : m->nelem;
    m->shard0 = c->use_distributed_optimizer ? (size_t)p->dp_rank * m->shard_n : 0;
    m->param_mem = alloc_kind(m, MT_MEM_PARAMS, m->nelem_pad);
    m->grad_mem = alloc_kind(m, MT_MEM_GRADS, m->nelem_pad);
    plan_recompute(m);
    for (int k = 0; k < m->nchunks; k++) {
        mt_chunk *ch = &m->chunks[k];
        ch->w = mt_calloc((size_t)ch->nlayers, sizeof(mt_layer_w));
        ch->dw = mt_calloc((size_t)ch->nlayers, sizeof(mt_layer_w));
        ch->nslots = slots_per_chunk;
        ch->slots = mt_calloc((size_t)slots_per_chunk, sizeof(mt_slot));
        for (int s = 0; s < slots_per_chunk; s++) alloc_slot(m, ch, &ch->slots[s]);
    }
    alloc_workspace(m);
    if (dry) return;
    bind(m, m->param_mem, &m->wte, &m->wpe, &m->lnfw, &m->lnfb, 0);
    bind(m, m->grad_mem, &m->dwte, &m->dwpe, &m->dlnfw, &m->dlnfb, 1);
    // --init-from overwrites every parameter (llm.c files hold them all, and
    // a checkpoint found by --load does too): drawing ~N normals first would
    // only cost start-up time (20% of a short 124M run).
    if (!c->init_from[0]) init_params(m);
}

static void free_slot(const mt_model *m, const mt_chunk *ch, mt_slot *sl) {
    m->be->free(sl->tokens);
    m->be->free(sl->targets);
    for (int l = 0; l <= ch->nlayers; l++) {
        int g0 = l < ch->nlayers ? ch->rc_group0[l] : -1;
        if (g0 < 0 || g0 == l) m->be->free(sl->x[l]);
        if (l < ch->nlayers && g0 < 0) free_acts(m, &sl->acts[l]);
    }
    free(sl->x);
    free(sl->acts);
    m->be->free(sl->dsend);
}


void mt_model_free(mt_model *m) {
    for (int k = 0; k < m->nchunks; k++) {
        mt_chunk *ch = &m->chunks[k];
        for (int s = 0; s < ch->nslots; s++) free_slot(m, ch, &ch->slots[s]);
        free(ch->slots);
        free(ch->rc_group0);
        free(ch->w);
        free(ch->dw);
    }
    free(m->chunks);
    for (int i = 0; i < m->rc_len; i++) {
        free_acts(m, &m->rc_acts[i]);
        m->be->free(m->rc_x[i]);
    }
    free(m->rc_acts);
    free(m->rc_x);
    real *bufs[] = {m->w_probs, m->w_xscratch, m->param_mem, m->grad_mem, m->m_mem, m->v_mem, m->w_gath, m->w_part, m->w_dres, m->w_dtmp,
                    m->w_dqkv, m->w_datty, m->w_dff, m->w_dprobs, m->w_logits, m->w_lnf, m->w_lnf_mean,
                    m->w_lnf_rstd, m->w_xent};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) m->be->free(bufs[i]);
    free(m->params);
}

mt_param *mt_params_full(const mt_config *c, int tp, int *n) {
    // A model-shaped view with one chunk holding every layer, the embedding
    // and the head, on a TP rank of a `tp`-way split; only the table is built.
    mt_parallel par = {0};
    par.tp_size = tp;
    mt_model m = {0};
    m.cfg = c;
    m.par = &par;
    m.h = c->hidden_size;
    m.Vp = c->padded_vocab;
    mt_chunk ch = {.layer0 = 0, .nlayers = c->num_layers, .has_embed = 1, .has_head = 1};
    m.chunks = &ch;
    m.nchunks = 1;
    build_table(&m);
    *n = m.nparams;
    return m.params;
}
