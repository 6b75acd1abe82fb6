// plan_sweep.c: one layout planned and timed, and the sweep over layouts
// (plan_sweep.h has the model).
#include "plan_sweep.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "comm.h"
#include "input.h"
#include "schedule.h"
#include "train.h"

// ---- machine files -----------------------------------------------------------

int mt_machine_read(const char *path, mt_machine *mc, char *err, size_t errlen) {
    memset(mc, 0, sizeof *mc);
    // Bounded and non-blocking (input.h): a FIFO or device is one line.
    size_t len = 0;
    char *text = mt_input_read_small(path, "--machine", 1 << 16, 0, &len, err, errlen);
    if (!text) return -1;
    FILE *f = len ? fmemopen(text, len, "r") : NULL;
    if (!f) { free(text); return snprintf(err, errlen, "--machine %s: empty or unreadable", path), -1; }
    static const char *const keys[] = {"device_flops", "node_flops", "ranks_per_node", "intra_bw", "intra_latency",
                                       "inter_bw", "inter_latency"};
    double v[7] = {0};
    int seen[7] = {0}, lineno = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char key[64], val[200];
        if (sscanf(line, "%63s %199[^\n]", key, val) < 1) continue;
        if (!strcmp(key, "name")) {
            snprintf(mc->name, sizeof mc->name, "%s", val);
            for (size_t n = strlen(mc->name); n && isspace((unsigned char)mc->name[n - 1]); n--) mc->name[n - 1] = 0;
            continue;
        }
        int k = 0;
        while (k < 7 && strcmp(key, keys[k])) k++;
        // The whole value, strictly (input.h): "1e12abc" is not a number.
        for (size_t n = strlen(val); n && isspace((unsigned char)val[n - 1]); n--) val[n - 1] = 0;
        double x = 0;
        if (k == 7 || mt_parse_double(val, &x) || !(x >= 0) || (k == 2 && x != (int)x)) {
            fclose(f);
            free(text);
            return snprintf(err, errlen, "--machine %s:%d: %s", path, lineno,
                            k == 7 ? "unknown key (name, device_flops, node_flops, ranks_per_node, intra_bw, "
                                     "intra_latency, inter_bw, inter_latency)" : "the value must be a number >= 0"), -1;
        }
        v[k] = x;
        seen[k] = 1;
    }
    fclose(f);
    free(text);
    for (int k = 0; k < 7; k++)
        if (!seen[k] && k != 1) return snprintf(err, errlen, "--machine %s: %s is missing", path, keys[k]), -1;
    if (v[0] <= 0 || v[2] < 1 || v[3] <= 0 || v[5] <= 0)
        return snprintf(err, errlen, "--machine %s: device_flops, intra_bw and inter_bw must be > 0 and ranks_per_node >= 1", path), -1;
    mc->device_flops = v[0], mc->node_flops = v[1], mc->ranks_per_node = (int)v[2];
    mc->intra_bw = v[3], mc->intra_lat = v[4], mc->inter_bw = v[5], mc->inter_lat = v[6];
    return 0;
}

// ---- one layout ------------------------------------------------------------------

// Whether group g of rank p sits inside one node; its size in *n.
static int group_in_node(const mt_parallel *p, mt_group g, const mt_machine *mc, int *n) {
    int ranks[4096];
    *n = mt_parallel_group_ranks(p, g, ranks, 4096);
    for (int i = 1; i < *n && i < 4096; i++)
        if (ranks[i] / mc->ranks_per_node != ranks[0] / mc->ranks_per_node) return 0;
    return 1;
}

// Seconds the stage's collectives take on the machine's links (rings).
static double comm_seconds(const mt_parallel *p, const mt_comm_stats *st, const mt_machine *mc) {
    double t = 0;
    for (int g = 0; g < MT_GROUP_N; g++) {
        int n;
        int in = group_in_node(p, (mt_group)g, mc, &n);
        double bw = in ? mc->intra_bw : mc->inter_bw, lat = in ? mc->intra_lat : mc->inter_lat;
        if (g == MT_GROUP_PP) n = 2;  // point to point
        if (n < 2) continue;
        for (int c = 0; c < MT_COLL_N; c++) {
            double calls = (double)st->calls[g][c], bytes = (double)st->bytes[g][c], f = (n - 1.0) / n;
            if (c == MT_COLL_ALLREDUCE) t += 2 * f * bytes / bw + calls * 2 * (n - 1) * lat;
            else if (c == MT_COLL_ALLGATHER || c == MT_COLL_REDUCE_SCATTER) t += f * bytes / bw + calls * (n - 1) * lat;
            else if (c == MT_COLL_SEND) t += bytes / bw + calls * lat;  // the matching recv is the same transfer
            else if (c == MT_COLL_ALLTOALL) t += f * bytes / bw + calls * (n - 1) * lat;
        }
    }
    return t;
}

