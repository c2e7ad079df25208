// pipeline/cmd_generate.c — `generate` (KV-cached decoding, optional steering vector) and
// `logprobs` (one JSON line per position) on a single model.
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"      // defines: arg_spec, args_parse, args_parse_ids
#include "chat.h"      // defines: chat templates
#include "commands.h"  // defines: cmd_generate, cmd_logprobs
#include "kernels.h"   // defines: bipo_backend_by_name, bipo_backend_cpu_set_threads
#include "model.h"     // defines: bipo_model_load, bipo_forward, bipo_forward_cached
#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize, bipo_decoder
#include "rng.h"  // defines: bipo_rng_next, bipo_rng_uniform (splitmix64)
#include "util.h"      // defines: bipo_last_error, bipo_read_file

// ---- shared setup: backend, model, tokenizer ------------------------------------------------

typedef struct {
    bipo_model model;
    bipo_tokenizer *tok; // may be NULL when the model carries none and --tokens is used
} session;

static int open_session(session *s, const char *cmd, const char *path, const char *backend,
                        long threads, int need_tokenizer) {
    memset(s, 0, sizeof *s);
    const bipo_backend *be = bipo_backend_by_name(backend);
    if (!be) {
        fprintf(stderr, "bipo-pipeline %s: --backend '%s' is not available (use auto, cpu or "
                        "cuda; cuda needs a GPU and a CUDA build)\n", cmd, backend);
        return -1;
    }
    if (threads > 0) bipo_backend_cpu_set_threads((int)threads);
    if (bipo_model_load(&s->model, path, be) != 0) {
        fprintf(stderr, "bipo-pipeline %s: %s\n", cmd, bipo_last_error());
        return -1;
    }
    s->tok = bipo_tokenizer_load(path);
    if (!s->tok && need_tokenizer) {
        fprintf(stderr, "bipo-pipeline %s: %s (pass token ids with --tokens instead)\n", cmd,
                bipo_last_error());
        bipo_model_free(&s->model);
        return -1;
    }
    return 0;
}

static void close_session(session *s) {
    if (s->tok) bipo_tokenizer_free(s->tok);
    bipo_model_free(&s->model);
}

// Token ids from --tokens, or from --prompt/--text (optionally wrapped in the chat template).
static int input_ids(session *s, const char *cmd, const char *text, const char *tokens, int chat,
                     int **ids, size_t *n) {
    if (tokens) return args_parse_ids(cmd, tokens, ids, n);
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    int rc;
    if (chat) {
        char *prompt = bipo_chat_render_user(s->tok, NULL, text);
        rc = bipo_tokenize(s->tok, prompt, strlen(prompt), bipo_tokenizer_add_bos(s->tok), 1, ids,
                           n, &cap);
        free(prompt);
    } else {
        rc = bipo_tokenize(s->tok, text, strlen(text), bipo_tokenizer_add_bos(s->tok), 1, ids, n,
                           &cap);
    }
    if (rc != 0 || *n == 0) {
        fprintf(stderr, "bipo-pipeline %s: %s\n", cmd,
                rc ? bipo_last_error() : "the input tokenizes to zero tokens");
        free(*ids);
        return -1;
    }
    return 0;
}

static int check_ids(const char *cmd, const int *ids, size_t n, size_t V) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= V) {
            fprintf(stderr, "bipo-pipeline %s: token id %d is outside the vocabulary (%zu)\n", cmd,
                    ids[i], V);
            return -1;
        }
    return 0;
}

// Raw little-endian f32 vector of exactly C values.
static float *load_vector(const char *path, size_t C) {
    size_t len = 0;
    char *buf = bipo_read_file(path, &len);
    if (!buf) return NULL;
    if (len != C * sizeof(float)) {
        bipo_set_error("%s: %zu bytes, but a steering vector for this model is %zu float32 values "
                       "= %zu bytes (hidden size %zu)", path, len, C, C * sizeof(float), C);
        free(buf);
        return NULL;
    }
    float *v = xmalloc(len);
    memcpy(v, buf, len);
    free(buf);
    for (size_t i = 0; i < C; i++)
        if (!isfinite(v[i])) {
            bipo_set_error("%s: value %zu is not finite", path, i);
            free(v);
            return NULL;
        }
    return v;
}

