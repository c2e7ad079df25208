// tests/test_model.c — the model forward against an independent double-precision reference,
// on tiny random Llama and Mistral (GQA, sliding window) models the test writes itself in HF
// safetensors (F32/F16/BF16, sharded) and GGUF (F32, Q8_0, Q4_0) form.
//
// Checks:
//  * logits of the F32 HF model == naive double reference (rel 1e-4: f32 accumulation over
//    a few layers of width <= 64 stays around 1e-6..1e-5; 1e-4 leaves margin, and any wrong
//    op — RoPE layout, GQA mapping, norm — is off by O(1)).
//  * HF F32 and GGUF F32 give bit-identical logits (same f32 weights after undoing the q/k
//    permutation, same code path).
//  * F16/BF16/Q8_0/Q4_0 within their quantization error of F32 (bounds below).
//  * steering hook == reference with m*v added after layer l; hidden state at layer l
//    (stop = l) == reference hidden_states[l+1].
//  * a packed batch of 3 sequences == each sequence alone; the KV-cached decode gives the
//    same last-token logits as the full forward at every step.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "tensors.h"
#include "testlib.h"
#include "testmodel.h"
#include "util.h"

// ---- naive double reference forward (one sequence) ----------------------------------------
static double *ref_weight(const tm_spec *s, const char *name) {
    size_t n = 0;
    float *f = tm_weights(s, name, &n);
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

static void rmsnorm_d(double *o, const double *x, const double *w, size_t C, double eps) {
    double ss = 0;
    for (size_t i = 0; i < C; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / C + eps);
    for (size_t i = 0; i < C; i++) o[i] = x[i] * r * w[i];
}
static void linear_d(double *o, const double *x, const double *W, size_t IC, size_t OC) {
    for (size_t r = 0; r < OC; r++) {
        double acc = 0;
        for (size_t i = 0; i < IC; i++) acc += W[r * IC + i] * x[i];
        o[r] = acc;
    }
}
static void rope_d(double *x, int pos, size_t H, size_t HD, double theta) {
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < HD / 2; i++) {
            double f = pow(theta, -2.0 * (double)i / (double)HD), a = pos * f;
            double x0 = x[h * HD + i], x1 = x[h * HD + i + HD / 2];
            x[h * HD + i] = x0 * cos(a) - x1 * sin(a);
            x[h * HD + i + HD / 2] = x1 * cos(a) + x0 * sin(a);
        }
}

