// workers/eval_score.c — see eval_score.h. Both passes use the shared-prefix layout of
// model.h (bipo_batch.kv_rows): a group's continuations read its prompt's keys, and in the
// upper pass every copy reads the group's unsteered rows (below steer_from) from one place.
#include "eval_score.h"

#include <stdlib.h>
#include <string.h>

#include "util.h" // defines: xmalloc, xcalloc, xrealloc

void bipo_score_group_free(bipo_score_group *g) {
    free(g->tok), free(g->cont_off), free(g->score_row), free(g->score_tok), free(g->score_out);
    memset(g, 0, sizeof *g);
}

static void group_alloc(bipo_score_group *g, size_t n, size_t n_prompt, size_t S,
                        size_t n_score, size_t n_out) {
    memset(g, 0, sizeof *g);
    g->n = n, g->n_prompt = n_prompt, g->S = S, g->n_score = n_score, g->n_out = n_out;
    g->tok = xmalloc((n ? n : 1) * sizeof *g->tok);
    g->cont_off = xmalloc((S + 1) * sizeof *g->cont_off);
    g->cont_off[0] = n_prompt;
    g->score_row = xmalloc((n_score ? n_score : 1) * sizeof *g->score_row);
    g->score_tok = xmalloc((n_score ? n_score : 1) * sizeof *g->score_tok);
    g->score_out = xmalloc((n_score ? n_score : 1) * sizeof *g->score_out);
}

// The last prompt token on (answer_from), else every row; never past the group's prompt.
static size_t steer_start(const bipo_example *e, size_t n_prompt, int answer_from) {
    if (!answer_from) return 0;
    size_t p = e->p[0] < e->p[1] ? e->p[0] : e->p[1];
    size_t a = p > 0 ? p - 1 : 0;
    return a < n_prompt ? a : n_prompt - 1;
}

int bipo_score_group_letter(bipo_score_group *g, const bipo_example *e, int answer_from) {
    size_t lim = e->n[0] < e->n[1] ? e->n[0] : e->n[1], d = 0;
    while (d < lim && e->tok[0][d] == e->tok[1][d]) d++;
    if (d == 0 || d == lim) {
        bipo_set_error("the two answers tokenize to %s", d == 0 ? "sequences that differ at "
                       "their first token" : "the same tokens (or one extends the other)");
        return -1;
    }
    group_alloc(g, d, d, 0, 2, 2);
    memcpy(g->tok, e->tok[0], d * sizeof *g->tok);
    for (int k = 0; k < 2; k++) {
        g->score_row[k] = d - 1;
        g->score_tok[k] = e->tok[k][d];
        g->score_out[k] = (size_t)k;
    }
    g->steer_from = steer_start(e, d, answer_from);
    return 0;
}

size_t bipo_score_group_row(const bipo_score_group *g, int k, size_t j) {
    size_t P = g->n_prompt;
    return j < P ? j : g->cont_off[k] + (j - P);
}

void bipo_score_group_text(bipo_score_group *g, const bipo_example *e, int answer_from,
                           int score_eos, int eos) {
    size_t n[2], P = 0, lim = e->p[0] < e->p[1] ? e->p[0] : e->p[1];
    while (P < lim && e->tok[0][P] == e->tok[1][P]) P++;
    size_t n_score = 0;
    for (int k = 0; k < 2; k++) {
        n[k] = e->n[k];
        if (!score_eos && n[k] > e->p[k] && e->tok[k][n[k] - 1] == eos) n[k]--;
        n_score += n[k] - e->p[k];
    }
    if (P == 0) P = 1; // a shared BOS at least (bipo_examples_build never gives an empty prompt)
    group_alloc(g, n[0] + n[1] - P, P, 2, n_score, 2);
    g->cont_off[1] = n[0];
    g->cont_off[2] = g->n;
    memcpy(g->tok, e->tok[0], n[0] * sizeof *g->tok);
    memcpy(g->tok + n[0], e->tok[1] + P, (n[1] - P) * sizeof *g->tok);
    size_t r = 0;
    for (int k = 0; k < 2; k++)
        for (size_t j = e->p[k]; j < n[k]; j++, r++) {
            g->score_row[r] = bipo_score_group_row(g, k, j - 1); // row j-1 predicts token j
            g->score_tok[r] = e->tok[k][j];
            g->score_out[r] = (size_t)k;
        }
    g->steer_from = steer_start(e, P, answer_from);
}

// ---- packed layouts ------------------------------------------------------------------------

typedef struct {
    size_t *v;
    size_t n, cap;
} zvec;

