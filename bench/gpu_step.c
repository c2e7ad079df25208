// bench/gpu_step.c — a BiPO step on the GPU: forward + activation-only backward of the layers
// above the hook and the LM head, on a Llama-2-7B-shaped model with random weights (C 4096,
// NH = NKV 32, FF 11008, V 32000, 32 layers, hook at layer 15: only layers 16..31, the final
// norm and the LM head are allocated), batch of 4 pairs in BiPO's shared-prefix layout
// (prompt 60 tokens, two responses of 30), weights resident per BIPO_CUDA_WEIGHTS (bf16).
//
//   gpu_step [--steps 10] [--warmup 3] [--prompt 60] [--resp 30] [--pairs 4] [--tiny]
//
// Prints the median ms per step, its split (GEMM, attention, other; measured in a separate
// pass that synchronizes around every op, so the split is of that pass's time) and the MFU:
// model FLOPs of the step (the GEMMs forward and input-gradient backward, attention QK^T and
// PV forward and twice that backward; no recomputation counted) over the median time, against
// 989 TFLOP/s (H100/H200 SXM dense bf16). Without a CUDA device it prints "SKIP: no CUDA
// device" and exits 0; --tiny runs a tiny shape on whatever backend "auto" gives (the CPU here),
// which checks this program's own logic.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h" // defines: bipo_backend, bipo_backend_open
#include "backend_impl.h" // defines: bipo_backend_cuda, bipo_backend_cpu
#include "model.h"   // defines: bipo_model, bipo_forward_from, bipo_backward_logprob
#include "rng.h"     // defines: bipo_rng_uniform
#include "util.h"    // defines: bipo_now, xmalloc

#define PEAK_TFLOPS 989.0

// ---- per-category timing: a copy of the table whose ops synchronize around each call -----------
static const bipo_backend *inner;
static double t_gemm, t_att;
#define TIMED(acc, call)                                                                       \
    do {                                                                                       \
        inner->sync();                                                                         \
        const double t0_ = bipo_now();                                                         \
        call;                                                                                  \
        inner->sync();                                                                         \
        acc += bipo_now() - t0_;                                                               \
    } while (0)
static void tm_fwd(float *o, const float *i, const float *w, size_t N, size_t IC, size_t OC,
                   bipo_matmul_precision prec) {
    TIMED(t_gemm, inner->matmul_forward(o, i, w, N, IC, OC, prec));
}
static void tm_bwd(float *d, const float *o, const float *w, size_t N, size_t IC, size_t OC, int acc,
                   bipo_matmul_precision prec) {
    TIMED(t_gemm, inner->matmul_backward(d, o, w, N, IC, OC, acc, prec));
}
static void tm_lpb(float *di, float *dl, const float *dlp, const float *lg, const float *lse,
                   const int *tg, const float *w, size_t M, size_t IC, size_t V,
                   bipo_matmul_precision prec) {
    TIMED(t_gemm, inner->logprob_matmul_backward(di, dl, dlp, lg, lse, tg, w, M, IC, V, prec));
}
static void tm_attf(float *o, float *a, const float *q, const float *k, const float *v,
                    const bipo_seqs *sq, size_t NH, size_t NKV, size_t HD, size_t win) {
    TIMED(t_att, inner->attention_forward(o, a, q, k, v, sq, NH, NKV, HD, win));
}
static void tm_attb(float *dq, float *dk, float *dv, const float *dout, const float *q,
                    const float *k, const float *v, const float *att, const bipo_seqs *sq,
                    size_t NH, size_t NKV, size_t HD) {
    TIMED(t_att, inner->attention_backward(dq, dk, dv, dout, q, k, v, att, sq, NH, NKV, HD));
}

// ---- the model: random weights for layers [start, L), final norm, LM head ----------------------
static void fill(float *x, size_t n, float scale, float center, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) x[i] = center + scale * (float)(2.0 * bipo_rng_uniform(rng) - 1.0);
}

