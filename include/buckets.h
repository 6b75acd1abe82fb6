// buckets.h: gradient buckets (Megatron's DistributedDataParallel buckets)
// and the overlap of their reduction with backward, and of the distributed
// optimizer's parameter all-gather with the next forward.
//
// The arena is cut into buckets of whole tensors, in reverse arena order
// (backward finishes the last tensors first), each at least
// --ddp-bucket-size elements. A bucket's reduction is always the same
// sequence of collectives: the SP-partial tensors' TP sum (blocking), the
// tied tensors' embedding-group sum (blocking), then one nonblocking
// reduction over every copy of the parameters (MPI_Iallreduce, or
// MPI_Ireduce_scatter onto the optimizer shards). --overlap-grad-reduce only
// changes when a bucket is posted: as soon as the last micro-batch's
// backward has written all of its tensors, instead of after backward; so
// the bits never change with the flag. Buckets holding a tied tensor are
// posted after backward either way (the embedding sum comes first, and the
// other stage's copy is only final then).
#ifndef MT_BUCKETS_H
#define MT_BUCKETS_H

#include "comm.h"
#include "model.h"

typedef struct {
    int p0, p1;              // tensors [p0, p1) of the parameter table
    size_t a, b;             // arena range [a, b): its tensors (bucket 0 also the padding)
    int has_tied;            // holds a tied tensor: posted after backward
    int pending;             // tensors not yet final in this step's backward
    int posted, gathering;   // reduction / parameter gather in flight
    int *counts, *displs;    // per grad-group rank: its part of [a, b) (distributed optimizer)
    mt_coll_req red, gat;
} mt_bucket;

typedef struct mt_buckets {
    int n;
    mt_bucket *b;
    int *of_param;           // bucket of each tensor
    int armed;               // the last micro-batch's backward runs: gradients become final
} mt_buckets;

// The first tensor of each bucket into first[] (capacity nparams; NULL to
// count only), bucket 0 holding the last tensors; returns the count. Used by
// the trainer and by the communication formulas (account.c).
int mt_buckets_plan(const mt_model *m, int *first);
void mt_buckets_init(mt_buckets *gb, const mt_model *m, mt_comm *cm);
void mt_buckets_free(mt_buckets *gb);

// Backward hooks (chunk.c, schedule.c). arm: whether the coming chunk
// backward is its last micro-batch's. layer_done: layer l's gradients are
// written; top_done: the non-layer tensors after the layers (the head's,
// after_layers 1) or before them (the embedding's, 0). Each also tests the
// posted requests, so MPI progresses while compute runs.
void mt_buckets_arm(mt_model *m, int last_micro_batch);
void mt_buckets_layer_done(mt_model *m, mt_comm *cm, int layer);
void mt_buckets_top_done(mt_model *m, mt_comm *cm, int after_layers);
// After backward: posts what is not posted (in bucket order), waits for all,
// and resets the step's state.
void mt_buckets_reduce_finish(mt_model *m, mt_comm *cm);

// The distributed optimizer's all-gather of the parameter arena, bucket by
// bucket (MPI_Iallgatherv); forward waits for a bucket before it reads its
// tensors (gather_wait: layer l, or -1 for the non-layer tensors);
// gather_finish waits for all (before a checkpoint, an export, the end).
void mt_buckets_gather_start(mt_model *m, mt_comm *cm);
void mt_buckets_gather_wait(mt_model *m, mt_comm *cm, int layer);
void mt_buckets_gather_finish(mt_model *m, mt_comm *cm);

#endif
