// bench/forward.c — prompt-processing speed of the model forward (build/bench/forward).
//
//   forward [model] [--threads N] [--reps R] [--tokens 128,512] [--peak GFLOPS]
//           [--llamacpp llama-bench.json]
//
// Like llama-bench's ppN: one sequence of N tokens through every layer, logits only for the
// last row (M = 1). Per size: 2 warm-up forwards, then R timed ones; the table shows the median
// (and the best, since a shared VM is noisy).
// FLOPs are bipo_model_forward_flops (2 * matmul params per token per layer + 4 * ctx * QD for
// QK^T and PV at the causal average ctx = (N+1)/2, + the LM head on one row); achieved GFLOP/s
// is divided by the machine's fp32 peak: --peak, else $BIPO_PEAK_GFLOPS, else 79.5 (the
// design's 2-core AVX2 machine; bench/peak measures the one you are on). With --llamacpp
// (or $BIPO_LLAMACPP_JSON), the JSON of `llama-bench -o json` (bench/llamacpp/run.sh), the
// table adds llama.cpp's t/s at the same N and our speed relative to it.
// Also prints the one-time load time (GGUF dequantization to the f32 weight buffer).
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h" // defines: bipo_model_load, bipo_forward, bipo_model_forward_flops
#include "util.h"  // defines: bipo_now, xmalloc, bipo_last_error

#define MAX_SIZES 8

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// llama-bench JSON: an array of runs; returns avg_ts of the pp run with n_prompt == n, or 0.
static double llamacpp_ts(json_t *runs, size_t n, char *desc, size_t desc_len) {
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r) {
        if ((size_t)json_integer_value(json_object_get(r, "n_prompt")) != n ||
            json_integer_value(json_object_get(r, "n_gen")) != 0)
            continue;
        snprintf(desc, desc_len, "%s, %d threads, %s",
                 json_string_value(json_object_get(r, "model_type")) ?: "?",
                 (int)json_integer_value(json_object_get(r, "n_threads")),
                 json_string_value(json_object_get(r, "cpu_info")) ?: "?");
        return json_number_value(json_object_get(r, "avg_ts"));
    }
    return 0;
}

// 1-minute load average (Linux), or -1: other work on the cores makes every number here low.
static double loadavg1(void) {
    double la = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &la) != 1) la = -1;
        fclose(f);
    }
    return la;
}

static void usage(void) {
    fprintf(stderr, "usage: forward [model.gguf|hf_dir] [--threads N] [--reps R] [--tokens 128,512] "
                    "[--peak GFLOPS] [--llamacpp llama-bench.json]\n");
    exit(2);
}

