// model.c: a stage's tensors from the tables of params.h, its arenas,
// initialisation, activation slots and workspaces. Every allocation goes
// through alloc_kind so --log-memory reports what was really allocated, per
// category.
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gradnorm.h"
#include "rng.h"

const char *const mt_mem_names[MT_MEM_N] = {"parameters", "gradients", "optimizer", "activations", "workspace"};

static real *alloc_kind(mt_model *m, mt_mem_kind k, size_t n) {
    size_t e = k == MT_MEM_PARAMS ? (size_t)m->eb.param : k == MT_MEM_GRADS ? (size_t)m->eb.grad : (size_t)m->eb.act;
    m->mem[k] += n * e;
    return m->dry ? NULL : m->be->alloc(n * sizeof(real));
}

// ---- the tensor list ---------------------------------------------------------

typedef struct { mt_param *v; int n, cap; size_t nelem; } ptable;

// Appends one row of a table as a tensor of layer `layer` (-1: none). With
// par NULL the tensor is global (no shard): the view files take.
static void add(ptable *t, const mt_config *c, const mt_parallel *par, const mt_param_def *d, int index, int layer) {
    if (!mt_param_present(c, d)) return;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = realloc(t->v, sizeof(mt_param) * (size_t)t->cap);
        if (!t->v) mt_fail_local(MT_EXIT_FAIL, "out of memory building the parameter table");
    }
    mt_param *p = &t->v[t->n++];
    memset(p, 0, sizeof *p);
    if (layer >= 0) snprintf(p->name, sizeof p->name, "h.%d.%s", layer, d->name);
    else snprintf(p->name, sizeof p->name, "%s", d->name);
    int tp = par ? par->tp_size : 1, pp = par ? par->pp_size : 1;
    p->def = d;
    p->index = index;
    p->layer = layer;
    for (int b = 0; b < 3 && d->rows[b] != MT_DIM_NONE; b++) {
        p->block[b] = mt_param_dim(c, d->rows[b]);
        p->rows += p->block[b];
        p->nblocks++;
    }
    p->cols = mt_param_dim(c, d->cols);
    p->ndim = d->cols == MT_DIM_ONE ? 1 : 2;
    p->split = d->split;
    p->lrows = d->split == MT_SPLIT_ROWS ? p->rows / tp : p->rows;
    p->lcols = d->split == MT_SPLIT_COLS ? p->cols / tp : p->cols;
    p->tp_replicated = d->split == MT_SPLIT_NONE;
    p->tied = layer < 0 && d->where == MT_AT_TIED && pp > 1 && !c->untie_embeddings;
    // A TP-replicated tensor is applied to the sequence-split rows (norms,
    // the biases after ḡ, the position table): under SP each TP rank sees
    // only s/t tokens of it (Megatron #1446).
    p->sp_partial = p->tp_replicated && c->sequence_parallel;
    p->decay = d->decay;
    p->std = d->init == MT_INIT_NORMAL ? c->init_method_std
           : d->init == MT_INIT_SCALED ? c->init_method_std / sqrt(2.0 * c->num_layers) : 0;
    p->init_value = d->init == MT_INIT_ONES ? 1 : 0;
    p->n = (size_t)(p->lrows * p->lcols);
    p->off = t->nelem;
    t->nelem += p->n;
}

static void add_top(ptable *t, const mt_config *c, const mt_parallel *par, int first, int last, int after_layers) {
    for (int i = 0; i < MT_TP_N; i++) {
        const mt_param_def *d = &mt_top_param_defs[i];
        int here = d->where == MT_AT_FIRST ? first : d->where == MT_AT_LAST ? last : first || (last && !c->untie_embeddings);
        // llm.c's order: what the first stage holds comes before the layers.
        if (here && (d->where == MT_AT_LAST) == after_layers) add(t, c, par, d, i, -1);
    }
}

static void add_layer(ptable *t, const mt_config *c, const mt_parallel *par, int layer) {
    for (int i = 0; i < MT_LP_N; i++) add(t, c, par, &mt_layer_param_defs[i], i, layer);
}

