// layers.c: embedding, transformer block and LM head for one micro-batch,
// forward next to backward. Tensor and sequence parallelism enter only
// through the two helpers gather_in / reduce_out and their backwards.
#include "layers.h"

#include "backend.h"
#include "layers_cp.h"

#include <string.h>

static mt_dropout_key dkey(const mt_model *m, const mt_step *st, int layer, int site, double p) {
    const mt_config *c = m->cfg;
    mt_dropout_key k = {c->seed, st->iter, (uint32_t)layer, (uint32_t)site, st->training ? p : 0};
    // Negative control: Megatron-style per-rank seeds break layout equality.
    if (c->bug_rank_dropout) k.seed += (uint64_t)m->par->world_rank + 1;
    return k;
}

// --bf16 (docs/design.md, "bf16"): every activation an op hands on, and
// every activation gradient, becomes the bf16 value a GPU run would hold.
// Weight and bias gradients are never rounded (fp32 accumulation).
static void bf16(const mt_model *m, real *x, size_t n) {
    if (m->bf16) m->be->round_bf16(x, x, n);
}

// This rank's rows of the hidden state: its s_l positions from pos0.
static mt_rows rows_of(const mt_model *m, uint32_t sample0) { return mt_model_rows(m, m->pos0, m->s_l, sample0); }

// g forward (SP: all-gather along s into ws.gath) or f forward (identity).
// Returns the (n, h) input of a column-parallel layer.
static const real *gather_in(mt_model *m, mt_comm *cm, const real *x) {
    if (!m->cfg->sequence_parallel) return x;
    mt_comm_sp_all_gather(cm, m->ws.gath, x, (size_t)m->n_l, (size_t)m->h);
    return m->ws.gath;
}

// ḡ forward (SP: reduce-scatter along s into out) or f̄ forward (all-reduce
// in place). part (n, h) holds a row-parallel layer's partial sums. Returns
// the (nl, h) summed rows. Under --bf16 each rank's partial is its GEMM's
// bf16 output and the sum is rounded again, as a bf16 all-reduce delivers.
static real *reduce_out(mt_model *m, mt_comm *cm, real *part, real *out) {
    size_t nh = (size_t)m->n * (size_t)m->h, nlh = (size_t)m->n_l * (size_t)m->h;
    bf16(m, part, nh);
    if (!m->cfg->sequence_parallel) {
        mt_comm_tp_allreduce(cm, part, nh);
        if (m->par->tp_size > 1) bf16(m, part, nh);
        return part;
    }
    mt_comm_sp_reduce_scatter(cm, out, part, (size_t)m->n_l, (size_t)m->h);
    if (m->par->tp_size > 1) bf16(m, out, nlh);
    return out;
}

// Backward of reduce_out: ḡ backward (all-gather) or f̄ backward (identity).
static const real *reduce_out_backward(mt_model *m, mt_comm *cm, const real *d) {
    return gather_in(m, cm, d);
}

// Backward of gather_in: g backward (reduce-scatter into out) or f backward
// (all-reduce in place). d (n, h) holds partial input gradients.
static real *gather_in_backward(mt_model *m, mt_comm *cm, real *d, real *out) {
    return reduce_out(m, cm, d, out);
}