int main(int argc, char **argv) {
    bipo_blas_tune(argv); // same OpenBLAS kernel choice as the program itself
    const char *model = NULL, *lcpp = getenv("BIPO_LLAMACPP_JSON");
    const char *home = getenv("HOME"), *cache = getenv("BIPO_CACHE");
    char defpath[4096];
    if (cache && *cache)
        snprintf(defpath, sizeof defpath, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else
        snprintf(defpath, sizeof defpath, "%s/.cache/bipo-pipeline/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : ".");
    int threads = 2, reps = 5;
    size_t sizes[MAX_SIZES] = {128, 512}, nsizes = 2;
    int peak_given = getenv("BIPO_PEAK_GFLOPS") != NULL;
    double peak = peak_given ? atof(getenv("BIPO_PEAK_GFLOPS")) : 79.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--peak") && i + 1 < argc) peak = atof(argv[++i]), peak_given = 1;
        else if (!strcmp(argv[i], "--llamacpp") && i + 1 < argc) lcpp = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            nsizes = 0;
            for (char *s = argv[++i]; *s && nsizes < MAX_SIZES; s += *s == ',') {
                char *end;
                sizes[nsizes++] = strtoul(s, &end, 10);
                if (end == s) usage();
                s = end;
            }
        } else if (argv[i][0] == '-') usage();
        else model = argv[i];
    }
    if (!model) model = defpath;
    if (reps < 1 || threads < 0 || peak <= 0) usage();
    json_t *runs = NULL;
    if (lcpp) {
        json_error_t e;
        runs = json_load_file(lcpp, 0, &e);
        if (!runs || !json_is_array(runs)) {
            fprintf(stderr, "forward: %s:%d: not a llama-bench JSON array (%s)\n", lcpp, e.line, e.text);
            return 1;
        }
    }

    const bipo_backend *be = bipo_backend_open("cpu", threads);
    bipo_model m;
    double t0 = bipo_now();
    if (bipo_model_load(&m, model, be) != 0) {
        fprintf(stderr, "forward: %s\n(hint: scripts/fetch-model downloads the default model)\n",
                bipo_last_error());
        return 1;
    }
    double load_s = bipo_now() - t0;
    const bipo_config *c = &m.cfg;
    printf("model %s (%s, L=%zu C=%zu NH=%zu NKV=%zu FF=%zu V=%zu), %zu f32 params\n", model,
           m.source_dtype, c->L, c->C, c->NH, c->NKV, c->FF, c->V, m.n_params);
    printf("load + dequantize: %.0f ms; backend %s, %d threads, OpenBLAS kernel %s; peak %.1f GFLOP/s\n",
           load_s * 1e3, be->name, bipo_backend_cpu_threads(), bipo_blas_corename(), peak);
    __builtin_cpu_init();
    if (!peak_given && __builtin_cpu_supports("avx512f"))
        printf("note: this CPU has AVX-512, so its peak is above the default 79.5 GFLOP/s (the design's "
               "AVX2 machine): measure it with bench/peak and pass --peak\n");
    double la = loadavg1();
    if (la > 0.5)
        printf("note: load average %.2f before the run: other processes share the cores, so these "
               "numbers are low and noisy; re-run on an idle machine\n", la);
    printf("prompt processing (one sequence, logits for the last row), median of %d after warm-up\n\n",
           reps);
    printf("| tokens | ms (median) | ms (best) | tokens/s | GFLOP/s | of peak |%s\n",
           runs ? " llama.cpp t/s | ours / llama.cpp |" : "");
    printf("|---:|---:|---:|---:|---:|---:|%s\n", runs ? "---:|---:|" : "");

    bipo_acts acts;
    bipo_acts_init(&acts, 0);
    char desc[256] = "";
    double *ms = xmalloc((size_t)reps * sizeof(double));
    for (size_t si = 0; si < nsizes; si++) {
        size_t N = sizes[si];
        int *tok = xmalloc(N * sizeof(int));
        unsigned long long x = 0x9E3779B97F4A7C15ull ^ N;
        for (size_t i = 0; i < N; i++) { // deterministic non-special token ids
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            tok[i] = 17 + (int)((x * 2685821657736338717ull >> 33) % (c->V - 17));
        }
        size_t off[2] = {0, N}, row = N - 1;
        bipo_batch b = {.S = 1, .off = off, .tokens = tok};
        for (int w = 0; w < 2; w++) bipo_forward(&m, &acts, &b, NULL, &row, 1, -1, BIPO_MATMUL_FP32); // warm-up
        be->sync();
        for (int r = 0; r < reps; r++) {
            double t = bipo_now();
            bipo_forward(&m, &acts, &b, NULL, &row, 1, -1, BIPO_MATMUL_FP32);
            be->sync();
            ms[r] = (bipo_now() - t) * 1e3;
        }
        qsort(ms, (size_t)reps, sizeof(double), cmp_double);
        double med = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
        double flops = bipo_model_forward_flops(c, N, 0.5 * (double)(N + 1), 1);
        double tps = (double)N / (med * 1e-3), gf = flops / (med * 1e-3) / 1e9;
        printf("| %zu | %.1f | %.1f | %.1f | %.1f | %.1f%% |", N, med, ms[0], tps, gf, 100.0 * gf / peak);
        if (runs) {
            double lt = llamacpp_ts(runs, N, desc, sizeof desc);
            if (lt > 0) printf(" %.1f | %.2f |", lt, tps / lt);
            else printf(" - | - |");
        }
        printf("\n");
        free(tok);
    }
    if (runs && *desc) printf("\nllama.cpp (%s): %s\n", lcpp, desc);
    free(ms);
    bipo_acts_free(&acts, be);
    bipo_model_free(&m);
    json_decref(runs);
    return 0;
}