// FLOPs of one iteration on this stage's rank (forward, backward, recomputation).
static double stage_flops(const mt_model *m, const mt_config *c) {
    // Per token: the four products of a layer forward (QKV, projection, fc1,
    // fc2) at 2 FLOPs a multiply-add, from the model's own widths (GQA's
    // smaller K/V, SwiGLU's gate), plus attention's 4 s h; backward twice
    // that. A CP rank holds s/C of each sequence (its attention still sees
    // every key: the same 4 s h per query).
    double h = c->hidden_size, s = c->seq_length, t = c->tp, f = 0;
    double tok = (double)c->global_batch_size / c->dp * s / c->cp;
    double mm = 2 * h * ((double)m->qkv_l * t + h + (double)m->fc1_l * t) + 2 * (double)m->ff_l * t * h;
    double fwd = mm + 4 * s * h, layer = 3 * fwd;
    for (int k = 0; k < m->nchunks; k++) {
        const mt_chunk *ch = &m->chunks[k];
        for (int l = 0; l < ch->nlayers; l++) {
            f += layer;
            // Attention's core forward again in backward: the blocked kernels
            // (flash, CP's ring and all-gather) always recompute their blocks, the plain one
            // under selective.
            if (c->flash_attn || m->cp_blocks || c->recompute == MT_RECOMPUTE_SELECTIVE) f += 4 * s * h;
            if (ch->rc_group0[l] >= 0) f += fwd;
        }
        if (ch->has_head) f += 6 * h * c->padded_vocab;
    }
    return f * tok / c->tp;
}

void mt_plan_layout(const mt_config *c, int world, const mt_elem_bytes *eb, const mt_machine *mc, mt_plan_est *e) {
    memset(e, 0, sizeof *e);
    for (int stage = 0; stage < c->pp; stage++) {
        // TP ranks of a stage are symmetric and DP rank 0 stands for all: the
        // stage's first rank (every faster axis 0).
        mt_parallel par = mt_parallel_coords(c, stage * (world / c->pp));
        mt_model m;
        mt_model_plan(&m, c, &par, mt_schedule_slots(c, stage), eb);
        mt_optimizer_init(&m);
        size_t total = 0;
        for (int k = 0; k < MT_MEM_N; k++) total += m.mem[k];
        if (stage < 64) e->stage_bytes[stage] = total;
        if (total > e->max_bytes) e->max_bytes = total, e->max_stage = stage;
        if (mc) {
            mt_comm_stats st;
            mt_account_comm(&m, &st);
            double flops = mc->device_flops;
            int on_node = MT_MIN(world, mc->ranks_per_node);
            if (mc->node_flops > 0) flops = fmin(flops, mc->node_flops / on_node);
            double v = m.nchunks, M = c->num_micro_batches;
            double tc = stage_flops(&m, c) / flops, tb = tc * (c->pp - 1) / (v * M), tm = comm_seconds(&par, &st, mc);
            if (tc + tb + tm > e->t_step) e->t_compute = tc, e->t_bubble = tb, e->t_comm = tm, e->t_step = tc + tb + tm;
        }
        mt_model_free(&m);
    }
}

// ---- the sweep ---------------------------------------------------------------------

typedef struct {
    int tp, pp, dp, cp, cpa, sp;  // cpa: a2a+p2p's all-to-all level (0: another CP type)
    mt_recompute rc;
    int fits;
    mt_plan_est e;
} mt_sweep_row;

static const char *const RC_NAME[] = {"none", "selective", "full"};

// Fitting layouts first, fastest first; then the rest, smallest first.
static int by_fit_then_time(const void *x, const void *y) {
    const mt_sweep_row *a = x, *b = y;
    if (a->fits != b->fits) return b->fits - a->fits;
    double ka = a->fits ? a->e.t_step : (double)a->e.max_bytes, kb = b->fits ? b->e.t_step : (double)b->e.max_bytes;
    if (ka != kb) return ka < kb ? -1 : 1;
    return (a->tp - b->tp) * 1000 + (a->pp - b->pp) * 10 + (a->sp - b->sp) * 3 + ((int)a->rc - (int)b->rc);
}

