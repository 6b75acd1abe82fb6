// plan_sweep.h: the planner's layouts (tools/plan). One layout is planned
// with the trainer's own construction (mt_model_plan: every stage's bytes
// exactly as the trainer would allocate them, and account.c's collectives);
// a sweep plans every TP x PP x DP (x CP) x SP x recompute choice of a world
// size, marks which fit a per-device memory budget, and orders them by a
// step time estimated from a machine file.
//
// The estimate (per pipeline stage, the slowest stage sets the step):
//   compute = FLOPs of the stage's layers and head for its DP share of the
//             global batch, over TP, at the machine's sustained FLOP/s
//             (a layer: 72 h^2 + 12 s h per token forward + backward, plus
//             4 s h for selective recomputation or the blocked attention
//             kernel, and 24 h^2 + 4 s h for full recomputation;
//             the head 6 h Vp per token);
//   bubble  = compute x (p - 1) / (v M)   (Narayanan et al. 2021);
//   comm    = account.c's calls and bytes per group, each collective on a
//             ring: all-reduce 2(n-1)/n bytes / bandwidth + 2(n-1) latencies,
//             all-gather and reduce-scatter half that, a send bytes /
//             bandwidth + one latency; a group whose ranks fit in one node
//             (consecutive ranks fill a node) uses the intra-node link.
// Communication is not overlapped with compute in this trainer, so the
// three add up. It is a model for ranking layouts, not a promise.
#ifndef MT_PLAN_SWEEP_H
#define MT_PLAN_SWEEP_H

#include <stdio.h>

#include "config.h"
#include "model.h"

// A machine file (configs/machines/*.txt): "key value" lines, '#' comments.
typedef struct {
    char name[256];
    double device_flops;   // device_flops: sustained FLOP/s of one rank's products
    double node_flops;     // node_flops: FLOP/s the ranks of a node share (CPU cores); 0: no limit
    int ranks_per_node;    // ranks_per_node: consecutive ranks per node
    double intra_bw, intra_lat;  // intra_bw (bytes/s bus bandwidth), intra_latency (s)
    double inter_bw, inter_lat;  // inter_bw, inter_latency: between nodes
} mt_machine;

// Reads a machine file; 0, or -1 with one line in err.
int mt_machine_read(const char *path, mt_machine *mc, char *err, size_t errlen);

// One planned layout.
typedef struct {
    size_t stage_bytes[64];  // total bytes per rank of each stage (first 64)
    size_t max_bytes;        // the largest
    int max_stage;
    double t_compute, t_bubble, t_comm, t_step;  // seconds, slowest stage
} mt_plan_est;

// Plans every stage of the finished config c on `world` ranks; mc NULL: no
// time estimate. eb: element sizes (mt_model_plan's).
void mt_plan_layout(const mt_config *c, int world, const mt_elem_bytes *eb, const mt_machine *mc, mt_plan_est *e);

// The sweep: every layout of `launch` (parsed, not finished) on `world`
// ranks, printed to f; budget in bytes per device. Returns the number of
// layouts that fit.
int mt_plan_sweep(const mt_config *launch, int world, double budget, const mt_elem_bytes *eb, const mt_machine *mc,
                  FILE *f);

#endif