static void zpush(zvec *z, size_t x) {
    if (z->n == z->cap) z->v = xrealloc(z->v, (z->cap = 2 * z->cap + 64) * sizeof *z->v);
    z->v[z->n++] = x;
}

// One packed batch under construction: rows (token, position, source row in the lower
// batch), blocks (bipo_batch.off: one per group) and attention sequences (query rows end at
// aq, keys listed in kv).
typedef struct {
    zvec src, blk, aq, ak, kv;
    int *tok, *pos;
    size_t N, capN;
} layout;

static void lay_row(layout *L, int tok, int pos, size_t src) {
    if (L->N == L->capN) {
        L->capN = 2 * L->capN + 64;
        L->tok = xrealloc(L->tok, L->capN * sizeof *L->tok);
        L->pos = xrealloc(L->pos, L->capN * sizeof *L->pos);
    }
    L->tok[L->N] = tok, L->pos[L->N] = pos;
    L->N++;
    zpush(&L->src, src);
}

static void lay_keys(layout *L, size_t from, size_t n) {
    for (size_t i = 0; i < n; i++) zpush(&L->kv, from + i);
}

// Closes an attention sequence whose queries are the rows added since the last one.
static void lay_seq(layout *L) {
    zpush(&L->aq, L->N);
    zpush(&L->ak, L->kv.n);
}

static void lay_start(layout *L) {
    memset(L, 0, sizeof *L);
    zpush(&L->blk, 0), zpush(&L->aq, 0), zpush(&L->ak, 0);
}

static void lay_free(layout *L) {
    free(L->src.v), free(L->blk.v), free(L->aq.v), free(L->ak.v), free(L->kv.v);
    free(L->tok), free(L->pos);
}

static bipo_batch lay_batch(const layout *L) {
    return (bipo_batch){L->blk.n - 1, L->blk.v, L->tok, L->pos, L->aq.n - 1, L->aq.v, L->ak.v,
                        L->kv.v};
}

static int group_pos(const bipo_score_group *g, size_t r) {
    if (r < g->n_prompt) return (int)r;
    size_t s = 0;
    while (r >= g->cont_off[s + 1]) s++;
    return (int)(g->n_prompt + r - g->cont_off[s]);
}

// Attention sequences of rows [from, from + (n - a)) holding group rows [a, n) of g (added
// already), after `shared` rows [sh, sh + a) (a = 0: none): the prompt's tail reads the shared
// rows and itself; continuation s reads those and its own rows.
static void lay_group_seqs(layout *L, const bipo_score_group *g, size_t a, size_t sh,
                           size_t from) {
    size_t np = g->n_prompt;
    for (size_t s = 0; s <= g->S; s++) { // s = 0: the prompt's tail; s > 0: continuation s-1
        lay_keys(L, sh, a);
        lay_keys(L, from, np - a);
        size_t end = from + np - a;
        if (s > 0) {
            size_t c0 = g->cont_off[s - 1] - a, c1 = g->cont_off[s] - a;
            lay_keys(L, from + c0, c1 - c0);
            end = from + c1;
        }
        zpush(&L->aq, end);
        zpush(&L->ak, L->kv.n);
    }
}

// ---- scorer ------------------------------------------------------------------------------

void bipo_scorer_init(bipo_scorer *sc, bipo_model *m) {
    memset(sc, 0, sizeof *sc);
    sc->m = m;
    bipo_acts_init(&sc->lo, 0);
    bipo_acts_init(&sc->hi, 0);
}

void bipo_scorer_free(bipo_scorer *sc) {
    const bipo_backend *be = sc->m->be;
    bipo_acts_free(&sc->lo, be);
    bipo_acts_free(&sc->hi, be);
    if (sc->hbuf) be->free(sc->hbuf);
    if (sc->lp) be->free(sc->lp), be->free(sc->lse);
    free(sc->lo_base);
    memset(sc, 0, sizeof *sc);
}

void bipo_scorer_lower(bipo_scorer *sc, const bipo_score_group *g, size_t G, size_t max_layer) {
    CHECK(max_layer < sc->m->cfg.L, "layer %zu >= %zu layers", max_layer, sc->m->cfg.L);
    layout L;
    lay_start(&L);
    if (G > sc->lo_cap) sc->lo_base = xrealloc(sc->lo_base, (sc->lo_cap = G) * sizeof(size_t));
    for (size_t i = 0; i < G; i++) {
        size_t base = L.N;
        sc->lo_base[i] = base;
        for (size_t r = 0; r < g[i].n; r++) lay_row(&L, g[i].tok[r], group_pos(&g[i], r), r);
        lay_group_seqs(&L, &g[i], 0, 0, base);
        zpush(&L.blk, L.N);
    }
    bipo_batch b = lay_batch(&L);
    bipo_forward(sc->m, &sc->lo, &b, NULL, NULL, 0, (int)max_layer, BIPO_MATMUL_FP32); // h_L: fp32
    sc->lo_G = G;
    sc->lo_layer = max_layer;
    lay_free(&L);
}

