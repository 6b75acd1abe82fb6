// isa.c: the CPU features this binary was compiled for, checked against the
// CPU that runs it.
//
// The Makefile builds with -march=native by default: GCC may then use every
// instruction of the build machine (AVX-512 on a Zen 4/5 or a recent Xeon).
// Such a binary copied to an older CPU, found again in a build tree on a new
// VM, or started by mpirun on a second host of another generation, dies of
// SIGILL inside the first kernel that vectorised with it, with no word of
// why. This check runs from a constructor, before main, and names what is
// missing. It reads the compiler's own feature macros, so it lists exactly
// the features the build enabled; the functions here are compiled for the
// x86-64 baseline so that the check itself runs anywhere.
#include "isa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Appends name to the list in out. A plain chain of calls, no table: a
// table's initialisation is where clang, which keeps the file's -march in a
// target("arch=x86-64") function, put a 512-bit store.
MT_ISA_BASELINE __attribute__((unused)) static void note(char *out, size_t cap, size_t *len, int *n, const char *name) {
    int w = snprintf(out + *len, cap > *len ? cap - *len : 0, "%s%s", *n ? ", " : "", name);
    if (w > 0 && *len + (size_t)w < cap) *len += (size_t)w;
    ++*n;
}

// __builtin_cpu_supports wants a string literal, hence the macro; clang 14
// knows fewer names than GCC 12, and those are GCC-only below.
#define WANT(f) do { if (!__builtin_cpu_supports(f)) note(out, cap, &len, &n, f); } while (0)

MT_ISA_BASELINE int mt_isa_missing(char *out, size_t cap) {
    __builtin_cpu_init();
    int n = 0;
    size_t len = 0;
    if (cap) out[0] = 0;
#ifdef __POPCNT__
    WANT("popcnt");
#endif
#ifdef __SSE4_2__
    WANT("sse4.2");
#endif
#ifdef __AVX__
    WANT("avx");
#endif
#ifdef __AVX2__
    WANT("avx2");
#endif
#ifdef __FMA__
    WANT("fma");
#endif
#ifdef __BMI__
    WANT("bmi");
#endif
#ifdef __BMI2__
    WANT("bmi2");
#endif
#ifdef __AVX512F__
    WANT("avx512f");
#endif
#ifdef __AVX512VL__
    WANT("avx512vl");
#endif
#ifdef __AVX512BW__
    WANT("avx512bw");
#endif
#ifdef __AVX512DQ__
    WANT("avx512dq");
#endif
#ifdef __AVX512CD__
    WANT("avx512cd");
#endif
#ifdef __AVX512VBMI__
    WANT("avx512vbmi");
#endif
#ifdef __AVX512VBMI2__
    WANT("avx512vbmi2");
#endif
#ifdef __AVX512IFMA__
    WANT("avx512ifma");
#endif
#ifdef __AVX512VNNI__
    WANT("avx512vnni");
#endif
#ifdef __AVX512BITALG__
    WANT("avx512bitalg");
#endif
#ifdef __AVX512VPOPCNTDQ__
    WANT("avx512vpopcntdq");
#endif
#ifdef __AVX512BF16__
    WANT("avx512bf16");
#endif
#ifdef __GFNI__
    WANT("gfni");
#endif
#ifdef __VPCLMULQDQ__
    WANT("vpclmulqdq");
#endif
#ifdef __AES__
    WANT("aes");
#endif
#ifdef __PCLMUL__
    WANT("pclmul");
#endif
#ifdef __SSE4A__
    WANT("sse4a");
#endif
#ifndef __clang__
#ifdef __SHA__
    WANT("sha");
#endif
#ifdef __VAES__
    WANT("vaes");
#endif
#ifdef __F16C__
    WANT("f16c");
#endif
#ifdef __MOVBE__
    WANT("movbe");
#endif
#ifdef __LZCNT__
    WANT("lzcnt");
#endif
#ifdef __AVX512FP16__
    WANT("avx512fp16");
#endif
#ifdef __AVXVNNI__
    WANT("avxvnni");
#endif
#ifdef __AMX_TILE__
    WANT("amx-tile");
#endif
#endif
    (void)len;  // unused when the build enables no feature (the fuzz build)
    return n;
}
#else
// Other architectures: GCC's -march=native has no portable runtime check
// there, and nothing is reported.
int mt_isa_missing(char *out, size_t cap) {
    if (cap) out[0] = 0;
    return 0;
}
#endif

MT_ISA_BASELINE void mt_isa_guard(const char *prog) {
    char missing[512];
    if (mt_isa_missing(missing, sizeof missing) == 0) return;
    // Every rank of a host finds the same; one line per host is enough.
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!local) local = getenv("PMIX_LOCAL_RANK");
    if (!local || !strcmp(local, "0")) {
        // No initialised arrays here: clang would zero them with the
        // build's widest stores (see note()).
        char host[256];
        const char *name = gethostname(host, sizeof host) == 0 && memchr(host, 0, sizeof host) ? host : "this host";
        fprintf(stderr, "%s: built for CPU features that %s's CPU lacks (%s): rebuild it here (make),"
                " or once for every host (make MARCH=x86-64-v3)\n", prog, name, missing);
    }
    exit(1);
}
