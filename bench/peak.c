// bench/peak.c — measures this machine's fp32 FMA peak (GFLOP/s), the denominator of every
// "fraction of peak" this project prints. Independent FMA chains (enough to cover latency x
// ports) per thread, one thread per core via OpenMP; AVX2 (8 lanes) and, when the CPU has
// it, AVX-512 (16 lanes). The design documents quote 79.5 GFLOP/s for the 2-core AVX2 (Zen)
// machine; other CPUs differ, so benchmarks take the peak from this program (BIPO_PEAK_GFLOPS
// overrides).
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

#define CHAINS 12
#define ITERS 20000000L

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

static double measure(int lanes, int threads) {
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bipo_now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += lanes == 16 ? run_avx512(ITERS / 4) : run_avx2(ITERS / 4);
        double dt = bipo_now() - t0;
        double gf = 2.0 * lanes * CHAINS * (double)(ITERS / 4) * threads / dt / 1e9;
        if (gf > best) best = gf;
    }
    return best;
}

int main(void) {
    __builtin_cpu_init();
    int threads = omp_get_num_procs();
    printf("| ISA | threads | GFLOP/s (fp32 FMA) |\n|---|---|---|\n");
    double a2 = 0, a5 = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        printf("| AVX2+FMA | 1 | %.1f |\n", measure(8, 1));
        printf("| AVX2+FMA | %d | %.1f |\n", threads, a2 = measure(8, threads));
    }
    if (__builtin_cpu_supports("avx512f")) {
        printf("| AVX-512 | 1 | %.1f |\n", measure(16, 1));
        printf("| AVX-512 | %d | %.1f |\n", threads, a5 = measure(16, threads));
    }
    printf("peak_gflops %.1f\n", a5 > a2 ? a5 : a2);
    return 0;
}
