// workers/bipo_data.c — (question, matching, not_matching) strings -> tokenized BiPO examples.
// The token layout of one sequence is bipo_chat_encode_pair's (see chat.h): [BOS] prompt
// response EOS, the prompt rendered with the model's chat template and system prompt.
#include <stdlib.h>
#include <string.h>

#include "bipo.h" // defines: bipo_example, bipo_examples_build (implemented here)
#include "chat.h" // defines: bipo_chat_template, bipo_chat_seq, bipo_chat_encode_pair
#include "util.h" // defines: xmalloc, xcalloc, bipo_set_error

// Drops prompt tokens after the first one (BOS, when present, stays) from the left so that
// the sequence fits max_length; past that the response is cut at the end. Returns tokens
// dropped.
static size_t fit(bipo_chat_seq *s, size_t max_length) {
    if (max_length == 0 || s->n <= max_length) return 0;
    size_t over = s->n - max_length, dropped = 0;
    size_t keep_head = s->n_prompt > 1 ? 1 : 0; // BOS or the first prompt token
    size_t from_prompt = s->n_prompt > keep_head + 1 ? s->n_prompt - keep_head - 1 : 0;
    if (from_prompt > over) from_prompt = over;
    if (from_prompt) {
        memmove(s->ids + keep_head, s->ids + keep_head + from_prompt,
                (s->n - keep_head - from_prompt) * sizeof *s->ids);
        s->n -= from_prompt;
        s->n_prompt -= from_prompt;
        dropped += from_prompt;
    }
    if (s->n > max_length) { // the response alone is too long: cut its end
        dropped += s->n - max_length;
        s->n = max_length;
    }
    return dropped;
}

int bipo_examples_build(const bipo_tokenizer *tok, const bipo_chat_template *tpl,
                        const char *system, const bipo_response_form *form,
                        const char *const *question,
                        const char *const *matching, const char *const *not_matching, size_t n,
                        size_t max_length, bipo_example **out, size_t *n_truncated) {
    bipo_example *ex = xcalloc(n ? n : 1, sizeof *ex);
    bipo_chat_seq seq = {0};
    *n_truncated = 0;
    for (size_t i = 0; i < n; i++) {
        const char *resp[2] = {matching[i], not_matching[i]};
        for (int k = 0; k < 2; k++) {
            // the form decides the leading space (the reference adds one); data that already
            // carries it (Anthropic evals: " (A)") is not given a second one
            const char *r = resp[k][0] == ' ' ? resp[k] + 1 : resp[k];
            if (bipo_chat_encode_pair(tok, tpl, system, question[i], r, form, &seq) != 0)
                goto fail;
            if (seq.n_prompt == 0) {
                bipo_set_error("pair %zu: the prompt tokenizes to nothing (empty question and "
                               "template?)", i + 1);
                goto fail;
            }
            size_t dropped = fit(&seq, max_length);
            if (seq.n_prompt >= seq.n) {
                bipo_set_error("pair %zu: max_length %zu leaves no response tokens", i + 1,
                               max_length);
                goto fail;
            }
            if (dropped) (*n_truncated)++, ex[i].truncated += dropped;
            ex[i].tok[k] = xmalloc(seq.n * sizeof(int));
            memcpy(ex[i].tok[k], seq.ids, seq.n * sizeof(int));
            ex[i].n[k] = seq.n;
            ex[i].p[k] = seq.n_prompt;
        }
    }
    bipo_chat_seq_free(&seq);
    *out = ex;
    return 0;
fail:
    bipo_chat_seq_free(&seq);
    for (size_t i = 0; i < n; i++) bipo_example_free(&ex[i]);
    free(ex);
    return -1;
}

int bipo_examples_from_pairs(const bipo_tokenizer *tok, const bipo_chat_template *tpl,
                             const char *system, const bipo_response_form *form,
                             const bipo_pairs *p, size_t max_length, bipo_example **out,
                             size_t *n_truncated) {
    size_t n = p->n;
    const char **q = xmalloc((n + 1) * sizeof *q), **a = xmalloc((n + 1) * sizeof *a),
               **o = xmalloc((n + 1) * sizeof *o);
    for (size_t i = 0; i < n; i++) q[i] = p->p[i].question, a[i] = p->p[i].matching, o[i] = p->p[i].not_matching;
    int rc = bipo_examples_build(tok, tpl, system, form, q, a, o, n, max_length, out, n_truncated);
    free(q), free(a), free(o);
    return rc;
}
