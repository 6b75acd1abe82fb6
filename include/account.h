// account.h: what the formulas predict for one rank, to print next to what
// the counters and the allocator measured (--log-comm, --log-memory).
#ifndef MT_ACCOUNT_H
#define MT_ACCOUNT_H

#include "comm.h"
#include "model.h"

// Predicted collectives of one training iteration of this rank (the M
// micro-batches, gradient synchronisation and the gradient norm), in the
// byte convention of comm.h. Per micro-batch and layer (n = s*b tokens):
//   TP without SP: 4 all-reduces of n*h (2 forward f̄, 2 backward f);
//   TP with SP: 2 all-gathers + 2 reduce-scatters of n*h forward, and
//     backward 2 reduce-scatters (g) + 2 all-gathers (ḡ) + 2 all-gathers
//     that re-gather the LayerNorm outputs (only s/t rows are kept);
//   embedding: f̄ (all-reduce n*h) or ḡ (reduce-scatter) forward, and ḡ's
//     all-gather backward under SP;
//   head: g/f, a MAX all-reduce of n, a SUM all-reduce of 2n, and the
//     backward of g/f;
// per iteration: one TP all-reduce of the SP-partial gradients, one all-reduce
// of the tied embedding over the embedding group (PP > 1), one DP all-reduce
// of all gradients (distributed optimizer: a reduce-scatter of the gradients,
// an all-gather of the parameters and a DP all-reduce of the norm's shard
// sums), one all-reduce of the squared norm (a double) over TP x PP;
// PP sends and receives of (s/t*b, h) per micro-batch, direction and chunk
// boundary (each of a rank's v interleaved chunks sends and receives);
// context parallelism (n = the s/C*b rows of the rank's positions, W its
// QKV row, R recomputed layers): the ring sends and receives a K|V block of
// n * 2g/t * hd elements M ((C-1)(L+R) + (2C-1)L) times; the all-to-all
// moves n W elements M (3L+R) times and n h/t elements M (2L+R) times (one
// more L with the blocked kernel).
void mt_account_comm(const mt_model *m, mt_comm_stats *out);

// Activation bytes the slots of this stage hold for transformer layers,
// from the formula of this trainer's storage (elements of m->eb.act bytes;
// n = s*b rows, nl = n/t under SP and n otherwise; a heads, g KV groups,
// hd = h/a, f the MLP hidden size, t = TP):
//   a stored layer:   4 nl h  (input, norm 1 out, residual, norm 2 out)
//                   + 4 nl    (two LayerNorms' mean and 1/std; 2 nl: RMSNorm
//                              keeps only 1/std)
//                   + n ((a + 2g) hd / t    QKV (3h/t without GQA)
//                        + h / t            attention output
//                        + f / t            fc1 (2f/t with SwiGLU's gate and up)
//                        + f / t)           GELU / SwiGLU output
//                     (12 n h / t for GPT-2: f = 4h, g = a)
//                   + a s^2 b / t (softmax probabilities; dropped by selective;
//                                  a s b / t log-sum-exps with --use-flash-attn)
//   full recomputation: nl h for the first layer of each group, 0 for the rest.
// Dropout masks are never stored (regenerated from the counter-based
// generator), which is where this differs from the paper's 1-byte masks.
// Multiply by slots in flight; compare with m->act_layer_bytes.
size_t mt_account_act_layers(const mt_model *m);

// Korthikanti et al. 2022, Table 2: activation bytes per layer at 2-byte
// activations and 1-byte masks for this config's mode (t = TP size).
double mt_account_paper_layer(const mt_config *c);

// Prints measured and predicted side by side; returns the number of rows
// that differ.
int mt_account_comm_print(const mt_comm_stats *measured, const mt_comm_stats *predicted, FILE *f);

#endif
