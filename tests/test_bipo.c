// tests/test_bipo.c — the BiPO training core on a tiny random model:
//  * dloss/dv of the full BiPO loss vs central finite differences (8 directions x both d),
//    relative error <= 1e-3 (Richardson-extrapolated differences; see test_backward.c for why
//    the denominator is floored at 5% of |grad|)
//  * cached h_L + shared-prompt layout and recomputed h_L + plain layout give the same loss
//    and gradient (<= 1e-5 relative)
//  * same seed -> bit-identical vector after several epochs; different seed -> different
//  * training on a learnable task lowers the loss and both held-out margins (d=+1 and d=-1)
//  * the loss at v = 0 is exactly log 2 (margin 0), and lr schedule endpoints
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bipo.h"
#include "model.h"
#include "tensors.h"
#include "testlib.h"
#include "testmodel.h"
#include "util.h"

// A synthetic pair: prompt of random tokens; target response = tokens from the "high" half of
// the vocabulary, opposite = from the "low" half: a vector can learn to prefer one half.
static void make_examples(bipo_example *ex, size_t n, size_t V, unsigned long long seed) {
    tl_seed(seed);
    for (size_t i = 0; i < n; i++) {
        size_t plen = 4 + (size_t)((tl_randf() + 1) * 4), rlen[2] = {3 + i % 3, 2 + (i + 1) % 4};
        for (int k = 0; k < 2; k++) {
            ex[i].n[k] = plen + rlen[k];
            ex[i].p[k] = plen;
            ex[i].tok[k] = malloc(ex[i].n[k] * sizeof(int));
        }
        for (size_t j = 0; j < plen; j++) {
            int t = (int)((tl_randf() + 1) * 0.5f * (float)(V - 1));
            ex[i].tok[0][j] = ex[i].tok[1][j] = t;
        }
        for (int k = 0; k < 2; k++)
            for (size_t j = plen; j < ex[i].n[k]; j++) {
                float u = (tl_randf() + 1) * 0.5f;
                ex[i].tok[k][j] = k == 0 ? (int)(V / 2 + u * (V / 2 - 1)) : (int)(u * (V / 2 - 1));
            }
        ex[i].truncated = 0;
    }
}

