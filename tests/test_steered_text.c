// tests/test_steered_text.c — workers/steered_text.c on a tiny random GGUF model with its
// tokenizer: every (prompt, multiplier) continuation equals bipo_generate on the chat-rendered
// prompt with that multiplier and the prompt's seed, its text equals bipo_detokenize, its
// mean log-prob equals bipo_text_mean_logprob of that text alone and its distinct-2 a direct
// count; multiplier-major order; a bad prompt fails with a message.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fluency.h"       // defines: bipo_text_mean_logprob, bipo_distinct2
#include "generate.h"      // defines: bipo_generate
#include "steered_text.h"  // defines: bipo_steered_generate
#include "tensors.h"       // defines: BIPO_DT_F32
#include "testlib.h"       // defines: EXPECT, tl_summary
#include "testmodel.h"     // defines: tm_spec, tm_write_gguf
#include "util.h"          // defines: bipo_last_error

enum { P = 3, K = 3, NEW = 8 };

int main(void) {
    char path[] = "/tmp/bipo-test-steered-XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    if (fd < 0) return 1;
    close(fd);
    tm_spec s = {.L = 3, .C = 64, .NH = 4, .NKV = 2, .HD = 16, .FF = 128, .V = 320,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 21, .max_pos = 256};
    EXPECT(tm_write_gguf(&s, path, BIPO_DT_F32, 3) == 0, "write: %s", bipo_last_error());
    bipo_model m;
    bipo_tokenizer *tok = NULL;
    if (bipo_model_load(&m, path, bipo_backend_open("cpu", 0)) != 0 ||
        !(tok = bipo_tokenizer_load(path))) {
        EXPECT(0, "load: %s", bipo_last_error());
        return tl_summary("test_steered_text");
    }
    float v[64];
    for (int i = 0; i < 64; i++) v[i] = (float)((i * 13) % 7 - 3) * 0.4f;
    const char *prompts[P] = {"hello there", "a b c", "what is it"};
    const double mult[K] = {-1, 0, 1.5};
    const bipo_chat_template *tpl = bipo_chat_template_by_name("chatml");
    bipo_steered_gen_opts o = {.m = &m, .tok = tok, .tpl = tpl, .system = "Be kind.", .layer = 1,
                               .v = v, .mult = mult, .n_mult = K, .max_new_tokens = NEW,
                               .temperature = 1.0, .top_p = 0.95, .seed = 40, .max_batch = 4};
    bipo_steered_text out[P * K];
    EXPECT(bipo_steered_generate(&o, prompts, P, out) == 0, "generate: %s", bipo_last_error());
    float *vb = m.be->alloc(64);
    m.be->upload(vb, v, 64);
    int stop = bipo_chat_eos(tpl, tok), one[NEW];
    size_t same_ids = 0, same_text = 0, same_lp = 0, same_d2 = 0, order = 0, differ = 0;
    for (size_t k = 0; k < K; k++)
        for (size_t p = 0; p < P; p++) {
            const bipo_steered_text *t = &out[k * P + p];
            order += t->prompt == p && t->mult == mult[k];
            char *text = bipo_chat_render(tpl, "Be kind.", prompts[p]);
            int *ids = NULL;
            size_t n = 0, cap = 0, len;
            bipo_tokenize(tok, text, strlen(text), bipo_tokenizer_add_bos(tok), 1, &ids, &n, &cap);
            bipo_hook h = {1, vb, (float)mult[k], NULL};
            bipo_gen_opts go = {.max_new_tokens = NEW, .temperature = 1.0, .top_p = 0.95,
                                .seed = 40 + p, .stop_ids = &stop, .n_stop = 1, .hook = &h};
            long nn = bipo_generate(&m, tok, ids, n, &go, one, NULL);
            same_ids += nn == (long)t->n_ids && !memcmp(one, t->ids, t->n_ids * sizeof(int));
            char *dt = bipo_detokenize(tok, t->ids, t->n_ids, BIPO_DETOK_SKIP_SPECIAL, &len);
            same_text += strcmp(dt, t->text) == 0;
            bipo_scored_text sc = {ids, n, t->ids, t->n_ids};
            double lp;
            bipo_text_mean_logprob(&m, &sc, 1, BIPO_MATMUL_FP32, &lp);
            same_lp += t->n_ids ? fabs(lp - t->mean_logprob) < 1e-6 : isnan(t->mean_logprob);
            size_t bigrams = t->n_ids > 1 ? t->n_ids - 1 : 0, distinct = 0;
            for (size_t i = 0; i < bigrams; i++) { // first occurrence of each bigram
                size_t j = 0;
                while (j < i && (t->ids[j] != t->ids[i] || t->ids[j + 1] != t->ids[i + 1])) j++;
                distinct += j == i;
            }
            same_d2 += fabs(t->distinct2 - (bigrams ? (double)distinct / bigrams : 0)) < 1e-12;
            if (k > 0) differ += t->n_ids != out[p].n_ids ||
                                 memcmp(t->ids, out[p].ids, t->n_ids * sizeof(int)) != 0;
            free(dt), free(ids), free(text);
        }
    EXPECT(order == P * K, "multiplier-major order: %zu of %d", order, P * K);
    EXPECT(same_ids == P * K, "tokens = bipo_generate alone: %zu of %d", same_ids, P * K);
    EXPECT(same_text == P * K, "text = bipo_detokenize: %zu of %d", same_text, P * K);
    EXPECT(same_lp == P * K, "mean log-prob = scored alone: %zu of %d", same_lp, P * K);
    EXPECT(same_d2 == P * K, "distinct-2 = direct count: %zu of %d", same_d2, P * K);
    EXPECT(differ > 0, "the multipliers changed no continuation");
    printf("steered texts: %d prompts x %d multipliers; ids, text, fluency as computed alone; "
           "e.g. mult %g: mean log-prob %.3f, distinct-2 %.2f\n", P, K, out[0].mult,
           out[0].mean_logprob, out[0].distinct2);
    bipo_steered_texts_free(out, P * K);
    m.be->free(vb);
    bipo_tokenizer_free(tok);
    bipo_model_free(&m);
    unlink(path);
    return tl_summary("test_steered_text");
}
