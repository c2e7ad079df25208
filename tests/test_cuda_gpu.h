// tests/test_cuda_gpu.h — shared by the GPU tests (test_cuda_ops.c, test_cuda_model.c): the
// skip when no device is present, and the comparison by NMSE and max-abs difference.
#ifndef BIPO_TEST_CUDA_GPU_H
#define BIPO_TEST_CUDA_GPU_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels.h" // defines: bipo_backend_cuda
#include "backend_impl.h" // defines: bipo_backend_cuda, bipo_backend_cpu
#include "testlib.h" // defines: EXPECT

#define CUDA_TEST_SKIP 77 // tests/cuda.cmake: SKIP_RETURN_CODE

// The CUDA backend, or exits 77 after a visible SKIP line (BIPO_TEST_GPU_AS_CPU=1: the CPU
// backend instead, which checks the test's own logic without a GPU, not CUDA).
static inline const bipo_backend *cuda_or_skip(const char *name) {
    const bipo_backend *g = bipo_backend_cuda();
    // developer switch: the harness itself (guards, sizes, tolerances) on the CPU backend
    if (!g && getenv("BIPO_TEST_GPU_AS_CPU")) return bipo_backend_open("cpu", 0);
    if (!g) {
        printf("%s: SKIP: no CUDA device\n", name);
        exit(CUDA_TEST_SKIP);
    }
    return g;
}

// One check: NMSE = |got - want|^2 / |want|^2 <= nmse and max |got - want| <= maxabs.
static inline void cmp(const char *what, const float *got, const float *want, size_t n,
                       double nmse, double maxabs) {
    double e = 0, w = 0, mx = 0;
    size_t nan = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)got[i] - want[i];
        if (!isfinite(got[i])) nan++;
        e += d * d, w += (double)want[i] * want[i], mx = fabs(d) > mx ? fabs(d) : mx;
    }
    const double r = w > 0 ? e / w : e;
    EXPECT(nan == 0 && r <= nmse && mx <= maxabs,
           "%s: NMSE %.3g (<= %.1g), max abs %.3g (<= %.1g), %zu non-finite of %zu", what, r,
           nmse, mx, maxabs, nan, n);
    if (getenv("BIPO_TEST_VERBOSE")) printf("   %-40s NMSE %.3g  max abs %.3g\n", what, r, mx);
}

#endif
