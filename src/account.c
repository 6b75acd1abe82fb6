// account.c: communication predicted from the formulas of account.h.
#include "account.h"

#include "buckets.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

static void add(mt_comm_stats *s, mt_group g, mt_coll c, uint64_t calls, uint64_t elems, size_t esize) {
    if (!calls) return;
    s->calls[g][c] += calls;
    s->bytes[g][c] += calls * elems * esize;
}

// `calls` collectives moving `elems` elements between them.
static void s_add_split(mt_comm_stats *s, mt_group g, mt_coll c, uint64_t calls, uint64_t elems, size_t esize) {
    s->calls[g][c] += calls;
    s->bytes[g][c] += elems * esize;
}

void mt_account_comm(const mt_model *m, mt_comm_stats *out) {
    memset(out, 0, sizeof *out);
    const mt_config *c = m->cfg;
    const mt_parallel *p = m->par;
    uint64_t M = (uint64_t)c->num_micro_batches, n = (uint64_t)m->n, nh = n * (uint64_t)m->h;
    uint64_t L = 0, E = 0, H = 0;
    for (int k = 0; k < m->nchunks; k++) {
        L += (uint64_t)m->chunks[k].nlayers;
        E += (uint64_t)m->chunks[k].has_embed;
        H += (uint64_t)m->chunks[k].has_head;
    }
    // Element sizes: activations for TP and PP traffic, gradients for their
    // reductions, parameters for the distributed optimizer's all-gather.
    size_t r = (size_t)m->eb.act, rg = (size_t)m->eb.grad, rp = (size_t)m->eb.param;
    // Full recomputation re-runs a recomputed layer's forward, collectives
    // included (2 f̄ all-reduces, or 2 all-gathers + 2 reduce-scatters).
    uint64_t R = 0;
    for (int k = 0; k < m->nchunks; k++)
        for (int l = 0; l < m->chunks[k].nlayers; l++) R += m->chunks[k].rc_group0[l] >= 0;
    int *first = mt_malloc(sizeof(int) * (size_t)m->nparams), nb = mt_buckets_plan(m, first);
    if (p->tp_size > 1) {
        if (!c->sequence_parallel) {
            add(out, MT_GROUP_TP, MT_COLL_ALLREDUCE, M * (4 * L + 2 * R + E + H), nh, r);
        } else {
            add(out, MT_GROUP_TP, MT_COLL_ALLGATHER, M * (6 * L + 2 * R + E + H), nh, r);
            add(out, MT_GROUP_TP, MT_COLL_REDUCE_SCATTER, M * (4 * L + 2 * R + E + H), nh, r);
            // The SP-partial gradients: one packed all-reduce per gradient
            // bucket that holds any (buckets.h).
            for (int k = 0; k < nb; k++) {
                uint64_t sp = 0;
                for (int i = first[k]; i < (k ? first[k - 1] : m->nparams); i++)
                    if (mt_param_grad_groups(m, &m->params[i]) & (1u << MT_GROUP_TP)) sp += m->params[i].n;
                add(out, MT_GROUP_TP, MT_COLL_ALLREDUCE, sp ? 1 : 0, sp, rg);
            }
        }
        add(out, MT_GROUP_TP, MT_COLL_ALLREDUCE, M * H, n, r);      // MAX
        add(out, MT_GROUP_TP, MT_COLL_ALLREDUCE, M * H, 2 * n, r);  // SUM of (sumexp, target logit)
    }
    if (p->cp_size > 1) {
        uint64_t C = (uint64_t)p->cp_size, hd = (uint64_t)m->hd;
        if (c->cp_comm == MT_CP_P2P) {
            // The ring: C-1 hops of a K|V block per forward; backward moves
            // the blocks again (C-1 hops) and their gradients (C hops).
            uint64_t kv = n * 2 * (uint64_t)m->nkv_l * hd, hops = M * ((C - 1) * (L + R) + (2 * C - 1) * L);
            add(out, MT_GROUP_CP, MT_COLL_SEND, hops, kv, r);
            add(out, MT_GROUP_CP, MT_COLL_RECV, hops, kv, r);
        } else if (c->cp_comm == MT_CP_A2A_P2P) {
            // The all-to-alls of a2a with the blocked kernel, within groups
            // of A (QKV to heads and the output back per forward; backward
            // the output's gradient, QKV and the output to heads, QKV's
            // gradient back), and the ring's hops over P, each carrying the
            // A ranks' rows of a/A heads: as many elements as the plain ring's.
            // A level of one rank makes no call (comm.h).
            uint64_t A = (uint64_t)p->hcp_a, P = C / A, qkv = n * (uint64_t)m->qkv_l, o = n * (uint64_t)m->h_l;
            add(out, MT_GROUP_CPA2A, MT_COLL_ALLTOALL, A > 1 ? M * ((L + R) + 2 * L) : 0, qkv, r);
            add(out, MT_GROUP_CPA2A, MT_COLL_ALLTOALL, A > 1 ? M * ((L + R) + 2 * L) : 0, o, r);
            uint64_t kv = n * 2 * (uint64_t)m->nkv_l * hd, hops = P > 1 ? M * ((P - 1) * (L + R) + (2 * P - 1) * L) : 0;
            add(out, MT_GROUP_CPP2P, MT_COLL_SEND, hops, kv, r);
            add(out, MT_GROUP_CPP2P, MT_COLL_RECV, hops, kv, r);
        } else if (c->cp_comm == MT_CP_ALLGATHER) {
            // Every forward (recomputed ones too) and every backward gathers
            // the K|V blocks; backward reduce-scatters their gradients.
            uint64_t kv = n * 2 * (uint64_t)m->nkv_l * hd * C;
            add(out, MT_GROUP_CP, MT_COLL_ALLGATHER, M * ((L + R) + L), kv, r);
            add(out, MT_GROUP_CP, MT_COLL_REDUCE_SCATTER, M * L, kv, r);
        } else {
            // All-to-alls: QKV to heads and the output back per forward;
            // backward: the output's gradient and QKV again (and the output,
            // for the blocked kernel) to heads, QKV's gradient back.
            uint64_t qkv = n * (uint64_t)m->qkv_l, o = n * (uint64_t)m->h_l;
            add(out, MT_GROUP_CP, MT_COLL_ALLTOALL, M * ((L + R) + 2 * L), qkv, r);
            add(out, MT_GROUP_CP, MT_COLL_ALLTOALL, M * ((L + R) + L + (c->flash_attn ? L : 0)), o, r);
        }
    }
    if (p->pp_size > 1) {
        // Per micro-batch, every chunk sends its output forward unless it
        // holds the head, and its input gradient backward unless it holds the
        // embedding; receives mirror that (interleaving: v chunks per rank).
        uint64_t x = (uint64_t)m->n_l * (uint64_t)m->h, sends = 0, recvs = 0;
        for (int k = 0; k < m->nchunks; k++) {
            sends += (uint64_t)!m->chunks[k].has_head + (uint64_t)!m->chunks[k].has_embed;
            recvs += (uint64_t)!m->chunks[k].has_embed + (uint64_t)!m->chunks[k].has_head;
        }
        add(out, MT_GROUP_PP, MT_COLL_SEND, M * sends, x, r);
        add(out, MT_GROUP_PP, MT_COLL_RECV, M * recvs, x, r);
        for (int i = 0; i < m->nparams; i++)
            if (mt_param_grad_groups(m, &m->params[i]) & (1u << MT_GROUP_EMBD))
                add(out, MT_GROUP_EMBD, MT_COLL_ALLREDUCE, 1, m->params[i].n, rg);
    }
    // Every copy of the parameters (DP; dp-cp with context parallelism).
    mt_group gg = mt_grad_group(p);
    int copies = p->dp_size * p->cp_size;
    // One reduction per gradient bucket (the buckets cover the arena, so the
    // bytes are the arena's); the gather is one call, or one per bucket
    // with --overlap-param-gather.
    uint64_t nbu = (uint64_t)nb;
    if (copies > 1 && !c->use_distributed_optimizer) {
        s_add_split(out, gg, MT_COLL_ALLREDUCE, nbu, m->nelem, rg);
    }
    if (copies > 1 && c->use_distributed_optimizer) {
        s_add_split(out, gg, MT_COLL_REDUCE_SCATTER, nbu, m->nelem_pad, rg);
        s_add_split(out, gg, MT_COLL_ALLGATHER, c->overlap_param_gather ? nbu : 1, m->nelem_pad, rp);
        add(out, gg, MT_COLL_ALLREDUCE, 1, 1, sizeof(double));  // the norm's shard sums
    }
    if (p->tp_size * p->pp_size > 1) add(out, MT_GROUP_MP, MT_COLL_ALLREDUCE, 1, 1, sizeof(double));
    free(first);
}

