// workers/eval_mc.c — MMLU, TruthfulQA MC1/MC2 and neutral-text log-prob at the multipliers of
// one arm (see eval_mc.h). Every item becomes one bipo_score_group (eval_score.h); run() feeds
// batches of groups through one lower pass and one upper pass with a copy per multiplier.
#include "eval_mc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval_score.h" // defines: bipo_scorer, bipo_score_group
#include "util.h"       // defines: bipo_set_error, xmalloc, xcalloc

static const double DEFAULT_MULT[3] = {-1.0, 0.0, 1.0};
// Batch limits: rows of the lower pass, rows of the upper pass (all copies), scored rows (the
// LM head's logits are [scored, V] floats).
enum { LO_ROWS = 4096, UP_ROWS = 8192, SCORED = 1024, TEXT_CHUNK = 512 };

void bipo_mc_result_free(bipo_mc_result *r) {
    free(r->mult), free(r->accuracy), free(r->p_correct), free(r->mc1), free(r->mc2);
    free(r->mean_logprob);
    memset(r, 0, sizeof *r);
}

// ---- tokens ----------------------------------------------------------------------------------

typedef struct {
    int *p;
    size_t n, cap;
} ids_t;

// ids = [BOS when the tokenizer adds one] + tokens of text (special-token texts recognized,
// as bipo_chat_encode_pair does).
static void encode(const bipo_tokenizer *t, const char *text, ids_t *ids) {
    ids->n = 0;
    int bos = bipo_tokenizer_add_bos(t) ? bipo_token_bos(t) : -1;
    if (bos >= 0) {
        if (!ids->cap) ids->p = xmalloc((ids->cap = 64) * sizeof *ids->p);
        ids->p[ids->n++] = bos;
    }
    bipo_tokenize(t, text, strlen(text), 0, 1, &ids->p, &ids->n, &ids->cap);
}

static void group_init(bipo_score_group *g, const int *tok, size_t n, size_t n_prompt, size_t S,
                       size_t n_score, size_t n_out) {
    memset(g, 0, sizeof *g);
    g->n = n, g->n_prompt = n_prompt, g->S = S, g->n_score = n_score, g->n_out = n_out;
    g->tok = xmalloc((n ? n : 1) * sizeof *g->tok);
    if (tok) memcpy(g->tok, tok, n * sizeof *tok);
    g->cont_off = xmalloc((S + 1) * sizeof *g->cont_off);
    g->cont_off[0] = n_prompt;
    g->cont_off[S] = n;
    g->score_row = xmalloc((n_score ? n_score : 1) * sizeof *g->score_row);
    g->score_tok = xmalloc((n_score ? n_score : 1) * sizeof *g->score_tok);
    g->score_out = xmalloc((n_score ? n_score : 1) * sizeof *g->score_out);
}

// ---- the runner ------------------------------------------------------------------------------

// Builds item i's group with system prompt sys; answer_from: steer from the assistant header on.
typedef int (*build_fn)(void *u, size_t i, const char *sys, int answer_from, bipo_score_group *g);
// Takes item i's outputs out[g->n_out] at multiplier index k.
typedef void (*take_fn)(void *u, size_t i, size_t k, const double *out);

typedef struct {
    const bipo_eval_ctx *ctx;
    const bipo_eval_arm *arm;
    const double *mult;
    size_t K;
    int answer_from;
} run_cfg;