// logits [T, V] for tokens[T]; hidden (optional) [T, C] = hidden_states[cap_layer+1].
static void ref_forward(const tm_spec *s, const int *tok, size_t T, int hook_layer,
                        const float *vec, double mult, double *logits, int cap_layer,
                        double *hidden) {
    size_t C = s->C, QD = s->NH * s->HD, KVD = s->NKV * s->HD, FF = s->FF;
    double *emb = ref_weight(s, "model.embed_tokens.weight");
    double *x = calloc(T * C, sizeof(double)), *q = calloc(T * QD, sizeof(double));
    double *k = calloc(T * KVD, sizeof(double)), *v = calloc(T * KVD, sizeof(double));
    double *tmp = calloc(FF + QD + C, sizeof(double));
    double *ao = calloc(QD, sizeof(double)), *g = calloc(FF, sizeof(double)), *u = calloc(FF, sizeof(double));
    double *hn = calloc(C, sizeof(double));
    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < C; i++) x[t * C + i] = emb[(size_t)tok[t] * C + i];
    char name[128];
    for (size_t l = 0; l < s->L; l++) {
#define W(suffix) (snprintf(name, sizeof name, "model.layers.%zu.%s", l, suffix), ref_weight(s, name))
        double *an = W("input_layernorm.weight"), *wq = W("self_attn.q_proj.weight");
        double *wk = W("self_attn.k_proj.weight"), *wv = W("self_attn.v_proj.weight");
        double *wo = W("self_attn.o_proj.weight"), *fn = W("post_attention_layernorm.weight");
        double *wg = W("mlp.gate_proj.weight"), *wu = W("mlp.up_proj.weight");
        double *wd = W("mlp.down_proj.weight");
#undef W
        for (size_t t = 0; t < T; t++) {
            rmsnorm_d(hn, x + t * C, an, C, s->eps);
            linear_d(q + t * QD, hn, wq, C, QD);
            linear_d(k + t * KVD, hn, wk, C, KVD);
            linear_d(v + t * KVD, hn, wv, C, KVD);
            rope_d(q + t * QD, (int)t, s->NH, s->HD, s->rope_theta);
            rope_d(k + t * KVD, (int)t, s->NKV, s->HD, s->rope_theta);
        }
        for (size_t t = 0; t < T; t++) {
            for (size_t hh = 0; hh < s->NH; hh++) {
                size_t kh = hh / (s->NH / s->NKV);
                double sc[256], mx = -1e300, sum = 0;
                for (size_t j = 0; j <= t; j++) {
                    int vis = !(s->window && t - j >= s->window);
                    double d = 0;
                    for (size_t e = 0; e < s->HD; e++) d += q[t * QD + hh * s->HD + e] * k[j * KVD + kh * s->HD + e];
                    sc[j] = vis ? d / sqrt((double)s->HD) : -INFINITY;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (size_t j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (size_t e = 0; e < s->HD; e++) {
                    double acc = 0;
                    for (size_t j = 0; j <= t; j++) acc += sc[j] / sum * v[j * KVD + kh * s->HD + e];
                    ao[hh * s->HD + e] = acc;
                }
            }
            linear_d(tmp, ao, wo, QD, C);
            for (size_t i = 0; i < C; i++) tmp[FF + QD + i] = x[t * C + i] + tmp[i]; // resid_mid
            double *rm = tmp + FF + QD;
            rmsnorm_d(hn, rm, fn, C, s->eps);
            linear_d(g, hn, wg, C, FF);
            linear_d(u, hn, wu, C, FF);
            for (size_t i = 0; i < FF; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            linear_d(hn, g, wd, FF, C);
            // rows can be updated in place: this layer's k/v were computed for all rows
            // before the loop, and the MLP is per row
            for (size_t i = 0; i < C; i++) x[t * C + i] = rm[i] + hn[i];
            if ((int)l == hook_layer)
                for (size_t i = 0; i < C; i++) x[t * C + i] += mult * vec[i];
        }
        if ((int)l == cap_layer && hidden) memcpy(hidden, x, T * C * sizeof(double));
        free(an), free(wq), free(wk), free(wv), free(wo), free(fn), free(wg), free(wu), free(wd);
    }
    double *nf = ref_weight(s, "model.norm.weight");
    double *head = s->tied ? emb : ref_weight(s, "lm_head.weight");
    for (size_t t = 0; t < T; t++) {
        rmsnorm_d(hn, x + t * C, nf, C, s->eps);
        linear_d(logits + t * s->V, hn, head, C, s->V);
    }
    if (!s->tied) free(head);
    free(nf), free(emb), free(x), free(q), free(k), free(v), free(tmp), free(ao);
    free(g), free(u), free(hn);
}

// ---- helpers ---------------------------------------------------------------------------------
static char g_tmp[256];

static float *model_logits(bipo_model *m, const int *tok, size_t T, const bipo_hook *hook) {
    size_t off[2] = {0, T}, *rows = malloc(T * sizeof(size_t));
    for (size_t i = 0; i < T; i++) rows[i] = i;
    bipo_batch b = {1, off, tok};
    bipo_acts a;
    bipo_acts_init(&a, 0);
    bipo_forward(m, &a, &b, hook, rows, T, -1, BIPO_MATMUL_FP32);
    float *out = malloc(T * m->cfg.V * sizeof(float));
    m->be->download(out, a.logits, T * m->cfg.V);
    bipo_acts_free(&a, m->be);
    free(rows);
    return out;
}

static int load_ok(bipo_model *m, const char *path) {
    if (bipo_model_load(m, path, bipo_backend_open("cpu", 0)) != 0) {
        EXPECT(0, "load %s: %s", path, bipo_last_error());
        return 0;
    }
    return 1;
}

static void to_float(float *f, const double *d, size_t n) {
    for (size_t i = 0; i < n; i++) f[i] = (float)d[i];
}

// max |a-b| relative to the max |b| (logit scale)
static double rel_maxdiff(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb + 1e-30);
}

static void run_spec(const char *label, const tm_spec *s) {
    printf("-- %s: L=%zu C=%zu NH=%zu NKV=%zu HD=%zu FF=%zu V=%zu window=%zu tied=%d\n", label,
           s->L, s->C, s->NH, s->NKV, s->HD, s->FF, s->V, s->window, s->tied);
    const size_t T = 19;
    int tok[19];
    for (size_t i = 0; i < T; i++) tok[i] = (int)((i * 7919 + 13) % s->V);
    size_t V = s->V, C = s->C;
    double *ref = malloc(T * V * sizeof(double));
    float *reff = malloc(T * V * sizeof(float));
    ref_forward(s, tok, T, -1, NULL, 0, ref, -1, NULL);
    to_float(reff, ref, T * V);

    char hf[512], hf16[512], hfbf[512], hfsh[512], gg[512], gq8[512], gq4[512];
    snprintf(hf, sizeof hf, "%s/%s-hf32", g_tmp, label);
    snprintf(hf16, sizeof hf16, "%s/%s-hf16", g_tmp, label);
    snprintf(hfbf, sizeof hfbf, "%s/%s-hfbf16", g_tmp, label);
    snprintf(hfsh, sizeof hfsh, "%s/%s-hfshard", g_tmp, label);
    snprintf(gg, sizeof gg, "%s/%s-f32.gguf", g_tmp, label);
    snprintf(gq8, sizeof gq8, "%s/%s-q8_0.gguf", g_tmp, label);
    snprintf(gq4, sizeof gq4, "%s/%s-q4_0.gguf", g_tmp, label);
    const char *dirs[] = {hf, hf16, hfbf, hfsh};
    for (size_t i = 0; i < 4; i++) mkdir(dirs[i], 0755);
    EXPECT(tm_write_hf(s, hf, BIPO_DT_F32, 1) == 0, "write %s: %s", hf, bipo_last_error());
    EXPECT(tm_write_hf(s, hf16, BIPO_DT_F16, 1) == 0, "write %s", hf16);
    EXPECT(tm_write_hf(s, hfbf, BIPO_DT_BF16, 1) == 0, "write %s", hfbf);
    EXPECT(tm_write_hf(s, hfsh, BIPO_DT_F32, 3) == 0, "write %s", hfsh);
    EXPECT(tm_write_gguf(s, gg, BIPO_DT_F32, 3) == 0, "write %s: %s", gg, bipo_last_error());
    EXPECT(tm_write_gguf(s, gq8, BIPO_DT_Q8_0, 2) == 0, "write %s", gq8);
    EXPECT(tm_write_gguf(s, gq4, BIPO_DT_Q4_0, 3) == 0, "write %s", gq4);

    bipo_model m32, mg;
    if (!load_ok(&m32, hf)) return;
    EXPECT(m32.cfg.L == s->L && m32.cfg.NKV == s->NKV && m32.cfg.sliding_window == s->window &&
               m32.cfg.tied == s->tied, "%s: config read back wrong", hf);
    float *l32 = model_logits(&m32, tok, T, NULL);
    double d = rel_maxdiff(l32, reff, T * V);
    printf("   HF F32 vs double reference: max rel diff %.2e\n", d);
    EXPECT(d < 1e-4, "%s: HF F32 logits differ from the reference by %.3g", label, d);

    // GGUF F32: bit-identical to HF F32
    if (load_ok(&mg, gg)) {
        float *lg = model_logits(&mg, tok, T, NULL);
        EXPECT(memcmp(lg, l32, T * V * sizeof(float)) == 0, "%s: GGUF F32 logits != HF F32 logits "
               "(max rel %.3g)", label, rel_maxdiff(lg, l32, T * V));
        EXPECT(!strcmp(mg.fingerprint, m32.fingerprint), "%s: GGUF F32 and HF F32 of the same "
               "weights have different fingerprints", label);
        free(lg);
        bipo_model_free(&mg);
    }
    // sharded F32: identical too
    if (load_ok(&mg, hfsh)) {
        float *lg = model_logits(&mg, tok, T, NULL);
        EXPECT(memcmp(lg, l32, T * V * sizeof(float)) == 0, "%s: sharded logits differ", label);
        EXPECT(!strcmp(mg.fingerprint, m32.fingerprint), "%s: same weights+config, different "
               "fingerprint", label);
        free(lg);
        bipo_model_free(&mg);
    }
    // reduced precision: bounded by the weight rounding error. Relative weight error: F16 2^-11,
    // BF16 2^-8, Q8_0 ~ 1/254 of the block max, Q4_0 ~ 1/16 of the block max; through a few
    // layers the logit error stays within a small multiple of that.
    const struct {
        const char *path;
        double bound;
    } lowp[] = {{hf16, 2e-3}, {hfbf, 3e-2}, {gq8, 3e-2}, {gq4, 0.3}};
    for (size_t i = 0; i < 4; i++) {
        if (!load_ok(&mg, lowp[i].path)) continue;
        float *lg = model_logits(&mg, tok, T, NULL);
        double dd = rel_maxdiff(lg, l32, T * V);
        printf("   %s vs F32: max rel diff %.2e (bound %.0e)\n", strrchr(lowp[i].path, '/') + 1, dd,
               lowp[i].bound);
        EXPECT(dd < lowp[i].bound && dd > 0, "%s: %.3g outside (0, %.3g)", lowp[i].path, dd,
               lowp[i].bound);
        free(lg);
        bipo_model_free(&mg);
    }

    // steering hook at layer 1 with m = -2.5, and the hidden state captured at that layer
    float *vec = malloc(C * sizeof(float));
    for (size_t i = 0; i < C; i++) vec[i] = 0.5f * tl_randf();
    double *refh = malloc(T * V * sizeof(double)), *hid = malloc(T * C * sizeof(double));
    ref_forward(s, tok, T, 1, vec, -2.5, refh, 1, hid);
    float *refhf = malloc(T * V * sizeof(float)), *hidf = malloc(T * C * sizeof(float));
    to_float(refhf, refh, T * V);
    to_float(hidf, hid, T * C);
    float *vb = m32.be->alloc(C);
    m32.be->upload(vb, vec, C);
    bipo_hook hook = {1, vb, -2.5f, NULL};
    float *lh = model_logits(&m32, tok, T, &hook);
    d = rel_maxdiff(lh, refhf, T * V);
    EXPECT(d < 1e-4, "%s: steered logits differ from the reference by %.3g", label, d);
    EXPECT(rel_maxdiff(lh, l32, T * V) > 1e-3, "%s: the hook changed nothing", label);
    {
        size_t off[2] = {0, T};
        bipo_batch b = {1, off, tok};
        bipo_acts a;
        bipo_acts_init(&a, 1);
        bipo_forward(&m32, &a, &b, &hook, NULL, 0, 1, BIPO_MATMUL_FP32);
        float *h = malloc(T * C * sizeof(float));
        m32.be->download(h, a.resid[2], T * C);
        d = rel_maxdiff(h, hidf, T * C);
        EXPECT(d < 1e-5, "%s: hidden_states[2] (steered) differs by %.3g", label, d);
        free(h);
        bipo_acts_free(&a, m32.be);
    }

    // packed batch of 3 sequences == each alone
    {
        size_t lens[3] = {5, T, 11}, off[4] = {0, 5, 5 + T, 5 + T + 11}, N = off[3];
        int *pk = malloc(N * sizeof(int));
        size_t *rows = malloc(N * sizeof(size_t));
        for (size_t i = 0; i < N; i++) rows[i] = i;
        memcpy(pk, tok + 3, 5 * sizeof(int));
        memcpy(pk + 5, tok, T * sizeof(int));
        memcpy(pk + 5 + T, tok + 7, 11 * sizeof(int));
        bipo_batch b = {3, off, pk};
        bipo_acts a;
        bipo_acts_init(&a, 1);
        bipo_forward(&m32, &a, &b, NULL, rows, N, -1, BIPO_MATMUL_FP32);
        float *lp = malloc(N * V * sizeof(float));
        m32.be->download(lp, a.logits, N * V);
        for (size_t sq = 0; sq < 3; sq++) {
            float *alone = model_logits(&m32, pk + off[sq], lens[sq], NULL);
            d = rel_maxdiff(lp + off[sq] * V, alone, lens[sq] * V);
            EXPECT(d < 1e-5, "%s: packed sequence %zu differs from alone by %.3g", label, sq, d);
            free(alone);
        }
        free(lp), free(pk), free(rows);
        bipo_acts_free(&a, m32.be);
    }

    // KV cache: prefill 4 tokens, then one at a time; each step's logits == full forward row
    {
        bipo_kv_cache kv;
        bipo_kv_init(&kv, &m32, T);
        float *lg = malloc(V * sizeof(float));
        bipo_forward_cached(&m32, &kv, tok, 4, &hook, lg, BIPO_MATMUL_FP32);
        d = rel_maxdiff(lg, lh + 3 * V, V);
        int ok = d < 1e-5;
        for (size_t t = 4; t < T; t++) {
            bipo_forward_cached(&m32, &kv, tok + t, 1, &hook, lg, BIPO_MATMUL_FP32);
            double dt = rel_maxdiff(lg, lh + t * V, V);
            if (dt > d) d = dt;
            ok &= dt < 1e-5;
        }
        EXPECT(ok, "%s: KV-cached decode differs from the full forward by %.3g", label, d);
        free(lg);
        bipo_kv_free(&kv, &m32);
    }
    m32.be->free(vb);
    free(vec), free(refh), free(hid), free(refhf), free(hidf), free(lh);
    free(l32), free(ref), free(reff);
    bipo_model_free(&m32);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/bipo-test-model-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    tl_seed(7);
    tm_spec llama = {.mistral = 0, .L = 3, .C = 96, .NH = 4, .NKV = 4, .HD = 12, .FF = 160,
                     .V = 300, .rope_theta = 10000.f, .eps = 1e-5f, .window = 0, .tied = 0,
                     .seed = 11, .max_pos = 128};
    run_spec("llama", &llama);
    tm_spec tiny_gqa = {.mistral = 0, .L = 2, .C = 64, .NH = 9, .NKV = 3, .HD = 8, .FF = 96,
                        .V = 288, .rope_theta = 100000.f, .eps = 1e-5f, .window = 0, .tied = 1,
                        .seed = 12, .max_pos = 128};
    run_spec("llama-gqa-tied", &tiny_gqa);
    tm_spec mistral = {.mistral = 1, .L = 3, .C = 64, .NH = 8, .NKV = 2, .HD = 16, .FF = 128,
                       .V = 320, .rope_theta = 1000000.f, .eps = 1e-5f, .window = 6, .tied = 0,
                       .seed = 13, .max_pos = 128};
    run_spec("mistral", &mistral);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
    return tl_summary("test_model");
}