// The tensors of chunks [chunks, chunks + nchunks) in arena order.
static ptable build_table(const mt_config *c, const mt_parallel *par, const mt_chunk *chunks, int nchunks) {
    ptable t = {0};
    int first = chunks[0].has_embed, last = chunks[nchunks - 1].has_head;
    add_top(&t, c, par, first, last, 0);
    for (int k = 0; k < nchunks; k++)
        for (int l = 0; l < chunks[k].nlayers; l++) add_layer(&t, c, par, chunks[k].layer0 + l);
    add_top(&t, c, par, first, last, 1);
    return t;
}

mt_param *mt_params_global(const mt_config *c, int *n) {
    mt_chunk all = {.layer0 = 0, .nlayers = c->num_layers, .has_embed = 1, .has_head = 1};
    // Files hold the TP 1 padding of the vocabulary (config.h, file_vocab).
    mt_config fc = *c;
    if (c->file_vocab > 0) fc.padded_vocab = c->file_vocab;
    ptable t = build_table(&fc, NULL, &all, 1);
    *n = t.n;
    return t.v;
}

void mt_param_global_index(const mt_param *pr, int r, int64_t i, int64_t j, int64_t *gi, int64_t *gj) {
    *gi = i;
    *gj = j;
    if (pr->split == MT_SPLIT_COLS) *gj = r * pr->lcols + j;
    if (pr->split != MT_SPLIT_ROWS) return;
    // Row blocks (Q, K, V): the local rows are each block's tp-th part in turn.
    int64_t tp = pr->rows / pr->lrows, g0 = 0, l0 = 0;
    for (int b = 0; b < pr->nblocks; b++) {
        int64_t part = pr->block[b] / tp;
        if (i < l0 + part) { *gi = g0 + r * part + (i - l0); return; }
        g0 += pr->block[b];
        l0 += part;
    }
}