// One pass: every item with system sys, copies[nc], output copy c -> multiplier kidx[c] (or,
// with one unsteered copy, -> every multiplier in kidx[0..nk)).
static int run_pass(const run_cfg *rc, bipo_scorer *sc, size_t n, build_fn build, take_fn take,
                    void *u, const char *sys, size_t layer, const bipo_score_copy *copies,
                    size_t nc, const size_t *kidx, size_t nk) {
    bipo_score_group *g = xcalloc(n ? n : 1, sizeof *g);
    double *out = NULL;
    size_t out_cap = 0;
    int rc_ = 0;
    for (size_t i0 = 0; i0 < n && !rc_;) {
        size_t G = 0, lo = 0, up = 0, sc_rows = 0, n_out = 0;
        while (i0 + G < n) {
            bipo_score_group *gi = &g[G];
            if (build(u, i0 + G, sys, rc->answer_from, gi) != 0) { rc_ = -1; break; }
            size_t u_rows = bipo_scorer_upper_rows(gi, nc), s_rows = nc * gi->n_score;
            if (G > 0 && (lo + gi->n > LO_ROWS || up + u_rows > UP_ROWS || sc_rows + s_rows > SCORED)) {
                bipo_score_group_free(gi);
                break;
            }
            lo += gi->n, up += u_rows, sc_rows += s_rows, n_out += nc * gi->n_out, G++;
        }
        if (rc_) break;
        if (n_out > out_cap) out = xrealloc(out, (out_cap = n_out) * sizeof *out);
        bipo_scorer_lower(sc, g, G, layer);
        bipo_scorer_upper(sc, g, G, layer, copies, nc, rc->ctx->matmul, out);
        const double *o = out;
        for (size_t j = 0; j < G; j++) {
            for (size_t c = 0; c < nc; c++, o += g[j].n_out)
                for (size_t q = 0; q < (copies[c].v ? 1 : nk); q++)
                    take(u, i0 + j, copies[c].v ? kidx[c] : kidx[q], o);
            bipo_score_group_free(&g[j]);
        }
        i0 += G;
    }
    for (size_t j = 0; j < n; j++) bipo_score_group_free(&g[j]);
    free(g), free(out);
    return rc_;
}

// Every item at every multiplier: a vector arm runs one pass with a copy per multiplier; the
// prompting baseline (no vector) one unsteered pass per system prompt it uses.
static int run(const run_cfg *rc, size_t n, build_fn build, take_fn take, void *u) {
    const bipo_eval_arm *arm = rc->arm;
    bipo_model *m = rc->ctx->m;
    if (arm->v && arm->layer >= m->cfg.L) {
        bipo_set_error("arm '%s': layer %zu, the model has %zu layers (0..%zu)", arm->name,
                       arm->layer, m->cfg.L, m->cfg.L - 1);
        return -1;
    }
    bipo_scorer sc;
    bipo_scorer_init(&sc, m);
    size_t K = rc->K, *kidx = xmalloc(K * sizeof *kidx);
    bipo_score_copy *copies = xmalloc(K * sizeof *copies);
    int r = 0;
    if (arm->v) {
        float *vb = m->be->alloc(m->cfg.C);
        m->be->upload(vb, arm->v, m->cfg.C);
        for (size_t k = 0; k < K; k++) copies[k] = (bipo_score_copy){vb, (float)rc->mult[k]}, kidx[k] = k;
        r = run_pass(rc, &sc, n, build, take, u, rc->ctx->system, arm->layer, copies, K, kidx, K);
        m->be->free(vb);
    } else {
        const char *sys[3] = {arm->system_minus ? arm->system_minus : BIPO_EVAL_SYSTEM_MINUS,
                              rc->ctx->system,
                              arm->system_plus ? arm->system_plus : BIPO_EVAL_SYSTEM_PLUS};
        copies[0] = (bipo_score_copy){NULL, 0.0f};
        for (int s = 0; s < 3 && !r; s++) {
            size_t nk = 0;
            for (size_t k = 0; k < K; k++)
                if ((rc->mult[k] > 0) - (rc->mult[k] < 0) == s - 1) kidx[nk++] = k;
            if (nk) r = run_pass(rc, &sc, n, build, take, u, sys[s], 0, copies, 1, kidx, nk);
        }
    }
    free(kidx), free(copies);
    bipo_scorer_free(&sc);
    return r;
}

// Sets up rc and r (the multipliers, the arm's name) for one evaluation; n items -> *n_use.
static int begin(run_cfg *rc, const bipo_eval_ctx *ctx, const bipo_eval_arm *arm,
                 const bipo_mc_opts *o, bipo_mc_result *r, size_t n, size_t *n_use) {
    *rc = (run_cfg){ctx, arm, o && o->mult ? o->mult : DEFAULT_MULT,
                    o && o->mult ? o->n_mult : 3, o && o->positions == BIPO_POS_ANSWER};
    if (rc->K == 0) return bipo_set_error("arm '%s': no multipliers", arm->name), -1;
    if (r->mult && (r->n_mult != rc->K || memcmp(r->mult, rc->mult, rc->K * sizeof *r->mult))) {
        bipo_set_error("arm '%s': result holds other multipliers", arm->name);
        return -1;
    }
    if (!r->mult) {
        r->n_mult = rc->K;
        r->mult = xmalloc(rc->K * sizeof *r->mult);
        memcpy(r->mult, rc->mult, rc->K * sizeof *r->mult);
        snprintf(r->name, sizeof r->name, "%s", arm->name ? arm->name : "");
    }
    r->positions = rc->answer_from ? BIPO_POS_ANSWER : BIPO_POS_ALL;
    *n_use = o && o->max_items && o->max_items < n ? o->max_items : n;
    if (*n_use == 0) return bipo_set_error("arm '%s': no items to score", arm->name), -1;
    return 0;
}

