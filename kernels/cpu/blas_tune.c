// kernels/cpu/blas_tune.c — make OpenBLAS use the GEMM kernel this CPU can run.
//
// Debian's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernel from the CPUID family/model at
// load time. On CPUs newer than the build (seen here: an Intel Xeon reporting family 6 model
// 207 with AVX-512) it falls back to the SSE3 "Prescott" kernel: sgemm runs at ~40% of what
// the Haswell/SkylakeX kernels reach on the same core (bench/forward: 23 vs 50 GFLOP/s). The
// kernel can only be chosen before the library initializes, through OPENBLAS_CORETYPE, so a
// program that finds the fallback re-executes itself once with the variable set to the best
// kernel family the CPU's feature flags support. A user's own OPENBLAS_CORETYPE always wins.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"

char *openblas_get_corename(void);

static const char *best_coretype(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
    return NULL;
}

void bipo_blas_tune(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("BIPO_BLAS_TUNED")) return;
    const char *core = openblas_get_corename();
    if (!core) return;
    int generic = !strcasecmp(core, "prescott") || !strcasecmp(core, "core2") ||
                  !strcasecmp(core, "nehalem") || !strcasecmp(core, "katmai") ||
                  !strcasecmp(core, "northwood") || !strcasecmp(core, "banias");
    const char *want = best_coretype();
    if (!generic || !want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("BIPO_BLAS_TUNED", core, 1); // loop guard, and a record of what was replaced
    execv("/proc/self/exe", argv);
    // exec failed: carry on with the slow kernel, correct results either way
    unsetenv("OPENBLAS_CORETYPE");
}

const char *bipo_blas_corename(void) {
    const char *c = openblas_get_corename();
    return c ? c : "?";
}
