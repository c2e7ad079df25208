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
#include "generate.h"  // defines: bipo_generate, bipo_gen_opts, bipo_argmax, bipo_token_prob
#include "kernels.h"   // defines: bipo_backend_open
#include "model.h"     // defines: bipo_model_load, bipo_forward
#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize, bipo_decoder
#include "util.h"      // defines: bipo_last_error, bipo_read_file

// ---- shared setup: backend, model, tokenizer ------------------------------------------------

typedef struct {
    bipo_model model;
    bipo_tokenizer *tok; // may be NULL when the model carries none and --tokens is used
} session;

static int open_session(session *s, const char *cmd, const char *path, const char *backend,
                        long threads, int need_tokenizer) {
    memset(s, 0, sizeof *s);
    const bipo_backend *be = bipo_backend_open(backend, (int)threads);
    if (!be) {
        fprintf(stderr, "bipo-pipeline %s: --backend: %s\n", cmd, bipo_last_error());
        return -1;
    }
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

// ---- generate ------------------------------------------------------------------------------
// Streams each new token to stdout as it is made: its text (through the tokenizer's decoder,
// which holds back incomplete UTF-8) or, without a tokenizer, its id.
typedef struct {
    bipo_decoder *dec;
    long printed;
} printer;
static int print_token(void *ctx, int id) {
    printer *p = ctx;
    if (p->dec) bipo_decoder_push(p->dec, id, stdout);
    else printf("%s%d", p->printed ? " " : "", id);
    p->printed++;
    fflush(stdout);
    return 0;
}

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
    int *ids = NULL, *out_ids = NULL;
    size_t n = 0;
    float *vec_host = NULL, *vec = NULL;
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
    if (c->max_pos && n + (size_t)max_tokens > c->max_pos) {
        fprintf(stderr, "bipo-pipeline generate: prompt (%zu tokens) + --max-tokens %ld exceeds the "
                        "model's context of %zu\n", n, max_tokens, c->max_pos);
        goto out;
    }
    int stop_id = s.tok ? bipo_chat_stop_token(s.tok) : c->eos_id;
    printer pr = {s.tok ? bipo_decoder_new(s.tok) : NULL, 0};
    bipo_gen_opts go = {.max_new_tokens = (size_t)max_tokens, .temperature = temp,
                        .top_p = top_p, .seed = (uint64_t)seed, .stop_ids = &stop_id, .n_stop = 1,
                        .hook = vecf ? &hook : NULL, .prec = BIPO_MATMUL_FP32,
                        .on_token = print_token, .ctx = &pr};
    out_ids = xmalloc((max_tokens ? (size_t)max_tokens : 1) * sizeof(int));
    bipo_gen_stats st;
    long produced = bipo_generate(&s.model, s.tok, ids, n, &go, out_ids, &st);
    if (pr.dec) bipo_decoder_flush(pr.dec, stdout), bipo_decoder_free(pr.dec);
    if (produced < 0) {
        fprintf(stderr, "bipo-pipeline generate: %s\n", bipo_last_error());
        goto out;
    }
    printf("\n");
    fflush(stdout); // the timing line goes to stderr after the text
    fprintf(stderr, "generate: prompt %zu tokens in %.0f ms (%.1f tok/s), %ld new tokens in %.0f ms "
                    "(%.1f tok/s), backend %s\n",
            n, 1e3 * st.prompt_s, n / st.prompt_s, produced, 1e3 * st.decode_s,
            produced ? produced / st.decode_s : 0.0, s.model.be->name);
    rc = 0;
out:
    free(ids);
    free(out_ids);
    free(vec_host);
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
    bipo_forward(&s.model, &acts, &b, NULL, rows, n, -1, BIPO_MATMUL_FP32);
    float *logits = xmalloc(n * c->V * sizeof(float));
    s.model.be->download(logits, acts.logits, n * c->V);
    bipo_token_prob *work = xmalloc(c->V * sizeof *work);
    for (size_t i = 0; i < n; i++) {
        const float *row = logits + i * c->V;
        double mx = row[bipo_argmax(row, c->V)], sum = 0;
        for (size_t j = 0; j < c->V; j++) sum += exp((double)row[j] - mx);
        double lse = mx + log(sum);
        json_t *o = json_object();
        json_object_set_new(o, "pos", json_integer((json_int_t)i));
        json_object_set_new(o, "id", json_integer(ids[i]));
        if (s.tok) json_object_set_new(o, "piece", json_string_nocheck(bipo_token_text(s.tok, ids[i])));
        json_object_set_new(o, "next_logprob",
                            i + 1 < n ? json_real(row[ids[i + 1]] - lse) : json_null());
        json_t *top = json_array();
        for (size_t j = 0; j < c->V; j++) work[j] = (bipo_token_prob){row[j], (int)j};
        size_t k = (size_t)top_k < c->V ? (size_t)top_k : c->V;
        // partial selection: k passes over V is fine for small k
        for (size_t t = 0; t < k; t++) {
            size_t best = t;
            for (size_t j = t + 1; j < c->V; j++)
                if (work[j].p > work[best].p) best = j;
            bipo_token_prob tmp = work[t];
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
