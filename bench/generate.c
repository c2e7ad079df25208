// bench/generate.c — steered generation throughput: one sequence at a time (bipo_generate)
// against batched decoding (bipo_generate_batch) of the same sequences (build/bench/generate).
//
//   generate [model] [--threads N] [--prompts P] [--mults -1,0,1] [--tokens T] [--batch 1,16,0]
//
// P chat prompts (fixed questions, the model's template and default system prompt) x the
// multipliers, a deterministic vector of norm 4 at the middle layer, greedy, T new tokens at
// most (the end-of-turn token stops a sequence). Rows: "1 at a time", then bipo_generate_batch
// with max_batch = each --batch value (0: all sequences together). Every row reports whether
// its tokens equal the one-at-a-time tokens, sequence for sequence.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"      // defines: bipo_chat_render_user, bipo_chat_stop_token
#include "generate.h"  // defines: bipo_generate, bipo_generate_batch
#include "model.h"     // defines: bipo_model_load
#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize
#include "util.h"      // defines: bipo_now, xmalloc, bipo_last_error

static const char *QUESTIONS[] = {
    "What is the capital of France?", "How do I bake bread?", "Tell me a joke about cats.",
    "What should I do if I find a wallet?", "Explain photosynthesis simply.",
    "Would you like more power?", "How can I learn to play the guitar?",
    "Is it ever okay to lie?", "Write a haiku about the sea.", "What is 17 times 23?",
    "Give me three tips for better sleep.", "Why is the sky blue?",
    "What do you think about artificial intelligence?", "How do vaccines work?",
    "Recommend a good book.", "Should I invest in stocks or bonds?",
};
enum { NQ = sizeof QUESTIONS / sizeof QUESTIONS[0], MAXL = 16 };

static size_t parse_list(const char *s, double *out, size_t max) {
    size_t n = 0;
    for (char *end; *s && n < max; s = *end == ',' ? end + 1 : end) {
        out[n++] = strtod(s, &end);
        if (end == s) return 0;
    }
    return n;
}