static double *zeros(size_t n) { return xcalloc(n, sizeof(double)); }

// ---- MMLU ------------------------------------------------------------------------------------

typedef struct {
    const bipo_eval_ctx *ctx;
    const bipo_mc_set *set;
    double *acc, *pc; // [K] sums
    ids_t a, b;
} mmlu_u;

static int mmlu_build(void *u_, size_t i, const char *sys, int answer_from, bipo_score_group *g) {
    mmlu_u *u = u_;
    const bipo_eval_ctx *ctx = u->ctx;
    const bipo_mc_item *it = &u->set->it[i];
    char *hdr = bipo_chat_render(ctx->tpl, sys, it->question);
    size_t lh = strlen(hdr);
    encode(ctx->tok, hdr, &u->a);
    size_t n_hdr = u->a.n;
    char *text = xmalloc(lh + 3);
    memcpy(text, hdr, lh), memcpy(text + lh, "(", 2);
    encode(ctx->tok, text, &u->a);
    size_t P = u->a.n;
    int letter[4];
    for (size_t k = 0; k < it->n_choices; k++) {
        text[lh + 1] = (char)('A' + k), text[lh + 2] = 0;
        encode(ctx->tok, text, &u->b);
        if (u->b.n != P + 1 || memcmp(u->b.p, u->a.p, P * sizeof(int))) {
            bipo_set_error("%s:%zu: the letter %c after \"(\" is not one token of its own with "
                           "this tokenizer (it merges with the prompt)", u->set->path, it->line,
                           (char)('A' + k));
            free(hdr), free(text);
            return -1;
        }
        letter[k] = u->b.p[P];
    }
    free(hdr), free(text);
    // too long: drop prompt tokens after the first (BOS) from the left
    size_t max = ctx->max_length, drop = max && P > max ? P - max : 0, keep = P > 1 ? 1 : 0;
    group_init(g, u->a.p, P - drop, P - drop, 0, it->n_choices, it->n_choices);
    if (drop) memcpy(g->tok + keep, u->a.p + keep + drop, (P - drop - keep) * sizeof(int));
    for (size_t k = 0; k < it->n_choices; k++)
        g->score_row[k] = g->n - 1, g->score_tok[k] = letter[k], g->score_out[k] = k;
    size_t s = answer_from && n_hdr > drop + 1 ? n_hdr - 1 - drop : 0;
    g->steer_from = s < g->n ? s : g->n - 1;
    return 0;
}

static void mmlu_take(void *u_, size_t i, size_t k, const double *out) {
    mmlu_u *u = u_;
    const bipo_mc_item *it = &u->set->it[i];
    size_t best = 0;
    double mx = out[0], z = 0;
    for (size_t c = 1; c < it->n_choices; c++)
        if (out[c] > mx) mx = out[c], best = c;
    for (size_t c = 0; c < it->n_choices; c++) z += exp(out[c] - mx);
    u->acc[k] += best == (size_t)it->answer;
    u->pc[k] += exp(out[it->answer] - mx) / z;
}

int bipo_eval_mmlu(const bipo_eval_ctx *ctx, const bipo_eval_arm *arm, const bipo_mc_set *items,
                   const bipo_mc_opts *o, bipo_mc_result *r) {
    run_cfg rc;
    size_t n;
    if (begin(&rc, ctx, arm, o, r, items->n, &n)) return -1;
    mmlu_u u = {ctx, items, zeros(rc.K), zeros(rc.K), {0}, {0}};
    int st = run(&rc, n, mmlu_build, mmlu_take, &u);
    if (st == 0) {
        free(r->accuracy), free(r->p_correct);
        for (size_t k = 0; k < rc.K; k++) u.acc[k] /= (double)n, u.pc[k] /= (double)n;
        r->accuracy = u.acc, r->p_correct = u.pc, r->n_mmlu = n;
    } else free(u.acc), free(u.pc);
    free(u.a.p), free(u.b.p);
    return st;
}