// A column-parallel linear's backward (its forward: gather_in, then the
// GEMM), from dout (n, oc) to the summed input gradient (nl, h), which it
// returns. The input is `in` (n, h) when the caller still holds it gathered,
// else this rank's rows x (nl, h), gathered again as Megatron does.
//
// Under TP, Megatron's LinearWithGradAccumulationAndAsyncCommunication: the
// input gradient dout · w is partial over TP and must be summed (g or f
// backward), the weight gradient needs the gathered input, and neither GEMM
// needs the other's communication. So the all-gather travels while the
// input-gradient GEMM runs and the sum while the weight-gradient GEMM runs.
// The sum is the same nonblocking call with or without the overlap
// (--no-async-tensor-model-parallel-allreduce waits for it at once), so the
// overlap changes no bit; the all-gather only moves values.
static const real *column_backward(mt_model *m, mt_comm *cm, real *dw, real *db, const real *dout, const real *in,
                                   const real *x, const real *w, int oc) {
    const mt_backend *B = m->be;
    int n = m->n, h = m->h, sp = m->cfg->sequence_parallel;
    if (m->par->tp_size == 1) {
        if (!in) in = gather_in(m, cm, x);
        B->matmul_backward(m->ws.part, dw, db, dout, in, w, n, h, oc);
        return gather_in_backward(m, cm, m->ws.part, m->ws.dtmp);
    }
    int async = !m->cfg->no_async_tp_allreduce;
    size_t nlh = (size_t)m->n_l * (size_t)h;
    mt_coll_req *ag = NULL;
    if (!in && sp && async) mt_comm_sp_iall_gather(cm, m->ws.gath, x, (size_t)m->n_l, (size_t)h, ag = &cm->tp_gather);
    else if (!in) in = gather_in(m, cm, x);
    B->matmul_backward(m->ws.part, NULL, NULL, dout, NULL, w, n, h, oc);   // the partial input gradient
    if (ag) mt_comm_tp_wait(cm, ag), in = m->ws.gath;
    bf16(m, m->ws.part, (size_t)n * (size_t)h);
    real *d = mt_comm_tp_isum(cm, m->ws.part, (size_t)n, (size_t)h, sp, &cm->tp_sum);
    size_t nd = sp ? nlh : (size_t)n * (size_t)h;
    if (!async) mt_comm_coll_wait(cm, &cm->tp_sum);
    B->matmul_backward(NULL, dw, db, dout, in, w, n, h, oc);              // the weight gradient meanwhile
    if (async && m->cfg->bug_tp_async_early) {
        // Negative control: the caller gets the buffer as it was before the
        // sum landed (this rank's partial), then the wait completes MPI's side.
        B->copy(m->ws.dtmp, d, nd);
        mt_comm_tp_wait(cm, &cm->tp_sum);
        d = m->ws.dtmp;
    } else if (async) {
        mt_comm_tp_wait(cm, &cm->tp_sum);
    }
    bf16(m, d, nd);
    return d;
}

// ---- embedding ------------------------------------------------------------

void mt_embed_forward(mt_model *m, mt_comm *cm, const mt_step *st, const mt_slot *sl, real *x) {
    const mt_backend *B = m->be;
    int sp = m->cfg->sequence_parallel;
    real *word = sp ? m->ws.part : x;  // (n, h) partial sums over vocab shards
    B->embedding_forward(word, sl->tokens, m->w.wte, m->v0, m->v_l, m->n, m->h);
    reduce_out(m, cm, word, x);  // f̄ (in place, word == x) or ḡ (into x): x (nl, h)
    mt_rows r = rows_of(m, sl->sample0);
    if (m->w.wpe) B->position_forward(x, m->w.wpe, r, m->h);  // none under RoPE
    mt_dropout_key k = dkey(m, st, 0, MT_SITE_EMBED, m->cfg->hidden_dropout);
    B->dropout_forward(x, &k, r, m->h);
    bf16(m, x, (size_t)m->n_l * (size_t)m->h);
}

void mt_embed_backward(mt_model *m, mt_comm *cm, const mt_step *st, const mt_slot *sl, real *dx) {
    const mt_backend *B = m->be;
    mt_rows r = rows_of(m, sl->sample0);
    mt_dropout_key k = dkey(m, st, 0, MT_SITE_EMBED, m->cfg->hidden_dropout);
    B->dropout_backward(dx, &k, r, m->h);
    bf16(m, dx, (size_t)m->n_l * (size_t)m->h);
    if (m->dw.wpe) B->position_backward(m->dw.wpe, dx, r, m->h);
    const real *dword = reduce_out_backward(m, cm, dx);  // (n, h)
    B->embedding_backward(m->dw.wte, dword, sl->tokens, m->v0, m->v_l, m->n, m->h);
}

// ---- transformer block ----------------------------------------------------

