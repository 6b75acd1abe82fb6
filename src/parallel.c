// parallel.c: communicators for TP, DP, PP, the embedding group and the
// model-parallel group, split from the world in Megatron's rank order.
#include "parallel.h"

#include <stdlib.h>
#include <string.h>

void mt_parallel_init(mt_parallel *p, MPI_Comm world, const mt_config *c) {
    p->world = world;
    MPI_Comm_rank(world, &p->world_rank);
    MPI_Comm_size(world, &p->world_size);
    p->tp_size = c->tp;
    p->pp_size = c->pp;
    p->dp_size = c->dp;
    p->sequence_parallel = c->sequence_parallel;
    int r = p->world_rank;
    p->tp_rank = r % c->tp;
    p->dp_rank = (r / c->tp) % c->dp;
    p->pp_rank = r / (c->tp * c->dp);
    // Colour = the coordinates a group shares; key = the rank within it.
    MPI_Comm_split(world, p->dp_rank + c->dp * p->pp_rank, p->tp_rank, &p->tp);
    MPI_Comm_split(world, p->tp_rank + c->tp * p->pp_rank, p->dp_rank, &p->dp);
    MPI_Comm_split(world, p->tp_rank + c->tp * p->dp_rank, p->pp_rank, &p->pp);
    MPI_Comm_split(world, p->dp_rank, p->tp_rank + c->tp * p->pp_rank, &p->mp);
    p->in_embd = p->pp_rank == 0 || p->pp_rank == c->pp - 1;
    MPI_Comm_split(world, p->in_embd ? p->tp_rank + c->tp * p->dp_rank : MPI_UNDEFINED,
                   p->pp_rank, &p->embd);
}

void mt_parallel_free(mt_parallel *p) {
    MPI_Comm_free(&p->tp);
    MPI_Comm_free(&p->dp);
    MPI_Comm_free(&p->pp);
    MPI_Comm_free(&p->mp);
    if (p->embd != MPI_COMM_NULL) MPI_Comm_free(&p->embd);
}

// Ranks of `comm`'s members in the world, written as "[a,b,...]".
static void members(MPI_Comm comm, MPI_Comm world, char *out, size_t len) {
    int n;
    MPI_Comm_size(comm, &n);
    MPI_Group g, gw;
    MPI_Comm_group(comm, &g);
    MPI_Comm_group(world, &gw);
    int *in = malloc(sizeof(int) * n), *w = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) in[i] = i;
    MPI_Group_translate_ranks(g, n, in, gw, w);
    size_t o = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < n && o < len; i++) o += (size_t)snprintf(out + o, len - o, i ? ",%d" : "%d", w[i]);
    if (o < len) snprintf(out + o, len - o, "]");
    free(in); free(w);
    MPI_Group_free(&g);
    MPI_Group_free(&gw);
}

void mt_parallel_print_layout(const mt_parallel *p, FILE *f) {
    char line[1024], tp[96], dp[96], pp[96], em[96] = "-";
    members(p->tp, p->world, tp, sizeof tp);
    members(p->dp, p->world, dp, sizeof dp);
    members(p->pp, p->world, pp, sizeof pp);
    if (p->embd != MPI_COMM_NULL) members(p->embd, p->world, em, sizeof em);
    char host[MPI_MAX_PROCESSOR_NAME];
    int hl;
    MPI_Get_processor_name(host, &hl);
    snprintf(line, sizeof line, "rank %d on %s: tp_rank %d dp_rank %d pp_rank %d | TP %s DP %s PP %s embedding %s",
             p->world_rank, host, p->tp_rank, p->dp_rank, p->pp_rank, tp, dp, pp, em);
    size_t n = strlen(line);
    snprintf(line + n, sizeof line - n, "\n");
    mt_parallel_print_gathered(p, line, sizeof line, f);
}

void mt_parallel_print_gathered(const mt_parallel *p, const char *text, size_t size, FILE *f) {
    char *all = p->world_rank == 0 ? malloc((size_t)p->world_size * size) : NULL;
    MPI_Gather(text, (int)size, MPI_CHAR, all, (int)size, MPI_CHAR, 0, p->world);
    if (!all) return;
    for (int i = 0; i < p->world_size; i++) {
        all[(size_t)(i + 1) * size - 1] = 0;
        fputs(all + (size_t)i * size, f);
    }
    free(all);
}