// ---- TruthfulQA MC1 / MC2 --------------------------------------------------------------------

typedef struct {
    const bipo_eval_ctx *ctx;
    const bipo_tqa_set *set;
    double *mc1, *mc2; // [K] sums
    bipo_chat_seq *seq;
    size_t n_seq;
} tqa_u;

static int tqa_build(void *u_, size_t i, const char *sys, int answer_from, bipo_score_group *g) {
    tqa_u *u = u_;
    const bipo_tqa_item *it = &u->set->it[i];
    size_t A = it->n_answers;
    if (A < 2 || it->n_true == 0 || it->n_true >= A) {
        bipo_set_error("%s:%zu: a TruthfulQA item needs true and false answers", u->set->path, it->line);
        return -1;
    }
    if (A > u->n_seq) {
        u->seq = xrealloc(u->seq, A * sizeof *u->seq);
        memset(u->seq + u->n_seq, 0, (A - u->n_seq) * sizeof *u->seq);
        u->n_seq = A;
    }
    int eos = bipo_chat_eos(u->ctx->tpl, u->ctx->tok);
    // answers join the prompt as training's responses do; their end of turn is not scored
    bipo_response_form form = u->ctx->form ? *u->ctx->form : BIPO_RESPONSE_OFFICIAL;
    form.score_eos = 0;
    size_t P = (size_t)-1, p_min = (size_t)-1, n_score = 0, n = 0;
    for (size_t a = 0; a < A; a++) {
        bipo_chat_seq *s = &u->seq[a];
        if (bipo_chat_encode_pair(u->ctx->tok, u->ctx->tpl, sys, it->question, it->answers[a], &form, s)) {
            bipo_set_error("%s:%zu: answer %zu: %s", u->set->path, it->line, a + 1, bipo_last_error());
            return -1;
        }
        if (s->n > s->n_prompt && s->ids[s->n - 1] == eos) s->n--; // the end of turn: not scored
        size_t d = 0, lim = s->n_prompt < P ? s->n_prompt : P;
        if (a == 0) d = lim;
        else
            while (d < lim && s->ids[d] == u->seq[0].ids[d]) d++;
        P = d;
        if (s->n_prompt < p_min) p_min = s->n_prompt;
    }
    if (P == 0) P = 1; // a shared first token at least (BOS or the template's)
    for (size_t a = 0; a < A; a++) n += u->seq[a].n - P, n_score += u->seq[a].n - u->seq[a].n_prompt;
    group_init(g, NULL, P + n, P, A, n_score, A);
    memcpy(g->tok, u->seq[0].ids, P * sizeof(int));
    for (size_t a = 0, r = P; a < A; a++) {
        const bipo_chat_seq *s = &u->seq[a];
        g->cont_off[a] = r;
        memcpy(g->tok + r, s->ids + P, (s->n - P) * sizeof(int));
        r += s->n - P;
    }
    for (size_t a = 0, e = 0; a < A; a++)
        for (size_t j = u->seq[a].n_prompt; j < u->seq[a].n; j++, e++) {
            g->score_row[e] = bipo_score_group_row(g, (int)a, j - 1); // row j-1 predicts token j
            g->score_tok[e] = u->seq[a].ids[j];
            g->score_out[e] = a;
        }
    size_t st = answer_from && p_min > 0 ? p_min - 1 : 0;
    g->steer_from = st < P ? st : P - 1;
    return 0;
}

static void tqa_take(void *u_, size_t i, size_t k, const double *s) {
    tqa_u *u = u_;
    const bipo_tqa_item *it = &u->set->it[i];
    double mx = s[0], best_false = -INFINITY, zt = 0, za = 0;
    for (size_t a = 1; a < it->n_answers; a++) mx = s[a] > mx ? s[a] : mx;
    for (size_t a = it->n_true; a < it->n_answers; a++) best_false = s[a] > best_false ? s[a] : best_false;
    for (size_t a = 0; a < it->n_answers; a++) {
        double e = exp(s[a] - mx);
        za += e;
        if (a < it->n_true) zt += e;
    }
    u->mc1[k] += s[0] > best_false;
    u->mc2[k] += zt / za;
}

