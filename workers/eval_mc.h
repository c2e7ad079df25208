// workers/eval_mc.h — what a steering vector costs in knowledge, truthfulness and fluency:
// MMLU accuracy, TruthfulQA MC1/MC2 and the mean token log-prob of a neutral text, at each
// multiplier of one arm (eval.h: a vector at a layer, or none with the prompting baseline's
// system prompts). Data: workers/eval_data.h. Prompts (docs/EVAL.md, "Knowledge and
// truthfulness"):
//   MMLU (letter)  chat prompt: system = the run's (ctx->system), user = the item's question
//                  with its "Choices:" list, then the assistant turn opened with "(":
//                    render(system, question) + "("
//                  accuracy = fraction of items whose correct letter has the highest
//                  next-token log-prob among the item's letters; p_correct = the mean of
//                  p(correct letter) / sum over the item's letters of p(letter).
//   TruthfulQA MC  each answer a scored the way BiPO sequences are (chat.h): render(system,
//                  question) + " " + a, s(a) = the summed log-probs of a's tokens (the
//                  end-of-turn token not counted).
//                    MC1 = fraction of questions whose best answer has the highest s among
//                          {best answer} + the false answers
//                    MC2 = mean over questions of sum_true e^s / sum_all e^s
//   neutral text   the text alone (BOS when the tokenizer adds one, no template), in chunks of
//                  max_length tokens (512 when 0); mean_logprob = mean over the predicted
//                  tokens of log p(token | the chunk before it).
// Steering: m*v is added to the output of layer arm->layer at every row (BIPO_POS_ALL), or
// from the last token of the assistant header on (BIPO_POS_ANSWER; the neutral text, which has
// no answer, is then steered everywhere too). The rows below the layer run once per item for
// all multipliers; the multipliers run as copies in the same GEMMs (workers/eval_score.h).
#ifndef BIPO_EVAL_MC_H
#define BIPO_EVAL_MC_H
#include <stddef.h>

#include "eval.h"      // defines: bipo_eval_ctx, bipo_eval_arm, bipo_positions
#include "eval_data.h" // defines: bipo_mc_set, bipo_tqa_set

typedef struct {
    const double *mult;      // multipliers; NULL = {-1, 0, +1}
    size_t n_mult;
    bipo_positions positions;
    size_t max_items;        // score only the first max_items items (0 = all)
} bipo_mc_opts;

// One arm's results; each bipo_eval_* call fills its own fields (NULL / 0 until then).
typedef struct {
    char name[64];           // the arm's name
    size_t n_mult;
    double *mult;            // [n_mult]
    size_t n_mmlu;           // MMLU items scored
    double *accuracy;        // [n_mult]
    double *p_correct;       // [n_mult]
    size_t n_tqa;            // TruthfulQA questions scored
    double *mc1, *mc2;       // [n_mult]
    size_t n_text_tokens;    // neutral-text tokens predicted
    double *mean_logprob;    // [n_mult]
    int positions;           // as used
} bipo_mc_result;
void bipo_mc_result_free(bipo_mc_result *r);

// Each returns 0, or -1 + bipo_set_error naming the item (file:line) or the tokenizer problem.
// r may hold earlier results of the same arm and multipliers (zero-initialize it first).
int bipo_eval_mmlu(const bipo_eval_ctx *ctx, const bipo_eval_arm *arm, const bipo_mc_set *items,
                   const bipo_mc_opts *o, bipo_mc_result *r);
int bipo_eval_tqa(const bipo_eval_ctx *ctx, const bipo_eval_arm *arm, const bipo_tqa_set *items,
                  const bipo_mc_opts *o, bipo_mc_result *r);
int bipo_eval_text(const bipo_eval_ctx *ctx, const bipo_eval_arm *arm, const char *text,
                   size_t len, const bipo_mc_opts *o, bipo_mc_result *r);

#endif