const mt_param *mt_model_find(const mt_model *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

// ---- ownership ---------------------------------------------------------------

int mt_param_counts_in_norm(const mt_model *m, const mt_param *p) {
    const mt_parallel *par = m->par;
    // Negative control: count TP-replicated tensors on every TP rank.
    if (p->tp_replicated && par->tp_rank != 0 && !m->cfg->bug_norm_double) return 0;
    if (p->tied && par->pp_rank != 0) return 0;
    return 1;
}

int mt_param_is_writer(const mt_model *m, const mt_param *p, int dp_copies) {
    const mt_parallel *par = m->par;
    if (dp_copies && (par->dp_rank != 0 || par->cp_rank != 0)) return 0;
    if (p->tp_replicated && par->tp_rank != 0) return 0;
    if (p->tied && par->pp_rank != 0) return 0;
    return 1;
}

void mt_param_shard(const mt_model *m, const mt_param *p, size_t *a, size_t *b) {
    *a = MT_MAX(p->off, m->shard0);
    *b = MT_MIN(p->off + p->n, m->shard0 + m->shard_n);
}

unsigned mt_param_grad_groups(const mt_model *m, const mt_param *p) {
    unsigned g = 0;
    if (p->sp_partial && m->par->tp_size > 1) g |= 1u << MT_GROUP_TP;
    if (p->tied) g |= 1u << MT_GROUP_EMBD;
    return g;
}

// ---- initialisation and binding ----------------------------------------------

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

// Points the pointer tables (weights, or gradients when grads) at the arena
// `base`; a tensor the config leaves out stays NULL.
static void bind(mt_model *m, real *base, int grads) {
    mt_top_w *top = grads ? &m->dw : &m->w;
    memset(top, 0, sizeof *top);
    for (int i = 0; i < m->nparams; i++) {
        const mt_param *p = &m->params[i];
        if (p->layer < 0) { top->t[p->index] = base + p->off; continue; }
        for (int k = 0; k < m->nchunks; k++) {
            mt_chunk *ch = &m->chunks[k];
            int l = p->layer - ch->layer0;
            if (l >= 0 && l < ch->nlayers) (grads ? ch->dw : ch->w)[l].t[p->index] = base + p->off;
        }
    }
}

// ---- activations and workspaces ----------------------------------------------

size_t mt_model_rows_sym(const mt_model *m, mt_rows_sym r) {
    return r == MT_R_N ? (size_t)m->n : r == MT_R_NL ? (size_t)m->n_l : (size_t)m->s;
}

size_t mt_model_width_sym(const mt_model *m, mt_width_sym w) {
    switch (w) {
    case MT_W_ONE: return 1;
    case MT_W_FOUR: return 4;
    case MT_W_H: return (size_t)m->h;
    case MT_W_QKV: return (size_t)m->qkv_l;
    case MT_W_HL: return (size_t)m->h_l;
    case MT_W_FF: return (size_t)m->ff_l;
    case MT_W_FC1: return (size_t)m->fc1_l;
    case MT_W_PROBS: return (size_t)m->nh_l * (size_t)m->s_full;  // per local row: s_full keys of nh_l/C heads, C x
    case MT_W_KV2: return 2 * (size_t)m->nkv_l * (size_t)m->hd;
    case MT_W_KVALL: return 2 * (size_t)m->nkv_l * (size_t)m->hd * (size_t)m->par->cp_size;
    case MT_W_LSE: return (size_t)m->nh_l;
    case MT_W_VL: return (size_t)m->v_l;
    case MT_W_ROT: return (size_t)m->rot;
    }
    return 0;
}

// Selective recomputation of the plain kernel keeps no probabilities: every
// layer points at the one ws.probs, refilled in backward.
static int probs_shared(const mt_model *m) {
    return !m->cfg->flash_attn && !m->cp_blocks && m->cfg->recompute == MT_RECOMPUTE_SELECTIVE;
}

// Whether a buffer of the activation or workspace table exists here.
int mt_model_buf_wanted(const mt_model *m, mt_buf_when when) {
    const mt_config *c = m->cfg;
    switch (when) {
    case MT_BUF_ALWAYS: return 1;
    case MT_BUF_PLAIN: return !c->flash_attn && !m->cp_blocks;
    case MT_BUF_FLASH: return c->flash_attn || m->cp_blocks;
    case MT_BUF_LN: return !m->norm.rms;
    case MT_BUF_GLU: return c->swiglu;
    case MT_BUF_ROPE: return m->rot > 0;
    case MT_BUF_HEAD: return m->chunks[m->nchunks - 1].has_head;
    case MT_BUF_SELECTIVE: return probs_shared(m);
    case MT_BUF_RECOMPUTE: return m->rc_len > 0;
    case MT_BUF_CPBLOCK: return m->cp_blocks;
    case MT_BUF_RING: return m->cp_ring || m->cp_hier;
    case MT_BUF_A2A: return m->cp_a2a || m->cp_hier;
    case MT_BUF_AG: return m->cp_ag;
    }
    return 0;
}

// Elements of one layer's activation `a` on this rank (0: not kept).
static size_t act_elems(const mt_model *m, mt_act a) {
    static const struct { mt_rows_sym rows; mt_width_sym width; mt_buf_when when; } T[MT_ACT_N] = {
#define X(field, r, w, when) [MT_ACT_##field] = {MT_R_##r, MT_W_##w, MT_BUF_##when},
        MT_LAYER_ACTS(X)
#undef X
    };
    return mt_model_buf_wanted(m, T[a].when) ? mt_model_rows_sym(m, T[a].rows) * mt_model_width_sym(m, T[a].width) : 0;
}

// One layer's saved activations, from `kind` (slots: activations; the
// shared recompute set: workspace).
static void alloc_acts(mt_model *m, mt_layer_acts *a, mt_mem_kind kind) {
    for (int i = 0; i < MT_ACT_N; i++) {
        size_t n = act_elems(m, (mt_act)i);
        a->t[i] = !n ? NULL : i == MT_ACT_probs && probs_shared(m) ? m->ws.probs : alloc_kind(m, kind, n);
    }
}

static void free_acts(const mt_model *m, mt_layer_acts *a) {
    for (int i = 0; i < MT_ACT_N; i++)
        if (a->t[i] != m->ws.probs) m->be->free(a->t[i]);
}

static void alloc_workspace(mt_model *m) {
#define X(field, r, w, when) \
    if (mt_model_buf_wanted(m, MT_BUF_##when)) m->ws.field = alloc_kind(m, MT_MEM_WORK, mt_model_rows_sym(m, MT_R_##r) * mt_model_width_sym(m, MT_W_##w));
    MT_WORKSPACE(X)
#undef X
    // Context parallelism: every CP rank's global positions in its local
    // order (the ring's key positions; this rank's are its queries').
    if (m->par->cp_size > 1) {
        size_t np = (size_t)m->par->cp_size * (size_t)m->s;
        m->mem[MT_MEM_WORK] += np * sizeof(int) * (m->cp_hier ? 2 : 1);
        if (!m->dry) m->cp_pos = m->be->alloc(np * sizeof(int));
        // a2a+p2p: the ring's P members hold A s positions each (as many).
        if (!m->dry && m->cp_hier) m->hcp_pos = m->be->alloc(np * sizeof(int));
    }
    // The SP-partial gradients travel packed in one TP all-reduce.
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].sp_partial) m->sp_pack_n += m->params[i].n;
    if (m->par->tp_size > 1 && m->sp_pack_n) m->sp_pack = alloc_kind(m, MT_MEM_WORK, m->sp_pack_n);
    // Early pipeline receives: one buffer per direction, free again once
    // the schedule has copied the data out (counted as workspace, like dsend).
    if (m->cfg->overlap_p2p_comm && m->par->pp_size > 1) {
        int recv_act = 0, recv_grad = 0;
        for (int k = 0; k < m->nchunks; k++) recv_act |= !m->chunks[k].has_embed, recv_grad |= !m->chunks[k].has_head;
        size_t nx = (size_t)m->n_l * (size_t)m->h;
        if (recv_act) m->pp_rbuf[0] = alloc_kind(m, MT_MEM_WORK, nx);
        if (recv_grad) m->pp_rbuf[1] = alloc_kind(m, MT_MEM_WORK, nx);
    }
}

static void free_workspace(mt_model *m) {
#define X(field, ...) m->be->free(m->ws.field);
    MT_WORKSPACE(X)
#undef X
    m->be->free(m->sp_pack);
    m->be->free(m->cp_pos);
    m->be->free(m->hcp_pos);
    free(m->cp_pos_host);
    m->cp_pos_host = NULL;
    m->be->free(m->pp_rbuf[0]);
    m->be->free(m->pp_rbuf[1]);
}

// ---- slots, chunks, recomputation --------------------------------------------

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

// Which layers of each chunk recompute, and the shared set they refill:
// uniform: every layer, in groups of --recompute-num-layers; block: the
// first --recompute-num-layers layers of each chunk, one at a time.
static void plan_recompute(mt_model *m) {
    const mt_config *c = m->cfg;
    int uniform = c->recompute_method == MT_RECOMPUTE_UNIFORM;
    m->rc_len = c->recompute == MT_RECOMPUTE_FULL ? (uniform ? c->recompute_num_layers : 1) : 0;
    for (int k = 0; k < m->nchunks; k++) {
        mt_chunk *ch = &m->chunks[k];
        ch->rc_group0 = mt_malloc(sizeof(int) * (size_t)ch->nlayers);
        for (int l = 0; l < ch->nlayers; l++) {
            int on = m->rc_len && (uniform || l < c->recompute_num_layers);
            ch->rc_group0[l] = on ? (uniform ? l / m->rc_len * m->rc_len : l) : -1;
        }
    }
}

static void alloc_recompute_set(mt_model *m) {
    if (!m->rc_len) return;
    m->rc_acts = mt_calloc((size_t)m->rc_len, sizeof(mt_layer_acts));
    m->rc_x = mt_calloc((size_t)m->rc_len, sizeof(real *));
    for (int i = 0; i < m->rc_len; i++) {
        alloc_acts(m, &m->rc_acts[i], MT_MEM_WORK);
        if (i > 0) m->rc_x[i] = alloc_kind(m, MT_MEM_WORK, (size_t)m->n_l * (size_t)m->h);
    }
}

mt_rows mt_model_rows(const mt_model *m, int first, int count, uint32_t sample0) {
    int C = m->par->cp_size, c = m->s_full / (2 * C), r = m->par->cp_rank;
    // Local position i of this CP rank is in its first chunk (global r c + i)
    // for i < c, else in its mirror chunk (2C-1-r) c + (i - c).
    int p0 = first < c || C == 1 ? r * c + first : (2 * C - 1 - r) * c + (first - c);
    mt_rows rows = {count * m->b, m->b, (uint32_t)p0, sample0, 0, 0};
    // Negative control: positions as if the rank's sequence began at 0.
    if (m->cfg->bug_cp_local_pos && C > 1) { rows.pos0 = (uint32_t)first; return rows; }
    if (C > 1 && first < c && first + count > c) {
        rows.split = c - first;
        rows.pos1 = (uint32_t)((2 * C - 1 - r) * c);
    }
    return rows;
}

// RoPE's angles, once: row i of the sequence this rank's QKV sees is its
// global position (QKV always holds every position of the rank's sequence:
// under SP after g's all-gather), so a token keeps its position under any
// split.
// theta_j = pos * base^(-2j/rot), in double, as cos | sin per row.
static void fill_rope(mt_model *m) {
    if (!m->rot) return;
    int half = m->rot / 2;
    real *cs = m->ws.rope_cs;
    mt_rows seq = mt_model_rows(m, 0, m->s, 0);
    for (int i = 0; i < m->s; i++)
        for (int j = 0; j < half; j++) {
            // Negative control: positions restarting at 0 in each rank's
            // sequence block, as if they were rank-local under SP.
            int pos = m->cfg->bug_rope_local ? i % m->s_l : (int)mt_rows_pos(seq, i);
            double inv = pow(m->cfg->rotary_base, -2.0 * j / m->rot), a = (double)pos * inv;
            cs[(size_t)i * m->rot + j] = (real)cos(a);
            cs[(size_t)i * m->rot + half + j] = (real)sin(a);
        }
}

// Rank r of R holding chunks r and 2R-1-r of 2R (each `len` positions
// long): the global positions of its 2 len rows, in its local order, copied
// to `dev`. The negative control (cp-local-pos) puts every rank's positions
// at 0.. in the device copy the kernels read; the host copy, which places
// the all-to-all's rows, stays true (a wrong placement would write out of
// bounds rather than train a wrong model).
static void chunk_positions(mt_model *m, int *dev, int *host, int R, int len) {
    size_t np = (size_t)R * 2 * (size_t)len;
    int *h = host ? host : mt_malloc(sizeof(int) * np), *bug = m->cfg->bug_cp_local_pos ? mt_malloc(sizeof(int) * np) : NULL;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < 2 * len; i++) {
            size_t k = (size_t)r * 2 * len + i;
            h[k] = i < len ? r * len + i : (2 * R - 1 - r) * len + (i - len);
            if (bug) bug[k] = i;
        }
    m->be->to_device(dev, bug ? bug : h, sizeof(int) * np);
    free(bug);
    if (!host) free(h);
}