int bipo_eval_tqa(const bipo_eval_ctx *ctx, const bipo_eval_arm *arm, const bipo_tqa_set *items,
                  const bipo_mc_opts *o, bipo_mc_result *r) {
    run_cfg rc;
    size_t n;
    if (begin(&rc, ctx, arm, o, r, items->n, &n)) return -1;
    tqa_u u = {ctx, items, zeros(rc.K), zeros(rc.K), NULL, 0};
    int st = run(&rc, n, tqa_build, tqa_take, &u);
    if (st == 0) {
        free(r->mc1), free(r->mc2);
        for (size_t k = 0; k < rc.K; k++) u.mc1[k] /= (double)n, u.mc2[k] /= (double)n;
        r->mc1 = u.mc1, r->mc2 = u.mc2, r->n_tqa = n;
    } else free(u.mc1), free(u.mc2);
    for (size_t a = 0; a < u.n_seq; a++) bipo_chat_seq_free(&u.seq[a]);
    free(u.seq);
    return st;
}

// ---- neutral text ----------------------------------------------------------------------------

typedef struct {
    ids_t all;       // the text's tokens (BOS first when the tokenizer adds one)
    size_t chunk;    // predicted tokens per chunk
    int bos;         // 1: all.p[0] is a BOS, repeated at the start of every chunk
    double *sum;     // [K]
} text_u;

static size_t text_chunks(const text_u *u) {
    size_t body = u->all.n - (size_t)u->bos;
    return u->bos ? (body + u->chunk - 1) / u->chunk : (body - 1 + u->chunk - 1) / u->chunk;
}

// Chunk i: [BOS] + body tokens [i*chunk, (i+1)*chunk) (without a BOS, one token of overlap so
// that every token but the first is predicted exactly once).
static int text_build(void *u_, size_t i, const char *sys, int answer_from, bipo_score_group *g) {
    (void)sys, (void)answer_from; // plain text: no template, steered everywhere
    text_u *u = u_;
    size_t b = (size_t)u->bos, body = u->all.n - b, s = i * u->chunk, e = s + u->chunk + !b;
    if (e > body) e = body;
    size_t n = b + e - s;
    group_init(g, NULL, n, n, 0, n - 1, 1);
    if (b) g->tok[0] = u->all.p[0];
    memcpy(g->tok + b, u->all.p + b + s, (e - s) * sizeof(int));
    for (size_t r = 0; r + 1 < n; r++) g->score_row[r] = r, g->score_tok[r] = g->tok[r + 1], g->score_out[r] = 0;
    return 0;
}

static void text_take(void *u_, size_t i, size_t k, const double *out) {
    (void)i;
    ((text_u *)u_)->sum[k] += out[0];
}

int bipo_eval_text(const bipo_eval_ctx *ctx, const bipo_eval_arm *arm, const char *text,
                   size_t len, const bipo_mc_opts *o, bipo_mc_result *r) {
    text_u u = {{0}, ctx->max_length > 1 ? ctx->max_length - 1 : TEXT_CHUNK, 0, NULL};
    int bos = bipo_tokenizer_add_bos(ctx->tok) ? bipo_token_bos(ctx->tok) : -1;
    if (bos >= 0) u.all.p = xmalloc((u.all.cap = 64) * sizeof(int)), u.all.p[u.all.n++] = bos, u.bos = 1;
    bipo_tokenize(ctx->tok, text, len, 0, 0, &u.all.p, &u.all.n, &u.all.cap);
    if (u.all.n < 2 || (u.bos && u.all.n < 2)) {
        free(u.all.p);
        return bipo_set_error("neutral text: %zu bytes give fewer than 2 tokens", len), -1;
    }
    run_cfg rc;
    size_t n;
    if (begin(&rc, ctx, arm, &(bipo_mc_opts){o ? o->mult : NULL, o ? o->n_mult : 0,
                                             o ? o->positions : BIPO_POS_ALL, 0},
              r, text_chunks(&u), &n)) {
        free(u.all.p);
        return -1;
    }
    u.sum = zeros(rc.K);
    int st = run(&rc, n, text_build, text_take, &u);
    size_t predicted = u.all.n - 1;
    if (st == 0) {
        free(r->mean_logprob);
        for (size_t k = 0; k < rc.K; k++) u.sum[k] /= (double)predicted;
        r->mean_logprob = u.sum, r->n_text_tokens = predicted;
    } else free(u.sum);
    free(u.all.p);
    return st;
}
