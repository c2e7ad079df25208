// workers/generate.c — KV-cached decoding of one sequence and the sampler (see generate.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"  // defines: bipo_generate, bipo_sampler, bipo_gen_opts
#include "model.h"     // defines: bipo_kv_init, bipo_forward_cached, bipo_kv_free
#include "rng.h"       // defines: bipo_rng_uniform (splitmix64)
#include "tokenizer.h" // defines: bipo_token_is_eog
#include "util.h"      // defines: xmalloc, bipo_set_error, bipo_now

int bipo_argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int)best;
}

// ---- the sampler ----------------------------------------------------------------------------
static int by_prob_desc(const void *a, const void *b) {
    float x = ((const bipo_token_prob *)a)->p, y = ((const bipo_token_prob *)b)->p;
    if (x != y) return x < y ? 1 : -1;
    return ((const bipo_token_prob *)a)->id - ((const bipo_token_prob *)b)->id;
}

void bipo_sampler_init(bipo_sampler *s, size_t V, double temperature, double top_p,
                       uint64_t seed) {
    s->temperature = temperature;
    s->top_p = top_p > 0 ? top_p : 1.0; // a zeroed option struct keeps every token
    s->rng = seed;
    s->V = V;
    s->work = temperature > 0 ? xmalloc(V * sizeof *s->work) : NULL;
}

void bipo_sampler_free(bipo_sampler *s) {
    free(s->work);
    s->work = NULL;
}

// exp((logit - max) / T) per token, sorted by probability (ties by id), the nucleus of mass
// top_p kept, one uniform draw inside it.
int bipo_sampler_next(bipo_sampler *s, const float *logits) {
    const size_t V = s->V;
    if (s->temperature <= 0) return bipo_argmax(logits, V);
    bipo_token_prob *work = s->work;
    float mx = logits[bipo_argmax(logits, V)];
    double sum = 0;
    for (size_t i = 0; i < V; i++) {
        work[i].p = expf((float)((logits[i] - mx) / s->temperature));
        work[i].id = (int)i;
        sum += work[i].p;
    }
    qsort(work, V, sizeof *work, by_prob_desc);
    size_t keep = V;
    double cum = 0;
    for (size_t i = 0; i < V; i++) {
        cum += work[i].p / sum;
        if (cum >= s->top_p) {
            keep = i + 1;
            break;
        }
    }
    double mass = 0;
    for (size_t i = 0; i < keep; i++) mass += work[i].p;
    double r = bipo_rng_uniform(&s->rng) * mass;
    for (size_t i = 0; i < keep; i++) {
        r -= work[i].p;
        if (r <= 0) return work[i].id;
    }
    return work[keep - 1].id;
}

// ---- generation -----------------------------------------------------------------------------
static int is_stop(const bipo_gen_opts *o, const bipo_tokenizer *tok, int id) {
    for (size_t i = 0; i < o->n_stop; i++)
        if (o->stop_ids[i] == id) return 1;
    return tok && bipo_token_is_eog(tok, id);
}

long bipo_generate(bipo_model *m, const bipo_tokenizer *tok, const int *prompt, size_t n,
                   const bipo_gen_opts *o, int *out, bipo_gen_stats *stats) {
    const bipo_config *c = &m->cfg;
    if (n == 0) {
        bipo_set_error("generate: the prompt has no tokens");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (prompt[i] < 0 || (size_t)prompt[i] >= c->V) {
            bipo_set_error("generate: prompt token %zu is %d, outside the vocabulary (%zu)", i,
                           prompt[i], c->V);
            return -1;
        }
    size_t ctx = n + o->max_new_tokens;
    if (c->max_pos && ctx > c->max_pos) {
        bipo_set_error("generate: prompt (%zu tokens) + %zu new tokens exceed the model's "
                       "context of %zu", n, o->max_new_tokens, c->max_pos);
        return -1;
    }
    bipo_kv_cache kv;
    bipo_kv_init(&kv, m, ctx);
    float *logits = xmalloc(c->V * sizeof(float));
    bipo_sampler s;
    bipo_sampler_init(&s, c->V, o->temperature, o->top_p, o->seed);
    double t0 = bipo_now();
    bipo_forward_cached(m, &kv, prompt, n, o->hook, logits, o->prec);
    double t1 = bipo_now();
    size_t produced = 0;
    while (produced < o->max_new_tokens) {
        int next = bipo_sampler_next(&s, logits);
        if (is_stop(o, tok, next)) break;
        out[produced++] = next;
        if (o->on_token && o->on_token(o->ctx, next)) break;
        if (produced < o->max_new_tokens) // the last token's logits are never needed
            bipo_forward_cached(m, &kv, &next, 1, o->hook, logits, o->prec);
    }
    if (stats) *stats = (bipo_gen_stats){t1 - t0, bipo_now() - t1};
    bipo_sampler_free(&s);
    free(logits);
    bipo_kv_free(&kv, m);
    return (long)produced;
}
