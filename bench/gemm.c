// bench/gemm.c — the linear layers' GEMMs of one BiPO step on SmolLM2-135M (C 576, FF 1536,
// KV 192, V 49152): OpenBLAS fp32 (single-threaded calls on column slices, the CPU backend's
// fp32 path) against bf16x3 on AMX (kernels/cpu/gemm_amx.c, weights packed once), through the
// backend's own matmul ops, with each one's error against fp64.
//
//   gemm [--rows 400] [--head-rows 173] [--threads 2] [--peak GFLOPS] [--reps 20]
//
// rows: activations per step above the hook layer (bench/bipo_step prints ~350-700 per batch of
// 4 pairs); head-rows: scored (response + EOS) rows that go through the LM head.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h" // defines: bipo_backend_open, bipo_matmul_precision
#include "util.h"             // defines: bipo_now

typedef struct {
    const char *name;
    size_t IC, OC;
    int head; // rows = head rows
    int per;  // calls per layer (q and o, k and v, gate and up share a shape)
} shape;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// max over 64 sampled outputs of |out - exact| / sum_k |a_k b_k| (the error relative to the
// size of the terms, what rounding can be held to), exact in fp64
static double max_rel_err(const float *out, const float *in, const float *w, size_t N, size_t IC,
                          size_t OC, int bwd) {
    size_t cols = bwd ? IC : OC, K = bwd ? OC : IC;
    double worst = 0;
    for (size_t s = 0; s < 64; s++) {
        size_t r = (s * 7919) % N, c = (s * 104729) % cols;
        double ex = 0, mag = 0;
        for (size_t k = 0; k < K; k++) {
            double a = in[r * K + k], b = bwd ? w[k * IC + c] : w[c * IC + k];
            ex += a * b, mag += fabs(a * b);
        }
        double e = fabs(out[r * cols + c] - ex) / (mag > 0 ? mag : 1);
        if (e > worst) worst = e;
    }
    return worst;
}

// variant 0 = fp32 (OpenBLAS), 1 = bf16x3 (AMX)
static double run_once(const bipo_backend *be, int v, int bwd, float *out, const float *in,
                       const float *w, size_t N, size_t IC, size_t OC) {
    bipo_matmul_precision prec = v ? BIPO_MATMUL_BF16X3 : BIPO_MATMUL_FP32;
    double t0 = bipo_now();
    if (bwd) be->matmul_backward(out, in, w, N, IC, OC, 0, prec);
    else be->matmul_forward(out, in, w, N, IC, OC, prec);
    return bipo_now() - t0;
}

// Median time of each variant, the variants interleaved call by call: this machine's speed
// drifts by 2x over seconds (a shared VM), so back-to-back blocks would compare different moods.
static void time_variants(const bipo_backend *be, int nv, int bwd, float *out, const float *in,
                          const float *w, size_t N, size_t IC, size_t OC, int reps, double *med,
                          double *err) {
    double *t = malloc((size_t)reps * nv * sizeof(double));
    for (int v = 0; v < nv; v++) { // first call packs the weight; then check the numbers
        run_once(be, v, bwd, out, in, w, N, IC, OC);
        err[v] = max_rel_err(out, in, w, N, IC, OC, bwd);
    }
    for (int r = 0; r < reps; r++)
        for (int v = 0; v < nv; v++) {
            t[v * reps + r] = run_once(be, v, bwd, out, in, w, N, IC, OC);
        }
    for (int v = 0; v < nv; v++) {
        qsort(t + v * reps, reps, sizeof(double), cmp_d);
        med[v] = t[v * reps + reps / 2];
    }
    free(t);
}