// ---- sampling ----------------------------------------------------------------------------
typedef struct {
    float p;
    int id;
} prob_id;
static int by_prob_desc(const void *a, const void *b) {
    float x = ((const prob_id *)a)->p, y = ((const prob_id *)b)->p;
    if (x != y) return x < y ? 1 : -1;
    return ((const prob_id *)a)->id - ((const prob_id *)b)->id;
}

static int argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int)best;
}

// Greedy when temperature <= 0; else temperature + nucleus (top-p) sampling.
static int sample(const float *logits, size_t V, double temperature, double top_p, uint64_t *rng,
                  prob_id *work) {
    if (temperature <= 0) return argmax(logits, V);
    float mx = logits[argmax(logits, V)];
    double sum = 0;
    for (size_t i = 0; i < V; i++) {
        work[i].p = expf((float)((logits[i] - mx) / temperature));
        work[i].id = (int)i;
        sum += work[i].p;
    }
    qsort(work, V, sizeof *work, by_prob_desc);
    size_t keep = V;
    double cum = 0;
    for (size_t i = 0; i < V; i++) {
        cum += work[i].p / sum;
        if (cum >= top_p) {
            keep = i + 1;
            break;
        }
    }
    double mass = 0;
    for (size_t i = 0; i < keep; i++) mass += work[i].p;
    double r = bipo_rng_uniform(rng) * mass;
    for (size_t i = 0; i < keep; i++) {
        r -= work[i].p;
        if (r <= 0) return work[i].id;
    }
    return work[keep - 1].id;
}