// The positions of each CP rank's two chunks, in its local order; under
// a2a+p2p also those of each ring member after its all-to-all: the A
// adjacent CP ranks' chunks j A .. j A + A - 1 and their mirrors are two
// runs, so ring member j holds chunks j and 2P-1-j of 2P, A times longer
// (Transformer Engine's hierarchical split).
static void fill_cp_positions(mt_model *m) {
    int C = m->par->cp_size;
    if (C == 1) return;
    int *h = mt_malloc(sizeof(int) * (size_t)C * (size_t)m->s);
    chunk_positions(m, m->cp_pos, h, C, m->s / 2);
    if (m->cp_hier) {
        int P = C / m->par->hcp_a;
        chunk_positions(m, m->hcp_pos, NULL, P, m->s_full / (2 * P));
    }
    // Kept: the all-to-all's row placement reads positions on the host while
    // copies are queued, which must not touch device memory (a GPU without
    // concurrent managed access faults; tests/cudaemu's CUDAEMU_STRICT=1).
    free(m->cp_pos_host);
    m->cp_pos_host = h;
}

// ---- construction --------------------------------------------------------------

mt_elem_bytes mt_elem_bytes_of(const mt_config *c) {
    if (c->bf16) return (mt_elem_bytes){2, 4, 2, 12};
    return (mt_elem_bytes){(int)sizeof(real), (int)sizeof(real), (int)sizeof(real), 2 * (int)sizeof(real)};
}

