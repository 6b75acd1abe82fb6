// harness.h: a tiny in-process test harness (libuv's spirit: each case says
// why it failed, the binary's exit code is the number of failed cases, and
// tests/run.sh runs every binary under a timeout so a hang is a failure).
//
//   TEST(name) { ...; ASSERT(cond, "fmt", ...); ASSERT_CLOSE(a, b, tol); }
//   int main(int argc, char **argv) { return mt_test_main(argc, argv); }
//
// Output per case: "ok <name>" or "not ok <name>: <reason>", then a summary
// line "N passed, N failed". An optional argv[1] runs only cases whose name
// contains it.
#ifndef MT_TEST_HARNESS_H
#define MT_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*mt_test_fn)(int *failed);
typedef struct { const char *name; mt_test_fn fn; } mt_test_case;

#define MT_MAX_TESTS 256
static mt_test_case mt_tests_[MT_MAX_TESTS];
static int mt_ntests_;

#define TEST(name)                                                             \
    static void test_##name(int *mt_failed_);                                  \
    __attribute__((constructor)) static void reg_##name(void) {                \
        if (mt_ntests_ < MT_MAX_TESTS)                                         \
            mt_tests_[mt_ntests_++] = (mt_test_case){#name, test_##name};      \
    }                                                                          \
    static void test_##name(int *mt_failed_)

// Fails the case and returns from it, printing where and why.
#define ASSERT(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stdout, "  %s:%d: assertion failed: %s: ", __FILE__,        \
                    __LINE__, #cond);                                          \
            fprintf(stdout, __VA_ARGS__);                                      \
            fprintf(stdout, "\n");                                             \
            *mt_failed_ = 1;                                                   \
            return;                                                            \
        }                                                                      \
    } while (0)

// |a - b| <= tol, printing both values with 17 digits.
#define ASSERT_CLOSE(a, b, tol)                                                \
    do {                                                                       \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);         \
        ASSERT(fabs(a_ - b_) <= t_ && a_ == a_ && b_ == b_,                    \
               "%s = %.17g, %s = %.17g, |diff| %.3g > %.3g", #a, a_, #b, b_,   \
               fabs(a_ - b_), t_);                                             \
    } while (0)

static inline int mt_test_main(int argc, char **argv) {
    int passed = 0, failed = 0;
    for (int i = 0; i < mt_ntests_; i++) {
        if (argc > 1 && !strstr(mt_tests_[i].name, argv[1])) continue;
        int f = 0;
        mt_tests_[i].fn(&f);
        if (f) { printf("not ok %s\n", mt_tests_[i].name); failed++; }
        else   { printf("ok %s\n", mt_tests_[i].name); passed++; }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}

#endif
