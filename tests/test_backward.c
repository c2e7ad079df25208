// tests/test_backward.c — the activation-only backward of the whole model, checked against
// central finite differences of the forward, on tiny random Llama / Mistral models.
//
// Objective (the shape of BiPO's): J(v) = sum_m w_m * logprob(target_m | row_m) with the
// vector m*v added after layer `start-1` on top of a cached hidden_states[start]. The
// backward gives dJ/dh at hidden_states[start]; dJ/dv = m * sum_rows dJ/dh. Checked along
// 8 random unit directions u for m = +1 and -1:
//     (J(v + eps u) - J(v - eps u)) / (2 eps)  vs  <dJ/dv, u>
// Finite differences: Richardson extrapolation of central differences at eps = 2e-2 and 1e-2
// (cancels the eps^2 term, which dominates above eps ~ 5e-3; below it the f32 rounding of J
// dominates — measured by scanning eps). Relative error = |fd - an| / max(|fd|, 0.05 |grad|):
// a random direction nearly orthogonal to the gradient has a tiny derivative that f32 noise
// swamps, so the denominator is floored at 5% of the gradient norm. Bound 1e-3; a wrong op
// (sign, missing term, transposed weight, wrong rotation) is off by O(1).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "tensors.h"
#include "testlib.h"
#include "testmodel.h"
#include "util.h"

typedef struct {
    bipo_model *m;
    bipo_batch b;
    size_t start;
    float *h_in;   // backend [N, C] hidden_states[start]
    size_t *rows;  // [M]
    int *targets;  // [M]
    float *w;      // [M] host
    size_t M;
    bipo_acts acts;
    float *lp, *lse; // backend [M]
    bipo_matmul_precision prec; // of every GEMM, forward and backward
} problem;

static double objective(problem *p, const float *v_host, float mult) {
    const bipo_backend *be = p->m->be;
    size_t C = p->m->cfg.C;
    float *vb = be->alloc(C);
    be->upload(vb, v_host, C);
    bipo_hook hook = {(int)p->start - 1, vb, mult, NULL};
    bipo_forward_from(p->m, &p->acts, &p->b, p->h_in, p->start, &hook, p->rows, p->M, p->prec);
    be->logprob_forward(p->lp, p->lse, p->acts.logits, p->targets, p->M, p->m->cfg.V);
    float *lp = malloc(p->M * sizeof(float));
    be->download(lp, p->lp, p->M);
    double J = 0;
    for (size_t i = 0; i < p->M; i++) J += (double)p->w[i] * lp[i];
    free(lp);
    be->free(vb);
    return J;
}

// dJ/dv at v (host [C]) for multiplier mult.
static void gradient(problem *p, const float *v_host, float mult, float *dv_host) {
    const bipo_backend *be = p->m->be;
    size_t C = p->m->cfg.C, V = p->m->cfg.V, N = p->b.off[p->b.S];
    objective(p, v_host, mult); // leaves the activations of this v
    float *dlogits = be->alloc(p->M * V), *dv = be->alloc(C);
    be->logprob_backward(dlogits, p->w, p->acts.logits, p->lse, p->targets, p->M, V);
    bipo_grads g = {0};
    bipo_backward(p->m, &p->acts, &g, &p->b, p->start, dlogits, p->rows, p->M, p->prec);
    be->add_vector_backward(dv, g.dresid, mult, NULL, N, C);
    be->download(dv_host, dv, C);
    bipo_grads_free(&g, be);
    be->free(dlogits);
    be->free(dv);
}