// This rank's heads: query heads [tp_rank nh_l, ...) and their nkv_l KV heads.
static mt_attn_shape attn_shape(const mt_model *m, uint32_t sample0) {
    mt_attn_shape sh = {.s = m->s, .b = m->b, .nh = m->nh_l, .hd = m->hd, .nkv = m->nkv_l,
                        .head0 = (uint32_t)(m->par->tp_rank * m->nh_l), .sample0 = sample0, .bf16 = m->bf16};
    return sh;
}

// out = res + dropout(inp + bias), rounded under --bf16: one fused sweep,
// or (--no-bias-dropout-fusion, or the test hook MT_INJECT_BUG=unfused) the
// op and a rounding pass.
static void bias_dropout_add(mt_model *m, real *out, const real *res, const real *inp, const real *bias,
                             const mt_dropout_key *k, mt_rows r) {
    if (m->fused_bda) {
        m->be->bias_dropout_add_fused_forward(out, res, inp, bias, k, r, m->h, m->bf16);
        return;
    }
    m->be->bias_dropout_add_forward(out, res, inp, bias, k, r, m->h);
    bf16(m, out, (size_t)m->n_l * (size_t)m->h);
}

// Its backward into ws.dtmp (nl, h): dbias accumulated, the result rounded.
static void bias_dropout_add_backward(mt_model *m, real *dbias, const real *dres, const mt_dropout_key *k, mt_rows r) {
    if (m->fused_bda) {
        m->be->bias_dropout_add_fused_backward(m->ws.dtmp, dbias, dres, k, r, m->h, m->bf16);
        return;
    }
    m->be->bias_dropout_add_backward(m->ws.dtmp, dbias, dres, k, r, m->h);
    bf16(m, m->ws.dtmp, (size_t)m->n_l * (size_t)m->h);
}

void mt_block_forward(mt_model *m, mt_comm *cm, const mt_step *st, int layer, const mt_layer_w *w,
                      mt_layer_acts *a, const real *x, real *xout, uint32_t sample0) {
    const mt_backend *B = m->be;
    const mt_config *c = m->cfg;
    int n = m->n, nl = m->n_l, h = m->h, hl = m->h_l, ff = m->ff_l, fc1 = m->fc1_l;
    size_t nlh = (size_t)nl * (size_t)h;
    mt_rows r = rows_of(m, sample0);
    mt_attn_shape sh = attn_shape(m, sample0);
    mt_dropout_key kp = dkey(m, st, layer, MT_SITE_ATTN_PROB, c->attention_dropout);
    mt_dropout_key ka = dkey(m, st, layer, MT_SITE_ATTN_OUT, c->hidden_dropout);
    mt_dropout_key km = dkey(m, st, layer, MT_SITE_MLP_OUT, c->hidden_dropout);

    // attention: LN -> g -> QKV (-> RoPE) -> core -> proj -> ḡ -> bias+dropout+residual
    size_t nqkv = (size_t)n * (size_t)m->qkv_l, natt = (size_t)n * (size_t)hl;
    B->norm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1w, w->ln1b, m->norm, nl, h);
    bf16(m, a->ln1, nlh);
    const real *in = gather_in(m, cm, a->ln1);                          // (n, h)
    B->matmul_forward(a->qkv, in, w->qkvw, w->qkvb, n, h, m->qkv_l);   // (n, W) Q | K | V
    if (m->rot) B->rope_forward(a->qkv, m->ws.rope_cs, m->rot, sh);     // Q and K rotated, kept so
    bf16(m, a->qkv, nqkv);
    if (m->par->cp_size > 1) mt_cp_attention_forward(m, cm, a, &kp, sample0);  // across the CP split
    else if (c->flash_attn) B->flash_attention_forward(a->atty, a->lse, a->qkv, &kp, sh);  // (n, h/t), lse (b, a/t, s)
    else B->attention_forward(a->atty, a->probs, a->qkv, &kp, sh);          // (n, h/t), probs (b, a/t, s, s)
    bf16(m, a->atty, natt);
    B->matmul_forward(m->ws.part, a->atty, w->projw, NULL, n, hl, h);    // (n, h) partial
    const real *proj = reduce_out(m, cm, m->ws.part, m->ws.dtmp);         // (nl, h)
    bias_dropout_add(m, a->x2, x, proj, w->projb, &ka, r);

    // MLP: LN -> g -> fc1 -> GELU or SwiGLU -> fc2 -> ḡ -> bias+dropout+residual
    size_t nfc1 = (size_t)n * (size_t)fc1, nff = (size_t)n * (size_t)ff;
    B->norm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->x2, w->ln2w, w->ln2b, m->norm, nl, h);
    bf16(m, a->ln2, nlh);
    in = gather_in(m, cm, a->ln2);
    B->matmul_forward(a->fc1, in, w->fc1w, w->fc1b, n, h, fc1);         // (n, ffn/t), or gate | up
    if (!c->swiglu && m->fused_gelu) {
        B->gelu_fused_forward(a->act, a->fc1, nff, m->bf16);  // fc1 rounded in place, GELU, act rounded
    } else {
        bf16(m, a->fc1, nfc1);
        if (c->swiglu) B->swiglu_forward(a->act, a->fc1, n, ff);
        else B->gelu_forward(a->act, a->fc1, nff);
        bf16(m, a->act, nff);
    }
    B->matmul_forward(m->ws.part, a->act, w->fc2w, NULL, n, ff, h);      // (n, h) partial
    const real *mlp = reduce_out(m, cm, m->ws.part, m->ws.dtmp);
    bias_dropout_add(m, xout, a->x2, mlp, w->fc2b, &km, r);
}

