// chunk.c: a model chunk's forward and backward (chunk.h).
#include "chunk.h"

#include "backend.h"
#include "buckets.h"

// Between layers: MPI progress for the early pipeline receives in flight
// (--overlap-p2p-communication), which would otherwise move only at their wait.
static void p2p_progress(const mt_model *m, mt_comm *cm) {
    if (m->cfg->overlap_p2p_comm) mt_comm_pp_progress(cm);
}

real mt_chunk_forward(mt_model *m, mt_comm *cm, const mt_step *st, int k, mt_slot *sl, int backward) {
    mt_chunk *ch = &m->chunks[k];
    // --overlap-param-gather: each tensor's bucket has arrived before it is read.
    if (ch->has_embed || ch->has_head) mt_buckets_gather_wait(m, cm, -1);
    if (ch->has_embed) mt_embed_forward(m, cm, st, sl, sl->x[0]);
    for (int l = 0; l < ch->nlayers; l++) {
        mt_buckets_gather_wait(m, cm, ch->layer0 + l);
        mt_block_forward(m, cm, st, ch->layer0 + l, &ch->w[l], &sl->acts[l], sl->x[l], sl->x[l + 1], sl->sample0);
        p2p_progress(m, cm);
    }
    if (!ch->has_head) return 0;
    // The head's input gradient replaces the (no longer needed) head input in
    // the slot until this micro-batch's backward comes up. DP averaging
    // divides by dp later.
    real *top = sl->x[ch->nlayers];
    real scale = (real)1 / (real)m->cfg->num_micro_batches;
    sl->loss = mt_head_forward_backward(m, cm, top, sl->targets, backward ? m->ws.dres : NULL, scale);
    if (backward) m->be->copy(top, m->ws.dres, (size_t)m->n_l * (size_t)m->h);
    return sl->loss;
}

void mt_chunk_backward(mt_model *m, mt_comm *cm, const mt_step *st, int k, mt_slot *sl) {
    mt_chunk *ch = &m->chunks[k];
    if (ch->has_head) m->be->copy(m->ws.dres, sl->x[ch->nlayers], (size_t)m->n_l * (size_t)m->h);
    // The head's gradients were written in this micro-batch's forward.
    if (ch->has_head) mt_buckets_top_done(m, cm, 1);
    for (int l = ch->nlayers - 1; l >= 0; l--) {
        int g0 = ch->rc_group0[l];
        // Full recomputation: on reaching the last layer of a group, re-run
        // the group's forward from its stored input. The masks are keyed by
        // global indices, so the recomputed activations are bitwise the
        // originals; the group's output goes to scratch (the stored copy may
        // already hold the head's gradient).
        if (g0 >= 0 && (l == ch->nlayers - 1 || ch->rc_group0[l + 1] != g0))
            for (int j = g0; j <= l; j++)
                mt_block_forward(m, cm, st, ch->layer0 + j, &ch->w[j], &sl->acts[j], sl->x[j],
                                 j == l ? m->ws.xscratch : sl->x[j + 1], sl->sample0);
        mt_block_backward(m, cm, st, ch->layer0 + l, &ch->w[l], &ch->dw[l], &sl->acts[l], sl->x[l], m->ws.dres,
                          sl->sample0);
        // A finished layer may complete a gradient bucket (--overlap-grad-reduce).
        mt_buckets_layer_done(m, cm, ch->layer0 + l);
        p2p_progress(m, cm);
    }
    if (ch->has_embed) {
        mt_embed_backward(m, cm, st, sl, m->ws.dres);
        mt_buckets_top_done(m, cm, 0);
    }
}

const real *mt_model_hidden(mt_model *m, mt_comm *cm, const mt_step *st, mt_slot *sl) {
    const mt_chunk *ch = &m->chunks[0];  // one rank: one chunk holds every layer
    mt_embed_forward(m, cm, st, sl, sl->x[0]);
    for (int l = 0; l < ch->nlayers; l++)
        mt_block_forward(m, cm, st, ch->layer0 + l, &ch->w[l], &sl->acts[l], sl->x[l], sl->x[l + 1], sl->sample0);
    return sl->x[ch->nlayers];
}
