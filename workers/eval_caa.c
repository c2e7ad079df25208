// workers/eval_caa.c — CAA vectors (Rimsky et al. 2024): the mean over pairs of the
// difference of h_L between the matching and the not-matching sequence, tokenized exactly as
// BiPO trains on them. h_L is the output of model.layers[layer] (hidden_states[layer+1]),
// where the hook adds the vector. Letter answers: read at the answer letter's token (CAA's
// position -2 of "... (A)"); text pairs: the mean over each response's tokens (the rows BiPO
// scores: the response and its end-of-turn token).
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "eval_score.h" // defines: bipo_scorer, bipo_score_group_text
#include "util.h"       // defines: bipo_set_error, xmalloc

// acc[C] += sign * the mean of h's rows of sequence k: the letter token (letter) or the
// response tokens.
static void add_rows(double *acc, const float *h, const bipo_score_group *g,
                     const bipo_example *e, int k, size_t letter_at, double sign, size_t C) {
    size_t j0 = letter_at ? letter_at : e->p[k], j1 = letter_at ? letter_at + 1 : e->n[k];
    double w = sign / (double)(j1 - j0);
    for (size_t j = j0; j < j1; j++) {
        const float *r = h + bipo_score_group_row(g, k, j) * C;
        for (size_t c = 0; c < C; c++) acc[c] += w * r[c];
    }
}

int bipo_caa_vector(const bipo_eval_ctx *ctx, size_t layer, const bipo_pairs *train,
                    float *out) {
    bipo_model *m = ctx->m;
    size_t C = m->cfg.C, n = train ? train->n : 0;
    if (n == 0 || layer >= m->cfg.L) {
        bipo_set_error("CAA vector: needs at least one pair (got %zu) and a layer below %zu (got "
                       "%zu)", n, m->cfg.L, layer);
        return -1;
    }
    int letter = bipo_pairs_are_letters(train); // n >= 1 here
    bipo_example *ex = NULL;
    if (bipo_eval_examples(ctx, ctx->system, train, &ex) != 0) return -1;
    bipo_score_group *g = xcalloc(n, sizeof *g);
    size_t *at = xcalloc(n, sizeof *at); // letter token index (0: text pair)
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        bipo_score_group_text(&g[i], &ex[i], 0, 1, -1);
        size_t lim = ex[i].n[0] < ex[i].n[1] ? ex[i].n[0] : ex[i].n[1], d = 0;
        while (letter && d < lim && ex[i].tok[0][d] == ex[i].tok[1][d]) d++;
        if (letter && (d == lim || d < ex[i].p[0] || d < ex[i].p[1])) {
            bipo_set_error("%s line %zu: the letter answers '%s' and '%s' give no distinct "
                           "answer token", train->path ? train->path : "pairs", train->p[i].line,
                           train->p[i].matching, train->p[i].not_matching);
            rc = -1;
            break;
        }
        at[i] = letter ? d : 0;
    }
    double *acc = xcalloc(C, sizeof *acc);
    float *h = NULL;
    bipo_scorer sc;
    bipo_scorer_init(&sc, m);
    for (size_t i0 = 0; i0 < n && rc == 0;) {
        size_t G = 0, rows = 0;
        while (i0 + G < n && (G == 0 || rows + g[i0 + G].n <= (ctx->max_rows ? ctx->max_rows : 4096))) rows += g[i0 + G++].n;
        bipo_scorer_lower(&sc, g + i0, G, layer);
        for (size_t q = 0; q < G; q++) {
            const bipo_score_group *gq = &g[i0 + q];
            h = xrealloc(h, gq->n * C * sizeof *h);
            m->be->download(h, bipo_scorer_h(&sc, q, layer), gq->n * C);
            add_rows(acc, h, gq, &ex[i0 + q], 0, at[i0 + q], 1.0, C);
            add_rows(acc, h, gq, &ex[i0 + q], 1, at[i0 + q], -1.0, C);
        }
        i0 += G;
    }
    for (size_t c = 0; rc == 0 && c < C; c++) out[c] = (float)(acc[c] / (double)n);
    bipo_scorer_free(&sc);
    for (size_t i = 0; i < n; i++) bipo_score_group_free(&g[i]), bipo_example_free(&ex[i]);
    free(g), free(ex), free(at), free(acc), free(h);
    return rc;
}
