// train.c: gradient synchronisation, clipping and AdamW.
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "buckets.h"
#include "gradnorm.h"

double mt_lr_at(const mt_config *c, uint64_t n_samples, int decoupled) {
    // Megatron's OptimizerParamScheduler.get_lr counts samples (its
    // num_steps: iterations x the global batch, or --train-samples' own), and
    // so does this: the warm-up's products round as Megatron's do only in
    // samples (lr x n x g is not lr x n, rounded, unless g is a power of two).
    double g = c->global_batch_size, n = (double)n_samples;
    int s = c->train_samples != 0;
    double decay = s ? (double)c->lr_decay_samples : c->lr_decay_iters * g;
    double wsd = s ? (double)c->lr_wsd_decay_samples : c->lr_wsd_decay_iters * g;
    double warm = c->lr_warmup_fraction > 0 ? c->lr_warmup_fraction * decay : s ? (double)c->lr_warmup_samples : c->lr_warmup_iters * g;
    // --decoupled-lr's group has its own peak and floor (Megatron's max_lr,
    // min_lr per group); the warm-up starts from init_lr in both.
    double lr = decoupled ? c->decoupled_lr : c->lr, lo = decoupled ? c->decoupled_min_lr : c->min_lr;
    if (warm > 0 && n <= warm) return c->lr_warmup_init + (lr - c->lr_warmup_init) * n / warm;
    if (c->lr_style == MT_LR_CONSTANT) return lr;
    if (n > decay) return lo;
    if (c->lr_style == MT_LR_ISQRT) return fmax(lo, lr * pow(fmax(warm, 1), 0.5) / pow(fmax(n, 1), 0.5));
    double coeff, ratio = decay > warm ? (n - warm) / (decay - warm) : 1.0;
    if (c->lr_style == MT_LR_LINEAR) coeff = 1.0 - ratio;
    else if (c->lr_style == MT_LR_COSINE) coeff = 0.5 * (cos(M_PI * ratio) + 1.0);
    else if (n <= decay - wsd) coeff = 1.0;  // WSD: stable until the annealing phase
    else {
        double r = (n - (decay - wsd)) / wsd;
        switch (c->lr_wsd_style) {
        case MT_WSD_EXPONENTIAL: coeff = 2.0 * pow(0.5, r) - 1.0; break;
        case MT_WSD_LINEAR: coeff = 1.0 - r; break;
        case MT_WSD_COSINE: coeff = 0.5 * (cos(M_PI * r) + 1.0); break;
        default: coeff = 1.0 - sqrt(r); break;
        }
    }
    return lo + coeff * (lr - lo);
}

double mt_wd_at(const mt_config *c, uint64_t n_samples) {
    // Megatron's get_wd: over the run's samples.
    if (c->wd_incr_style == MT_WD_CONSTANT) return c->end_weight_decay;
    double n = (double)n_samples, total = c->train_samples ? (double)c->train_samples : (double)c->train_iters * c->global_batch_size;
    if (n > total) return c->end_weight_decay;
    double r = n / total, coeff = c->wd_incr_style == MT_WD_LINEAR ? r : 0.5 * (cos(M_PI * (1 - r)) + 1.0);
    return c->start_weight_decay + coeff * (c->end_weight_decay - c->start_weight_decay);
}

mt_sched mt_sched_at(const mt_config *c, uint64_t n_samples) {
    mt_sched s = {mt_lr_at(c, n_samples, 0), mt_lr_at(c, n_samples, 1), mt_wd_at(c, n_samples), 0};
    return s;
}

int mt_param_decoupled_lr(const mt_param *p) {
    return p->layer < 0 && (p->index == MT_TP_wte || p->index == MT_TP_lm_head);
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

double mt_params_norm(mt_model *m, mt_comm *cm) {
    // Host parts for the largest tensor (ops.h sumsq_parts), in block order.
    size_t cap = 1;
    for (int i = 0; i < m->nparams; i++) cap = MT_MAX(cap, (m->params[i].n + MT_SUMSQ_BLOCK - 1) / MT_SUMSQ_BLOCK);
    double ss = 0, *part = mt_malloc(cap * sizeof *part);
    for (int i = 0; i < m->nparams; i++) {
        const mt_param *p = &m->params[i];
        if (!mt_param_counts_in_norm(m, p) || !p->n) continue;
        size_t nb = (p->n + MT_SUMSQ_BLOCK - 1) / MT_SUMSQ_BLOCK;
        m->be->sumsq_parts(m->param_mem + p->off, p->n, part);
        for (size_t j = 0; j < nb; j++) ss += part[j];
    }
    free(part);
    mt_comm_allreduce_double(cm, MT_GROUP_MP, &ss, 1);
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

void mt_optimizer_step(mt_model *m, mt_comm *cm, double grad_norm, const mt_sched *s, int step) {
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
        real lrr = (real)(c->decoupled_lr_set && mt_param_decoupled_lr(p) ? s->lr_decoupled : s->lr), b1 = (real)c->adam_beta1, b2 = (real)c->adam_beta2, eps = (real)c->adam_eps;
        real wd = p->decay || c->weight_decay_all ? (real)s->weight_decay : 0;
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