// ---- generate ------------------------------------------------------------------------------
static const char *GEN_USAGE =
    "generate --model PATH (--prompt TEXT | --tokens IDS) [--chat] [--max-tokens N] "
    "[--temperature T --top-p P --seed S] [--vector FILE --layer L --multiplier M] "
    "[--backend auto|cpu|cuda] [--threads N]";

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *tokens = NULL, *vecf = NULL, *backend = "auto";
    long max_tokens = 128, seed = 0, layer = -1, threads = 0;
    double temp = 0, top_p = 1.0, mult = 1.0;
    int chat = 0;
    arg_spec sp[] = {
        {"--model", ARG_STR, &model, 0, 0, 0},        {"--prompt", ARG_STR, &prompt, 0, 0, 0},
        {"--tokens", ARG_STR, &tokens, 0, 0, 0},      {"--chat", ARG_FLAG, &chat, 0, 0, 0},
        {"--max-tokens", ARG_INT, &max_tokens, 0, 1e7, 0},
        {"--temperature", ARG_FLOAT, &temp, 0, 100, 0}, {"--top-p", ARG_FLOAT, &top_p, 1e-6, 1, 0},
        {"--seed", ARG_INT, &seed, 0, 9.2e18, 0},     {"--vector", ARG_STR, &vecf, 0, 0, 0},
        {"--layer", ARG_INT, &layer, 0, 1e6, 0},      {"--multiplier", ARG_FLOAT, &mult, -1e6, 1e6, 0},
        {"--backend", ARG_STR, &backend, 0, 0, 0},    {"--threads", ARG_INT, &threads, 1, 1024, 0},
    };
    size_t nsp = sizeof sp / sizeof sp[0];
    if (args_parse("generate", GEN_USAGE, sp, nsp, argc, argv) != 0) return 2;
    if (!model || (!prompt == !tokens)) {
        fprintf(stderr, "bipo-pipeline generate: need --model and exactly one of --prompt or "
                        "--tokens\nusage: bipo-pipeline %s\n", GEN_USAGE);
        return 2;
    }
    if ((vecf != NULL) != (layer >= 0)) {
        fprintf(stderr, "bipo-pipeline generate: --vector and --layer go together\n");
        return 2;
    }
    session s;
    if (open_session(&s, "generate", model, backend, threads, prompt != NULL) != 0) return 1;
    const bipo_config *c = &s.model.cfg;
    int rc = 1;
    int *ids = NULL;
    size_t n = 0;
    float *vec_host = NULL, *vec = NULL, *logits = NULL;
    prob_id *work = NULL;
    bipo_hook hook = {-1, NULL, 0, NULL};
    if (vecf) {
        if ((size_t)layer >= c->L) {
            fprintf(stderr, "bipo-pipeline generate: --layer %ld is out of range: the model has %zu "
                            "layers (0..%zu)\n", layer, c->L, c->L - 1);
            goto out;
        }
        if (!(vec_host = load_vector(vecf, c->C))) {
            fprintf(stderr, "bipo-pipeline generate: %s\n", bipo_last_error());
            goto out;
        }
        vec = s.model.be->alloc(c->C);
        s.model.be->upload(vec, vec_host, c->C);
        hook = (bipo_hook){(int)layer, vec, (float)mult, NULL};
    }
    if (input_ids(&s, "generate", prompt, tokens, chat, &ids, &n) != 0) goto out;
    if (check_ids("generate", ids, n, c->V) != 0) goto out;
    size_t ctx = n + (size_t)max_tokens;
    if (c->max_pos && ctx > c->max_pos) {
        fprintf(stderr, "bipo-pipeline generate: prompt (%zu tokens) + --max-tokens %ld exceeds the "
                        "model's context of %zu\n", n, max_tokens, c->max_pos);
        goto out;
    }
    bipo_kv_cache kv;
    bipo_kv_init(&kv, &s.model, ctx);
    logits = xmalloc(c->V * sizeof(float));
    work = xmalloc(c->V * sizeof *work);
    uint64_t rng = (uint64_t)seed;
    int stop_id = s.tok ? bipo_chat_stop_token(s.tok) : c->eos_id;
    bipo_decoder *dec = s.tok ? bipo_decoder_new(s.tok) : NULL;
    double t0 = bipo_now(), t1 = t0;
    bipo_forward_cached(&s.model, &kv, ids, n, vecf ? &hook : NULL, logits);
    t1 = bipo_now();
    long produced = 0;
    for (; produced < max_tokens; produced++) {
        int next = sample(logits, c->V, temp, top_p, &rng, work);
        if (next == stop_id || (s.tok && bipo_token_is_eog(s.tok, next))) break;
        if (dec) {
            bipo_decoder_push(dec, next, stdout);
        } else {
            printf("%s%d", produced ? " " : "", next);
        }
        fflush(stdout);
        if (produced + 1 < max_tokens)
            bipo_forward_cached(&s.model, &kv, &next, 1, vecf ? &hook : NULL, logits);
    }
    if (dec) bipo_decoder_flush(dec, stdout), bipo_decoder_free(dec);
    printf("\n");
    fflush(stdout); // the timing line goes to stderr after the text
    double t2 = bipo_now();
    fprintf(stderr, "generate: prompt %zu tokens in %.0f ms (%.1f tok/s), %ld new tokens in %.0f ms "
                    "(%.1f tok/s), backend %s\n",
            n, 1e3 * (t1 - t0), n / (t1 - t0), produced, 1e3 * (t2 - t1),
            produced ? produced / (t2 - t1) : 0.0, s.model.be->name);
    bipo_kv_free(&kv, &s.model);
    rc = 0;
out:
    free(ids);
    free(vec_host);
    free(logits);
    free(work);
    if (vec) s.model.be->free(vec);
    close_session(&s);
    return rc;
}

// ---- logprobs --------------------------------------------------------------------------------
static const char *LP_USAGE =
    "logprobs --model PATH (--text TEXT | --tokens IDS) [--chat] [--top-k K] [--backend B] "
    "[--threads N]";

