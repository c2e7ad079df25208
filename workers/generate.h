// workers/generate.h — text generation on the rank side: KV-cached decoding of a prompt, the
// sampler (greedy, or temperature + nucleus/top-p) and its random stream (common/rng.h), with
// an optional steering hook: one sequence (bipo_generate) or many decoded together, each with
// its own multiplier and seed (bipo_generate_batch); the sampler keeps one state per sequence.
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

// ---- batched generation ---------------------------------------------------------------------
// Many sequences decode together: the prompts' prefill is one packed forward, then every step
// is one forward of one row per unfinished sequence over its own KV cache
// (bipo_forward_cached_batch). Each sequence has its own multiplier (several multipliers of the
// same prompt are just more sequences), steering start and sampler seed; the tokens are those
// bipo_generate makes for that sequence alone with hook {layer, vec, mult} (steer_from 0) and
// seed.
typedef struct {
    const int *prompt; // [n] token ids
    size_t n;
    float mult;        // steering multiplier (when the options carry a vector)
    size_t steer_from; // first steered position: 0 = every position (BiPO's convention); n - 1 =
                       // from the last prompt token on, i.e. the assistant's answer (CAA's)
    uint64_t seed;     // this sequence's sampler stream (unused when greedy)
} bipo_gen_seq;

typedef struct {
    size_t max_new_tokens;
    double temperature;      // <= 0: greedy
    double top_p;            // (0, 1]
    const int *stop_ids;     // [n_stop] a sequence ends at any of these (not emitted)
    size_t n_stop;
    int layer;               // steered layer (0-based); -1 or vec NULL: no steering
    const float *vec;        // [C] backend buffer
    bipo_matmul_precision prec;
    size_t max_batch;        // sequences in one decoding batch at most (0: all together)
} bipo_gen_batch_opts;

// Decodes every seqs[b] (b < B) into out[b * max_new_tokens ...], n_out[b] tokens. With a
// tokenizer (may be NULL), its end-of-generation tokens stop a sequence too. 0, or -1 +
// bipo_set_error naming the sequence (empty prompt, token outside the vocabulary, context
// exceeded). stats (may be NULL): the prefills' and the decoding steps' wall time.
int bipo_generate_batch(bipo_model *m, const bipo_tokenizer *tok, const bipo_gen_seq *seqs,
                        size_t B, const bipo_gen_batch_opts *o, int *out, size_t *n_out,
                        bipo_gen_stats *stats);

#endif
