// workers/generate.h — text generation on the rank side: KV-cached decoding of a prompt, the
// sampler (greedy, or temperature + nucleus/top-p) and its random stream (common/rng.h), with
// an optional steering hook. One sequence per call today; the sampler keeps its state in a
// struct of its own so that a batched decoder can hold one per sequence.
//
// Shapes: V vocab; n prompt tokens; max_new_tokens new tokens at most.
#ifndef BIPO_GENERATE_H
#define BIPO_GENERATE_H
#include <stddef.h>
#include <stdint.h>

#include "model.h"     // defines: bipo_model, bipo_hook, bipo_matmul_precision
#include "tokenizer.h" // defines: bipo_tokenizer

// A token and its (unnormalized) probability or logit: the sampler's and top-k's work rows.
typedef struct {
    float p;
    int id;
} bipo_token_prob;

// Index of the largest of x[0..n) (the first one on ties).
int bipo_argmax(const float *x, size_t n);

// ---- the sampler ----------------------------------------------------------------------------
// Greedy when temperature <= 0 (no random numbers drawn); else softmax(logits / temperature)
// cut to the smallest set of most likely tokens whose mass reaches top_p, one uniform draw.
typedef struct {
    double temperature, top_p;
    uint64_t rng;          // splitmix64 state, starts at the seed
    size_t V;
    bipo_token_prob *work; // [V] scratch
} bipo_sampler;
void bipo_sampler_init(bipo_sampler *s, size_t V, double temperature, double top_p,
                       uint64_t seed);
int bipo_sampler_next(bipo_sampler *s, const float *logits); // logits host [V]
void bipo_sampler_free(bipo_sampler *s);

// ---- generation -----------------------------------------------------------------------------
typedef struct {
    size_t max_new_tokens;
    double temperature;      // <= 0: greedy
    double top_p;            // (0, 1]; 1 keeps every token
    uint64_t seed;           // the sampler's random stream (unused when greedy)
    const int *stop_ids;     // [n_stop] generation ends at any of these (not emitted)
    size_t n_stop;
    const bipo_hook *hook;   // steering at every position (prompt and new tokens), or NULL
    bipo_matmul_precision prec; // the GEMMs' arithmetic (fp32 where the backend lacks it)
    // Called with every new token as it is made (streaming output), or NULL; a non-zero
    // return ends generation after that token.
    int (*on_token)(void *ctx, int id);
    void *ctx;
} bipo_gen_opts;

// What a call measured, for reports.
typedef struct {
    double prompt_s; // the prompt's forward
    double decode_s; // every new token after it (sampling, on_token and forwards)
} bipo_gen_stats;

// Decodes up to o->max_new_tokens tokens after prompt[n] into out[o->max_new_tokens]. With a
// tokenizer (may be NULL), its end-of-generation tokens (bipo_token_is_eog) stop it too.
// Returns the number of new tokens, or -1 + bipo_set_error (an empty prompt, a token outside
// the vocabulary, prompt + max_new_tokens past the model's context). stats may be NULL.
long bipo_generate(bipo_model *m, const bipo_tokenizer *tok, const int *prompt, size_t n,
                   const bipo_gen_opts *o, int *out, bipo_gen_stats *stats);

#endif
