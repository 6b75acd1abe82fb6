// test_parallel.c: rank groups against Megatron core's RankGenerator. For
// every layout TP x CP x DP x PP of up to 16 ranks, the groups of
// mt_parallel_group_ranks (parallel.c: coordinates from the order string
// "tp-cp-ep-dp-pp") must equal what RankGenerator builds, re-derived here
// from its algorithm (generate_masked_orthogonal_rank_groups: strides from
// the order string's prefix products, a group per index of the unmasked
// axes, members by the masked axes' indices) — other arithmetic than
// parallel.c's, so a shared mistake is unlikely.
#include "harness.h"
#include "parallel.h"

enum { NAX = 5 };  // tp, cp, ep, dp, pp: Megatron's order

// Megatron: the ranks of every group spanned by the axes in mask, group by
// group; returns the number of groups (each of gsize ranks) in out.
static int rank_generator(const int *size, const int *mask, int *out, int *gsize) {
    int stride[NAX], world = 1;
    for (int a = 0; a < NAX; a++) { stride[a] = world; world *= size[a]; }
    int ms[NAX], mst[NAX], us[NAX], ust[NAX], nm = 0, nu = 0;
    for (int a = 0; a < NAX; a++) {
        if (mask[a]) { ms[nm] = size[a]; mst[nm++] = stride[a]; }
        else { us[nu] = size[a]; ust[nu++] = stride[a]; }
    }
    int g = 1;
    for (int i = 0; i < nm; i++) g *= ms[i];
    *gsize = g;
    int ngroups = world / g;
    for (int gi = 0; gi < ngroups; gi++) {
        int base = 0, q = gi;
        for (int i = 0; i < nu; i++) { base += (q % us[i]) * ust[i]; q /= us[i]; }
        for (int ri = 0; ri < g; ri++) {
            int off = 0, t = ri;
            for (int i = 0; i < nm; i++) { off += (t % ms[i]) * mst[i]; t /= ms[i]; }
            out[gi * g + ri] = base + off;
        }
    }
    return ngroups;
}

TEST(rank_groups_equal_megatron_rank_generator_up_to_16_ranks) {
    // Groups as Megatron names them, and the mt_group that must match.
    static const struct { const char *token; int mask[NAX]; mt_group g; } groups[] = {
        {"tp", {1, 0, 0, 0, 0}, MT_GROUP_TP},       {"cp", {0, 1, 0, 0, 0}, MT_GROUP_CP},
        {"dp", {0, 0, 0, 1, 0}, MT_GROUP_DP},       {"pp", {0, 0, 0, 0, 1}, MT_GROUP_PP},
        {"dp-cp", {0, 1, 0, 1, 0}, MT_GROUP_DPCP},  {"tp-pp", {1, 0, 0, 0, 1}, MT_GROUP_MP},
    };
    int layouts = 0, checked = 0;
    for (int tp = 1; tp <= 16; tp++)
        for (int cp = 1; tp * cp <= 16; cp++)
            for (int dp = 1; tp * cp * dp <= 16; dp++)
                for (int pp = 1; tp * cp * dp * pp <= 16; pp++) {
                    mt_config c;
                    memset(&c, 0, sizeof c);
                    c.tp = tp; c.cp = cp; c.dp = dp; c.pp = pp;
                    int size[NAX] = {tp, cp, 1, dp, pp}, world = tp * cp * dp * pp;
                    layouts++;
                    for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
                        int want[16], gsize;
                        int ng = rank_generator(size, groups[k].mask, want, &gsize);
                        for (int gi = 0; gi < ng; gi++)
                            for (int ri = 0; ri < gsize; ri++) {
                                // The rank's own view of its group must be Megatron's group, in order.
                                mt_parallel p = mt_parallel_coords(&c, want[gi * gsize + ri]);
                                int got[16], n = mt_parallel_group_ranks(&p, groups[k].g, got, 16);
                                ASSERT(n == gsize, "TP %d CP %d DP %d PP %d, %s group of rank %d: %d ranks, Megatron %d",
                                       tp, cp, dp, pp, groups[k].token, want[gi * gsize + ri], n, gsize);
                                for (int i = 0; i < n; i++)
                                    ASSERT(got[i] == want[gi * gsize + i], "TP %d CP %d DP %d PP %d, %s group of rank %d: "
                                           "member %d is %d, Megatron says %d", tp, cp, dp, pp, groups[k].token,
                                           want[gi * gsize + ri], i, got[i], want[gi * gsize + i]);
                                checked++;
                            }
                        ASSERT(ng * gsize == world, "groups do not cover the world");
                    }
                }
    printf("  %d layouts, %d (rank, group) pairs equal to RankGenerator's\n", layouts, checked);
}