int main(int argc, char **argv) {
    bipo_blas_tune(argv);
    size_t rows = 400, head_rows = 173;
    int threads = 2, reps = 20;
    double peak = getenv("BIPO_PEAK_GFLOPS") ? atof(getenv("BIPO_PEAK_GFLOPS")) : 79.5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) rows = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--head-rows")) head_rows = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--peak")) peak = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else { fprintf(stderr, "gemm: unknown option %s\n", argv[i]); return 2; }
    }
    if (argc % 2 == 0) { fprintf(stderr, "gemm: %s needs a value\n", argv[argc - 1]); return 2; }
    const bipo_backend *be = bipo_backend_open("cpu", threads);
    shape sh[] = {{"q/o proj", 576, 576, 0, 2}, {"k/v proj", 576, 192, 0, 2},
                  {"gate/up", 576, 1536, 0, 2},  {"down", 1536, 576, 0, 1},
                  {"LM head", 576, 49152, 1, 1}};
    size_t ns = sizeof sh / sizeof sh[0], wmax = 0, amax = 0;
    for (size_t s = 0; s < ns; s++) {
        size_t n = sh[s].head ? head_rows : rows, big = sh[s].IC > sh[s].OC ? sh[s].IC : sh[s].OC;
        if (sh[s].IC * sh[s].OC > wmax) wmax = sh[s].IC * sh[s].OC;
        if (n * big > amax) amax = n * big;
    }
    float *w = be->alloc(wmax), *x = be->alloc(amax), *y = be->alloc(amax);
    uint64_t st = 42;
    for (size_t i = 0; i < wmax; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((double)(st >> 40) / (double)(1ull << 24) - 0.5) * 0.1f;
    }
    for (size_t i = 0; i < amax; i++) x[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    be->weights_register(w, wmax); // frozen weights, as a loaded model's
    int amx = be->supports_precision(BIPO_MATMUL_BF16X3);
    printf("gemm: %zu rows (%zu at the LM head), %d threads, bf16x3 %s\n\n", rows, head_rows, threads,
           amx ? "on AMX" : "unavailable (no AMX on this CPU): fp32 only");
    printf("| GEMM | dir | N x IC x OC | fp32 ms | GFLOP/s | of peak (%.1f) | bf16x3 ms | speed-up "
           "| max err fp32 / bf16x3 |\n", peak);
    printf("|---|---|---|---:|---:|---:|---:|---:|---|\n");
    double tot_32 = 0, tot_16 = 0, tot_flop = 0;
    for (size_t s = 0; s < ns; s++)
        for (int bwd = 0; bwd < 2; bwd++) {
            size_t N = sh[s].head ? head_rows : rows, IC = sh[s].IC, OC = sh[s].OC;
            double flop = 2.0 * (double)N * (double)IC * (double)OC, med[2] = {0}, err[2] = {0};
            // weight the totals by how often a layer calls the shape (q and o, k and v, gate and up)
            int per = sh[s].per;
            time_variants(be, amx ? 2 : 1, bwd, y, x, w, N, IC, OC, reps, med, err);
            tot_32 += per * med[0], tot_16 += per * (amx ? med[1] : med[0]), tot_flop += per * flop;
            char t16[48] = "-", sp[16] = "-", e16[16] = "-";
            if (amx) {
                snprintf(t16, sizeof t16, "%.3f", med[1] * 1e3);
                snprintf(sp, sizeof sp, "%.2fx", med[0] / med[1]);
                snprintf(e16, sizeof e16, "%.1e", err[1]);
            }
            printf("| %s | %s | %zu x %zu x %zu | %.3f | %.1f | %.0f%% | %s | %s | %.1e / %s |\n",
                   sh[s].name, bwd ? "bwd" : "fwd", N, IC, OC, med[0] * 1e3, flop / med[0] * 1e-9,
                   100.0 * flop / med[0] * 1e-9 / peak, t16, sp, err[0], e16);
        }
    printf("| one layer + LM head, fwd + bwd | | | %.2f | %.1f | %.0f%% | %.2f | %.2fx | |\n",
           tot_32 * 1e3, tot_flop / tot_32 * 1e-9, 100.0 * tot_flop / tot_32 * 1e-9 / peak,
           tot_16 * 1e3, tot_32 / tot_16);
    printf("(errors: max over 64 sampled outputs of |out - fp64| / sum_k |a_k b_k|; times: medians "
           "of %d calls, the variants interleaved call by call)\n", reps);
    be->weights_release(w, wmax);
    be->free(w), be->free(x), be->free(y);
    return 0;
}
