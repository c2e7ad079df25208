// workers/eval_score.h — the scoring primitive every evaluation shares (A/B curves, CAA
// vectors, MMLU / TruthfulQA): token groups run through the lower layers once, then as K
// steered copies above the hook layer in one packed batch, log-probs read at chosen rows.
//
// A group is one prompt and S continuations that all follow it: rows [0, n_prompt) are the
// prompt, continuation s is rows [cont_off[s], cont_off[s+1]) at positions n_prompt ... (it
// attends to the prompt and to itself, never to another continuation: exact under causal
// attention). A letter question is a group with S = 0 scored at its last row; a text pair is
// a group with S = 2 (matching, not matching); a multiple-choice question one with S choices.
//
// Lower pass (bipo_scorer_lower): layers 0..max_layer of G groups in one packed forward, no
// vector; every layer's output is kept, so arms at several layers (a layer sweep) share it.
// Upper pass (bipo_scorer_upper): for each group and each copy k, the rows >= steer_from get
// h_L + mult_k * v_k (the rows below steer_from are unsteered: they run ONCE per group, shared
// by every copy), then layers layer+1..L-1 and the LM head at the scored rows only; out[g][k]
// [o] = sum of log p(score_tok[i] | row score_row[i]) over the scored entries i with
// score_out[i] == o.
#ifndef BIPO_EVAL_SCORE_H
#define BIPO_EVAL_SCORE_H
#include <stddef.h>

#include "bipo.h"  // defines: bipo_example
#include "model.h" // defines: bipo_model, bipo_acts

typedef struct {
    int *tok;             // [n] prompt rows then each continuation's rows
    size_t n, n_prompt;
    size_t S;             // continuations
    size_t *cont_off;     // [S+1], cont_off[0] = n_prompt, cont_off[S] = n
    size_t steer_from;    // rows >= steer_from are steered (0 = all); must be < n_prompt
    size_t n_score;       // scored entries
    size_t *score_row;    // [n_score] row (group index) whose next-token distribution is read
    int *score_tok;       // [n_score] the token whose log-prob is read there
    size_t *score_out;    // [n_score] output slot it is summed into (< n_out)
    size_t n_out;
} bipo_score_group;
void bipo_score_group_free(bipo_score_group *g);

// One steered copy: h_L += mult * v at the steered rows. v: backend [C], or NULL (unsteered).
typedef struct {
    const float *v;
    float mult;
} bipo_score_copy;

// Groups from tokenized pairs (bipo_examples_build):
//  letter: prompt = the tokens both sequences share (ending with "(" for "(A)"/"(B)" answers),
//    S = 0; out 0 = log p(matching's next token), out 1 = log p(the other's) at the last row.
//    -1 + bipo_set_error when one sequence is a prefix of the other.
//  text: prompt = the shared prompt tokens, continuations = the two responses (dropping each
//    sequence's final end-of-turn token `eos` unless score_eos); out k = summed log-prob of
//    response k (0 matching, 1 not matching) over its tokens.
// answer_from = 1: steer_from = the last prompt token (the end of the assistant header, as
// CAA's [/INST]); 0: every row.
int bipo_score_group_letter(bipo_score_group *g, const bipo_example *e, int answer_from);
void bipo_score_group_text(bipo_score_group *g, const bipo_example *e, int answer_from,
                           int score_eos, int eos);
// Row of token j of sequence k (0 matching, 1 not matching) in a text group of e.
size_t bipo_score_group_row(const bipo_score_group *g, int k, size_t j);

typedef struct {
    bipo_model *m;
    bipo_acts lo, hi;     // lower pass (every layer's output kept), upper pass
    size_t *lo_base;      // [G] first row of each group in the lower batch
    size_t lo_G, lo_cap, lo_layer; // groups and deepest layer of the last lower pass
    float *hbuf, *lp, *lse; // backend: h_in of the upper pass; lp/lse of its scored rows
    size_t hcap, lpcap;
} bipo_scorer;
void bipo_scorer_init(bipo_scorer *sc, bipo_model *m);
void bipo_scorer_free(bipo_scorer *sc);
// Lower layers 0..max_layer (fp32, unsteered) of G groups in one packed forward.
void bipo_scorer_lower(bipo_scorer *sc, const bipo_score_group *g, size_t G, size_t max_layer);
// Group i's h_L (the output of model.layers[layer] = hidden_states[layer+1]) after the last
// lower pass: backend [g->n, C]. layer <= max_layer of that pass.
const float *bipo_scorer_h(const bipo_scorer *sc, size_t i, size_t layer);
// The upper pass of the groups of the last lower pass (same g, G) with K copies each, in the
// GEMM arithmetic `matmul` (restored to fp32 after). out: host [G][K][g->n_out] (groups may
// differ in n_out: group i's block starts at sum over earlier groups of K * n_out).
void bipo_scorer_upper(bipo_scorer *sc, const bipo_score_group *g, size_t G, size_t layer,
                       const bipo_score_copy *copies, size_t K, bipo_matmul_precision matmul,
                       double *out);
// Rows the upper pass of these groups with K copies runs (for batching and FLOP counts).
size_t bipo_scorer_upper_rows(const bipo_score_group *g, size_t K);

#endif
