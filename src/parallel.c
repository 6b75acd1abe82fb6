// parallel.c: coordinates and communicators from the ordered axis list.
#include "parallel.h"

#include <stdlib.h>
#include <string.h>

const char *const mt_axis_names[MT_AXIS_N] = {"tp", "cp", "ep", "dp", "pp"};
const char *const mt_group_names[MT_GROUP_N] = {"tp", "dp", "pp", "embd", "mp", "cp", "dpcp", "cpa2a", "cpp2p"};

#define AX(a) (1u << (a))
// The axes each group spans. The embedding group is the PP group cut down to
// its first and last stage (mt_parallel_group_ranks).
static const unsigned GROUP_AXES[MT_GROUP_N] = {
    [MT_GROUP_TP] = AX(MT_AXIS_TP),
    [MT_GROUP_DP] = AX(MT_AXIS_DP),
    [MT_GROUP_PP] = AX(MT_AXIS_PP),
    [MT_GROUP_EMBD] = AX(MT_AXIS_PP),
    [MT_GROUP_MP] = AX(MT_AXIS_TP) | AX(MT_AXIS_PP),
    [MT_GROUP_CP] = AX(MT_AXIS_CP),
    [MT_GROUP_DPCP] = AX(MT_AXIS_DP) | AX(MT_AXIS_CP),
    [MT_GROUP_CPA2A] = AX(MT_AXIS_CP),  // cut down to A adjacent CP ranks (hcp_member)
    [MT_GROUP_CPP2P] = AX(MT_AXIS_CP),  // cut down to the CP ranks A apart
};

// The hierarchical CP groups (Megatron's create_hierarchical_parallel_groups
// with sizes [A, P]): CP rank c is in all-to-all group c / A, at place c % A,
// and in ring c % A, at place c / A. Whether CP rank `other` shares p's.
static int hcp_level(mt_group g) { return g == MT_GROUP_CPA2A || g == MT_GROUP_CPP2P; }
static int hcp_member(const mt_parallel *p, mt_group g, int other) {
    int A = p->hcp_a;
    return g == MT_GROUP_CPA2A ? other / A == p->cp_rank / A : other % A == p->cp_rank % A;
}

mt_parallel mt_parallel_coords(const mt_config *c, int world_rank) {
    mt_parallel p;
    memset(&p, 0, sizeof p);
    p.size[MT_AXIS_TP] = c->tp;
    p.size[MT_AXIS_CP] = c->cp > 0 ? c->cp : 1;
    p.size[MT_AXIS_EP] = 1;
    p.size[MT_AXIS_DP] = c->dp > 0 ? c->dp : 1;
    p.size[MT_AXIS_PP] = c->pp;
    p.world_size = 1;
    for (int a = 0; a < MT_AXIS_N; a++) p.world_size *= p.size[a];
    p.world_rank = world_rank;
    // The order string read left to right: each axis's coordinate is the
    // remainder after the faster axes are divided out.
    int r = world_rank;
    for (int a = 0; a < MT_AXIS_N; a++) {
        p.rank[a] = r % p.size[a];
        r /= p.size[a];
    }
    p.sequence_parallel = c->sequence_parallel;
    p.in_embd = p.pp_rank == 0 || p.pp_rank == p.pp_size - 1;
    p.hcp_a = c->cp > 1 && c->cp_comm == MT_CP_A2A_P2P ? c->hcp_sizes[0] : 0;
    p.world = MPI_COMM_NULL;
    for (int g = 0; g < MT_GROUP_N; g++) p.comm[g] = MPI_COMM_NULL;
    return p;
}

// World rank of coordinates `rank`.
static int rank_of(const mt_parallel *p, const int *rank) {
    int r = 0;
    for (int a = MT_AXIS_N - 1; a >= 0; a--) r = r * p->size[a] + rank[a];
    return r;
}

// Linear index of p's coordinates over the axes in (or out of) `mask`.
static int index_over(const mt_parallel *p, unsigned mask, int inside) {
    int idx = 0;
    for (int a = MT_AXIS_N - 1; a >= 0; a--)
        if (!(mask & AX(a)) == !inside) idx = idx * p->size[a] + p->rank[a];
    return idx;
}

static int group_member(const mt_parallel *p, mt_group g) {
    return g == MT_GROUP_EMBD ? p->in_embd : hcp_level(g) ? p->hcp_a > 0 : 1;
}