static void build(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk, int dry, const mt_elem_bytes *eb) {
    memset(m, 0, sizeof *m);
    m->be = mt_backend_default();
    m->cfg = c;
    m->par = p;
    m->dry = dry;
    m->eb = eb ? *eb : mt_elem_bytes_of(c);
    // Negative controls: no rounding at all, or the weights' only.
    m->bf16 = c->bf16 && !c->bug_bf16_off && !c->bug_bf16_weights_only;
    m->fused = !c->bug_unfused;
    m->fused_gelu = m->fused && !c->no_bias_gelu_fusion;
    m->fused_bda = m->fused && !c->no_bias_dropout_fusion;
    int t = p->tp_size;
    m->h = c->hidden_size; m->nh = c->num_heads; m->hd = c->hidden_size / c->num_heads;
    m->s_full = c->seq_length; m->b = c->micro_batch_size;
    m->s = c->seq_length / p->cp_size;
    m->V = c->vocab_size; m->Vp = c->padded_vocab;
    m->nh_l = m->nh / t; m->h_l = m->h / t; m->ff_l = (int)(mt_param_ffn(c) / t);
    m->nkv_l = mt_param_kv_heads(c) / t;
    m->qkv_l = (m->nh_l + 2 * m->nkv_l) * m->hd;
    m->fc1_l = (c->swiglu ? 2 : 1) * m->ff_l;
    m->rot = c->position_embedding == MT_POS_ROPE ? (int)(m->hd * c->rotary_percent) : 0;
    m->cp_ring = p->cp_size > 1 && c->cp_comm == MT_CP_P2P;
    m->cp_a2a = p->cp_size > 1 && c->cp_comm == MT_CP_A2A;
    m->cp_ag = p->cp_size > 1 && c->cp_comm == MT_CP_ALLGATHER;
    m->cp_hier = p->cp_size > 1 && c->cp_comm == MT_CP_A2A_P2P;
    m->cp_blocks = m->cp_ring || m->cp_ag || m->cp_hier;
    m->v_l = m->Vp / t; m->v0 = p->tp_rank * m->v_l;
    m->s_l = c->sequence_parallel ? m->s / t : m->s;
    m->pos0 = c->sequence_parallel ? p->tp_rank * m->s_l : 0;
    m->n = m->s * m->b; m->n_l = m->s_l * m->b;
    m->norm = (mt_norm){c->norm_epsilon, c->normalization == MT_NORM_RMSNORM};
    plan_chunks(m);
    ptable tab = build_table(c, p, m->chunks, m->nchunks);
    m->params = tab.v;
    m->nparams = tab.n;
    m->nelem = tab.nelem;
    // The distributed optimizer splits the arenas into equal shards over
    // every copy of the parameters: the DP ranks, and with context
    // parallelism the dp-cp group (cp fastest, Megatron's order).
    size_t dp = (size_t)p->dp_size * (size_t)p->cp_size, copy = (size_t)p->dp_rank * (size_t)p->cp_size + (size_t)p->cp_rank;
    m->nelem_pad = (m->nelem + dp - 1) / dp * dp;
    m->shard_n = c->use_distributed_optimizer ? m->nelem_pad / dp : m->nelem;
    m->shard0 = c->use_distributed_optimizer ? copy * m->shard_n : 0;
    m->param_mem = alloc_kind(m, MT_MEM_PARAMS, m->nelem_pad);
    m->grad_mem = alloc_kind(m, MT_MEM_GRADS, m->nelem_pad);
    plan_recompute(m);
    alloc_workspace(m);
    alloc_recompute_set(m);
    for (int k = 0; k < m->nchunks; k++) {
        mt_chunk *ch = &m->chunks[k];
        ch->w = mt_calloc((size_t)ch->nlayers, sizeof(mt_layer_w));
        ch->dw = mt_calloc((size_t)ch->nlayers, sizeof(mt_layer_w));
        ch->nslots = slots_per_chunk;
        ch->slots = mt_calloc((size_t)slots_per_chunk, sizeof(mt_slot));
        for (int s = 0; s < slots_per_chunk; s++) alloc_slot(m, ch, &ch->slots[s]);
    }
    if (dry) return;
    bind(m, m->param_mem, 0);
    bind(m, m->grad_mem, 1);
    fill_rope(m);
    fill_cp_positions(m);
    // --init-from overwrites every parameter (llm.c files hold them all, and
    // a checkpoint found by --load does too): drawing ~N normals first would
    // only cost start-up time (20% of a short 124M run).
    if (!c->init_from[0]) init_params(m);
}

void mt_model_init(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk) {
    build(m, c, p, slots_per_chunk, 0, NULL);
}

void mt_model_plan(mt_model *m, const mt_config *c, const mt_parallel *p, int slots_per_chunk, const mt_elem_bytes *eb) {
    build(m, c, p, slots_per_chunk, 1, eb);
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
    free_workspace(m);
    real *bufs[] = {m->param_mem, m->grad_mem, m->m_mem, m->v_mem, m->main_mem};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) m->be->free(bufs[i]);
    mt_gradnorm_free(m->gn);
    free(m->params);
}
