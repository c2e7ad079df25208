// workers/fluency.h — fluency of generated text, for steered-generation evaluation: the mean
// token log-prob of the text under the unsteered model (given its prompt) and the distinct-2
// ratio (Li et al. 2016: distinct token bigrams / token bigrams).
//
// Shapes: V vocab; per text n_prompt + n_text tokens, scored at the n_text text tokens.
#ifndef BIPO_FLUENCY_H
#define BIPO_FLUENCY_H
#include <stddef.h>

#include "model.h" // defines: bipo_model, bipo_matmul_precision

// A text to score: its tokens text[n_text] after prompt[n_prompt] (n_prompt >= 1: the first
// text token is predicted from the last prompt position).
typedef struct {
    const int *prompt;
    size_t n_prompt;
    const int *text;
    size_t n_text;
} bipo_scored_text;

// mean_lp[i] = (1/n_text) sum_t log p(text[t] | prompt, text[<t]) under m without steering,
// NaN for a text without tokens. Many texts share packed forwards (a few thousand tokens and a
// few hundred scored rows per forward). 0, or -1 + bipo_set_error naming the text (empty
// prompt, token outside the vocabulary, longer than the model's context).
int bipo_text_mean_logprob(bipo_model *m, const bipo_scored_text *x, size_t n,
                           bipo_matmul_precision prec, double *mean_lp);

// Distinct token bigrams / token bigrams of ids[n]; 0 when n < 2 (no bigrams).
double bipo_distinct2(const int *ids, size_t n);

#endif