// One column-parallel linear + row-parallel linear sandwich, backward:
// from d(output of the residual branch) in dres to d(LN input) added to dres.
// Shared by the attention and MLP halves of the block.
typedef struct {
    const real *ln_in, *ln_out, *mean, *rstd, *lnw;  // LN saved state
    real *dlnw, *dlnb;
} ln_state;

// dln (nl, h): d(LN output), already summed over TP (column_backward).
static void ln_backward_into_residual(mt_model *m, const real *dln, const ln_state *ln, real *dres) {
    const mt_backend *B = m->be;
    size_t nlh = (size_t)m->n_l * (size_t)m->h;
    B->norm_backward(m->ws.dln, ln->dlnw, ln->dlnb, dln, ln->ln_in, ln->lnw, ln->mean, ln->rstd, m->norm, m->n_l, m->h);
    bf16(m, m->ws.dln, nlh);
    B->add(dres, m->ws.dln, nlh);
    bf16(m, dres, nlh);  // the residual's gradient: bf16 + bf16 -> bf16
}

void mt_block_backward(mt_model *m, mt_comm *cm, const mt_step *st, int layer, const mt_layer_w *w,
                       mt_layer_w *dw, const mt_layer_acts *a, const real *x, real *dres, uint32_t sample0) {
    const mt_backend *B = m->be;
    const mt_config *c = m->cfg;
    int n = m->n, h = m->h, hl = m->h_l, ff = m->ff_l, fc1 = m->fc1_l;
    size_t nff = (size_t)n * (size_t)ff, nfc1 = (size_t)n * (size_t)fc1;
    mt_rows r = rows_of(m, sample0);
    mt_attn_shape sh = attn_shape(m, sample0);
    mt_dropout_key kp = dkey(m, st, layer, MT_SITE_ATTN_PROB, c->attention_dropout);
    mt_dropout_key ka = dkey(m, st, layer, MT_SITE_ATTN_OUT, c->hidden_dropout);
    mt_dropout_key km = dkey(m, st, layer, MT_SITE_MLP_OUT, c->hidden_dropout);

    // MLP half. dres = d xout = d x2 through the residual.
    bias_dropout_add_backward(m, dw->fc2b, dres, &km, r);                          // (nl, h) in ws.dtmp
    const real *dmlp = reduce_out_backward(m, cm, m->ws.dtmp);                      // (n, h)
    B->matmul_backward(m->ws.dff, dw->fc2w, NULL, dmlp, a->act, w->fc2w, n, ff, h);
    // fc1's output gradient: GELU's in place, SwiGLU's (twice as wide) in dfc1.
    real *dfc1 = c->swiglu ? m->ws.dfc1 : m->ws.dff;
    real *dfc1b = dw->fc1b;  // the fc1 bias gradient, unless the fused GELU sweep sums it
    if (!c->swiglu && m->fused_gelu) {
        B->gelu_fused_backward(dfc1, dw->fc1b, a->fc1, m->ws.dff, n, ff, m->bf16);
        dfc1b = NULL;
    } else {
        bf16(m, m->ws.dff, nff);
        if (c->swiglu) B->swiglu_backward(dfc1, a->fc1, m->ws.dff, n, ff);
        else B->gelu_backward(dfc1, a->fc1, m->ws.dff, nff);
        bf16(m, dfc1, nfc1);
    }
    // Under SP only the local LN rows were saved: column_backward gathers them
    // again (Megatron re-runs this all-gather in backward rather than keep s rows).
    const real *dln = column_backward(m, cm, dw->fc1w, dfc1b, dfc1, NULL, a->ln2, w->fc1w, fc1);
    ln_state l2 = {a->x2, a->ln2, a->ln2_mean, a->ln2_rstd, w->ln2w, dw->ln2w, dw->ln2b};
    ln_backward_into_residual(m, dln, &l2, dres);                                  // dres = d x2

    // Attention half.
    bias_dropout_add_backward(m, dw->projb, dres, &ka, r);
    const real *dproj = reduce_out_backward(m, cm, m->ws.dtmp);
    B->matmul_backward(m->ws.datty, dw->projw, NULL, dproj, a->atty, w->projw, n, hl, h);
    bf16(m, m->ws.datty, (size_t)n * (size_t)hl);
    // Selective recomputation (Korthikanti et al. 2022 §5): the attention
    // core's probabilities were not kept; recompute them from the saved QKV
    // (the core's output lands in ws.dqkv, which the backward overwrites).
    if (m->par->cp_size > 1) {
        mt_cp_attention_backward(m, cm, a, &kp, sample0);
    } else if (c->flash_attn) {
        B->flash_attention_backward(m->ws.dqkv, m->ws.datty, a->qkv, a->atty, a->lse, &kp, sh);
    } else {
        if (c->recompute == MT_RECOMPUTE_SELECTIVE) B->attention_forward(m->ws.dqkv, a->probs, a->qkv, &kp, sh);
        B->attention_backward(m->ws.dqkv, m->ws.dprobs, m->ws.datty, a->qkv, a->probs, &kp, sh);
    }
    if (m->rot) B->rope_backward(m->ws.dqkv, m->ws.rope_cs, m->rot, sh);  // dQ, dK of the unrotated Q, K
    bf16(m, m->ws.dqkv, (size_t)n * (size_t)m->qkv_l);
    dln = column_backward(m, cm, dw->qkvw, dw->qkvb, m->ws.dqkv, NULL, a->ln1, w->qkvw, m->qkv_l);
    ln_state l1 = {x, a->ln1, a->ln1_mean, a->ln1_rstd, w->ln1w, dw->ln1w, dw->ln1b};
    ln_backward_into_residual(m, dln, &l1, dres);                                  // dres = d x
}

