// bench/peak.c — measures this machine's fp32 FMA peak (GFLOP/s), the denominator of every
// "fraction of peak" this project prints. Independent FMA chains (enough to cover latency x
// ports) per thread, one thread per core via OpenMP; AVX2 (8 lanes) and, when the CPU has
// it, AVX-512 (16 lanes). The design documents quote 79.5 GFLOP/s for the 2-core AVX2 (Zen)
// machine; other CPUs differ, so benchmarks take the peak from this program (BIPO_PEAK_GFLOPS
// overrides).
#include <omp.h>
#include <stdio.h>

#include "peak.h" // defines: bipo_fma_gflops

#define ITERS 20000000L

static double measure(int lanes, int threads) { return bipo_fma_gflops(lanes, threads, ITERS / 4); }

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