static void run(const char *label, const tm_spec *s, const char *dir, size_t start) {
    mkdir(dir, 0755);
    EXPECT(tm_write_hf(s, dir, BIPO_DT_F32, 1) == 0, "write %s", dir);
    bipo_model m;
    if (bipo_model_load(&m, dir, bipo_backend_open("cpu", 0)) != 0) {
        EXPECT(0, "load %s: %s", dir, bipo_last_error());
        return;
    }
    const bipo_backend *be = m.be;
    size_t C = s->C;
    // two sequences (12 and 17 tokens); scored rows: the last 7 and 9 positions
    size_t off[3] = {0, 12, 29}, N = 29;
    int tok[29];
    for (size_t i = 0; i < N; i++) tok[i] = (int)((i * 131 + 7) % s->V);
    problem p = {.m = &m, .b = {2, off, tok}, .start = start};
    p.M = 16;
    p.rows = malloc(p.M * sizeof(size_t));
    p.targets = malloc(p.M * sizeof(int));
    p.w = malloc(p.M * sizeof(float));
    for (size_t i = 0; i < 7; i++) p.rows[i] = 5 + i;
    for (size_t i = 0; i < 9; i++) p.rows[7 + i] = 20 + i;
    for (size_t i = 0; i < p.M; i++) {
        p.targets[i] = (int)((i * 37 + 3) % s->V);
        p.w[i] = (i % 2 ? 1.f : -0.5f) * (1 + 0.3f * tl_randf());
    }
    // cached hidden_states[start] from a plain forward
    bipo_acts a0;
    bipo_acts_init(&a0, 0);
    bipo_forward(&m, &a0, &p.b, NULL, NULL, 0, (int)start - 1, BIPO_MATMUL_FP32);
    p.h_in = be->alloc(N * C);
    be->copy(p.h_in, a0.resid[start], N * C);
    bipo_acts_free(&a0, be);
    bipo_acts_init(&p.acts, 1);
    p.lp = be->alloc(p.M);
    p.lse = be->alloc(p.M);

    float *v = malloc(C * sizeof(float)), *dv = malloc(C * sizeof(float));
    float *u = malloc(C * sizeof(float)), *vp = malloc(C * sizeof(float));
    for (size_t i = 0; i < C; i++) v[i] = 0.3f * tl_randf();
    const float eps = 2e-2f;
    double worst = 0;
    for (int sign = -1; sign <= 1; sign += 2) {
        gradient(&p, v, (float)sign, dv);
        double gnorm = 0;
        for (size_t i = 0; i < C; i++) gnorm += (double)dv[i] * dv[i];
        gnorm = sqrt(gnorm);
        for (int k = 0; k < 8; k++) {
            double nu = 0;
            for (size_t i = 0; i < C; i++) {
                u[i] = tl_randf();
                nu += (double)u[i] * u[i];
            }
            for (size_t i = 0; i < C; i++) u[i] = (float)(u[i] / sqrt(nu));
            double an = 0;
            for (size_t i = 0; i < C; i++) an += (double)dv[i] * u[i];
            for (size_t i = 0; i < C; i++) vp[i] = v[i] + eps * u[i];
            double jp = objective(&p, vp, (float)sign);
            for (size_t i = 0; i < C; i++) vp[i] = v[i] - eps * u[i];
            double jm = objective(&p, vp, (float)sign);
            for (size_t i = 0; i < C; i++) vp[i] = v[i] + 0.5f * eps * u[i];
            double jp2 = objective(&p, vp, (float)sign);
            for (size_t i = 0; i < C; i++) vp[i] = v[i] - 0.5f * eps * u[i];
            double jm2 = objective(&p, vp, (float)sign);
            // Richardson: (4 D(eps/2) - D(eps)) / 3 cancels the eps^2 truncation term
            double fd = (4 * (jp2 - jm2) / eps - (jp - jm) / (2 * eps)) / 3;
            double rel = fabs(fd - an) / fmax(fabs(fd), 0.05 * gnorm);
            if (rel > worst) worst = rel;
            EXPECT(rel <= 1e-3, "%s d=%+d dir %d: analytic %.6g vs finite difference %.6g (rel %.2e)",
                   label, sign, k, an, fd, rel);
        }
    }
    printf("   %s (start layer %zu): worst relative error %.2e over 16 directions\n", label, start,
           worst);
    // bipo_backward_logprob (the log-softmax gradient inside the LM head's GEMM where the
    // backend can) gives the gradient of the two-step path: to rounding in fp32, to bf16x3's
    // ~1e-5 where that precision exists (M = 16 rows takes the CPU backend's AMX path)
    for (int prec = 0; prec < 2; prec++) {
        bipo_matmul_precision want = prec ? BIPO_MATMUL_BF16X3 : BIPO_MATMUL_FP32;
        if (!be->supports_precision(want)) continue;
        p.prec = want;
        gradient(&p, v, 1.0f, dv); // two steps: logprob_backward, then bipo_backward
        float *dl = be->alloc(p.M * s->V), *dvb = be->alloc(C), *dv2 = malloc(C * sizeof(float));
        bipo_grads g = {0};
        objective(&p, v, 1.0f);
        bipo_backward_logprob(&m, &p.acts, &g, &p.b, start, p.w, p.lse, p.targets, dl, p.rows, p.M,
                              p.prec);
        be->add_vector_backward(dvb, g.dresid, 1.0f, NULL, N, C);
        be->download(dv2, dvb, C);
        double dn = 0, gn = 0;
        for (size_t i = 0; i < C; i++) dn += ((double)dv2[i] - dv[i]) * ((double)dv2[i] - dv[i]), gn += (double)dv[i] * dv[i];
        EXPECT(sqrt(dn) <= (prec ? 1e-4 : 1e-6) * sqrt(gn), "%s %s: fused log-prob backward differs by %.2e relative",
               label, prec ? "bf16x3" : "fp32", sqrt(dn / gn));
        bipo_grads_free(&g, be);
        be->free(dl), be->free(dvb), free(dv2);
    }
    free(v), free(dv), free(u), free(vp), free(p.rows), free(p.targets), free(p.w);
    be->free(p.h_in), be->free(p.lp), be->free(p.lse);
    bipo_acts_free(&p.acts, be);
    bipo_model_free(&m);
}

int main(void) {
    char tmp[] = "/tmp/bipo-test-backward-XXXXXX", dir[300];
    if (!mkdtemp(tmp)) return 1;
    tl_seed(5);
    tm_spec llama = {.L = 3, .C = 48, .NH = 6, .NKV = 2, .HD = 8, .FF = 72, .V = 97,
                     .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 21, .max_pos = 64};
    snprintf(dir, sizeof dir, "%s/llama", tmp);
    run("llama-gqa-tied", &llama, dir, 1);
    tm_spec mistral = {.mistral = 1, .L = 4, .C = 40, .NH = 4, .NKV = 4, .HD = 10, .FF = 64,
                       .V = 83, .rope_theta = 1e6f, .eps = 1e-5f, .window = 5, .seed = 22,
                       .max_pos = 64};
    snprintf(dir, sizeof dir, "%s/mistral", tmp);
    run("mistral-window", &mistral, dir, 2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp);
    return tl_summary("test_backward");
}
