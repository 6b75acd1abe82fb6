// train.c: gradient synchronisation, clipping and AdamW.
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "buckets.h"
#include "gradnorm.h"

double mt_lr_at(const mt_config *c, int it, uint64_t consumed) {
    // Megatron's scheduler counts samples (iterations x the global batch):
    // the same ratios as iterations while the batch is constant. A warm-up
    // given as a fraction of the decay is counted in samples, as Megatron
    // counts it (F x decay samples need not be whole iterations).
    double n = it - 1, warm = c->lr_warmup_iters, decay = c->lr_decay_iters;
    if (c->lr_in_samples) {
        n = (double)consumed;
        decay = c->train_samples ? (double)c->lr_decay_samples : (double)c->lr_decay_iters * c->global_batch_size;
        warm = c->lr_warmup_fraction > 0 ? c->lr_warmup_fraction * decay : (double)c->lr_warmup_samples;
    }
    if (warm > 0 && n <= warm) return c->lr_warmup_init + (c->lr - c->lr_warmup_init) * n / warm;
    if (c->lr_style == MT_LR_CONSTANT) return c->lr;
    if (n > decay) return c->min_lr;
    double ratio = decay > warm ? (n - warm) / (decay - warm) : 1.0;
    double coeff = c->lr_style == MT_LR_LINEAR ? 1.0 - ratio : 0.5 * (cos(M_PI * ratio) + 1.0);
    return c->min_lr + coeff * (c->lr - c->min_lr);
}

void mt_grad_sync(mt_model *m, mt_comm *cm) {
    // Every bucket's TP, embedding-group and DP/CP sums (buckets.h); what
    // --overlap-grad-reduce posted during backward is only waited for here.
    mt_buckets_reduce_finish(m, cm);
    // The sum over DP (and CP's partial sums) becomes an average over DP
    // only: the CP ranks each hold a part of the same samples' gradient.
    // The norm's blocks are summed in the same pass (gradnorm.h).
    if (m->par->dp_size > 1) mt_gradnorm_scale(m, (real)1 / (real)m->par->dp_size);
}

double mt_grad_norm(mt_model *m, mt_comm *cm) {
    // This rank's Σ g², partly summed during backward (gradnorm.h).
    double ss = mt_gradnorm_local(m);
    mt_comm_allreduce_double(cm, MT_GROUP_MP, &ss, 1);
    // Distributed optimizer: each DP rank summed only its shard.
    if (m->cfg->use_distributed_optimizer) mt_comm_allreduce_double(cm, mt_grad_group(m->par), &ss, 1);
    return sqrt(ss);
}

void mt_grad_zero(mt_model *m) {
    size_t lo = 0, hi = 0;  // [lo, hi): already zero
    if (m->shard_grads_zero) lo = MT_MIN(m->shard0, m->nelem), hi = MT_MIN(m->shard0 + m->shard_n, m->nelem);
    if (lo > 0) m->be->zero(m->grad_mem, lo * sizeof(real));
    if (hi < m->nelem) m->be->zero(m->grad_mem + hi, (m->nelem - hi) * sizeof(real));
    m->shard_grads_zero = 0;  // until the next AdamW
    mt_gradnorm_reset(m->gn);  // a new step: no gradient is final yet
}

void mt_optimizer_init(mt_model *m) {
    // Moments (and under --bf16 the main weights) for the shard only; they
    // are indexed by arena offset - shard0.
    m->mem[MT_MEM_OPTIM] += m->shard_n * (size_t)m->eb.optim;
    if (m->dry) return;
    m->gn = mt_gradnorm_new(m);
    m->m_mem = m->be->alloc(m->shard_n * sizeof(real));
    m->v_mem = m->be->alloc(m->shard_n * sizeof(real));
    if (!m->cfg->bf16 || m->cfg->bug_bf16_off) return;
    // Every rank initialised the whole of its weights: the shard's become
    // the fp32 main weights, and all of them are rounded to bf16.
    m->main_mem = m->be->alloc(m->shard_n * sizeof(real));
    m->be->copy(m->main_mem, m->param_mem + m->shard0, m->shard_n);
    m->be->round_bf16(m->param_mem, m->param_mem, m->nelem_pad);
}

void mt_optimizer_publish(mt_model *m, mt_comm *cm) {
    if (!m->main_mem) return;
    m->be->round_bf16(m->param_mem + m->shard0, m->main_mem, m->shard_n);
    if (m->cfg->use_distributed_optimizer) mt_comm_shard_all_gather(cm, mt_grad_group(m->par), m->param_mem, m->nelem_pad);
}

void mt_optimizer_step(mt_model *m, mt_comm *cm, double grad_norm, double lr, int step) {
    const mt_config *c = m->cfg;
    // Megatron's clip_grad_norm_: scale by clip / (norm + 1e-6) when below 1,
    // applied inside AdamW's pass over the gradients.
    real gscale = 1;
    if (c->clip_grad > 0) {
        double coeff = c->clip_grad / (grad_norm + 1e-6);
        if (coeff < 1.0) gscale = (real)coeff;
    }
    for (int i = 0; i < m->nparams; i++) {
        const mt_param *p = &m->params[i];
        size_t a, b, o = m->shard0;
        mt_param_shard(m, p, &a, &b);
        if (a >= b) continue;
        // Under --bf16 AdamW updates the fp32 main weights, whose bf16
        // rounding becomes the weights the next step computes with.
        real *w = m->main_mem ? m->main_mem + (a - o) : m->param_mem + a;
        real lrr = (real)lr, b1 = (real)c->adam_beta1, b2 = (real)c->adam_beta2, eps = (real)c->adam_eps;
        real wd = p->decay || c->weight_decay_all ? (real)c->weight_decay : 0;
        real *mm = m->m_mem + (a - o), *vv = m->v_mem + (a - o);
        if (m->fused) {
            // One pass: the bf16 compute copy written with the update.
            real *pbf = m->main_mem ? m->param_mem + a : NULL;
            m->be->adamw_fused(w, pbf, m->grad_mem + a, gscale, mm, vv, b - a, step, lrr, b1, b2, eps, wd);
            continue;
        }
        m->be->adamw_update(w, m->grad_mem + a, gscale, mm, vv, b - a, step, lrr, b1, b2, eps, wd);
        if (m->main_mem) m->be->round_bf16(m->param_mem + a, w, b - a);
    }
    // AdamW zeroed every gradient of the shard it consumed (elements of the
    // arena outside any parameter are never written, so they stay zero).
    m->shard_grads_zero = 1;
    // Every DP rank updated its shard; gather the whole model back, now or
    // (--overlap-param-gather) bucket by bucket behind the next forward.
    if (c->use_distributed_optimizer && c->overlap_param_gather && m->gb) mt_buckets_gather_start(m, cm);
    else if (c->use_distributed_optimizer) mt_comm_shard_all_gather(cm, mt_grad_group(m->par), m->param_mem, m->nelem_pad);
}
