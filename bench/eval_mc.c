// bench/eval_mc.c — MMLU accuracy, TruthfulQA MC1/MC2 and neutral-text log-prob of a model with
// no vector (workers/eval_mc.h), as a table with the time each took.
//   eval_mc [--model GGUF] [--data DIR] [--mmlu N] [--tqa N] [--system S]
// Defaults: the default model, $BIPO_DATA (or ~/.cache/bipo-pipeline/data), 100 MMLU items
// (the first of high_school_geography, then abstract_algebra, ...: see below), all 817 TruthfulQA
// questions, the run's system prompt "You are a helpful, honest and concise assistant."
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_data.h" // defines: bipo_mmlu_load, bipo_tqa_load, bipo_text_load
#include "eval_mc.h"   // defines: bipo_eval_mmlu, bipo_eval_tqa, bipo_eval_text
#include "util.h"      // defines: bipo_now, bipo_last_error

static void die(const char *what) {
    fprintf(stderr, "eval_mc: %s: %s\n", what, bipo_last_error());
    exit(1);
}

int main(int argc, char **argv) {
    bipo_blas_tune(argv);
    const char *home = getenv("HOME"), *data = getenv("BIPO_DATA");
    char model[1024], ddir[1024], p[1200];
    snprintf(model, sizeof model, "%s/.cache/bipo-pipeline/SmolLM2-135M-Instruct.Q4_1.gguf", home);
    snprintf(ddir, sizeof ddir, "%s", data ? data : "");
    if (!data) snprintf(ddir, sizeof ddir, "%s/.cache/bipo-pipeline/data", home);
    size_t n_mmlu = 100, n_tqa = 0;
    const char *sys = "You are a helpful, honest and concise assistant.";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) snprintf(model, sizeof model, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--data")) snprintf(ddir, sizeof ddir, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--mmlu")) n_mmlu = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--tqa")) n_tqa = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--system")) sys = argv[i + 1];
    }
    bipo_model m;
    if (bipo_model_load(&m, model, bipo_backend_open("cpu", 0)) != 0) die(model);
    bipo_tokenizer *tok = bipo_tokenizer_load(model);
    if (!tok) die(model);
    bipo_eval_ctx ctx = {&m, tok, bipo_chat_for(tok), sys, 1024, BIPO_MATMUL_FP32};
    bipo_eval_arm arm = {"none", 0, NULL, NULL, NULL};
    static const double zero = 0;
    bipo_mc_opts o = {&zero, 1, BIPO_POS_ALL, 0};
    printf("| check | data | items | value | s |\n|---|---|---:|---:|---:|\n");
    // MMLU: the first n_mmlu items of the five subjects in this order, taken in turn
    static const char *subj[] = {"high_school_geography", "abstract_algebra", "global_facts",
                                 "high_school_computer_science", "machine_learning"};
    size_t left = n_mmlu;
    double acc = 0, pc = 0, t0 = bipo_now();
    size_t done = 0;
    for (size_t s = 0; s < 5 && left; s++) {
        bipo_mc_set set;
        snprintf(p, sizeof p, "%s/mmlu/test/%s_test.csv", ddir, subj[s]);
        if (bipo_mmlu_load(&set, p) != 0) die(p);
        bipo_mc_result r = {0};
        o.max_items = left < set.n ? left : set.n;
        if (bipo_eval_mmlu(&ctx, &arm, &set, &o, &r) != 0) die(p);
        acc += r.accuracy[0] * (double)r.n_mmlu, pc += r.p_correct[0] * (double)r.n_mmlu;
        done += r.n_mmlu, left -= r.n_mmlu;
        printf("| MMLU accuracy | %s | %zu | %.3f | |\n", subj[s], r.n_mmlu, r.accuracy[0]);
        bipo_mc_result_free(&r);
        bipo_mc_set_free(&set);
    }
    printf("| MMLU accuracy | all above | %zu | %.3f | %.1f |\n", done, acc / (double)done, bipo_now() - t0);
    printf("| MMLU p(correct letter) | all above | %zu | %.3f | |\n", done, pc / (double)done);
    bipo_tqa_set t;
    snprintf(p, sizeof p, "%s/truthfulqa/TruthfulQA_v1_817.csv", ddir);
    if (bipo_tqa_load(&t, p) != 0) die(p);
    bipo_mc_result r = {0};
    o.max_items = n_tqa;
    t0 = bipo_now();
    if (bipo_eval_tqa(&ctx, &arm, &t, &o, &r) != 0) die(p);
    printf("| TruthfulQA MC1 | TruthfulQA_v1_817.csv | %zu | %.3f | %.1f |\n", r.n_tqa, r.mc1[0], bipo_now() - t0);
    printf("| TruthfulQA MC2 | TruthfulQA_v1_817.csv | %zu | %.3f | |\n", r.n_tqa, r.mc2[0]);
    char *txt;
    size_t len;
    snprintf(p, sizeof p, "%s", "configs/data/neutral.txt");
    if (bipo_text_load(p, &txt, &len) != 0) die(p);
    t0 = bipo_now();
    if (bipo_eval_text(&ctx, &arm, txt, len, &o, &r) != 0) die(p);
    printf("| neutral text mean log-prob | configs/data/neutral.txt | %zu tokens | %.3f | %.1f |\n",
           r.n_text_tokens, r.mean_logprob[0], bipo_now() - t0);
    free(txt);
    bipo_mc_result_free(&r);
    bipo_tqa_set_free(&t);
    bipo_tokenizer_free(tok);
    bipo_model_free(&m);
    return 0;
}
