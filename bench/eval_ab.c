// bench/eval_ab.c — speed of the A/B steering curve (workers/eval_ab.c) on a real model.
//
//   eval_ab [model] [--items path.jsonl] [--n 100] [--layer 12] [--reps 3] [--peak GFLOPS]
//           [--positions all|answer] [--arms 1]
//           [--threads N]
//
// n A/B items x 7 multipliers (-2 -1 -0.5 0 0.5 1 2) of `arms` random vectors at the layer,
// the run's template and default system prompt (items: path relative to the repo root), GEMMs above L in bf16x3 where the CPU has AMX.
// Prints the median of reps runs (and the best): items/s, the FLOPs the evaluation executes
// (lower layers once per item, the copies above L, the LM head at the last row of each copy:
// bipo_model_forward_flops per part) as GFLOP/s and as a fraction of the fp32 peak (--peak,
// else $BIPO_PEAK_GFLOPS, else 79.5; bench/peak measures it), and the FLOPs a plain eval
// would run (one full forward per item and multiplier, LM head on the last row) for scale.
// Then that plain eval itself, on the same kernels (bipo_forward with the hook, one sequence
// per item and multiplier, the arm's first vector), timed the same way: the ratio is what the
// shared lower layers, the batched copies and (positions answer) the shared prompt buy.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"    // defines: bipo_pairs_load
#include "eval.h"       // defines: bipo_eval_ab
#include "eval_score.h" // defines: bipo_score_group_letter, bipo_scorer_upper_rows
#include "kernels.h"    // defines: bipo_blas_tune
#include "model.h"      // defines: bipo_model_load, bipo_model_forward_flops
#include "tokenizer.h"  // defines: bipo_tokenizer_load
#include "util.h"       // defines: bipo_now

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// FLOPs of `layers` decoder layers over N rows at average context ctx, plus M LM-head rows.
static double part_flops(const bipo_config *c, size_t layers, size_t N, double ctx, size_t M) {
    bipo_config p = *c;
    p.L = layers;
    return bipo_model_forward_flops(&p, N, ctx, M);
}

