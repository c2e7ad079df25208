// bench/bipo_step.c — BiPO training steps on the default model with the official
// power-seeking data (batch 4, layer 15), against the reference implementation.
//
//   bipo_step [--model PATH] [--data train.csv] [--layer 15] [--steps 10] [--threads 2]
//             [--order order.json] [--ref result.json] [--peak GFLOPS] [--no-shared]
//             [--backward-matmul fp32|bf16x3] [--forward-matmul fp32|bf16x3] [--repeats R]
// (default: the library's, bf16x3 for both where the CPU has AMX)
// --repeats R runs the same steps R times from the same start (vector, optimizer state) and
// takes each step's median time, as bench/bipo_ref.py --repeats does: this shared VM's speed
// drifts by up to 2x over seconds, and a median of repeats keeps one slow moment out.
//
// --order replays the reference's batches and directions (bench/bipo_ref.py writes both
// files: {"batch_size":4,"layer":15,"schedule_steps":S,"steps":[{"pairs":[...],"d":1},...]});
// --ref adds the reference's per-step loss and ms/step (its "steps":[{"loss":..,"ms":..}]),
// so the table shows the speed ratio and the loss difference at every step. Our one-time
// cost (the forward of every training pair through all layers that fills the h_L and
// reference caches) is printed separately and also amortized over one epoch.
// FLOPs: bipo_trainer_step_flops (forward + activation-only backward of layers L+1..N-1 and the
// LM head at scored rows); fraction of the machine's peak: --peak, $BIPO_PEAK_GFLOPS, or 79.5.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bipo.h"    // defines: bipo_trainer, bipo_examples_build
#include "chat.h"    // defines: bipo_chat_template_by_name
#include "dataset.h" // defines: bipo_pairs_load
#include "kernels.h" // defines: bipo_backend_open, bipo_blas_tune
#include "model.h"   // defines: bipo_model_load
#include "util.h"    // defines: bipo_now

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    bipo_blas_tune(argv);
    const char *home = getenv("HOME");
    char defmodel[4096];
    snprintf(defmodel, sizeof defmodel, "%s/.cache/bipo-pipeline/SmolLM2-135M-Instruct.Q4_1.gguf",
             getenv("BIPO_CACHE") ? "" : (home ? home : ""));
    if (getenv("BIPO_CACHE"))
        snprintf(defmodel, sizeof defmodel, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("BIPO_CACHE"));
    const char *model_path = defmodel, *data = "../shared/data/bipo/data/power-seeking/train.csv";
    const char *order_path = NULL, *ref_path = NULL;
    int layer = 15, steps = 10, threads = 2, shared = 1, repeats = 1;
    bipo_hparams defaults;
    bipo_hparams_defaults(&defaults);
    bipo_matmul_precision matmul = defaults.backward_matmul, fmatmul = defaults.forward_matmul;
    double peak = getenv("BIPO_PEAK_GFLOPS") ? atof(getenv("BIPO_PEAK_GFLOPS")) : 79.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-shared")) { shared = 0; continue; }
        if (!v) { fprintf(stderr, "bipo_step: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--layer")) layer = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--order")) order_path = v;
        else if (!strcmp(a, "--ref")) ref_path = v;
        else if (!strcmp(a, "--peak")) peak = atof(v);
        else if (!strcmp(a, "--repeats") && atoi(v) >= 1) repeats = atoi(v);
        else if (!strcmp(a, "--backward-matmul") && (!strcmp(v, "fp32") || !strcmp(v, "bf16x3")))
            matmul = !strcmp(v, "fp32") ? BIPO_MATMUL_FP32 : BIPO_MATMUL_BF16X3;
        else if (!strcmp(a, "--forward-matmul") && (!strcmp(v, "fp32") || !strcmp(v, "bf16x3")))
            fmatmul = !strcmp(v, "fp32") ? BIPO_MATMUL_FP32 : BIPO_MATMUL_BF16X3;
        else { fprintf(stderr, "bipo_step: unknown option %s\n", a); return 2; }
        i++;
    }
    const bipo_backend *be = bipo_backend_open("cpu", threads);
    // replayed batches (optional)
    json_t *order = NULL, *ref = NULL;
    json_error_t je;
    if (order_path && !(order = json_load_file(order_path, 0, &je))) {
        fprintf(stderr, "bipo_step: %s:%d: %s\n", order_path, je.line, je.text);
        return 1;
    }
    if (ref_path && !(ref = json_load_file(ref_path, 0, &je))) {
        fprintf(stderr, "bipo_step: %s:%d: %s\n", ref_path, je.line, je.text);
        return 1;
    }
    json_t *osteps = order ? json_object_get(order, "steps") : NULL;
    json_t *rsteps = ref ? json_object_get(ref, "steps") : NULL;
    if (osteps) steps = (int)json_array_size(osteps);
    if (order) {
        json_t *L = json_object_get(order, "layer");
        if (json_is_integer(L)) layer = (int)json_integer_value(L);
    }

    bipo_model m;
    double t0 = bipo_now();
    if (bipo_model_load(&m, model_path, be) != 0) {
        fprintf(stderr, "bipo_step: %s\n", bipo_last_error());
        return 1;
    }
    double t_load = bipo_now() - t0;
    bipo_tokenizer *tok = bipo_tokenizer_load(model_path);
    bipo_pairs pairs;
    if (!tok || bipo_pairs_load(&pairs, data, BIPO_FMT_AUTO, NULL) != 0) {
        fprintf(stderr, "bipo_step: %s\n", bipo_last_error());
        return 1;
    }
    const char **q = malloc(pairs.n * sizeof *q), **a = malloc(pairs.n * sizeof *a), **o = malloc(pairs.n * sizeof *o);
    for (size_t i = 0; i < pairs.n; i++) q[i] = pairs.p[i].question, a[i] = pairs.p[i].matching, o[i] = pairs.p[i].not_matching;
    bipo_example *ex;
    size_t ntr;
    const bipo_chat_template *tpl = bipo_chat_for(tok);
    if (bipo_examples_build(tok, tpl, BIPO_DEFAULT_SYSTEM, NULL, q, a, o, pairs.n, 2048, &ex, &ntr) != 0) {
        fprintf(stderr, "bipo_step: %s\n", bipo_last_error());
        return 1;
    }
    bipo_hparams hp;
    bipo_hparams_defaults(&hp); // the reference's: beta 0.1, lr 5e-4, warmup 100, cosine, ...
    hp.shared_prompt = shared;
    hp.backward_matmul = matmul;
    hp.forward_matmul = fmatmul;
    // With a replayed order only the pairs it uses are cached (the cache build is a one-time
    // cost per pair, reported per pair and amortized below); indices are remapped.
    size_t n_use = pairs.n, *remap = NULL;
    bipo_example *use = ex;
    if (osteps) {
        remap = malloc(pairs.n * sizeof(size_t));
        for (size_t i = 0; i < pairs.n; i++) remap[i] = (size_t)-1;
        use = malloc(pairs.n * sizeof *use);
        n_use = 0;
        for (size_t s = 0; s < json_array_size(osteps); s++) {
            json_t *pj = json_object_get(json_array_get(osteps, s), "pairs");
            for (size_t i = 0; i < json_array_size(pj); i++) {
                size_t k = (size_t)json_integer_value(json_array_get(pj, i));
                if (k < pairs.n && remap[k] == (size_t)-1) remap[k] = n_use, use[n_use++] = ex[k];
            }
        }
    }
    bipo_trainer t;
    t0 = bipo_now();
    if (bipo_trainer_init(&t, &m, (size_t)layer, &hp, use, n_use, NULL, 0, NULL) != 0) {
        fprintf(stderr, "bipo_step: %s\n", bipo_last_error());
        return 1;
    }
    double t_init = bipo_now() - t0;
    double init_per_pair = t_init / (double)n_use;
    size_t steps_per_epoch = (pairs.n + hp.batch_size - 1) / hp.batch_size;
    if (order) {
        json_t *S = json_object_get(order, "schedule_steps");
        if (json_is_integer(S)) t.total_steps = (size_t)json_integer_value(S);
    }
    int amx = m.be->supports_precision(BIPO_MATMUL_BF16X3);
    const char *prec[2][2] = {{"fp32", "fp32 (bf16x3 asked, no AMX here)"}, {"fp32", "bf16x3 (AMX)"}};
    printf("bipo_step: %s, layer %d, %zu pairs (%s), batch %zu, %d threads, shared prompt %s, BLAS %s, "
           "step GEMMs: forward %s, backward %s\n", m.path, layer, pairs.n, data, hp.batch_size,
           threads, shared ? "on" : "off", bipo_blas_corename(), prec[amx][fmatmul != BIPO_MATMUL_FP32],
           prec[amx][matmul != BIPO_MATMUL_FP32]);
    printf("one-time: load %.2f s; caches (h_L + reference log-probs) of %zu pairs %.2f s = %.3f s/pair, "
           "%.0f MB; for all %zu pairs ~%.0f s\n\n", t_load, n_use, t_init, init_per_pair,
           t.cache_used / 1048576.0, pairs.n, init_per_pair * (double)pairs.n);
    printf("| step | d | loss | ref loss | |diff| | ms | ref ms | speed-up | tokens | GFLOP/s |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double *ms = calloc((size_t)steps, sizeof(double)), *rms = calloc((size_t)steps, sizeof(double));
    double *rep = calloc((size_t)steps * repeats, sizeof(double)), *losses = calloc((size_t)steps, sizeof(double));
    double maxdiff = 0, tok_sum = 0, flop_sum = 0, time_sum = 0, rep_spread = 0;
    size_t idx[64], *tokens = calloc((size_t)steps, sizeof(size_t));
    int *ds = calloc((size_t)steps, sizeof(int));
    double *flops = calloc((size_t)steps, sizeof(double));
    // the start every repeat goes back to
    size_t C = t.C;
    float *v0 = malloc(3 * C * sizeof(float));
    memcpy(v0, t.v, C * sizeof(float)), memcpy(v0 + C, t.adam_m, C * sizeof(float));
    memcpy(v0 + 2 * C, t.adam_v, C * sizeof(float));
    uint64_t step0 = t.step, rng0 = t.rng;
    size_t pos0 = t.pos, epoch0 = t.epoch;
    for (int r = 0; r < repeats; r++) {
        memcpy(t.v, v0, C * sizeof(float)), memcpy(t.adam_m, v0 + C, C * sizeof(float));
        memcpy(t.adam_v, v0 + 2 * C, C * sizeof(float));
        t.step = step0, t.rng = rng0, t.pos = pos0, t.epoch = epoch0;
        for (int s = 0; s < steps; s++) {
            double loss;
            double s0 = bipo_now();
            if (osteps) {
                json_t *st = json_array_get(osteps, (size_t)s), *pj = json_object_get(st, "pairs");
                size_t B = json_array_size(pj);
                for (size_t i = 0; i < B && i < 64; i++)
                    idx[i] = remap[(size_t)json_integer_value(json_array_get(pj, i))];
                int d = (int)json_integer_value(json_object_get(st, "d"));
                loss = bipo_trainer_step_with(&t, idx, B, d);
            } else {
                loss = bipo_trainer_step(&t);
            }
            rep[(size_t)s * repeats + r] = (bipo_now() - s0) * 1e3;
            if (r == 0) losses[s] = loss, tokens[s] = t.last_tokens, ds[s] = t.last_d;
            else if (fabs(loss - losses[s]) > rep_spread) rep_spread = fabs(loss - losses[s]);
            flops[s] = bipo_trainer_step_flops(&t);
        }
    }
    for (int s = 0; s < steps; s++) {
        double *rs_ms = rep + (size_t)s * repeats;
        qsort(rs_ms, (size_t)repeats, sizeof(double), cmp_d);
        ms[s] = rs_ms[repeats / 2];
        double loss = losses[s], dt = ms[s] * 1e-3, fl = flops[s];
        if (s > 0) tok_sum += tokens[s], flop_sum += fl, time_sum += dt;
        json_t *rs = rsteps ? json_array_get(rsteps, (size_t)s) : NULL;
        double rl = rs ? json_number_value(json_object_get(rs, "loss")) : NAN;
        rms[s] = rs ? json_number_value(json_object_get(rs, "ms")) : NAN;
        double diff = rs ? fabs(loss - rl) : NAN;
        if (rs && diff > maxdiff) maxdiff = diff;
        printf("| %d | %+d | %.5f | %.5f | %.1e | %.0f | %.0f | %.1fx | %zu | %.1f |\n", s + 1,
               ds[s], loss, rl, diff, ms[s], rms[s], rms[s] / ms[s], tokens[s], fl / dt / 1e9);
    }
    if (repeats > 1)
        printf("\nper-step ms: median of %d repeats from the same start; losses identical across "
               "repeats within %.1e\n", repeats, rep_spread);
    // medians exclude step 1 (warm-up), like the reference's timing
    int n = steps > 1 ? steps - 1 : steps;
    qsort(ms + (steps > 1), (size_t)n, sizeof(double), cmp_d);
    double med = ms[(steps > 1) + n / 2], rmed = NAN;
    if (rsteps) {
        qsort(rms + (steps > 1), (size_t)n, sizeof(double), cmp_d);
        rmed = rms[(steps > 1) + n / 2];
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double gf = time_sum > 0 ? flop_sum / time_sum / 1e9 : 0;
    double all_init = init_per_pair * (double)pairs.n; // caches of the whole data set, once
    double amort = med + all_init * 1e3 / (double)steps_per_epoch;
    double amort20 = med + all_init * 1e3 / (20.0 * (double)steps_per_epoch);
    printf("\n| | ours | reference | ratio |\n|---|---:|---:|---:|\n");
    printf("| median ms/step | %.0f | %.0f | %.1fx |\n", med, rmed, rmed / med);
    printf("| ms/step incl. cache build amortized over 1 epoch (%zu steps) | %.0f | %.0f | %.1fx |\n",
           steps_per_epoch, amort, rmed, rmed / amort);
    printf("| ms/step incl. cache build amortized over 20 epochs (the paper's vec_ep20) | %.0f | %.0f | %.1fx |\n",
           amort20, rmed, rmed / amort20);
    printf("| tokens/s (rows above layer %d) | %.0f | | |\n", layer, time_sum > 0 ? tok_sum / time_sum : 0);
    printf("| GFLOP/s | %.1f | | |\n| fraction of peak (%.1f GFLOP/s) | %.0f%% | | |\n", gf, peak,
           100 * gf / peak);
    printf("| peak RSS | %.0f MB | %s | |\n", ru.ru_maxrss / 1024.0,
           ref && json_is_number(json_object_get(ref, "peak_rss_mb")) ? "see ref JSON" : "");
    if (rsteps) printf("| max |loss - ref loss| over %d steps | %.2e | | |\n", steps, maxdiff);
    if (t.hp.forward_matmul == BIPO_MATMUL_BF16X3 || t.hp.backward_matmul == BIPO_MATMUL_BF16X3)
        printf("\n(GFLOP/s count each fp32-equivalent product once; bf16x3 runs three bf16 products "
               "per product on AMX, whose bf16 peak is not this fp32 FMA peak)\n");
    bipo_trainer_free(&t);
    if (use != ex) free(use);
    free(remap);
    for (size_t i = 0; i < pairs.n; i++) bipo_example_free(&ex[i]);
    free(ex), free(q), free(a), free(o), free(ms), free(rms), free(rep), free(losses), free(tokens), free(ds), free(flops), free(v0);
    bipo_pairs_free(&pairs);
    bipo_tokenizer_free(tok);
    bipo_model_free(&m);
    if (order) json_decref(order);
    if (ref) json_decref(ref);
    return 0;
}
