// isa.h: is this CPU able to run this binary? See src/isa.c.
#ifndef MT_ISA_H
#define MT_ISA_H

#include <errno.h>
#include <stddef.h>

// Writes the CPU features that this binary was compiled to use and that the
// running CPU lacks into out (comma-separated; "" when none), and returns
// their count. Safe to call on any x86-64 CPU (compiled for the baseline).
int mt_isa_missing(char *out, size_t cap);

// Called first, from a constructor of each program: if a feature is missing,
// prints one line (on each host's first rank only) and exits 1, before any
// code that might use it runs. `prog` names the program in the line.
void mt_isa_guard(const char *prog);

// The attribute for the guard's own callers: baseline x86-64 code, so the
// check cannot itself die of the instruction it is looking for.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MT_ISA_BASELINE __attribute__((target("arch=x86-64")))
#else
#define MT_ISA_BASELINE
#endif

// One line in each program's main file: the guard as a constructor, so it
// runs before main (whose own code may already use the missing feature).
// program_invocation_short_name: glibc's basename of argv[0] (_GNU_SOURCE).
#define MT_ISA_GUARD_PROGRAM \
    MT_ISA_BASELINE __attribute__((constructor)) static void mt_isa_guard_ctor(void) { \
        mt_isa_guard(program_invocation_short_name); }

#endif
