// common/peak.c — see peak.h. Independent FMA chains (enough to cover latency x ports).
#include "peak.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>

#include "util.h" // defines: bipo_now

#define CHAINS 12

__attribute__((target("avx2,fma"))) static float run_avx2(long iters) {
    __m256 acc[CHAINS], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float s = 0, out[8];
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(out, acc[i]);
        s += out[0];
    }
    return s;
}

__attribute__((target("avx512f"))) static float run_avx512(long iters) {
    __m512 acc[CHAINS], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
    return s;
}

double bipo_fma_gflops(int lanes, int threads, long iters) {
    __builtin_cpu_init();
    if (lanes == 16 ? !__builtin_cpu_supports("avx512f")
                    : !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bipo_now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += lanes == 16 ? run_avx512(iters) : run_avx2(iters);
        double dt = bipo_now() - t0;
        double gf = 2.0 * lanes * CHAINS * (double)iters * threads / dt / 1e9;
        if (gf > best) best = gf;
    }
    return best;
}

double bipo_peak_gflops(int threads, const char **source) {
    static double core = 0; // one core's rate, measured once
    const char *env = getenv("BIPO_PEAK_GFLOPS");
    double set = env ? atof(env) : 0;
    if (set > 0) {
        if (source) *source = "BIPO_PEAK_GFLOPS";
        return set;
    }
    if (threads <= 0) threads = omp_get_max_threads();
    if (core == 0) {
        core = bipo_fma_gflops(16, 1, 1L << 20);
        if (core == 0) core = bipo_fma_gflops(8, 1, 1L << 20);
        if (core == 0) core = 1; // no AVX2: a number rather than a division by zero
    }
    if (source) *source = "measured";
    return core * threads;
}
