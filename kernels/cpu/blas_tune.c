// kernels/cpu/blas_tune.c — make OpenBLAS use the GEMM kernel this CPU can run.
//
// Debian's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernel from the CPUID family/model at
// load time. On CPUs newer than the build (seen here: an Intel Xeon reporting family 6 model
// 207 with AVX-512) it falls back to the SSE3 "Prescott" kernel: sgemm runs at ~40% of what
// the Haswell/SkylakeX kernels reach on the same core (bench/forward: 23 vs 50 GFLOP/s). The
// kernel can only be chosen before the library initializes, through OPENBLAS_CORETYPE, so a
// program that finds the fallback re-executes itself once with the variable set to the best
// kernel family the CPU's feature flags support. A user's own OPENBLAS_CORETYPE always wins.
//
// The same re-exec sets OMP_WAIT_POLICY=passive unless the user chose a wait policy
// (OMP_WAIT_POLICY or GOMP_SPINCOUNT): libgomp's default spins ~300k iterations at every
// barrier, and on a shared 2-vCPU machine the spinning threads take the cores from the ones
// doing work. Measured on a BiPO step with the machine loaded: 3.4 s/step spinning vs
// 1.0 s/step passive; on a quiet machine the difference is within noise (a barrier wake-up
// costs tens of microseconds, a step has ~600 of them).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h" // defines: bipo_blas_tune, bipo_blas_corename (implemented here)

char *openblas_get_corename(void);

static const char *best_coretype(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
    return NULL;
}

void bipo_blas_tune(char **argv) {
    if (getenv("BIPO_BLAS_TUNED")) return; // loop guard: this process is the re-exec
    int again = 0;
    const char *core = openblas_get_corename();
    int generic = core && (!strcasecmp(core, "prescott") || !strcasecmp(core, "core2") ||
                           !strcasecmp(core, "nehalem") || !strcasecmp(core, "katmai") ||
                           !strcasecmp(core, "northwood") || !strcasecmp(core, "banias"));
    const char *want = best_coretype();
    if (generic && want && !getenv("OPENBLAS_CORETYPE")) {
        setenv("OPENBLAS_CORETYPE", want, 1);
        again = 1;
    }
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        again = 1;
    }
    if (!again) return;
    setenv("BIPO_BLAS_TUNED", core ? core : "?", 1); // and a record of the kernel replaced
    execv("/proc/self/exe", argv);
    // exec failed: carry on as we are, correct results either way
}

const char *bipo_blas_corename(void) {
    const char *c = openblas_get_corename();
    return c ? c : "?";
}