size_t mt_account_act_layers(const mt_model *m) {
    const mt_config *c = m->cfg;
    size_t t = (size_t)m->par->tp_size, n = (size_t)m->n, nl = (size_t)m->n_l, h = (size_t)m->h, e = (size_t)m->eb.act;
    size_t a = (size_t)c->num_heads, g = (size_t)c->num_query_groups, hd = h / a, f = (size_t)c->ffn_hidden_size;
    // Per local query row and head: one log-sum-exp for the blocked kernels
    // (--use-flash-attn, CP's ring and all-gather), else a probability for
    // every key of the sequence (all of it: under CP's all-to-all the
    // kernel sees s_full keys for a/(tC) heads of s_full queries, the same
    // count), none under selective recomputation.
    size_t rows = a * (size_t)m->s * (size_t)m->b / t;
    size_t probs = c->flash_attn || m->cp_blocks ? rows : c->recompute == MT_RECOMPUTE_SELECTIVE ? 0 : rows * (size_t)m->s_full;
    size_t stats = c->normalization == MT_NORM_RMSNORM ? 2 : 4;   // per norm: 1/std, and the mean for LayerNorm
    size_t qkv = (a + 2 * g) * hd / t, fc1 = (c->swiglu ? 2 : 1) * f / t;
    size_t stored = 4 * nl * h + stats * nl + n * (qkv + h / t + fc1 + f / t) + probs, total = 0;
    for (int k = 0; k < m->nchunks; k++) {
        const mt_chunk *ch = &m->chunks[k];
        for (int l = 0; l < ch->nlayers; l++) {
            int g0 = ch->rc_group0[l];
            total += (size_t)ch->nslots * e * (g0 < 0 ? stored : g0 == l ? nl * h : 0);
        }
    }
    return total;
}

