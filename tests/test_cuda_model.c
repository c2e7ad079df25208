// tests/test_cuda_model.c — a tiny random model's full forward and activation-only backward on
// the CUDA backend against the CPU backend (GPU; SKIP with exit 77 without one). Two models
// (Llama with GQA and tied embeddings; Mistral with a sliding window), the BiPO shape of work:
// a forward from the embeddings to hidden_states[start], then bipo_forward_from(start) with a
// steering vector, log-probs at scored rows, and bipo_backward_logprob back to start.
// Weights resident in f32 (BIPO_CUDA_WEIGHTS=f32): CPU and GPU then differ by float rounding
// in another order only, NMSE <= 1e-9; with bf16 weights (the default) NMSE <= 1e-3 for the
// logits and 1e-2 for the gradient (bf16's 3.9e-3 unit roundoff over a few layers).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"         // defines: bipo_model_load, bipo_forward, bipo_backward_logprob
#include "tensors.h"       // defines: BIPO_DT_F32
#include "test_cuda_gpu.h" // defines: cuda_or_skip, cmp
#include "testlib.h"       // defines: EXPECT, tl_summary
#include "testmodel.h"     // defines: tm_spec, tm_write_hf
#include "util.h"          // defines: bipo_last_error

typedef struct {
    float *logits, *lp, *dh; // host [M, V], [M], [N, C]
} result;

static result run_on(const bipo_backend *be, const char *dir, const tm_spec *s, size_t start) {
    result r = {0};
    bipo_model m;
    if (bipo_model_load(&m, dir, be) != 0) {
        EXPECT(0, "load %s on %s: %s", dir, be->name, bipo_last_error());
        return r;
    }
    const size_t C = s->C, V = s->V, N = 41, M = 16;
    size_t off[4] = {0, 12, 29, 41}, rows[16];
    int tok[41], tg[16];
    for (size_t i = 0; i < N; i++) tok[i] = (int)((i * 131 + 7) % V);
    for (size_t i = 0; i < M; i++) rows[i] = i < 7 ? 5 + i : 20 + i, tg[i] = (int)((i * 37 + 3) % V);
    float dlp[16], *vh = malloc(C * sizeof(float));
    for (size_t i = 0; i < M; i++) dlp[i] = (i % 2 ? 1.f : -0.5f);
    for (size_t i = 0; i < C; i++) vh[i] = 0.3f * (float)((i * 7919) % 13) / 13.0f - 0.15f;
    bipo_batch b = {3, off, tok};
    bipo_acts a0, a;
    bipo_acts_init(&a0, 0);
    bipo_forward(&m, &a0, &b, NULL, NULL, 0, (int)start - 1, BIPO_MATMUL_FP32);
    float *h = be->alloc(N * C), *vb = be->alloc(C), *lp = be->alloc(M), *lse = be->alloc(M);
    float *dl = be->alloc(M * V);
    be->copy(h, a0.resid[start], N * C);
    be->upload(vb, vh, C);
    bipo_acts_init(&a, 1);
    bipo_hook hook = {(int)start - 1, vb, 1.5f, NULL};
    bipo_forward_from(&m, &a, &b, h, start, &hook, rows, M, BIPO_MATMUL_FP32);
    be->logprob_forward(lp, lse, a.logits, tg, M, V);
    bipo_grads g = {0};
    bipo_backward_logprob(&m, &a, &g, &b, start, dlp, lse, tg, dl, rows, M, BIPO_MATMUL_FP32);
    r.logits = malloc(M * V * sizeof(float)), r.lp = malloc(M * sizeof(float));
    r.dh = malloc(N * C * sizeof(float));
    be->download(r.logits, a.logits, M * V);
    be->download(r.lp, lp, M);
    be->download(r.dh, g.dresid, N * C);
    bipo_grads_free(&g, be);
    bipo_acts_free(&a, be), bipo_acts_free(&a0, be);
    be->free(h), be->free(vb), be->free(lp), be->free(lse), be->free(dl);
    free(vh);
    bipo_model_free(&m);
    return r;
}

static void compare(const char *label, const tm_spec *s, const char *dir, size_t start,
                    const bipo_backend *gpu) {
    mkdir(dir, 0755);
    EXPECT(tm_write_hf(s, dir, BIPO_DT_F32, 1) == 0, "write %s", dir);
    result c = run_on(bipo_backend_open("cpu", 0), dir, s, start);
    const char *mode[2] = {"f32", "bf16"};
    const double tl[2] = {1e-9, 1e-3}, tg[2] = {1e-9, 1e-2}, ml[2] = {1e-3, 0.5}, mg[2] = {1e-3, 0.5};
    char what[120];
    for (int t = 0; t < 2; t++) {
        setenv("BIPO_CUDA_WEIGHTS", mode[t], 1);
        result g = run_on(gpu, dir, s, start);
        if (!g.logits || !c.logits) continue;
        snprintf(what, sizeof what, "%s %s logits", label, mode[t]);
        cmp(what, g.logits, c.logits, 16 * s->V, tl[t], ml[t]);
        snprintf(what, sizeof what, "%s %s log-probs", label, mode[t]);
        cmp(what, g.lp, c.lp, 16, tl[t], ml[t]);
        snprintf(what, sizeof what, "%s %s d hidden_states[%zu]", label, mode[t], start);
        cmp(what, g.dh, c.dh, 41 * s->C, tg[t], mg[t]);
        free(g.logits), free(g.lp), free(g.dh);
    }
    unsetenv("BIPO_CUDA_WEIGHTS");
    free(c.logits), free(c.lp), free(c.dh);
}

int main(void) {
    const bipo_backend *gpu = cuda_or_skip("test_cuda_model");
    char tmp[] = "/tmp/bipo-test-cuda-model-XXXXXX", dir[300];
    if (!mkdtemp(tmp)) return 1;
    tm_spec llama = {.L = 3, .C = 48, .NH = 6, .NKV = 2, .HD = 8, .FF = 72, .V = 97,
                     .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 21, .max_pos = 64};
    snprintf(dir, sizeof dir, "%s/llama", tmp);
    compare("llama-gqa-tied", &llama, dir, 1, gpu);
    tm_spec mistral = {.mistral = 1, .L = 4, .C = 40, .NH = 4, .NKV = 4, .HD = 10, .FF = 64,
                       .V = 83, .rope_theta = 1e6f, .eps = 1e-5f, .window = 5, .seed = 22,
                       .max_pos = 64};
    snprintf(dir, sizeof dir, "%s/mistral", tmp);
    compare("mistral-window", &mistral, dir, 2, gpu);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp);
    return tl_summary("test_cuda_model");
}