static json_t *token_json(const session *s, int id, double lp) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    if (s->tok) json_object_set_new(o, "piece", json_string_nocheck(bipo_token_text(s->tok, id)));
    json_object_set_new(o, "logprob", json_real(lp));
    return o;
}

int cmd_logprobs(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *tokens = NULL, *backend = "auto";
    long top_k = 5, threads = 0;
    int chat = 0;
    arg_spec sp[] = {
        {"--model", ARG_STR, &model, 0, 0, 0},     {"--text", ARG_STR, &text, 0, 0, 0},
        {"--tokens", ARG_STR, &tokens, 0, 0, 0},   {"--chat", ARG_FLAG, &chat, 0, 0, 0},
        {"--top-k", ARG_INT, &top_k, 0, 1000, 0},  {"--backend", ARG_STR, &backend, 0, 0, 0},
        {"--threads", ARG_INT, &threads, 1, 1024, 0},
    };
    if (args_parse("logprobs", LP_USAGE, sp, sizeof sp / sizeof sp[0], argc, argv) != 0) return 2;
    if (!model || (!text == !tokens)) {
        fprintf(stderr, "bipo-pipeline logprobs: need --model and exactly one of --text or "
                        "--tokens\nusage: bipo-pipeline %s\n", LP_USAGE);
        return 2;
    }
    session s;
    if (open_session(&s, "logprobs", model, backend, threads, text != NULL) != 0) return 1;
    const bipo_config *c = &s.model.cfg;
    int *ids = NULL;
    size_t n = 0;
    int rc = 1;
    if (input_ids(&s, "logprobs", text, tokens, chat, &ids, &n) != 0) goto out;
    if (check_ids("logprobs", ids, n, c->V) != 0) goto out;
    size_t off[2] = {0, n};
    bipo_batch b = {1, off, ids};
    size_t *rows = xmalloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) rows[i] = i;
    bipo_acts acts;
    bipo_acts_init(&acts, 0);
    bipo_forward(&s.model, &acts, &b, NULL, rows, n, -1);
    float *logits = xmalloc(n * c->V * sizeof(float));
    s.model.be->download(logits, acts.logits, n * c->V);
    prob_id *work = xmalloc(c->V * sizeof *work);
    for (size_t i = 0; i < n; i++) {
        const float *row = logits + i * c->V;
        double mx = row[argmax(row, c->V)], sum = 0;
        for (size_t j = 0; j < c->V; j++) sum += exp((double)row[j] - mx);
        double lse = mx + log(sum);
        json_t *o = json_object();
        json_object_set_new(o, "pos", json_integer((json_int_t)i));
        json_object_set_new(o, "id", json_integer(ids[i]));
        if (s.tok) json_object_set_new(o, "piece", json_string_nocheck(bipo_token_text(s.tok, ids[i])));
        json_object_set_new(o, "next_logprob",
                            i + 1 < n ? json_real(row[ids[i + 1]] - lse) : json_null());
        json_t *top = json_array();
        for (size_t j = 0; j < c->V; j++) work[j] = (prob_id){row[j], (int)j};
        size_t k = (size_t)top_k < c->V ? (size_t)top_k : c->V;
        // partial selection: k passes over V is fine for small k
        for (size_t t = 0; t < k; t++) {
            size_t best = t;
            for (size_t j = t + 1; j < c->V; j++)
                if (work[j].p > work[best].p) best = j;
            prob_id tmp = work[t];
            work[t] = work[best];
            work[best] = tmp;
            json_array_append_new(top, token_json(&s, work[t].id, work[t].p - lse));
        }
        json_object_set_new(o, "top", top);
        char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
        puts(line);
        free(line);
        json_decref(o);
    }
    free(work);
    free(logits);
    free(rows);
    bipo_acts_free(&acts, s.model.be);
    rc = 0;
out:
    free(ids);
    close_session(&s);
    return rc;
}
