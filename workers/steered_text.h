// workers/steered_text.h — "generate these prompts at these multipliers, return texts and
// fluency": the rank side of the eval.generate block (the pipeline fills the options from the
// config and stores the results). Chat prompts are rendered with the template and system
// prompt, all (prompt, multiplier) sequences decode together (bipo_generate_batch), and every
// continuation is scored for fluency (workers/fluency.h) under the unsteered model.
#ifndef BIPO_STEERED_TEXT_H
#define BIPO_STEERED_TEXT_H
#include <stddef.h>
#include <stdint.h>

#include "chat.h"  // defines: bipo_chat_template, bipo_tokenizer
#include "model.h" // defines: bipo_model, bipo_matmul_precision

typedef struct {
    bipo_model *m;
    const bipo_tokenizer *tok;
    const bipo_chat_template *tpl; // NULL: the tokenizer's
    const char *system;            // NULL: the template's default
    int layer;                     // steered layer; -1 or v NULL: none (multipliers ignored)
    const float *v;                // host [C]
    const double *mult;            // [n_mult]
    size_t n_mult;
    int answer_only;               // 0: steer every position (BiPO); 1: from the last prompt
                                   // token on, i.e. the answer (CAA)
    size_t max_new_tokens;
    double temperature, top_p;     // temperature <= 0: greedy
    uint64_t seed;                 // prompt p samples with seed + p at every multiplier
    size_t max_batch;              // sequences decoded together at most (0: all)
    bipo_matmul_precision prec;
} bipo_steered_gen_opts;

typedef struct {
    size_t prompt;       // index into the prompts
    double mult;         // its multiplier
    int *ids;            // [n_ids] the continuation (the end-of-turn token not included)
    size_t n_ids;
    char *text;          // decoded, special tokens skipped
    double mean_logprob; // mean token log-prob under the unsteered model (NaN when empty)
    double distinct2;    // distinct token bigrams / bigrams (0 under two tokens)
} bipo_steered_text;

// out[k * n_prompts + p]: prompt p at multiplier k (multiplier-major). 0, or -1 +
// bipo_set_error naming the prompt (out is then left empty).
int bipo_steered_generate(const bipo_steered_gen_opts *o, const char *const *prompts,
                          size_t n_prompts, bipo_steered_text *out);
void bipo_steered_texts_free(bipo_steered_text *t, size_t n);

#endif