int mt_parallel_group_ranks(const mt_parallel *p, mt_group g, int *ranks, int cap) {
    if (!group_member(p, g)) return 0;
    unsigned mask = GROUP_AXES[g];
    int n = 0, total = 1;
    for (int a = 0; a < MT_AXIS_N; a++)
        if (mask & AX(a)) total *= p->size[a];
    // Enumerate the group's coordinates in order (fastest axis first).
    for (int i = 0; i < total; i++) {
        int rank[MT_AXIS_N], q = i;
        for (int a = 0; a < MT_AXIS_N; a++) {
            rank[a] = p->rank[a];
            if (mask & AX(a)) { rank[a] = q % p->size[a]; q /= p->size[a]; }
        }
        if (g == MT_GROUP_EMBD && rank[MT_AXIS_PP] != 0 && rank[MT_AXIS_PP] != p->pp_size - 1) continue;
        if (hcp_level(g) && !hcp_member(p, g, rank[MT_AXIS_CP])) continue;
        if (n < cap) ranks[n] = rank_of(p, rank);
        n++;
    }
    return n;
}

void mt_parallel_init(mt_parallel *p, MPI_Comm world, const mt_config *c) {
    int rank;
    MPI_Comm_rank(world, &rank);
    *p = mt_parallel_coords(c, rank);
    p->world = world;
    // Colour = the coordinates a group's members share; key = the rank within it.
    for (int g = 0; g < MT_GROUP_N; g++) {
        unsigned mask = GROUP_AXES[g];
        int colour = group_member(p, g) ? index_over(p, mask, 0) : MPI_UNDEFINED, key = index_over(p, mask, 1);
        // The two CP levels: the CP group's colour, refined by the level's
        // own group (c / A or c % A); ordered by place in it.
        if (colour != MPI_UNDEFINED && hcp_level(g)) {
            int A = p->hcp_a, P = p->cp_size / A, c = p->cp_rank;
            colour = g == MT_GROUP_CPA2A ? colour * P + c / A : colour * A + c % A;
            key = g == MT_GROUP_CPA2A ? c % A : c / A;
        }
        MPI_Comm_split(world, colour, key, &p->comm[g]);
    }
}

void mt_parallel_free(mt_parallel *p) {
    for (int g = 0; g < MT_GROUP_N; g++)
        if (p->comm[g] != MPI_COMM_NULL) MPI_Comm_free(&p->comm[g]);
}

// Group g's members as "[a,b,...]", or "-" when this rank is not in one.
static void members(const mt_parallel *p, mt_group g, char *out, size_t len) {
    int ranks[256], n = mt_parallel_group_ranks(p, g, ranks, 256);
    if (!n) { snprintf(out, len, "-"); return; }
    size_t o = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < n && i < 256 && o < len; i++) o += (size_t)snprintf(out + o, len - o, i ? ",%d" : "%d", ranks[i]);
    if (o < len) snprintf(out + o, len - o, n > 256 ? ",...]" : "]");
}

void mt_parallel_print_layout(const mt_parallel *p, const mt_config *c, FILE *f) {
    char line[1792], tp[96], cp[96], dp[96], pp[96], mp[160], em[96], vs[160] = "", hc[224] = "";
    members(p, MT_GROUP_TP, tp, sizeof tp);
    members(p, MT_GROUP_CP, cp, sizeof cp);
    members(p, MT_GROUP_DP, dp, sizeof dp);
    members(p, MT_GROUP_PP, pp, sizeof pp);
    members(p, MT_GROUP_MP, mp, sizeof mp);
    members(p, MT_GROUP_EMBD, em, sizeof em);
    // Interleaving: this stage's virtual stages, k pp + pp_rank (Narayanan et al. 2021).
    if (c->layers_per_virtual_stage) {
        int v = c->num_layers / p->pp_size / c->layers_per_virtual_stage;
        size_t o = (size_t)snprintf(vs, sizeof vs, " virtual stages");
        for (int k = 0; k < v && o < sizeof vs; k++) {
            int st = k * p->pp_size + p->pp_rank, l0 = st * c->layers_per_virtual_stage;
            o += (size_t)snprintf(vs + o, sizeof vs - o, " %d (layers %d-%d)", st, l0, l0 + c->layers_per_virtual_stage - 1);
        }
    }
    // a2a+p2p: the CP group's two levels.
    if (p->hcp_a) {
        char a[96], r[96];
        members(p, MT_GROUP_CPA2A, a, sizeof a);
        members(p, MT_GROUP_CPP2P, r, sizeof r);
        snprintf(hc, sizeof hc, " (a2a %s p2p %s)", a, r);
    }
    char host[MPI_MAX_PROCESSOR_NAME];
    int hl;
    MPI_Get_processor_name(host, &hl);
    snprintf(line, sizeof line,
             "rank %d on %s: tp_rank %d cp_rank %d dp_rank %d pp_rank %d | TP %s CP %s%s DP %s PP %s MP %s embedding %s%s\n",
             p->world_rank, host, p->tp_rank, p->cp_rank, p->dp_rank, p->pp_rank, tp, cp, hc, dp, pp, mp, em, vs);
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