static size_t layer_floats(const bipo_config *c) {
    const size_t QD = c->NH * c->HD, KVD = c->NKV * c->HD;
    return 2 * c->C + QD * c->C + 2 * KVD * c->C + c->C * QD + 3 * c->FF * c->C;
}

// Every layer above the hook gets the same random weights (the timing does not care), uploaded
// from one host copy; returns the parameter buffer (registered).
static float *build_model(bipo_model *m, const bipo_backend *be, const bipo_config *c, size_t start) {
    memset(m, 0, sizeof *m);
    m->cfg = *c, m->be = be;
    const size_t lf = layer_floats(c), QD = c->NH * c->HD, KVD = c->NKV * c->HD;
    const size_t total = (c->L - start) * lf + c->C + c->V * c->C;
    m->params = be->alloc(total), m->n_params = total;
    m->layers = xcalloc(c->L, sizeof *m->layers);
    uint64_t rng = 42;
    float *h = xmalloc((lf > c->V * c->C ? lf : c->V * c->C) * sizeof(float));
    const float ws = 0.035f; // ~ N(0, 0.02)'s spread, as Llama's init
    fill(h, c->C, 0.1f, 1.0f, &rng);
    fill(h + c->C, lf - 2 * c->C, ws, 0.0f, &rng); // the matrices
    fill(h + lf - c->C, c->C, 0.1f, 1.0f, &rng);
    for (size_t l = start; l < c->L; l++) {
        float *p = m->params + (l - start) * lf;
        be->upload(p, h, lf);
        bipo_layer_weights *w = &m->layers[l];
        w->attn_norm = p, p += c->C;
        w->wq = p, p += QD * c->C;
        w->wk = p, p += KVD * c->C;
        w->wv = p, p += KVD * c->C;
        w->wo = p, p += c->C * QD;
        w->w_gate = p, p += c->FF * c->C;
        w->w_up = p, p += c->FF * c->C;
        w->w_down = p, p += c->C * c->FF;
        w->ffn_norm = p;
    }
    m->norm_f = m->params + (c->L - start) * lf;
    fill(h, c->C, 0.1f, 1.0f, &rng);
    be->upload(m->norm_f, h, c->C);
    m->lm_head = m->norm_f + c->C;
    fill(h, c->V * c->C, ws, 0.0f, &rng);
    be->upload(m->lm_head, h, c->V * c->C);
    free(h);
    if (be->weights_register) be->weights_register(m->params, total);
    return m->params;
}

// ---- the batch: BiPO's shared-prefix layout, [prompt | target | opposite] per pair -------------
typedef struct {
    size_t N, M, AS, *off, *aq, *ak, *kv, *rows;
    int *tok, *pos, *tg;
    double att_pairs; // visible (query, key) pairs of one layer
} batch;

