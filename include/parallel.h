// parallel.h: the parallel state. World -> TP, DP, PP, embedding and
// model-parallel communicators in Megatron's rank order (DESIGN §3):
//   rank = tp_rank + tp * (dp_rank + dp * pp_rank).
// Passed explicitly (const mt_parallel *) to everything that communicates.
#ifndef MT_PARALLEL_H
#define MT_PARALLEL_H

#include <mpi.h>

#include "config.h"

typedef struct {
    int world_rank, world_size;
    int tp_rank, tp_size;
    int dp_rank, dp_size;
    int pp_rank, pp_size;
    int sequence_parallel;
    MPI_Comm world, tp, dp, pp;
    MPI_Comm embd;     // first and last stage of this PP group (tied embedding)
    MPI_Comm mp;       // TP x PP: every rank of one model replica (grad norm)
    int in_embd;       // this rank is on the first or last stage
} mt_parallel;

// Builds the groups; collective over `world`.
void mt_parallel_init(mt_parallel *p, MPI_Comm world, const mt_config *c);
void mt_parallel_free(mt_parallel *p);

// Prints every rank's coordinates and groups (rank 0, gathered).
void mt_parallel_print_layout(const mt_parallel *p, FILE *f);

// Collective: rank 0 prints every rank's text (a NUL-terminated string in a
// buffer of `size` bytes, the same size on every rank) in rank order, so
// per-rank reports never interleave.
void mt_parallel_print_gathered(const mt_parallel *p, const char *text, size_t size, FILE *f);

#endif
