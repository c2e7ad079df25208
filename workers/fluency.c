// workers/fluency.c — mean token log-prob of texts under the unsteered model and the
// distinct-2 ratio (see fluency.h).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fluency.h" // defines: bipo_text_mean_logprob, bipo_distinct2, bipo_scored_text
#include "model.h"   // defines: bipo_forward, bipo_acts, bipo_batch
#include "util.h"    // defines: xmalloc, bipo_set_error

// A packed forward holds at most this many tokens and scored rows (logits [rows, V] floats).
enum { PACK_TOKENS = 4096, PACK_ROWS = 256 };

static int check_text(const bipo_config *c, const bipo_scored_text *x, size_t i) {
    size_t n = x->n_prompt + x->n_text;
    if (x->n_prompt == 0) {
        bipo_set_error("fluency: text %zu has no prompt tokens (the first text token needs one)", i);
        return -1;
    }
    if (c->max_pos && n > c->max_pos) {
        bipo_set_error("fluency: text %zu has %zu tokens, more than the model's context of %zu",
                       i, n, c->max_pos);
        return -1;
    }
    for (size_t t = 0; t < n; t++) {
        int id = t < x->n_prompt ? x->prompt[t] : x->text[t - x->n_prompt];
        if (id < 0 || (size_t)id >= c->V) {
            bipo_set_error("fluency: text %zu: token %zu is %d, outside the vocabulary (%zu)", i,
                           t, id, c->V);
            return -1;
        }
    }
    return 0;
}

// Texts [i0, i1) in one packed forward: their log-probs summed into mean_lp, then divided.
static void score_pack(bipo_model *m, bipo_acts *a, const bipo_scored_text *x, size_t i0,
                       size_t i1, bipo_matmul_precision prec, double *mean_lp) {
    const bipo_backend *be = m->be;
    size_t S = i1 - i0, N = 0, M = 0;
    for (size_t i = i0; i < i1; i++) N += x[i].n_prompt + x[i].n_text, M += x[i].n_text;
    size_t *off = xmalloc((S + 1) * sizeof(size_t)), *rows = xmalloc((M ? M : 1) * sizeof(size_t));
    int *tokens = xmalloc(N * sizeof(int)), *targets = xmalloc((M ? M : 1) * sizeof(int));
    off[0] = 0;
    size_t r = 0;
    for (size_t s = 0; s < S; s++) {
        const bipo_scored_text *t = &x[i0 + s];
        int *dst = tokens + off[s];
        memcpy(dst, t->prompt, t->n_prompt * sizeof(int));
        memcpy(dst + t->n_prompt, t->text, t->n_text * sizeof(int));
        for (size_t j = 0; j < t->n_text; j++, r++) {
            rows[r] = off[s] + t->n_prompt - 1 + j; // this row predicts text[j]
            targets[r] = t->text[j];
        }
        off[s + 1] = off[s] + t->n_prompt + t->n_text;
    }
    bipo_batch b = {S, off, tokens};
    float *lp = xmalloc((M ? M : 1) * sizeof(float));
    if (M) {
        bipo_forward(m, a, &b, NULL, rows, M, -1, prec);
        float *lp_dev = be->alloc(2 * M);
        be->logprob_forward(lp_dev, lp_dev + M, a->logits, targets, M, m->cfg.V);
        be->download(lp, lp_dev, M);
        be->free(lp_dev);
    }
    r = 0;
    for (size_t s = 0; s < S; s++) {
        size_t n = x[i0 + s].n_text;
        double sum = 0;
        for (size_t j = 0; j < n; j++) sum += lp[r++];
        mean_lp[i0 + s] = n ? sum / (double)n : NAN;
    }
    free(lp);
    free(targets);
    free(tokens);
    free(rows);
    free(off);
}

int bipo_text_mean_logprob(bipo_model *m, const bipo_scored_text *x, size_t n,
                           bipo_matmul_precision prec, double *mean_lp) {
    for (size_t i = 0; i < n; i++)
        if (check_text(&m->cfg, &x[i], i) != 0) return -1;
    bipo_acts a;
    bipo_acts_init(&a, 0);
    for (size_t i0 = 0; i0 < n;) { // greedy packing; a text over the budget goes alone
        size_t i1 = i0, N = 0, M = 0;
        while (i1 < n && (i1 == i0 || (N + x[i1].n_prompt + x[i1].n_text <= PACK_TOKENS &&
                                       M + x[i1].n_text <= PACK_ROWS))) {
            N += x[i1].n_prompt + x[i1].n_text, M += x[i1].n_text;
            i1++;
        }
        score_pack(m, &a, x, i0, i1, prec, mean_lp);
        i0 = i1;
    }
    bipo_acts_free(&a, m->be);
    return 0;
}

static int cmp_pair(const void *pa, const void *pb) {
    const int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

double bipo_distinct2(const int *ids, size_t n) {
    if (n < 2) return 0;
    size_t nb = n - 1, distinct = 0;
    int64_t *bg = xmalloc(nb * sizeof(int64_t));
    for (size_t i = 0; i < nb; i++) bg[i] = (int64_t)ids[i] * ((int64_t)1 << 32) + (uint32_t)ids[i + 1];
    qsort(bg, nb, sizeof *bg, cmp_pair);
    for (size_t i = 0; i < nb; i++) distinct += i == 0 || bg[i] != bg[i - 1];
    free(bg);
    return (double)distinct / (double)nb;
}