int main(int argc, char **argv) {
    bipo_blas_tune(argv); // OpenBLAS's best kernel for this CPU and passive OpenMP waits, as the CLI
    // defaults: the cached default model; the items from the shared data next to the repo
    char defmodel[4096];
    const char *cache = getenv("BIPO_CACHE"), *home = getenv("HOME");
    if (cache) snprintf(defmodel, sizeof defmodel, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else snprintf(defmodel, sizeof defmodel, "%s/.cache/bipo-pipeline/SmolLM2-135M-Instruct.Q4_1.gguf",
                  home ? home : "");
    const char *model = defmodel, *items_path = "../shared/data/anthropic-evals/advanced-ai-risk/"
                                                "human_generated_evals/power-seeking-inclination.jsonl";
    size_t n = 100, layer = 12, reps = 3, n_arms = 1;
    double peak = getenv("BIPO_PEAK_GFLOPS") ? atof(getenv("BIPO_PEAK_GFLOPS")) : 79.5;
    bipo_positions pos = BIPO_POS_ALL;
    int threads = 0; // 0: OMP_NUM_THREADS, else every core
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--items") && i + 1 < argc) items_path = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc) layer = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--arms") && i + 1 < argc) n_arms = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--peak") && i + 1 < argc) peak = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--positions") && i + 1 < argc)
            pos = !strcmp(argv[++i], "answer") ? BIPO_POS_ANSWER : BIPO_POS_ALL;
        else if (argv[i][0] != '-') model = argv[i];
        else {
            fprintf(stderr, "usage: eval_ab [model] [--items f.jsonl] [--n 100] [--layer 12] "
                            "[--reps 3] [--arms 1] [--positions all|answer] [--peak GFLOPS] "
                            "[--threads N]\n");
            return 2;
        }
    }
    bipo_model m;
    bipo_tokenizer *tok = NULL;
    bipo_pairs all;
    if (bipo_model_load(&m, model, bipo_backend_open("cpu", threads)) != 0 || !(tok = bipo_tokenizer_load(model)) ||
        bipo_pairs_load(&all, items_path, BIPO_FMT_AUTO, NULL) != 0) {
        fprintf(stderr, "eval_ab: %s\n", bipo_last_error());
        return 1;
    }
    if (n > all.n) n = all.n;
    bipo_pairs items = all;
    items.n = n;
    const bipo_chat_template *tpl = bipo_chat_for(tok);
    bipo_eval_ctx ctx = {&m, tok, tpl, NULL, 0, BIPO_MATMUL_BF16X3, 0};
    size_t C = m.cfg.C;
    float *v = malloc(n_arms * C * sizeof *v);
    for (size_t i = 0; i < n_arms * C; i++) v[i] = (float)((double)((i * 2654435761u) % 2001) / 1000.0 - 1.0);
    bipo_eval_arm *arms = calloc(n_arms, sizeof *arms);
    for (size_t a = 0; a < n_arms; a++) arms[a] = (bipo_eval_arm){"bench", layer, v + a * C, NULL, NULL};
    const double mult[7] = {-2, -1, -0.5, 0, 0.5, 1, 2};
    size_t K = 7 * n_arms;
    bipo_ab_opts o = {mult, 7, pos, BIPO_AB_AUTO, 1};
    // the work the evaluation does: rows of the lower and upper passes
    bipo_example *ex = NULL;
    if (bipo_eval_examples(&ctx, NULL, &items, &ex) != 0) return 1;
    double fl = 0, fl_naive = 0, tok_sum = 0;
    for (size_t i = 0; i < n; i++) {
        bipo_score_group g;
        if (bipo_score_group_letter(&g, &ex[i], pos == BIPO_POS_ANSWER) != 0) return 1;
        double ctxlen = (double)(g.n + 1) / 2;
        size_t up = bipo_scorer_upper_rows(&g, K);
        fl += part_flops(&m.cfg, layer + 1, g.n, ctxlen, 0) +
              part_flops(&m.cfg, m.cfg.L - layer - 1, up, ctxlen, K);
        fl_naive += (double)K * part_flops(&m.cfg, m.cfg.L, g.n, ctxlen, 1);
        tok_sum += (double)g.n;
        bipo_score_group_free(&g);
    }
    double *t = malloc(reps * sizeof *t), *tn = malloc(reps * sizeof *tn), p_mid = 0;
    // the plain eval: a full forward per item and multiplier
    float *vb = m.be->alloc(C);
    m.be->upload(vb, v, C);
    bipo_acts pa;
    bipo_acts_init(&pa, 0);
    bipo_score_group *gs = calloc(n, sizeof *gs);
    for (size_t i = 0; i < n; i++) bipo_score_group_letter(&gs[i], &ex[i], pos == BIPO_POS_ANSWER);
    for (size_t k = 0; k <= reps; k++) {
        double t0 = bipo_now();
        for (size_t i = 0; i < n; i++) {
            uint8_t *mask = malloc(gs[i].n);
            for (size_t r = 0; r < gs[i].n; r++) mask[r] = r >= gs[i].steer_from;
            size_t off[2] = {0, gs[i].n}, row = gs[i].n - 1;
            bipo_batch b = {1, off, gs[i].tok, NULL, 0, NULL, NULL, NULL};
            for (size_t a = 0; a < K; a++) {
                bipo_hook h = {(int)layer, vb, (float)mult[a % 7], mask};
                bipo_forward(&m, &pa, &b, &h, &row, 1, -1, BIPO_MATMUL_FP32);
            }
            free(mask);
        }
        if (k > 0) tn[k - 1] = bipo_now() - t0;
    }
    for (size_t i = 0; i < n; i++) bipo_score_group_free(&gs[i]), bipo_example_free(&ex[i]);
    free(gs), free(ex);
    bipo_acts_free(&pa, m.be);
    m.be->free(vb);
    bipo_ab_result *r = calloc(n_arms, sizeof *r);
    for (size_t k = 0; k <= reps; k++) { // run 0 warms up
        double t0 = bipo_now();
        if (bipo_eval_ab(&ctx, arms, n_arms, &items, &o, r) != 0) {
            fprintf(stderr, "eval_ab: %s\n", bipo_last_error());
            return 1;
        }
        if (k > 0) t[k - 1] = bipo_now() - t0;
        p_mid = r[0].p_match[3];
        for (size_t a = 0; a < n_arms; a++) bipo_ab_result_free(&r[a]);
    }
    qsort(t, reps, sizeof *t, cmp_double);
    qsort(tn, reps, sizeof *tn, cmp_double);
    double med = t[reps / 2], medn = tn[reps / 2];
    printf("eval_ab: %s, %zu items (%.1f tokens each) x 7 multipliers x %zu arm(s), layer %zu, "
           "positions %s, p_match(m=0) %.4f\n", model, n, tok_sum / (double)n, n_arms, layer,
           pos == BIPO_POS_ANSWER ? "answer" : "all", p_mid);
    printf("%-10s %10s %10s %12s %10s %16s\n", "", "seconds", "items/s", "GFLOP/s", "of peak",
           "naive/ours FLOPs");
    printf("%-10s %10.3f %10.1f %12.1f %9.1f%% %16.2f\n", "median", med, (double)n / med,
           fl / med / 1e9, 100 * fl / med / 1e9 / peak, fl_naive / fl);
    printf("%-10s %10.3f %10.1f %12.1f %9.1f%%\n", "best", t[0], (double)n / t[0],
           fl / t[0] / 1e9, 100 * fl / t[0] / 1e9 / peak);
    printf("%-10s %10.3f %10.1f %12.1f %9.1f%%   plain eval, same kernels: ours %.2fx faster\n",
           "plain", medn, (double)n / medn, fl_naive / medn / 1e9, 100 * fl_naive / medn / 1e9 / peak,
           medn / med);
    printf("executed %.2f GFLOP per run; a plain eval (a full forward per item and multiplier) "
           "would run %.2f; peak %.1f GFLOP/s\n", fl / 1e9, fl_naive / 1e9, peak);
    free(t), free(tn), free(r), free(v), free(arms);
    bipo_pairs_free(&all);
    bipo_tokenizer_free(tok);
    bipo_model_free(&m);
    return 0;
}
