// workers/steered_text.c — steered continuations of many prompts at many multipliers with
// their fluency scores (see steered_text.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fluency.h"       // defines: bipo_text_mean_logprob, bipo_distinct2
#include "generate.h"      // defines: bipo_generate_batch, bipo_gen_seq
#include "steered_text.h"  // defines: bipo_steered_generate, bipo_steered_text
#include "tokenizer.h"     // defines: bipo_tokenize, bipo_detokenize
#include "util.h"          // defines: xmalloc, xcalloc, bipo_set_error

// Chat-rendered token ids of every prompt: ids[p] (malloc'd), n[p].
static int encode_prompts(const bipo_steered_gen_opts *o, const char *const *prompts, size_t P,
                          int **ids, size_t *n) {
    const bipo_chat_template *tpl = o->tpl ? o->tpl : bipo_chat_for(o->tok);
    for (size_t p = 0; p < P; p++) {
        char *text = bipo_chat_render(tpl, o->system, prompts[p]);
        size_t cap = 0;
        n[p] = 0;
        int rc = bipo_tokenize(o->tok, text, strlen(text), bipo_tokenizer_add_bos(o->tok), 1,
                               &ids[p], &n[p], &cap);
        free(text);
        if (rc != 0) return -1;
    }
    return 0;
}

int bipo_steered_generate(const bipo_steered_gen_opts *o, const char *const *prompts,
                          size_t n_prompts, bipo_steered_text *out) {
    bipo_model *m = o->m;
    const size_t P = n_prompts, K = o->n_mult, B = P * K, T = o->max_new_tokens;
    memset(out, 0, B * sizeof *out);
    int rc = -1, **ids = xcalloc(P ? P : 1, sizeof(int *)), stop = bipo_chat_eos(
                                 o->tpl ? o->tpl : bipo_chat_for(o->tok), o->tok);
    size_t *n = xcalloc(P ? P : 1, sizeof(size_t)), *n_out = xcalloc(B ? B : 1, sizeof(size_t));
    int *tokens = xmalloc((B * T > 0 ? B * T : 1) * sizeof(int));
    bipo_gen_seq *seqs = xmalloc((B ? B : 1) * sizeof *seqs);
    bipo_scored_text *sc = xmalloc((B ? B : 1) * sizeof *sc);
    double *lp = xmalloc((B ? B : 1) * sizeof(double));
    float *vec = NULL;
    if (encode_prompts(o, prompts, P, ids, n) != 0) goto out;
    int steer = o->v && o->layer >= 0;
    if (steer) {
        vec = m->be->alloc(m->cfg.C);
        m->be->upload(vec, o->v, m->cfg.C);
    }
    for (size_t k = 0; k < K; k++)
        for (size_t p = 0; p < P; p++)
            seqs[k * P + p] = (bipo_gen_seq){ids[p], n[p], (float)o->mult[k],
                                             o->answer_only ? n[p] - 1 : 0, o->seed + p};
    bipo_gen_batch_opts go = {.max_new_tokens = T, .temperature = o->temperature,
                              .top_p = o->top_p, .stop_ids = &stop, .n_stop = 1,
                              .layer = steer ? o->layer : -1, .vec = vec, .prec = o->prec,
                              .max_batch = o->max_batch};
    if (bipo_generate_batch(m, o->tok, seqs, B, &go, tokens, n_out, NULL) != 0) goto out;
    for (size_t b = 0; b < B; b++)
        sc[b] = (bipo_scored_text){seqs[b].prompt, seqs[b].n, tokens + b * T, n_out[b]};
    if (bipo_text_mean_logprob(m, sc, B, o->prec, lp) != 0) goto out;
    for (size_t b = 0; b < B; b++) {
        bipo_steered_text *t = &out[b];
        size_t len;
        t->prompt = b % (P ? P : 1), t->mult = o->mult[b / (P ? P : 1)];
        t->n_ids = n_out[b];
        t->ids = xmalloc((n_out[b] ? n_out[b] : 1) * sizeof(int));
        memcpy(t->ids, tokens + b * T, n_out[b] * sizeof(int));
        t->text = bipo_detokenize(o->tok, t->ids, t->n_ids, BIPO_DETOK_SKIP_SPECIAL, &len);
        t->mean_logprob = lp[b];
        t->distinct2 = bipo_distinct2(t->ids, t->n_ids);
    }
    rc = 0;
out:
    if (rc) bipo_steered_texts_free(out, B);
    if (vec) m->be->free(vec);
    for (size_t p = 0; p < P; p++) free(ids[p]);
    free(ids), free(n), free(n_out), free(tokens), free(seqs), free(sc), free(lp);
    return rc;
}

void bipo_steered_texts_free(bipo_steered_text *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(t[i].ids);
        free(t[i].text);
        t[i].ids = NULL, t[i].text = NULL;
    }
}
