// test_bf16.c: the rounding of --bf16 (include/bf16.h) over every one of the
// 2^32 fp32 bit patterns, against a reference built differently: bf16 keeps
// 8 significant bits, so a finite x rounds to a multiple of its quantum q =
// 2^(e-7) (x = m 2^e, 1 <= |m| < 2; q = 2^-133 below the normal range),
// and rint() in the default rounding mode picks the nearest multiple, ties
// to even. In double, x / q and the product back are exact. A result past
// bf16's largest value becomes infinity; NaN stays NaN with its sign.
// Then the named cases, each checked by its bits.
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bf16.h"
#include "harness.h"

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// The reference for one finite or infinite x with quantum q.
static float reference(float x, double q) {
    if (isinf(x)) return x;
    double y = rint((double)x / q) * q;
    const double bf16_max = ldexp(255.0, 120);  // 0x7f7f: (2 - 2^-7) 2^127
    if (fabs(y) > bf16_max) return copysignf(INFINITY, x);
    return (float)y;  // exact: y has at most 8 significant bits
}

TEST(all_2_pow_32_patterns_match_the_reference) {
    ASSERT(fegetround() == FE_TONEAREST, "rint needs round-to-nearest");
    long long bad = 0, nan_bad = 0;
    uint32_t first_bad = 0;
    // The top 16 bits (sign, exponent, 7 kept mantissa bits) fix the quantum;
    // the inner loop runs over the 65536 patterns that share it.
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : bad, nan_bad)
    for (uint32_t hi = 0; hi < 65536; hi++) {
        int e = (int)((hi >> 7) & 0xff);
        double q = e == 0 ? ldexp(1.0, -133) : ldexp(1.0, e - 127 - 7);
        for (uint32_t lo = 0; lo < 65536; lo++) {
            uint32_t u = hi << 16 | lo;
            float x = from_bits(u), got = mt_bf16_round(x);
            if (isnan(x)) {
                // NaN: still NaN, same sign, low half cleared.
                uint32_t g = bits(got);
                if (!isnan(got) || (g >> 31) != (u >> 31) || (g & 0xffff)) nan_bad++;
                continue;
            }
            if (bits(got) != bits(reference(x, q))) {
                if (!bad) first_bad = u;
                bad++;
            }
        }
    }
    ASSERT(bad == 0, "%lld finite or infinite patterns differ (one: 0x%08x)", bad, first_bad);
    ASSERT(nan_bad == 0, "%lld NaN patterns did not stay NaN with their sign", nan_bad);
}

TEST(named_cases) {
    struct { uint32_t in, out; const char *what; } c[] = {
        {0x3f800000, 0x3f800000, "1 is exact"},
        {0x3f808000, 0x3f800000, "1 + 2^-8: a tie, 1 is even"},
        {0x3f818000, 0x3f820000, "1 + 3 2^-8: a tie, rounds up to even"},
        {0x3f808001, 0x3f810000, "just above the tie rounds up"},
        {0x3f807fff, 0x3f800000, "just below the tie rounds down"},
        {0xbf808000, 0xbf800000, "-(1 + 2^-8): ties to even by magnitude"},
        {0x7f7f0000, 0x7f7f0000, "bf16's largest is exact"},
        {0x7f7f7fff, 0x7f7f0000, "below the tie past the largest stays finite"},
        {0x7f7f8000, 0x7f800000, "the tie past the largest (odd) overflows to infinity"},
        {0x7f7fffff, 0x7f800000, "fp32's largest overflows to infinity"},
        {0x7f800000, 0x7f800000, "+inf"},
        {0xff800000, 0xff800000, "-inf"},
        {0x00000001, 0x00000000, "the smallest subnormal rounds to zero"},
        {0x00008000, 0x00000000, "2^-134: a tie, 0 is even"},
        {0x00018000, 0x00020000, "3 2^-134: a tie, up to even"},
        {0x00010000, 0x00010000, "bf16's smallest subnormal is exact"},
        {0x007fffff, 0x00800000, "the largest subnormal rounds into the normals"},
        {0x80000000, 0x80000000, "-0 keeps its sign"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        uint32_t got = bits(mt_bf16_round(from_bits(c[i].in)));
        ASSERT(got == c[i].out, "%s: 0x%08x -> 0x%08x, want 0x%08x", c[i].what, c[i].in, got, c[i].out);
    }
    // NaNs: a signalling NaN whose payload lies only in the low half would
    // truncate to infinity; it must stay NaN.
    uint32_t snan = bits(mt_bf16_round(from_bits(0x7f800001)));
    ASSERT(isnan(from_bits(snan)), "signalling NaN 0x7f800001 became 0x%08x", snan);
    uint32_t nnan = bits(mt_bf16_round(from_bits(0xffc00000)));
    ASSERT(nnan == 0xffc00000, "-qNaN became 0x%08x", nnan);
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
