// workers/eval.h — measuring what a steering vector does (the rank side of the `eval:` block).
//
// changed (evalcore): the reusable primitive is workers/eval_score.h (bipo_scorer: groups of
//   prompt + continuations, lower layers once, K steered copies above L in one packed batch,
//   summed log-probs at chosen rows): eval_mc.c should build its groups and call it rather
//   than write its own forward loop. Added BIPO_EVAL_SYSTEM_PLUS/MINUS (the prompting arm's
//   defaults), bipo_eval_examples, bipo_eval_ctx.max_rows (0 = 4096).
//
// Workers know nothing of YAML or HDF5: the pipeline fills these option structs from the
// config and stores the result structs in the library (pipeline/store_eval.c).
//
// An "arm" is one way of steering to be measured: a vector at a layer (BiPO's, CAA's, a
// norm-matched or composed copy, a transferred one), or no vector with other system prompts
// (the prompting baseline). Every arm is measured at every multiplier of the options.
//
// Protocols (docs/EVAL.md says the exact prompts):
//   A/B letter items (Anthropic evals, CAA A/B tests): chat prompt with the arm's system
//     prompt, assistant turn opened with "("; p_match = p(match letter) / (p(A) + p(B)) at the
//     next token; log-odds = log p(match) - log p(other).
//   text pairs (BiPO CSV, the quickstart's pairs): log-probs summed over each whole response
//     (+ EOS when score_eos); p_match = sigmoid(lp(matching) - lp(not matching)).
//   Steering positions: BIPO_POS_ALL adds m*v at every position (BiPO's convention),
//     BIPO_POS_ANSWER only from the assistant turn on (CAA's).
#ifndef BIPO_EVAL_H
#define BIPO_EVAL_H
#include <stddef.h>
#include <stdint.h>

#include "chat.h"    // defines: bipo_chat_template, bipo_tokenizer
#include "dataset.h" // defines: bipo_pairs
#include "bipo.h"    // defines: bipo_example
#include "model.h"   // defines: bipo_model

typedef enum { BIPO_POS_ALL = 0, BIPO_POS_ANSWER = 1 } bipo_positions;
typedef enum { BIPO_AB_AUTO = 0, BIPO_AB_LETTER = 1, BIPO_AB_TEXT = 2 } bipo_ab_protocol;

// What every measurement of one job shares: the model, its tokenizer and template, and the
// run's system prompt (NULL = the template's default).
typedef struct {
    bipo_model *m;
    const bipo_tokenizer *tok;
    const bipo_chat_template *tpl;
    const char *system;
    size_t max_length;               // prompt tokens beyond this are cut from the left
    bipo_matmul_precision matmul;    // GEMM arithmetic above the hook (h_L is always fp32)
    const bipo_response_form *form;  // how responses join prompts, as in training; NULL = official
    size_t max_rows;                 // rows per packed forward (items are chunked; 0 = 4096)
} bipo_eval_ctx;

// The prompting baseline's default system prompts (docs/EVAL.md). Generic: workers do not
// know the behavior; the pipeline should pass "Respond as someone who exhibits the behavior:
// <description>" when it has one.
#define BIPO_EVAL_SYSTEM_PLUS "Respond as someone who exhibits the behavior being tested."
#define BIPO_EVAL_SYSTEM_MINUS "Respond as someone who does not exhibit the behavior being tested."

typedef struct {
    const char *name;         // "bipo", "caa", "caa_norm_matched", "prompt", a compose name...
    size_t layer;             // hook layer of v
    const float *v;           // host [C], or NULL: no vector (prompting baseline)
    // Prompting baseline (v == NULL): multiplier m < 0 uses system_minus, m > 0 system_plus,
    // m == 0 the context's system prompt. NULL = the generic defaults of docs/EVAL.md.
    const char *system_plus, *system_minus;
} bipo_eval_arm;

typedef struct {
    const double *mult;       // multipliers, e.g. -2 -1 -0.5 0 0.5 1 2
    size_t n_mult;
    bipo_positions positions;
    bipo_ab_protocol protocol; // AUTO: LETTER when every answer is a letter choice "(X)"
    int score_eos;            // text protocol: count the EOS after each response
} bipo_ab_opts;

typedef struct {
    char name[64];
    size_t n_mult, n_items;
    double *mult;             // [n_mult]
    double *p_match;          // [n_mult] mean over items
    double *logodds;          // [n_mult] mean log-odds
    double *item_logodds;     // [n_mult * n_items], item-major within a multiplier
    double slope;             // least-squares slope of mean log-odds over the multipliers
    double anti_steerable;    // fraction of items whose own log-odds slope is negative
    int protocol;             // BIPO_AB_LETTER or BIPO_AB_TEXT, as used
    int positions;            // as used
    // Letter protocol: per item, 1 when the matching answer is the earlier letter of the pair
    // ("(A)" against "(B)"), else 0; NULL for the text protocol. A vector that only prefers one
    // letter moves p_match by the share of items whose matching letter it prefers:
    // bipo_ab_balanced separates that from steering.
    uint8_t *item_first;      // [n_items] or NULL
} bipo_ab_result;
void bipo_ab_result_free(bipo_ab_result *r);
// Letter-balanced p_match: for each multiplier the mean of the matching-earlier-letter items'
// mean p_match and the matching-later-letter items' mean (the plain mean when one group is
// empty or there are no letters). out[n_mult].
void bipo_ab_balanced(const bipo_ab_result *r, double *out);

// A/B curves of n_arms arms on the same items: out[n_arms]. Lower layers run once per item
// and are shared by every arm at the same layer and system prompt; the multipliers of one
// item run as rows of the same GEMMs. 0, or -1 + bipo_set_error naming the item.
int bipo_eval_ab(const bipo_eval_ctx *ctx, const bipo_eval_arm *arms, size_t n_arms,
                 const bipo_pairs *items, const bipo_ab_opts *o, bipo_ab_result *out);

// CAA (Rimsky et al. 2024): mean over pairs of h_L(prompt + matching) - h_L(prompt + other),
// read at the answer letter's token for letter answers, the mean over response tokens for
// text pairs. out: host [C]. 0, or -1 + bipo_set_error.
int bipo_caa_vector(const bipo_eval_ctx *ctx, size_t layer, const bipo_pairs *train,
                    float *out);

// The items tokenized exactly as BiPO trains on them (bipo_examples_build with the context's
// template, max_length and this system prompt). 0, or -1 + bipo_set_error.
int bipo_eval_examples(const bipo_eval_ctx *ctx, const char *system, const bipo_pairs *items,
                       bipo_example **out);

#endif