// a2a+p2p's two levels against Megatron's create_hierarchical_parallel_groups
// with sizes [A, P], re-derived from its loops (level l: for each k < C /
// (sizes up to l) and j < (sizes before l), the members ranks[j + i * before
// + k * upto], i < size of l), applied to each CP group RankGenerator builds.
TEST(hierarchical_cp_groups_equal_megatron_up_to_16_ranks) {
    int layouts = 0, checked = 0;
    for (int tp = 1; tp <= 8; tp++)
        for (int cp = 2; tp * cp <= 16; cp++)
            for (int dp = 1; tp * cp * dp <= 16; dp++)
                for (int A = 1; A <= cp; A++) {
                    if (cp % A) continue;
                    int sizes[2] = {A, cp / A}, size[NAX] = {tp, cp, 1, dp, 1}, mask[NAX] = {0, 1, 0, 0, 0};
                    mt_config c;
                    memset(&c, 0, sizeof c);
                    c.tp = tp; c.cp = cp; c.dp = dp; c.pp = 1;
                    c.cp_comm = MT_CP_A2A_P2P, c.hcp_sizes[0] = sizes[0], c.hcp_sizes[1] = sizes[1];
                    int cpg[16], gsize, ng = rank_generator(size, mask, cpg, &gsize);
                    layouts++;
                    for (int gi = 0; gi < ng; gi++) {
                        const int *ranks = cpg + gi * gsize;
                        int upto = 1, before = 1;
                        for (int l = 0; l < 2; l++) {
                            upto *= sizes[l];
                            for (int k = 0; k < cp / upto; k++)
                                for (int j = 0; j < before; j++) {
                                    int want[16];
                                    for (int i = 0; i < sizes[l]; i++) want[i] = ranks[j + i * before + k * upto];
                                    for (int i = 0; i < sizes[l]; i++) {
                                        mt_parallel p = mt_parallel_coords(&c, want[i]);
                                        int got[16], n = mt_parallel_group_ranks(&p, l ? MT_GROUP_CPP2P : MT_GROUP_CPA2A, got, 16);
                                        ASSERT(n == sizes[l], "TP %d CP %d (%d x %d) DP %d, level %d of rank %d: %d ranks, Megatron %d",
                                               tp, cp, A, cp / A, dp, l, want[i], n, sizes[l]);
                                        for (int q = 0; q < n; q++)
                                            ASSERT(got[q] == want[q], "TP %d CP %d (%d x %d) DP %d, level %d of rank %d: member %d is %d, Megatron says %d",
                                                   tp, cp, A, cp / A, dp, l, want[i], q, got[q], want[q]);
                                        checked++;
                                    }
                                }
                            before *= sizes[l];
                        }
                    }
                }
    // Without a2a+p2p a rank belongs to neither level.
    mt_config c;
    memset(&c, 0, sizeof c);
    c.tp = 1; c.cp = 4; c.dp = 1; c.pp = 1;
    mt_parallel p = mt_parallel_coords(&c, 1);
    int got[16];
    ASSERT(mt_parallel_group_ranks(&p, MT_GROUP_CPA2A, got, 16) == 0 && mt_parallel_group_ranks(&p, MT_GROUP_CPP2P, got, 16) == 0,
           "a plain CP layout has hierarchical groups");
    printf("  %d layouts, %d (rank, level) pairs equal to create_hierarchical_parallel_groups'\n", layouts, checked);
}

// The embedding group: the first and last stage of a PP group (Megatron's
// default embedding ranks), and nothing for the stages between.
TEST(embedding_group_is_first_and_last_stage) {
    mt_config c;
    memset(&c, 0, sizeof c);
    c.tp = 2; c.cp = 2; c.dp = 1; c.pp = 4;
    for (int r = 0; r < 16; r++) {
        mt_parallel p = mt_parallel_coords(&c, r);
        int got[16], n = mt_parallel_group_ranks(&p, MT_GROUP_EMBD, got, 16);
        int stage = r / 4;
        if (stage == 1 || stage == 2) { ASSERT(n == 0, "rank %d (stage %d) is in an embedding group", r, stage); continue; }
        ASSERT(n == 2 && got[0] == r % 4 && got[1] == 12 + r % 4, "rank %d: embedding group of %d from %d", r, n, got[0]);
    }
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