int mt_plan_sweep(const mt_config *launch, int world, double budget, const mt_elem_bytes *eb, const mt_machine *mc,
                  FILE *f) {
    int cap = 64, n = 0, invalid = 0, fits = 0, same = 0;
    mt_sweep_row *rows = mt_calloc((size_t)cap, sizeof *rows);
    char err[1024];
    for (int tp = 1; tp <= world; tp++) {
        if (world % tp) continue;
        for (int pp = 1; pp <= world / tp; pp++) {
            if ((world / tp) % pp) continue;
            // Context parallelism: every divisor of what TP and PP leave
            // (the launch's --cp-comm-type; sequences that do not cut into
            // 2C chunks are refused by the config rules like any layout).
            // With a2a+p2p, every split of CP into the all-to-all level A
            // and the ring P (A x P = CP), as rows of their own.
            for (int cp = 1; cp <= world / (tp * pp); cp++)
                if ((world / (tp * pp)) % cp == 0)
                for (int A = 1; A <= (launch->cp_comm == MT_CP_A2A_P2P && cp > 1 ? cp : 1); A++)
                    if (cp % A == 0)
                for (int sp = 0; sp <= (tp > 1); sp++)
                    for (int rc = MT_RECOMPUTE_NONE; rc <= MT_RECOMPUTE_FULL; rc++) {
                        // Blocked attention stores no s x s tensor, so selective
                        // recomputation is no recomputation: one row, not two.
                        if (rc == MT_RECOMPUTE_SELECTIVE && (launch->flash_attn || (cp > 1 && launch->cp_comm != MT_CP_A2A))) {
                            same++;
                            continue;
                        }
                        mt_config c = *launch;
                        c.tp = tp, c.pp = pp, c.cp = cp, c.sequence_parallel = sp, c.recompute = (mt_recompute)rc;
                        if (launch->cp_comm == MT_CP_A2A_P2P) c.hcp_sizes[0] = A, c.hcp_sizes[1] = cp / A;
                        c.recompute_method = MT_RECOMPUTE_UNIFORM, c.recompute_num_layers = 0;
                        // Interleaving as the launch asks, where this PP size admits it.
                        if (c.layers_per_virtual_stage && (pp == 1 || (c.num_layers / pp) % c.layers_per_virtual_stage))
                            c.layers_per_virtual_stage = 0;
                        if (mt_config_finish_checked(&c, world, err, sizeof err)) { invalid++; continue; }
                        if (n == cap) rows = realloc(rows, sizeof *rows * (size_t)(cap *= 2));
                        if (!rows) mt_fail_local(MT_EXIT_FAIL, "plan: out of memory");
                        mt_sweep_row *r = &rows[n++];
                        *r = (mt_sweep_row){.tp = tp, .pp = pp, .dp = c.dp, .cp = cp, .cpa = cp > 1 && c.cp_comm == MT_CP_A2A_P2P ? A : 0,
                                            .sp = sp, .rc = (mt_recompute)rc};
                        mt_plan_layout(&c, world, eb, mc, &r->e);
                        r->fits = (double)r->e.max_bytes <= budget;
                        fits += r->fits;
                    }
        }
    }
    qsort(rows, (size_t)n, sizeof *rows, by_fit_then_time);
    double gib = 1024.0 * 1024 * 1024, best = n && rows[0].fits ? rows[0].e.t_step : 0;
    fprintf(f, "sweep: %d layouts of world %d (%d more not valid for this model, %d with selective recomputation "
            "equal to none under blocked attention), %d fit %.1f GiB per device; step time estimated for %s\n", n, world,
            invalid, same, fits, budget / gib, mc->name);
    fprintf(f, "  %4s %-4s %10s %8s %9s %9s %9s %16s %8s  %s\n", "rank", "fits", "step s", "vs best", "compute", "bubble",
            "comm", "max bytes/rank", "GiB", "layout");
    for (int i = 0; i < n; i++) {
        const mt_sweep_row *r = &rows[i];
        char rank[16] = "-", vs[16] = "-";
        if (r->fits) snprintf(rank, sizeof rank, "%d", i + 1), snprintf(vs, sizeof vs, "%.2fx", r->e.t_step / best);
        char cps[48] = "";
        if (r->cpa) snprintf(cps, sizeof cps, " (a2a %d x p2p %d)", r->cpa, r->cp / r->cpa);
        fprintf(f, "  %4s %-4s %10.4g %8s %9.3g %9.3g %9.3g %16zu %8.2f  TP %d PP %d DP %d CP %d%s %s %s\n", rank,
                r->fits ? "yes" : "no", r->e.t_step, vs, r->e.t_compute, r->e.t_bubble, r->e.t_comm, r->e.max_bytes,
                (double)r->e.max_bytes / gib, r->tp, r->pp, r->dp, r->cp, cps, r->sp ? "SP" : "no-SP", RC_NAME[r->rc]);
    }
    free(rows);
    return fits;
}