// ---- LM head and loss -----------------------------------------------------

// This rank's share of the mean loss, summed on the host. Called right
// after the sync that makes the per-token losses readable, before any more
// work is queued: a GPU without concurrent managed access (Windows, some
// embedded parts) faults on a host read while kernels run, even of a buffer
// they do not touch (tests/cudaemu's CUDAEMU_STRICT=1 checks this).
static real loss_share(const real *loss, int n, int ntok) {
    double total = 0;
    for (int i = 0; i < n; i++) total += loss[i];
    return (real)(total / ntok);
}

// From the logits' gradient (in ws.logits) to dx through the head's GEMM
// and the final norm; returns `mean`, this rank's share of the mean loss.
static real head_backward(mt_model *m, mt_comm *cm, const real *x, const real *in, const real *head, real *dhead,
                          real *dx, real mean) {
    const mt_backend *B = m->be;
    int nl = m->n_l, h = m->h;
    if (!dx) return mean;
    const real *dlnf = column_backward(m, cm, dhead, NULL, m->ws.logits, in, NULL, head, m->v_l);  // (nl, h)
    B->norm_backward(dx, m->dw.lnfw, m->dw.lnfb, dlnf, x, m->w.lnfw, m->ws.lnf_mean, m->ws.lnf_rstd, m->norm, nl, h);
    bf16(m, dx, (size_t)nl * (size_t)h);
    return mean;
}