double mt_account_paper_layer(const mt_config *c) {
    double s = c->seq_length, b = c->micro_batch_size, h = c->hidden_size, a = c->num_heads, t = c->tp;
    double sbh = s * b * h;
    if (c->recompute == MT_RECOMPUTE_FULL) return 2 * sbh;
    int sel = c->recompute == MT_RECOMPUTE_SELECTIVE, sp = c->sequence_parallel;
    if (sp) return sel ? 34 * sbh / t : sbh * (34 + 5 * a * s / h) / t;
    return sel ? sbh * (10 + 24 / t) : sbh * (10 + 24 / t + 5 * a * s / (h * t));
}

int mt_account_comm_print(const mt_comm_stats *ms, const mt_comm_stats *pr, FILE *f) {
    int bad = 0;
    fprintf(f, "  %-4s %-14s %10s %14s %10s %14s\n", "grp", "collective", "calls", "bytes", "pred.calls", "pred.bytes");
    for (int g = 0; g < MT_GROUP_N; g++)
        for (int c = 0; c < MT_COLL_N; c++) {
            if (!ms->calls[g][c] && !pr->calls[g][c]) continue;
            int same = ms->calls[g][c] == pr->calls[g][c] && ms->bytes[g][c] == pr->bytes[g][c];
            bad += !same;
            fprintf(f, "  %-4s %-14s %10llu %14llu %10llu %14llu%s\n", mt_group_names[g], mt_coll_names[c],
                    (unsigned long long)ms->calls[g][c], (unsigned long long)ms->bytes[g][c],
                    (unsigned long long)pr->calls[g][c], (unsigned long long)pr->bytes[g][c], same ? "" : "  <- differs");
        }
    return bad;
}
