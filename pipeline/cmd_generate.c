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
#include "steering.h"  // defines: steering, steer_args, steering_open
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
                     const steering *st, int **ids, size_t *n) {
    if (tokens) return args_parse_ids(cmd, tokens, ids, n);
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    int rc;
    if (chat) {
        const bipo_chat_template *tpl = st->tpl ? st->tpl : bipo_chat_for(s->tok);
        char *prompt = bipo_chat_render(tpl, st->system, text);
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
    "generate --model PATH (--prompt TEXT | --tokens IDS) [--chat] [--system TEXT] [--template NAME] "
    "[--max-tokens N] [--temperature T --top-p P --seed S] "
    "[--vector FILE|LIB.h5:model/behavior/layer[/bipo] [--layer L] [--multiplier M[,M...]]] "
    "[--backend auto|cpu|cuda] [--threads N]";

// Several multipliers: the batched decoder, each continuation printed under its label.
static int generate_multi(session *s, const steering *st, const int *ids, size_t n,
                          const bipo_gen_batch_opts *o, uint64_t seed, bipo_gen_stats *stats,
                          long *produced) {
    size_t B = st->n_mult, T = o->max_new_tokens;
    bipo_gen_seq *seqs = xmalloc(B * sizeof *seqs);
    for (size_t b = 0; b < B; b++) seqs[b] = (bipo_gen_seq){ids, n, (float)st->mult[b], 0, seed};
    int *out = xmalloc((B * T > 0 ? B * T : 1) * sizeof(int));
    size_t *n_out = xmalloc(B * sizeof(size_t));
    int rc = bipo_generate_batch(&s->model, s->tok, seqs, B, o, out, n_out, stats);
    *produced = 0;
    for (size_t b = 0; rc == 0 && b < B; b++) {
        printf("[multiplier %g]\n", st->mult[b]);
        printer pr = {s->tok ? bipo_decoder_new(s->tok) : NULL, 0};
        for (size_t t = 0; t < n_out[b]; t++) print_token(&pr, out[b * T + t]);
        if (pr.dec) bipo_decoder_flush(pr.dec, stdout), bipo_decoder_free(pr.dec);
        printf("\n");
        *produced += (long)n_out[b];
    }
    free(n_out);
    free(out);
    free(seqs);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *tokens = NULL, *backend = "auto";
    long max_tokens = 128, seed = 0, threads = 0;
    double temp = 0, top_p = 1.0;
    int chat = 0;
    steer_args sa = {NULL, -1, NULL, NULL, NULL};
    arg_spec sp[] = {
        {"--model", ARG_STR, &model, 0, 0, 0},        {"--prompt", ARG_STR, &prompt, 0, 0, 0},
        {"--tokens", ARG_STR, &tokens, 0, 0, 0},      {"--chat", ARG_FLAG, &chat, 0, 0, 0},
        {"--max-tokens", ARG_INT, &max_tokens, 0, 1e7, 0},
        {"--temperature", ARG_FLOAT, &temp, 0, 100, 0}, {"--top-p", ARG_FLOAT, &top_p, 1e-6, 1, 0},
        {"--seed", ARG_INT, &seed, 0, 9.2e18, 0},     {"--vector", ARG_STR, &sa.vector, 0, 0, 0},
        {"--layer", ARG_INT, &sa.layer, 0, 1e6, 0},   {"--multiplier", ARG_STR, &sa.multiplier, 0, 0, 0},
        {"--system", ARG_STR, &sa.system, 0, 0, 0},   {"--template", ARG_STR, &sa.tpl, 0, 0, 0},
        {"--backend", ARG_STR, &backend, 0, 0, 0},
        {"--threads", ARG_INT, &threads, 1, 1024, 0},
    };
    size_t nsp = sizeof sp / sizeof sp[0];
    if (args_parse("generate", GEN_USAGE, sp, nsp, argc, argv) != 0) return 2;
    if (!model || (!prompt == !tokens)) {
        fprintf(stderr, "bipo-pipeline generate: need --model and exactly one of --prompt or "
                        "--tokens\nusage: bipo-pipeline %s\n", GEN_USAGE);
        return 2;
    }
    session s;
    if (open_session(&s, "generate", model, backend, threads, prompt != NULL) != 0) return 1;
    const bipo_config *c = &s.model.cfg;
    int rc = 1;
    int *ids = NULL, *out_ids = NULL;
    size_t n = 0;
    steering st;
    if (steering_open(&st, "generate", &sa, &s.model) != 0) goto out;
    // a system prompt or a template (given or a library run's) means the prompt is a chat turn
    chat |= sa.system != NULL || st.tpl != NULL;
    if (input_ids(&s, "generate", prompt, tokens, chat, &st, &ids, &n) != 0) goto out;
    if (check_ids("generate", ids, n, c->V) != 0) goto out;
    if (c->max_pos && n + (size_t)max_tokens > c->max_pos) {
        fprintf(stderr, "bipo-pipeline generate: prompt (%zu tokens) + --max-tokens %ld exceeds the "
                        "model's context of %zu\n", n, max_tokens, c->max_pos);
        goto out;
    }
    int stop_id = s.tok ? bipo_chat_eos(st.tpl ? st.tpl : bipo_chat_for(s.tok), s.tok) : c->eos_id;
    bipo_gen_stats stats;
    long produced = 0;
    if (st.n_mult > 1) {
        bipo_gen_batch_opts bo = {.max_new_tokens = (size_t)max_tokens, .temperature = temp,
                                  .top_p = top_p, .stop_ids = &stop_id, .n_stop = 1,
                                  .layer = st.layer, .vec = st.vec, .prec = BIPO_MATMUL_FP32};
        if (generate_multi(&s, &st, ids, n, &bo, (uint64_t)seed, &stats, &produced) != 0) {
            fprintf(stderr, "bipo-pipeline generate: %s\n", bipo_last_error());
            goto out;
        }
    } else {
        bipo_hook hook = {st.layer, st.vec, (float)st.mult[0], NULL};
        printer pr = {s.tok ? bipo_decoder_new(s.tok) : NULL, 0};
        bipo_gen_opts go = {.max_new_tokens = (size_t)max_tokens, .temperature = temp,
                            .top_p = top_p, .seed = (uint64_t)seed, .stop_ids = &stop_id,
                            .n_stop = 1, .hook = st.on ? &hook : NULL, .prec = BIPO_MATMUL_FP32,
                            .on_token = print_token, .ctx = &pr};
        out_ids = xmalloc((max_tokens ? (size_t)max_tokens : 1) * sizeof(int));
        produced = bipo_generate(&s.model, s.tok, ids, n, &go, out_ids, &stats);
        if (pr.dec) bipo_decoder_flush(pr.dec, stdout), bipo_decoder_free(pr.dec);
        if (produced < 0) {
            fprintf(stderr, "bipo-pipeline generate: %s\n", bipo_last_error());
            goto out;
        }
        printf("\n");
    }
    fflush(stdout); // the timing line goes to stderr after the text
    fprintf(stderr, "generate: prompt %zu tokens in %.0f ms (%.1f tok/s), %ld new tokens in %.0f ms "
                    "(%.1f tok/s), backend %s\n",
            n, 1e3 * stats.prompt_s, n / stats.prompt_s, produced, 1e3 * stats.decode_s,
            produced ? produced / stats.decode_s : 0.0, s.model.be->name);
    rc = 0;
out:
    free(ids);
    free(out_ids);
    steering_close(&st, &s.model);
    close_session(&s);
    return rc;
}

// ---- logprobs --------------------------------------------------------------------------------
static const char *LP_USAGE =
    "logprobs --model PATH (--text TEXT | --tokens IDS) [--chat] [--system TEXT] [--template NAME] [--top-k K] "
    "[--vector FILE|LIB.h5:model/behavior/layer[/bipo] [--layer L] [--multiplier M[,M...]]] "
    "[--backend B] [--threads N]";

static json_t *token_json(const session *s, int id, double lp) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    if (s->tok) json_object_set_new(o, "piece", json_string_nocheck(bipo_token_text(s->tok, id)));
    json_object_set_new(o, "logprob", json_real(lp));
    return o;
}

// One JSON line per position of ids[n] from logits [n, V] (host); with steering, each line
// names its multiplier.
static void print_logprobs(const session *s, const int *ids, size_t n, const float *logits,
                           size_t top_k, const steering *st, double mult) {
    const size_t V = s->model.cfg.V;
    bipo_token_prob *work = xmalloc(V * sizeof *work);
    for (size_t i = 0; i < n; i++) {
        const float *row = logits + i * V;
        double mx = row[bipo_argmax(row, V)], sum = 0;
        for (size_t j = 0; j < V; j++) sum += exp((double)row[j] - mx);
        double lse = mx + log(sum);
        json_t *o = json_object();
        if (st->on) json_object_set_new(o, "multiplier", json_real(mult));
        json_object_set_new(o, "pos", json_integer((json_int_t)i));
        json_object_set_new(o, "id", json_integer(ids[i]));
        if (s->tok) json_object_set_new(o, "piece", json_string_nocheck(bipo_token_text(s->tok, ids[i])));
        json_object_set_new(o, "next_logprob",
                            i + 1 < n ? json_real(row[ids[i + 1]] - lse) : json_null());
        json_t *top = json_array();
        for (size_t j = 0; j < V; j++) work[j] = (bipo_token_prob){row[j], (int)j};
        size_t k = top_k < V ? top_k : V;
        // partial selection: k passes over V is fine for small k
        for (size_t t = 0; t < k; t++) {
            size_t best = t;
            for (size_t j = t + 1; j < V; j++)
                if (work[j].p > work[best].p) best = j;
            bipo_token_prob tmp = work[t];
            work[t] = work[best];
            work[best] = tmp;
            json_array_append_new(top, token_json(s, work[t].id, work[t].p - lse));
        }
        json_object_set_new(o, "top", top);
        char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
        puts(line);
        free(line);
        json_decref(o);
    }
    free(work);
}

int cmd_logprobs(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *tokens = NULL, *backend = "auto";
    long top_k = 5, threads = 0;
    int chat = 0;
    steer_args sa = {NULL, -1, NULL, NULL, NULL};
    arg_spec sp[] = {
        {"--model", ARG_STR, &model, 0, 0, 0},     {"--text", ARG_STR, &text, 0, 0, 0},
        {"--tokens", ARG_STR, &tokens, 0, 0, 0},   {"--chat", ARG_FLAG, &chat, 0, 0, 0},
        {"--top-k", ARG_INT, &top_k, 0, 1000, 0},  {"--backend", ARG_STR, &backend, 0, 0, 0},
        {"--threads", ARG_INT, &threads, 1, 1024, 0}, {"--vector", ARG_STR, &sa.vector, 0, 0, 0},
        {"--layer", ARG_INT, &sa.layer, 0, 1e6, 0}, {"--multiplier", ARG_STR, &sa.multiplier, 0, 0, 0},
        {"--system", ARG_STR, &sa.system, 0, 0, 0}, {"--template", ARG_STR, &sa.tpl, 0, 0, 0},
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
    size_t n = 0, *rows = NULL;
    float *logits = NULL;
    int rc = 1;
    bipo_acts acts;
    bipo_acts_init(&acts, 0);
    steering st;
    if (steering_open(&st, "logprobs", &sa, &s.model) != 0) goto out;
    chat |= sa.system != NULL || st.tpl != NULL;
    if (input_ids(&s, "logprobs", text, tokens, chat, &st, &ids, &n) != 0) goto out;
    if (check_ids("logprobs", ids, n, c->V) != 0) goto out;
    size_t off[2] = {0, n};
    bipo_batch b = {1, off, ids};
    rows = xmalloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) rows[i] = i;
    logits = xmalloc(n * c->V * sizeof(float));
    for (size_t k = 0; k < st.n_mult; k++) {
        bipo_hook hook = {st.layer, st.vec, (float)st.mult[k], NULL};
        bipo_forward(&s.model, &acts, &b, st.on ? &hook : NULL, rows, n, -1, BIPO_MATMUL_FP32);
        s.model.be->download(logits, acts.logits, n * c->V);
        print_logprobs(&s, ids, n, logits, (size_t)top_k, &st, st.mult[k]);
    }
    rc = 0;
out:
    free(logits);
    free(rows);
    free(ids);
    bipo_acts_free(&acts, s.model.be);
    steering_close(&st, &s.model);
    close_session(&s);
    return rc;
}
