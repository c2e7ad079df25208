// tests/lib/testlib.h — check macros shared by every test binary.
// A test counts checks, prints the first few mismatches with context, ends with the summary
// line "<name>: N passed, M failed" and returns non-zero when anything failed.
#ifndef BIPO_TESTLIB_H
#define BIPO_TESTLIB_H
#include <math.h>
#include <stdio.h>
#include <stddef.h>

extern int tl_pass, tl_fail;
#define TL_MAX_PRINT 10

#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        if (cond) {                                                                            \
            tl_pass++;                                                                         \
        } else {                                                                               \
            if (tl_fail++ < TL_MAX_PRINT) {                                                    \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                           \
                fprintf(stderr, __VA_ARGS__);                                                  \
                fputc('\n', stderr);                                                           \
            }                                                                                  \
        }                                                                                      \
    } while (0)

// Compare two float arrays: |a-b| <= atol + rtol*|b| per element. Prints the first mismatches
// and the max abs/rel diff; counts as ONE check. Returns 1 if all close.
int tl_allclose(const char *what, const float *a, const float *b, size_t n, double atol,
                double rtol);
// Summary line + exit code for main().
int tl_summary(const char *name);
// Deterministic RNG for tests (xorshift64*): uniform in [-1, 1).
void tl_seed(unsigned long long s);
float tl_randf(void);
void tl_fill(float *x, size_t n, float scale);

#endif