static void build_batch(batch *b, size_t B, size_t P, size_t R, size_t V) {
    const size_t per = P + 2 * R;
    b->N = B * per, b->M = B * 2 * R, b->AS = 2 * B;
    b->off = xmalloc((B + 1) * sizeof(size_t));
    b->aq = xmalloc((b->AS + 1) * sizeof(size_t)), b->ak = xmalloc((b->AS + 1) * sizeof(size_t));
    b->kv = xmalloc(2 * b->N * sizeof(size_t)), b->rows = xmalloc(b->M * sizeof(size_t));
    b->tok = xmalloc(b->N * sizeof(int)), b->pos = xmalloc(b->N * sizeof(int));
    b->tg = xmalloc(b->M * sizeof(int));
    b->off[0] = b->aq[0] = b->ak[0] = 0;
    size_t nk = 0, r = 0;
    b->att_pairs = 0;
    for (size_t i = 0; i < B; i++) {
        const size_t base = i * per;
        for (size_t j = 0; j < per; j++) {
            b->tok[base + j] = (int)((base + j) * 7919 % V);
            b->pos[base + j] = (int)(j < P + R ? j : j - R); // opposite restarts after the prompt
        }
        for (int k = 0; k < 2; k++) { // attention sequence 2i+k: prompt + its response
            for (size_t j = 0; j < P + R; j++) b->kv[nk++] = base + (j < P || k == 0 ? j : j + R);
            b->ak[2 * i + k + 1] = nk;
            b->aq[2 * i + k + 1] = k == 0 ? base + P + R : base + per;
            for (size_t j = P; j < P + R; j++, r++) { // row j-1 predicts token j
                const size_t row = base + (k == 0 || j - 1 < P ? j - 1 : j - 1 + R);
                b->rows[r] = row;
                b->tg[r] = (int)((row * 31 + 5) % V);
            }
        }
        b->off[i + 1] = base + per;
        const double n = (double)(P + R);
        b->att_pairs += n * (n + 1) / 2 + (double)R * ((double)P + (R + 1) / 2.0);
    }
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int steps = 10, warmup = 3, tiny = 0;
    size_t P = 60, R = 30, B = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tiny")) { tiny = 1; continue; }
        if (!v) { fprintf(stderr, "gpu_step: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--prompt")) P = (size_t)atoi(v);
        else if (!strcmp(a, "--resp")) R = (size_t)atoi(v);
        else if (!strcmp(a, "--pairs")) B = (size_t)atoi(v);
        else { fprintf(stderr, "gpu_step: unknown option %s\n", a); return 2; }
        i++;
    }
    if (steps < 1 || P < 1 || R < 1 || B < 1) { fprintf(stderr, "gpu_step: bad sizes\n"); return 2; }
    const bipo_backend *be = tiny ? bipo_backend_open("auto", 0) : bipo_backend_cuda();
    if (!be) {
        printf("gpu_step: SKIP: no CUDA device\n");
        return 0;
    }
    bipo_config c = {.L = 32, .C = 4096, .NH = 32, .NKV = 32, .HD = 128, .FF = 11008, .V = 32000,
                     .max_pos = 4096, .rope_theta = 10000.0f, .rms_eps = 1e-5f};
    size_t hook = 15;
    if (tiny) c.L = 4, c.C = 64, c.NH = 4, c.NKV = 2, c.HD = 16, c.FF = 96, c.V = 101, hook = 1;
    const size_t start = hook + 1, C = c.C;
    bipo_model m;
    double t0 = bipo_now();
    float *params = build_model(&m, be, &c, start);
    be->sync();
    printf("gpu_step: backend %s, %s weights %s, layers %zu..%zu + LM head (%.2f GB f32), built in %.1f s\n",
           be->name, tiny ? "tiny" : "Llama-2-7B-shaped",
           getenv("BIPO_CUDA_WEIGHTS") ? getenv("BIPO_CUDA_WEIGHTS") : "bf16", start, c.L - 1,
           m.n_params * 4.0 / 1e9, bipo_now() - t0);

    batch b;
    build_batch(&b, B, P, R, c.V);
    const bipo_batch bb = {B, b.off, b.tok, b.pos, b.AS, b.aq, b.ak, b.kv};
    float *hh = xmalloc(b.N * C * sizeof(float)), *dlp = xmalloc(b.M * sizeof(float));
    uint64_t rng = 7;
    fill(hh, b.N * C, 1.0f, 0.0f, &rng);
    for (size_t i = 0; i < b.M; i++) dlp[i] = i % 2 ? 0.25f : -0.25f;
    float *h_in = be->alloc(b.N * C), *vec = be->alloc(C), *dv = be->alloc(C);
    float *lp = be->alloc(b.M), *lse = be->alloc(b.M), *dlogits = be->alloc(b.M * c.V);
    float *lph = xmalloc(b.M * sizeof(float)), *dvh = xmalloc(C * sizeof(float));
    be->upload(h_in, hh, b.N * C);
    fill(hh, C, 0.1f, 0.0f, &rng);
    be->upload(vec, hh, C);
    bipo_acts acts;
    bipo_acts_init(&acts, 1);
    bipo_grads g = {0};
    bipo_hook hk = {(int)hook, vec, 1.0f, NULL};

    bipo_backend timed = *be;
    inner = be;
    timed.matmul_forward = tm_fwd, timed.matmul_backward = tm_bwd;
    timed.logprob_matmul_backward = tm_lpb;
    timed.attention_forward = tm_attf, timed.attention_backward = tm_attb;
    double *ms = xmalloc((size_t)steps * sizeof(double)), t_split = 0, lp0 = 0;
    // warmup, timed steps, then one pass with the synchronizing table for the split
    for (int s = 0; s < warmup + steps + 1; s++) {
        const int split = s == warmup + steps;
        m.be = split ? &timed : be;
        if (split) t_gemm = t_att = 0;
        be->sync();
        const double ts = bipo_now();
        bipo_forward_from(&m, &acts, &bb, h_in, start, &hk, b.rows, b.M, BIPO_MATMUL_FP32);
        m.be->logprob_forward(lp, lse, acts.logits, b.tg, b.M, c.V);
        be->download(lph, lp, b.M); // BiPO's loss is made on the host
        bipo_backward_logprob(&m, &acts, &g, &bb, start, dlp, lse, b.tg, dlogits, b.rows, b.M, BIPO_MATMUL_FP32);
        be->zero(dv, C);
        m.be->add_vector_backward(dv, g.dresid, 1.0f, NULL, b.N, C);
        be->download(dvh, dv, C);
        const double dt = bipo_now() - ts;
        if (s >= warmup && !split) ms[s - warmup] = dt * 1e3;
        if (split) t_split = dt;
        if (s == 0) lp0 = lph[0];
    }
    qsort(ms, (size_t)steps, sizeof *ms, cmp_d);
    const double med = ms[steps / 2];
    int finite = 1;
    for (size_t i = 0; i < C; i++) finite &= dvh[i] == dvh[i] && dvh[i] - dvh[i] == 0.0f;
    for (size_t i = 0; i < b.M; i++) finite &= lph[i] == lph[i] && lph[i] <= 0.0f;

    const double QD = (double)(c.NH * c.HD), KVD = (double)(c.NKV * c.HD), nl = (double)(c.L - start);
    const double gemm_tok = 2.0 * ((double)C * QD + 2.0 * C * KVD + QD * C + 3.0 * C * (double)c.FF);
    const double fwd = (double)b.N * nl * gemm_tok + 2.0 * (double)b.M * C * (double)c.V +
                       nl * 4.0 * b.att_pairs * QD;
    const double flops = 2.0 * fwd + nl * 4.0 * b.att_pairs * QD; // backward: GEMMs x1, attention x2
    printf("gpu_step: %zu pairs (prompt %zu, responses %zu): N %zu rows, M %zu scored rows, %.1f GFLOP per step\n",
           B, P, R, b.N, b.M, flops / 1e9);
    printf("gpu_step: %.2f ms per step (median of %d; min %.2f, max %.2f), %.1f TFLOP/s, MFU %.1f%% of %.0f TFLOP/s bf16 dense\n",
           med, steps, ms[0], ms[steps - 1], flops / (med * 1e-3) / 1e12,
           100.0 * flops / (med * 1e-3) / (PEAK_TFLOPS * 1e12), PEAK_TFLOPS);
    printf("gpu_step: split (synchronized pass, %.2f ms): GEMM %.1f%%, attention %.1f%%, other %.1f%%\n",
           t_split * 1e3, 100 * t_gemm / t_split, 100 * t_att / t_split,
           100 * (t_split - t_gemm - t_att) / t_split);
    printf("gpu_step: first log-prob %.4f; outputs finite and log-probs <= 0: %s\n", lp0, finite ? "yes" : "NO");

    bipo_grads_free(&g, be);
    bipo_acts_free(&acts, be);
    if (be->weights_release) be->weights_release(params, m.n_params);
    be->free(params), be->free(h_in), be->free(vec), be->free(dv), be->free(lp), be->free(lse), be->free(dlogits);
    free(m.layers), free(hh), free(dlp), free(lph), free(dvh), free(ms);
    free(b.off), free(b.aq), free(b.ak), free(b.kv), free(b.rows), free(b.tok), free(b.pos), free(b.tg);
    return finite ? 0 : 1;
}