real mt_head_forward_backward(mt_model *m, mt_comm *cm, const real *x, const int *targets, real *dx, real dscale) {
    const mt_backend *B = m->be;
    int n = m->n, nl = m->n_l, h = m->h, vl = m->v_l;
    real *rmax = m->ws.xent, *sumexp = rmax + n, *tlogit = rmax + 2 * n, *loss = rmax + 3 * n;
    B->norm_forward(m->ws.lnf, m->ws.lnf_mean, m->ws.lnf_rstd, x, m->w.lnfw, m->w.lnfb, m->norm, nl, h);
    bf16(m, m->ws.lnf, (size_t)nl * (size_t)h);
    // The LM head: the embedding's vocab shard, or its own (untied).
    const real *head = m->w.lm_head ? m->w.lm_head : m->w.wte;
    real *dhead = m->w.lm_head ? m->dw.lm_head : m->dw.wte;
    const real *in = gather_in(m, cm, m->ws.lnf);                       // (n, h)
    B->matmul_forward(m->ws.logits, in, head, NULL, n, h, vl);            // (n, Vp/t)
    // The micro-batch's loss is the mean over all its s*b tokens; with
    // context parallelism this rank holds 1/CP of them, so it returns its
    // share of that mean (the CP ranks' shares add up in the logged sum, and
    // their gradients in the dp-cp reduction). d loss_i = dscale / (s b).
    int ntok = n * m->par->cp_size;
    real dlog = dx ? dscale / (real)ntok : 0;
    // With the whole vocabulary here (TP 1) the loss and its gradient come
    // from one sweep over the logits (ops.h, xent_fused); under TP the
    // three steps below exchange the row max and sums between them.
    // Columns from V on are padding and stay out of the softmax.
    int V = m->cfg->bug_no_vocab_mask ? m->Vp : m->V;
    int fused = m->fused && m->par->tp_size == 1 && (!dx || dlog != 0);
    if (fused) {
        B->xent_fused(loss, rmax, sumexp, m->ws.logits, targets, dlog, V, vl, n, m->bf16);
        B->sync();  // the host reads the per-token losses
        return head_backward(m, cm, x, in, head, dhead, dx, loss_share(loss, n, ntok));
    }
    // Under --bf16 the head's GEMM writes bf16 logits and the cross-entropy
    // reads them in fp32 (Megatron's default: no --fp16-lm-cross-entropy).
    bf16(m, m->ws.logits, (size_t)n * (size_t)vl);
    // Vocab-parallel cross-entropy: MAX, then one SUM of (sumexp, tlogit).
    B->xent_local_max(rmax, m->ws.logits, m->v0, vl, V, n);
    mt_comm_tp_allreduce_max(cm, rmax, (size_t)n);
    B->xent_local_sums(sumexp, tlogit, m->ws.logits, rmax, targets, m->v0, vl, V, n);
    mt_comm_tp_allreduce(cm, sumexp, 2 * (size_t)n);
    B->xent_loss(loss, rmax, sumexp, tlogit, n);
    B->sync();  // the host reads the per-token losses
    real mean = loss_share(loss, n, ntok);
    if (dx) {
        // Backward: no communication.
        B->xent_backward(m->ws.logits, m->ws.logits, rmax, sumexp, targets, dlog, m->v0, vl, V, n);
        bf16(m, m->ws.logits, (size_t)n * (size_t)vl);  // the fp32 gradient cast back to the bf16 logits'
    }
    return head_backward(m, cm, x, in, head, dhead, dx, mean);
}
