// workers/generate.c — KV-cached decoding of one sequence and the sampler (see generate.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"  // defines: bipo_generate, bipo_generate_batch, bipo_sampler, bipo_gen_opts
#include "model.h"     // defines: bipo_kv_init, bipo_forward_cached, bipo_kv_batch, bipo_forward_cached_batch
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
static int is_stop(const int *stop_ids, size_t n_stop, const bipo_tokenizer *tok, int id) {
    for (size_t i = 0; i < n_stop; i++)
        if (stop_ids[i] == id) return 1;
    return tok && bipo_token_is_eog(tok, id);
}

// The checks bipo_generate and bipo_generate_batch make on one prompt (what names it).
static int check_prompt(const bipo_config *c, const char *what, const int *prompt, size_t n,
                        size_t max_new_tokens) {
    if (n == 0) {
        bipo_set_error("generate: %sthe prompt has no tokens", what);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (prompt[i] < 0 || (size_t)prompt[i] >= c->V) {
            bipo_set_error("generate: %sprompt token %zu is %d, outside the vocabulary (%zu)",
                           what, i, prompt[i], c->V);
            return -1;
        }
    if (c->max_pos && n + max_new_tokens > c->max_pos) {
        bipo_set_error("generate: %sprompt (%zu tokens) + %zu new tokens exceed the model's "
                       "context of %zu", what, n, max_new_tokens, c->max_pos);
        return -1;
    }
    return 0;
}

long bipo_generate(bipo_model *m, const bipo_tokenizer *tok, const int *prompt, size_t n,
                   const bipo_gen_opts *o, int *out, bipo_gen_stats *stats) {
    const bipo_config *c = &m->cfg;
    if (check_prompt(c, "", prompt, n, o->max_new_tokens) != 0) return -1;
    size_t ctx = n + o->max_new_tokens;
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
        if (is_stop(o->stop_ids, o->n_stop, tok, next)) break;
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

// ---- batched generation -----------------------------------------------------------------------
// One chunk of sequences decoding together: its cache, samplers and per-row steering.
typedef struct {
    bipo_model *m;
    const bipo_gen_seq *seqs; // [B] this chunk's
    size_t B;
    const bipo_gen_batch_opts *o;
    bipo_kv_batch kv;
    bipo_sampler *samp; // [B]
    float *mults;       // [nh] the distinct multipliers
    size_t nh;
    bipo_hook *hooks;   // [nh], masks over the current call's rows
    uint8_t *mask;      // [nh * cap_rows]
    size_t cap_rows;
} gen_chunk;

// Hooks for a call appending rows [off[s], off[s+1]) to sequence seq[s]: one per distinct
// multiplier, each masking the rows of its sequences at positions >= their steer_from.
static void chunk_hooks(gen_chunk *g, const size_t *seq, size_t S, const size_t *off) {
    size_t N = off[S];
    if (g->nh == 0) return;
    if (N > g->cap_rows) {
        g->cap_rows = N;
        free(g->mask);
        g->mask = xmalloc(g->nh * N);
    }
    memset(g->mask, 0, g->nh * N);
    for (size_t s = 0; s < S; s++) {
        const bipo_gen_seq *q = &g->seqs[seq[s]];
        size_t h = 0;
        while (g->mults[h] != q->mult) h++;
        for (size_t i = off[s]; i < off[s + 1]; i++)
            g->mask[h * N + i] = g->kv.n[seq[s]] + (i - off[s]) >= q->steer_from;
    }
    for (size_t h = 0; h < g->nh; h++)
        g->hooks[h] = (bipo_hook){g->o->layer, g->o->vec, g->mults[h], g->mask + h * N};
}

static void chunk_init(gen_chunk *g, bipo_model *m, const bipo_gen_seq *seqs, size_t B,
                       const bipo_gen_batch_opts *o) {
    memset(g, 0, sizeof *g);
    g->m = m, g->seqs = seqs, g->B = B, g->o = o;
    size_t *cap = xmalloc(B * sizeof(size_t));
    for (size_t b = 0; b < B; b++) cap[b] = seqs[b].n + o->max_new_tokens;
    bipo_kv_batch_init(&g->kv, m, cap, B);
    free(cap);
    g->samp = xmalloc(B * sizeof *g->samp);
    g->mults = xmalloc(B * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        bipo_sampler_init(&g->samp[b], m->cfg.V, o->temperature, o->top_p, seqs[b].seed);
        size_t h = 0;
        while (h < g->nh && g->mults[h] != seqs[b].mult) h++;
        if (h == g->nh) g->mults[g->nh++] = seqs[b].mult;
    }
    if (o->layer < 0 || !o->vec) g->nh = 0; // no steering: no hooks
    g->hooks = xmalloc((g->nh ? g->nh : 1) * sizeof(bipo_hook));
}

static void chunk_free(gen_chunk *g) {
    for (size_t b = 0; b < g->B; b++) bipo_sampler_free(&g->samp[b]);
    bipo_kv_batch_free(&g->kv, g->m);
    free(g->samp);
    free(g->mults);
    free(g->hooks);
    free(g->mask);
}

static void chunk_forward(gen_chunk *g, const size_t *seq, size_t S, const size_t *off,
                          const int *tokens, float *logits) {
    chunk_hooks(g, seq, S, off);
    bipo_forward_cached_batch(g->m, &g->kv, seq, S, off, tokens, g->hooks, g->nh, logits,
                              g->o->prec);
}

// Decodes one chunk: out[b * max_new ...] and n_out[b] for its B sequences.
static void chunk_decode(gen_chunk *g, const bipo_tokenizer *tok, int *out, size_t *n_out,
                         bipo_gen_stats *st) {
    const bipo_gen_batch_opts *o = g->o;
    const size_t B = g->B, V = g->m->cfg.V, T = o->max_new_tokens;
    size_t *seq = xmalloc(B * sizeof(size_t)), *off = xmalloc((B + 1) * sizeof(size_t));
    size_t N = 0;
    for (size_t b = 0; b < B; b++) N += g->seqs[b].n;
    int *tokens = xmalloc((N > B ? N : B) * sizeof(int));
    float *logits = xmalloc(B * V * sizeof(float));
    off[0] = 0;
    for (size_t b = 0; b < B; b++) {
        seq[b] = b, n_out[b] = 0;
        memcpy(tokens + off[b], g->seqs[b].prompt, g->seqs[b].n * sizeof(int));
        off[b + 1] = off[b] + g->seqs[b].n;
    }
    double t0 = bipo_now();
    chunk_forward(g, seq, B, off, tokens, logits);
    double t1 = bipo_now();
    size_t S = B; // sequences in the last call; seq[0..S) their ids, logits rows in that order
    while (S > 0) {
        size_t live = 0;
        for (size_t s = 0; s < S; s++) {
            size_t b = seq[s];
            int next = bipo_sampler_next(&g->samp[b], logits + s * V);
            if (is_stop(o->stop_ids, o->n_stop, tok, next)) continue;
            out[b * T + n_out[b]++] = next;
            if (n_out[b] == T) continue; // the last token's logits are never needed
            seq[live] = b, tokens[live] = next, off[live + 1] = live + 1;
            live++;
        }
        S = live;
        if (S) chunk_forward(g, seq, S, off, tokens, logits);
    }
    st->prompt_s += t1 - t0;
    st->decode_s += bipo_now() - t1;
    free(logits);
    free(tokens);
    free(off);
    free(seq);
}

int bipo_generate_batch(bipo_model *m, const bipo_tokenizer *tok, const bipo_gen_seq *seqs,
                        size_t B, const bipo_gen_batch_opts *o, int *out, size_t *n_out,
                        bipo_gen_stats *stats) {
    char what[48];
    for (size_t b = 0; b < B; b++) {
        snprintf(what, sizeof what, "sequence %zu: ", b);
        if (check_prompt(&m->cfg, what, seqs[b].prompt, seqs[b].n, o->max_new_tokens) != 0)
            return -1;
    }
    bipo_gen_stats st = {0, 0};
    size_t chunk = o->max_batch ? o->max_batch : (B ? B : 1);
    for (size_t b0 = 0; b0 < B; b0 += chunk) {
        size_t nb = B - b0 < chunk ? B - b0 : chunk;
        if (o->max_new_tokens == 0) {
            memset(n_out + b0, 0, nb * sizeof(size_t));
            continue;
        }
        gen_chunk g;
        chunk_init(&g, m, seqs + b0, nb, o);
        chunk_decode(&g, tok, out + b0 * o->max_new_tokens, n_out + b0, &st);
        chunk_free(&g);
    }
    if (stats) *stats = st;
    return 0;
}