const float *bipo_scorer_h(const bipo_scorer *sc, size_t i, size_t layer) {
    CHECK(i < sc->lo_G && layer <= sc->lo_layer, "group %zu / layer %zu not in the lower pass",
          i, layer);
    return sc->lo.resid[layer + 1] + sc->lo_base[i] * sc->m->cfg.C;
}

size_t bipo_scorer_upper_rows(const bipo_score_group *g, size_t K) {
    return g->steer_from + K * (g->n - g->steer_from);
}

void bipo_scorer_upper(bipo_scorer *sc, const bipo_score_group *g, size_t G, size_t layer,
                       const bipo_score_copy *copies, size_t K, bipo_matmul_precision matmul,
                       double *out) {
    bipo_model *m = sc->m;
    const bipo_backend *be = m->be;
    size_t C = m->cfg.C, V = m->cfg.V;
    CHECK(G == sc->lo_G && layer <= sc->lo_layer, "upper pass of groups the lower pass lacks");
    layout L;
    lay_start(&L);
    zvec rows = {0}, cbase = {0}; // scored rows; first row of each (group, copy) block
    int *targets = NULL;
    size_t M = 0, capM = 0;
    for (size_t i = 0; i < G; i++) {
        const bipo_score_group *gi = &g[i];
        size_t a = gi->steer_from, lb = sc->lo_base[i], sh = L.N;
        CHECK(a < gi->n_prompt, "steer_from %zu >= prompt %zu", a, gi->n_prompt);
        for (size_t r = 0; r < a; r++) lay_row(&L, gi->tok[r], (int)r, lb + r);
        if (a > 0) lay_keys(&L, sh, a), lay_seq(&L);
        for (size_t k = 0; k < K; k++) {
            size_t from = L.N;
            zpush(&cbase, from);
            for (size_t r = a; r < gi->n; r++) lay_row(&L, gi->tok[r], group_pos(gi, r), lb + r);
            lay_group_seqs(&L, gi, a, sh, from);
            if (M + gi->n_score > capM) {
                capM = 2 * (M + gi->n_score) + 64;
                targets = xrealloc(targets, capM * sizeof *targets);
            }
            for (size_t e = 0; e < gi->n_score; e++, M++) {
                size_t r = gi->score_row[e];
                zpush(&rows, r < a ? sh + r : from + r - a);
                targets[M] = gi->score_tok[e];
            }
        }
        zpush(&L.blk, L.N);
    }
    // h_in = the lower pass's h_L at each row's source, + mult_k v_k on each copy's rows
    if (L.N > sc->hcap) {
        if (sc->hbuf) be->free(sc->hbuf);
        sc->hbuf = be->alloc((sc->hcap = L.N + L.N / 2) * C);
    }
    be->gather_rows(sc->hbuf, sc->lo.resid[layer + 1], L.src.v, L.N, C);
    for (size_t i = 0, c = 0; i < G; i++)
        for (size_t k = 0; k < K; k++, c++)
            if (copies[k].v && copies[k].mult != 0.0f)
                be->add_vector_forward(sc->hbuf + cbase.v[c] * C, copies[k].v, copies[k].mult,
                                       NULL, g[i].n - g[i].steer_from, C);
    bipo_batch b = lay_batch(&L);
    bipo_forward_from(m, &sc->hi, &b, sc->hbuf, layer + 1, NULL, rows.v, M, matmul);
    if (M > sc->lpcap) {
        if (sc->lp) be->free(sc->lp), be->free(sc->lse);
        sc->lp = be->alloc(sc->lpcap = M);
        sc->lse = be->alloc(M);
    }
    be->logprob_forward(sc->lp, sc->lse, sc->hi.logits, targets, M, V);
    float *lp = xmalloc((M ? M : 1) * sizeof *lp);
    be->download(lp, sc->lp, M);
    size_t e0 = 0, o0 = 0;
    for (size_t i = 0; i < G; i++)
        for (size_t k = 0; k < K; k++) {
            double *o = out + o0;
            for (size_t q = 0; q < g[i].n_out; q++) o[q] = 0;
            for (size_t e = 0; e < g[i].n_score; e++) o[g[i].score_out[e]] += lp[e0 + e];
            e0 += g[i].n_score;
            o0 += g[i].n_out;
        }
    free(lp), free(targets), free(rows.v), free(cbase.v);
    lay_free(&L);
}
