// common/peak.h — this machine's fp32 FMA peak (GFLOP/s), the denominator of every "% of
// peak" the project prints (bench/peak prints the full table).
#ifndef BIPO_PEAK_H
#define BIPO_PEAK_H

// fp32 FMA rate of `threads` threads (OpenMP) with `lanes` = 8 (AVX2) or 16 (AVX-512)
// independent FMA chains, best of 3 runs of `iters` iterations. 0 when the CPU lacks the ISA.
double bipo_fma_gflops(int lanes, int threads, long iters);

// The peak for `threads` threads (<= 0: omp_get_max_threads()), cached per process:
// BIPO_PEAK_GFLOPS when set (*source = "BIPO_PEAK_GFLOPS"), else one core's measured fp32 FMA
// rate (widest ISA, ~10 ms) times threads (*source = "measured"). Never 0.
double bipo_peak_gflops(int threads, const char **source);

#endif