static double relerr(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

int main(void) {
    char tmp[] = "/tmp/bipo-test-bipo-XXXXXX", dir[300];
    if (!mkdtemp(tmp)) return 1;
    tm_spec s = {.L = 4, .C = 48, .NH = 6, .NKV = 2, .HD = 8, .FF = 96, .V = 64,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 31, .max_pos = 64};
    snprintf(dir, sizeof dir, "%s/m", tmp);
    mkdir(dir, 0755);
    EXPECT(tm_write_hf(&s, dir, BIPO_DT_F32, 1) == 0, "write model");
    bipo_model m;
    if (bipo_model_load(&m, dir, bipo_backend_open("cpu", 0)) != 0) {
        EXPECT(0, "load: %s", bipo_last_error());
        return tl_summary("test_bipo");
    }
    const size_t NTR = 24, NTE = 8, C = s.C, layer = 1;
    bipo_example *tr = calloc(NTR, sizeof *tr), *te = calloc(NTE, sizeof *te);
    make_examples(tr, NTR, s.V, 1);
    make_examples(te, NTE, s.V, 2);
    bipo_hparams hp;
    bipo_hparams_defaults(&hp);
    hp.warmup_steps = 4;
    hp.epochs = 8;
    hp.lr = 5e-2;
    hp.beta = 1.0; // the random model's log-prob gaps are small: a larger beta learns in a few epochs

    // ---- gradient vs finite differences, cached vs recomputed ----
    bipo_trainer t, tu;
    EXPECT(bipo_trainer_init(&t, &m, layer, &hp, tr, NTR, te, NTE, NULL) == 0, "init: %s", bipo_last_error());
    bipo_hparams hpu = hp;
    hpu.use_cache = 0;
    hpu.shared_prompt = 0; // the uncached twin also runs the plain layout: both shortcuts checked
    EXPECT(bipo_trainer_init(&tu, &m, layer, &hpu, tr, NTR, te, NTE, NULL) == 0, "init uncached");
    EXPECT(t.cache_used > 0 && tu.cache_used == 0, "cache used %zu / %zu", t.cache_used, tu.cache_used);
    size_t idx[4] = {3, 17, 8, 11};
    float *v = malloc(C * sizeof(float)), *g = malloc(C * sizeof(float)), *gu = malloc(C * sizeof(float));
    float *u = malloc(C * sizeof(float)), *vp = malloc(C * sizeof(float));
    memset(v, 0, C * sizeof(float));
    double l0 = bipo_loss_grad(&t, idx, 4, 1, v, g);
    EXPECT(fabs(l0 - log(2.0)) < 1e-6, "loss at v=0 is %.9f, expected log 2 = %.9f", l0, log(2.0));
    for (size_t i = 0; i < C; i++) v[i] = 0.2f * tl_randf();
    // both GEMM precisions of the backward where this CPU has them (bf16x3 needs AMX); the
    // forward (the loss, the finite differences) is fp32 in both: bf16x3 rounds each input to
    // ~2^-17, a step function that finite differences would see as noise
    const bipo_backend *be = bipo_backend_open("cpu", 0);
    int amx = be->supports_precision(BIPO_MATMUL_BF16X3);
    float *g32 = malloc(C * sizeof(float));
    bipo_matmul_precision fwd0 = t.hp.forward_matmul, bwd0 = t.hp.backward_matmul;
    for (int prec = 0; prec < (amx ? 2 : 1); prec++) {
    t.hp.backward_matmul = tu.hp.backward_matmul = prec ? BIPO_MATMUL_BF16X3 : BIPO_MATMUL_FP32;
    t.hp.forward_matmul = tu.hp.forward_matmul = BIPO_MATMUL_FP32;
    double worst = 0;
    for (int d = -1; d <= 1; d += 2) {
        double lc = bipo_loss_grad(&t, idx, 4, d, v, g);
        double lu = bipo_loss_grad(&tu, idx, 4, d, v, gu);
        EXPECT(relerr(lu, lc) <= 1e-5, "d=%d: cached loss %.9g vs recomputed %.9g", d, lc, lu);
        double gn = 0, dn = 0;
        for (size_t i = 0; i < C; i++) gn += (double)g[i] * g[i], dn += ((double)g[i] - gu[i]) * ((double)g[i] - gu[i]);
        gn = sqrt(gn);
        EXPECT(sqrt(dn) <= 1e-5 * gn, "d=%d: cached vs recomputed gradient differ by %.3g (|g| %.3g)", d, sqrt(dn), gn);
        for (int k = 0; k < 8; k++) {
            double nu = 0;
            for (size_t i = 0; i < C; i++) {
                u[i] = tl_randf();
                nu += (double)u[i] * u[i];
            }
            double an = 0;
            for (size_t i = 0; i < C; i++) an += (double)g[i] * (u[i] /= (float)sqrt(nu));
            const float eps = 2e-2f;
            double J[4];
            const float steps[4] = {eps, -eps, eps / 2, -eps / 2};
            for (int q = 0; q < 4; q++) {
                for (size_t i = 0; i < C; i++) vp[i] = v[i] + steps[q] * u[i];
                J[q] = bipo_loss_grad(&t, idx, 4, d, vp, NULL);
            }
            double fd = (4 * (J[2] - J[3]) / eps - (J[0] - J[1]) / (2 * eps)) / 3;
            double rel = fabs(fd - an) / fmax(fabs(fd), 0.05 * gn);
            if (rel > worst) worst = rel;
            EXPECT(rel <= 1e-3, "d=%+d dir %d: analytic %.6g vs finite difference %.6g (rel %.2e)", d, k, an, fd, rel);
        }
    }
    printf("   BiPO loss gradient vs finite differences, %s backward: worst relative error %.2e (16 directions)\n",
           prec ? "bf16x3" : "fp32", worst);
    // the bf16x3 gradient vs the fp32 one at the same point (d = +1, the last g computed)
    if (prec == 0) memcpy(g32, g, C * sizeof(float));
    else {
        double dn = 0, gn = 0;
        for (size_t i = 0; i < C; i++) dn += ((double)g[i] - g32[i]) * ((double)g[i] - g32[i]), gn += (double)g32[i] * g32[i];
        printf("   bf16x3 vs fp32 backward: gradient relative difference %.2e\n", sqrt(dn / gn));
        EXPECT(sqrt(dn) <= 1e-4 * sqrt(gn), "bf16x3 vs fp32 gradient differ by %.3g relative", sqrt(dn / gn));
    }
    }
    free(g32);
    if (!amx) printf("   bf16x3 backward not tested: this CPU has no AMX\n");
    t.hp.backward_matmul = tu.hp.backward_matmul = bwd0; // back to the defaults in effect
    t.hp.forward_matmul = tu.hp.forward_matmul = fwd0;

    // ---- training: deterministic, and it learns ----
    double pos0 = bipo_trainer_eval(&t, 1, +1), neg0 = bipo_trainer_eval(&t, 1, -1);
    double first = 0, last = 0;
    size_t steps = hp.epochs * t.steps_per_epoch;
    for (size_t k = 0; k < steps; k++) {
        double l = bipo_trainer_step(&t);
        if (k < t.steps_per_epoch) first += l / t.steps_per_epoch;
        if (k >= steps - t.steps_per_epoch) last += l / t.steps_per_epoch;
        bipo_trainer_step(&tu);
    }
    double pos1 = bipo_trainer_eval(&t, 1, +1), neg1 = bipo_trainer_eval(&t, 1, -1);
    printf("   train loss first epoch %.4f -> last epoch %.4f; held-out d=+1 %.4f -> %.4f, d=-1 %.4f -> %.4f\n",
           first, last, pos0, pos1, neg0, neg1);
    EXPECT(t.epoch == hp.epochs && t.step == steps, "epoch %zu step %llu", t.epoch, (unsigned long long)t.step);
    EXPECT(last < 0.8 * first, "training loss did not fall: %.4f -> %.4f", first, last);
    EXPECT(pos1 < pos0 - 0.05 && neg1 < neg0 - 0.05, "held-out losses did not improve: +1 %.4f->%.4f, -1 %.4f->%.4f",
           pos0, pos1, neg0, neg1);
    // cached and recomputed runs took identical decisions; vectors agree to rounding
    double vd = 0, vn = 0;
    for (size_t i = 0; i < C; i++) vd = fmax(vd, fabs(t.v[i] - tu.v[i])), vn = fmax(vn, fabs(t.v[i]));
    EXPECT(vd <= 1e-4 * vn, "cached vs uncached training: vectors differ by %.3g (|v|max %.3g)", vd, vn);

    bipo_trainer t2, t3;
    EXPECT(bipo_trainer_init(&t2, &m, layer, &hp, tr, NTR, te, NTE, NULL) == 0, "init t2");
    bipo_hparams hp3 = hp;
    hp3.seed = 43;
    EXPECT(bipo_trainer_init(&t3, &m, layer, &hp3, tr, NTR, te, NTE, NULL) == 0, "init t3");
    for (size_t k = 0; k < steps; k++) bipo_trainer_step(&t2), bipo_trainer_step(&t3);
    EXPECT(memcmp(t.v, t2.v, C * sizeof(float)) == 0, "same seed: vectors are not bit-identical");
    EXPECT(memcmp(t.v, t3.v, C * sizeof(float)) != 0, "different seed gave the identical vector");

    bipo_trainer_free(&t), bipo_trainer_free(&tu), bipo_trainer_free(&t2), bipo_trainer_free(&t3);
    for (size_t i = 0; i < NTR; i++) bipo_example_free(&tr[i]);
    for (size_t i = 0; i < NTE; i++) bipo_example_free(&te[i]);
    free(tr), free(te), free(v), free(g), free(gu), free(u), free(vp);
    bipo_model_free(&m);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp);
    return tl_summary("test_bipo");
}
