// layers_cp.h: the attention core under context parallelism (src/layers_cp.c):
// --cp-comm-type p2p (a K/V ring), a2a (all-to-all to a head split) or
// allgather (every K/V block gathered). The layer calls these in place of
// the attention kernels when CP > 1.
#ifndef MT_LAYERS_CP_H
#define MT_LAYERS_CP_H

#include "layers.h"

// a->qkv (n, W) of this rank's positions -> a->atty (n, h/t), with a->lse
// (ring, all-gather, or a2a with the blocked kernel) or a->probs (a2a, plain) kept.
void mt_cp_attention_forward(mt_model *m, mt_comm *cm, mt_layer_acts *a, const mt_dropout_key *kp, uint32_t sample0);
// m->ws.datty (n, h/t) -> m->ws.dqkv (n, W), from what the forward kept.
void mt_cp_attention_backward(mt_model *m, mt_comm *cm, const mt_layer_acts *a, const mt_dropout_key *kp,
                              uint32_t sample0);

#endif
