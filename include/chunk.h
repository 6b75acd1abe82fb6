// chunk.h: one model chunk's forward and backward for one micro-batch:
// embedding (on the first chunk) -> the chunk's layers -> LM head and loss
// (on the last chunk), with the recomputation policy. The schedules
// (schedule.c) only order micro-batches and move the tensors between
// stages; everything a chunk computes is here.
#ifndef MT_CHUNK_H
#define MT_CHUNK_H

#include "layers.h"

// Forward of chunk k on slot sl: sl->x[0] holds the chunk's input (the
// embedding chunk makes its own from sl->tokens) and sl->x[nlayers] receives
// its output. The head chunk runs the head at once; with `backward` it also
// runs the head's backward and keeps d(output) in sl->x[nlayers] until the
// micro-batch's backward (the logits are never kept). Each micro-batch's
// loss counts 1/M of the step's. Returns the micro-batch's mean loss on the
// head chunk, 0 elsewhere.
real mt_chunk_forward(mt_model *m, mt_comm *cm, const mt_step *st, int k, mt_slot *sl, int backward);

// Backward of chunk k on slot sl: on entry m->ws.dres holds d(output)
// (the head chunk takes it from the slot); on return it holds d(input), and
// the chunk's weight gradients have accumulated.
void mt_chunk_backward(mt_model *m, mt_comm *cm, const mt_step *st, int k, mt_slot *sl);

// The final hidden states of slot sl of a one-rank model (one chunk holding
// every layer): the embedding and the layers, no head. For tools
// (tools/generate); returns the buffer holding them.
const real *mt_model_hidden(mt_model *m, mt_comm *cm, const mt_step *st, mt_slot *sl);

#endif