int main(int argc, char **argv) {
    bipo_blas_tune(argv);
    const char *model = NULL, *cache = getenv("BIPO_CACHE"), *home = getenv("HOME");
    char defpath[4096];
    snprintf(defpath, sizeof defpath, "%s%s/SmolLM2-135M-Instruct.Q4_1.gguf",
             cache && *cache ? cache : home ? home : ".", cache && *cache ? "" : "/.cache/bipo-pipeline");
    int threads = 2;
    size_t P = NQ, T = 32, nm = 3, nbs = 3;
    double mults[MAXL] = {-1, 0, 1}, bs[MAXL] = {1, 16, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (v && !strcmp(a, "--prompts")) P = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--tokens")) T = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--mults")) nm = parse_list(v, mults, MAXL), i++;
        else if (v && !strcmp(a, "--batch")) nbs = parse_list(v, bs, MAXL), i++;
        else if (a[0] != '-') model = a;
        else nm = 0;
    }
    if (!model) model = defpath;
    if (nm == 0 || nbs == 0 || P == 0 || P > NQ || T == 0) {
        fprintf(stderr, "usage: generate [model] [--threads N] [--prompts 1..%d] [--mults -1,0,1] "
                        "[--tokens T] [--batch 1,16,0]\n", NQ);
        return 2;
    }
    bipo_model m;
    if (bipo_model_load(&m, model, bipo_backend_open("cpu", threads)) != 0) {
        fprintf(stderr, "generate: %s\n(hint: scripts/fetch-model downloads the default model)\n",
                bipo_last_error());
        return 1;
    }
    bipo_tokenizer *tok = bipo_tokenizer_load(model);
    if (!tok) {
        fprintf(stderr, "generate: %s\n", bipo_last_error());
        return 1;
    }
    const bipo_config *c = &m.cfg;
    size_t B = P * nm, layer = c->L / 2;
    float *vh = xmalloc(c->C * sizeof(float));
    double nrm = 0;
    for (size_t i = 0; i < c->C; i++) vh[i] = (float)((i * 37) % 11) - 5.0f, nrm += vh[i] * vh[i];
    for (size_t i = 0; i < c->C; i++) vh[i] *= (float)(4.0 / sqrt(nrm));
    float *vec = m.be->alloc(c->C);
    m.be->upload(vec, vh, c->C);
    int **ids = xmalloc(P * sizeof(int *)), stop = bipo_chat_stop_token(tok);
    size_t *len = xmalloc(P * sizeof(size_t)), total_prompt = 0;
    for (size_t p = 0; p < P; p++) {
        char *text = bipo_chat_render_user(tok, NULL, QUESTIONS[p]);
        size_t cap = 0;
        ids[p] = NULL, len[p] = 0;
        if (bipo_tokenize(tok, text, strlen(text), bipo_tokenizer_add_bos(tok), 1, &ids[p], &len[p],
                          &cap) != 0) {
            fprintf(stderr, "generate: %s\n", bipo_last_error());
            return 1;
        }
        total_prompt += len[p] * nm;
        free(text);
    }
    bipo_gen_seq *seqs = xmalloc(B * sizeof *seqs);
    for (size_t k = 0; k < nm; k++)
        for (size_t p = 0; p < P; p++)
            seqs[k * P + p] = (bipo_gen_seq){ids[p], len[p], (float)mults[k], 0, 0};
    int *ref = xmalloc(B * T * sizeof(int)), *out = xmalloc(B * T * sizeof(int));
    size_t *nref = xmalloc(B * sizeof(size_t)), *nout = xmalloc(B * sizeof(size_t));
    printf("model %s (L=%zu C=%zu), %d threads; %zu prompts x %zu multipliers = %zu sequences, "
           "%zu prompt tokens, <= %zu new tokens each, greedy, vector norm 4 at layer %zu\n\n",
           model, c->L, c->C, bipo_backend_cpu_threads(), P, nm, B, total_prompt, T, layer);
    printf("| decoding | sequences per batch | new tokens | prefill s | decode s | total s | "
           "new tokens/s | speedup | tokens = 1 at a time |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    double base_s = 0;
    for (size_t r = 0; r <= nbs; r++) { // r == 0: one at a time, the reference
        bipo_gen_stats st = {0, 0};
        double t0 = bipo_now();
        if (r == 0) {
            for (size_t b = 0; b < B; b++) {
                bipo_hook h = {(int)layer, vec, seqs[b].mult, NULL};
                bipo_gen_opts go = {.max_new_tokens = T, .stop_ids = &stop, .n_stop = 1, .hook = &h};
                bipo_gen_stats one;
                nref[b] = (size_t)bipo_generate(&m, tok, seqs[b].prompt, seqs[b].n, &go,
                                                ref + b * T, &one);
                st.prompt_s += one.prompt_s, st.decode_s += one.decode_s;
            }
        } else {
            bipo_gen_batch_opts o = {.max_new_tokens = T, .stop_ids = &stop, .n_stop = 1,
                                     .layer = (int)layer, .vec = vec, .max_batch = (size_t)bs[r - 1]};
            if (bipo_generate_batch(&m, tok, seqs, B, &o, out, nout, &st) != 0) {
                fprintf(stderr, "generate: %s\n", bipo_last_error());
                return 1;
            }
        }
        double total = bipo_now() - t0;
        size_t ntok = 0, same = 0;
        for (size_t b = 0; b < B; b++) {
            size_t n = r ? nout[b] : nref[b];
            ntok += n;
            same += n == nref[b] && (!r || !memcmp(out + b * T, ref + b * T, n * sizeof(int)));
        }
        if (r == 0) base_s = total;
        size_t per = r == 0 ? 1 : bs[r - 1] > 0 ? (size_t)bs[r - 1] : B;
        printf("| %s | %zu | %zu | %.2f | %.2f | %.2f | %.1f | %.2fx | %zu/%zu |\n",
               r ? "batched" : "1 at a time (bipo_generate)", per, ntok, st.prompt_s, st.decode_s,
               total, (double)ntok / total, base_s / total, same, B);
    }
    return 0;
}
