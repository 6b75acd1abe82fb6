// parallel.h: the parallel state, from one ordered list of axes.
//
// Megatron's rank order is the string "tp-cp-ep-dp-pp", TP varying fastest
// (Megatron core's RankGenerator; picotron's grid):
//   rank = tp_rank + tp * (cp_rank + cp * (ep_rank + ep * (dp_rank + dp * pp_rank)))
// Every group is a set of axes: its members share the coordinates of the
// other axes, and are ordered by their own coordinates in the order string.
// Adding an axis is one enum value, one name and one size in the config;
// adding a group is one row of the group table (parallel.c).
//
// Passed explicitly (const mt_parallel *) to everything that communicates.
#ifndef MT_PARALLEL_H
#define MT_PARALLEL_H

#include <mpi.h>

#include "config.h"

typedef enum { MT_AXIS_TP, MT_AXIS_CP, MT_AXIS_EP, MT_AXIS_DP, MT_AXIS_PP, MT_AXIS_N } mt_axis;
extern const char *const mt_axis_names[MT_AXIS_N];  // "tp", "cp", ...

// The communicators. Each but the embedding group spans a set of axes.
typedef enum {
    MT_GROUP_TP,    // tensor (and sequence) parallelism
    MT_GROUP_DP,    // data parallelism: gradient averaging
    MT_GROUP_PP,    // pipeline stages
    MT_GROUP_EMBD,  // first and last stage of a PP group (the tied embedding); not an axis set
    MT_GROUP_MP,    // tp-pp: one model replica (gradient norm)
    MT_GROUP_CP,    // context parallelism (size 1 until it is built)
    MT_GROUP_DPCP,  // dp-cp: every copy of a parameter shard (Megatron's dp-cp group)
    // --cp-comm-type a2a+p2p: a CP group cut in two levels, as Megatron's
    // hierarchical context-parallel groups: A adjacent CP ranks (the
    // all-to-all), and the CP ranks A apart (the ring). Not axis sets.
    MT_GROUP_CPA2A,
    MT_GROUP_CPP2P,
    MT_GROUP_N
} mt_group;
extern const char *const mt_group_names[MT_GROUP_N];

typedef struct {
    int world_rank, world_size;
    // Coordinates and sizes per axis, also by name (p->tp_rank is p->rank[MT_AXIS_TP]).
    union { int rank[MT_AXIS_N]; struct { int tp_rank, cp_rank, ep_rank, dp_rank, pp_rank; }; };
    union { int size[MT_AXIS_N]; struct { int tp_size, cp_size, ep_size, dp_size, pp_size; }; };
    int sequence_parallel;
    int in_embd;                 // this rank is on the first or last stage
    int hcp_a;                   // a2a+p2p: the all-to-all level's size A (0: no hierarchical groups)
    MPI_Comm world;              // MPI_COMM_NULL in a coordinates-only state
    MPI_Comm comm[MT_GROUP_N];   // MPI_COMM_NULL where this rank is not a member
} mt_parallel;

// The coordinates of `world_rank` in the layout `c` describes (after
// mt_config_finish), with no communicator: what the planner, the unsharded
// file views and the tests use. The trainer's state comes from the same call.
mt_parallel mt_parallel_coords(const mt_config *c, int world_rank);

// World ranks of group g that rank p belongs to, in group order; returns the
// count (0 when p is not a member). Pure arithmetic on the order string.
int mt_parallel_group_ranks(const mt_parallel *p, mt_group g, int *ranks, int cap);

// The group that holds every copy of a parameter and sums its gradient:
// DP, or dp-cp with context parallelism (each CP rank's gradient is a
// partial sum over its share of the sequence).
static inline mt_group mt_grad_group(const mt_parallel *p) { return p->cp_size > 1 ? MT_GROUP_DPCP : MT_GROUP_DP; }

// Builds the communicators; collective over `world`.
void mt_parallel_init(mt_parallel *p, MPI_Comm world, const mt_config *c);
void mt_parallel_free(mt_parallel *p);

// Prints every rank's coordinates and groups, the model-parallel (tp-pp)
// group and, with interleaving, its virtual pipeline stages (rank 0, gathered).
void mt_parallel_print_layout(const mt_parallel *p, const mt_config *c, FILE *f);

// Collective: rank 0 prints every rank's text (a NUL-terminated string in a
// buffer of `size` bytes, the same size on every rank) in rank order, so
// per-rank reports never interleave.
void mt_parallel_print_gathered(const mt_parallel *p, const char *text, size_t size, FILE *f);

#endif
