// workers/eval_ab.c — A/B steering curves (see eval.h; docs/EVAL.md has the exact prompts).
//
// Work plan: every (arm, multiplier) is one steered copy. Copies are grouped by system
// prompt (vector arms use the run's; the prompting arm one per sign of the multiplier) and,
// within a system, by hook layer. Per chunk of items and per system: ONE lower pass up to
// the deepest layer of that system (bipo_scorer_lower keeps every layer's output), then per
// layer ONE upper pass holding every copy at that layer as rows of the same GEMMs.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "eval_score.h" // defines: bipo_score_group, bipo_scorer
#include "util.h"       // defines: bipo_set_error, xmalloc

void bipo_ab_result_free(bipo_ab_result *r) {
    free(r->mult), free(r->p_match), free(r->logodds), free(r->item_logodds), free(r->item_first);
    memset(r, 0, sizeof *r);
}


static int same_text(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

int bipo_eval_examples(const bipo_eval_ctx *ctx, const char *system, const bipo_pairs *items,
                       bipo_example **out) {
    size_t n_trunc = 0;
    return bipo_examples_from_pairs(ctx->tok, ctx->tpl, system, ctx->form, items, ctx->max_length, out,
                                    &n_trunc);
}

// Score groups of every item under one system prompt. -1 + bipo_set_error naming the item.
static int build_groups(const bipo_eval_ctx *ctx, const bipo_pairs *items, const char *system,
                        int letter, const bipo_ab_opts *o, bipo_score_group **out) {
    bipo_example *ex = NULL;
    if (bipo_eval_examples(ctx, system, items, &ex) != 0) return -1;
    bipo_score_group *g = xcalloc(items->n, sizeof *g);
    int eos = bipo_chat_eos(ctx->tpl, ctx->tok), rc = 0, answer = o->positions == BIPO_POS_ANSWER;
    for (size_t i = 0; i < items->n && rc == 0; i++) {
        if (letter) {
            rc = bipo_score_group_letter(&g[i], &ex[i], answer);
            char why[256];
            snprintf(why, sizeof why, "%s", rc ? bipo_last_error() : "");
            if (rc != 0)
                bipo_set_error("%s line %zu (item %zu): the answers '%s' and '%s': %s; use "
                               "protocol: text", items->path ? items->path : "items",
                               items->p[i].line, i + 1, items->p[i].matching,
                               items->p[i].not_matching, why);
        } else {
            bipo_score_group_text(&g[i], &ex[i], answer, o->score_eos, eos);
        }
    }
    for (size_t i = 0; i < items->n; i++) bipo_example_free(&ex[i]);
    free(ex);
    if (rc != 0) {
        for (size_t i = 0; i < items->n; i++) bipo_score_group_free(&g[i]);
        free(g);
        return -1;
    }
    *out = g;
    return 0;
}

// One (arm, multiplier): its system prompt, layer and steering.
typedef struct {
    const char *sys;
    size_t sys_id, layer, arm, mi;
    bipo_score_copy c;
} ab_copy;


// Item logodds of every copy of system `sid`: res[arm].item_logodds[mi * n + item].
static void run_system(const bipo_eval_ctx *ctx, bipo_scorer *sc, const bipo_score_group *g,
                       size_t n, const ab_copy *cp, size_t n_cp, size_t sid,
                       bipo_ab_result *res) {
    size_t *layers = xmalloc(n_cp * sizeof *layers), nl = 0, max_layer = 0, maxK = 0;
    for (size_t c = 0; c < n_cp; c++) {
        if (cp[c].sys_id != sid) continue;
        size_t j = 0;
        while (j < nl && layers[j] != cp[c].layer) j++;
        if (j == nl) layers[nl++] = cp[c].layer;
        if (cp[c].layer > max_layer) max_layer = cp[c].layer;
    }
    bipo_score_copy *k_cp = xmalloc(n_cp * sizeof *k_cp);
    size_t *k_of = xmalloc(n_cp * sizeof *k_of);
    for (size_t j = 0; j < nl; j++) {
        size_t K = 0;
        for (size_t c = 0; c < n_cp; c++) K += cp[c].sys_id == sid && cp[c].layer == layers[j];
        if (K > maxK) maxK = K;
    }
    // chunks of items up to max_rows upper rows; the largest runs first, so the
    // activation buffers are sized once (each regrowth reallocates and zero-fills them all)
    size_t budget = ctx->max_rows ? ctx->max_rows : 4096;
    size_t *start = xmalloc((n + 1) * sizeof *start), n_chunks = 0, big = 0, big_rows = 0;
    for (size_t i0 = 0; i0 < n; n_chunks++) {
        size_t G = 0, rows = 0;
        while (i0 + G < n && (G == 0 || rows + bipo_scorer_upper_rows(&g[i0 + G], maxK) <= budget))
            rows += bipo_scorer_upper_rows(&g[i0 + G++], maxK);
        if (rows > big_rows) big_rows = rows, big = n_chunks;
        start[n_chunks] = i0;
        i0 += G;
    }
    start[n_chunks] = n;
    double *out = NULL;
    for (size_t q0 = 0; q0 < n_chunks; q0++) {
        size_t ch = q0 == 0 ? big : q0 <= big ? q0 - 1 : q0; // big, then the others in order
        size_t i0 = start[ch], G = start[ch + 1] - i0;
        bipo_scorer_lower(sc, g + i0, G, max_layer);
        out = xrealloc(out, G * maxK * 2 * sizeof *out);
        for (size_t j = 0; j < nl; j++) {
            // the copies at this layer; every unsteered one (no vector, or m = 0: the same
            // forward) runs once and serves the others (k_of: the copy that runs for c)
            size_t K = 0, k_plain = n_cp;
            for (size_t c = 0; c < n_cp; c++) {
                if (cp[c].sys_id != sid || cp[c].layer != layers[j]) continue;
                int plain = !cp[c].c.v || cp[c].c.mult == 0.0f;
                if (plain && k_plain < n_cp) {
                    k_of[c] = k_plain;
                    continue;
                }
                if (plain) k_plain = K;
                k_of[c] = K;
                k_cp[K++] = cp[c].c;
            }
            bipo_scorer_upper(sc, g + i0, G, layers[j], k_cp, K, ctx->matmul, out);
            for (size_t c = 0; c < n_cp; c++) {
                if (cp[c].sys_id != sid || cp[c].layer != layers[j]) continue;
                for (size_t q = 0; q < G; q++) {
                    const double *o = out + (q * K + k_of[c]) * 2;
                    res[cp[c].arm].item_logodds[cp[c].mi * n + i0 + q] = o[0] - o[1];
                }
            }
        }
    }
    free(out), free(start), free(k_cp), free(k_of), free(layers);
}

static double sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

// Least-squares slope of y over x (0 when every x is the same).
static double ls_slope(const double *x, const double *y, size_t n, size_t stride) {
    double mx = 0, my = 0, sxy = 0, sxx = 0;
    for (size_t i = 0; i < n; i++) mx += x[i], my += y[i * stride];
    mx /= (double)n, my /= (double)n;
    for (size_t i = 0; i < n; i++)
        sxy += (x[i] - mx) * (y[i * stride] - my), sxx += (x[i] - mx) * (x[i] - mx);
    return sxx > 0 ? sxy / sxx : 0.0;
}

void bipo_ab_balanced(const bipo_ab_result *r, double *out) {
    size_t n = r->n_items;
    for (size_t mi = 0; mi < r->n_mult; mi++) {
        double s[2] = {0, 0}, all = 0;
        size_t c[2] = {0, 0};
        for (size_t i = 0; i < n; i++) {
            double p = sigmoid(r->item_logodds[mi * n + i]);
            int g = r->item_first ? r->item_first[i] != 0 : 0;
            s[g] += p, c[g]++, all += p;
        }
        out[mi] = c[0] && c[1] ? 0.5 * (s[0] / (double)c[0] + s[1] / (double)c[1]) : n ? all / (double)n : 0;
    }
}

static void finish_result(bipo_ab_result *r) {
    size_t n = r->n_items;
    for (size_t mi = 0; mi < r->n_mult; mi++) {
        double pm = 0, lo = 0;
        for (size_t i = 0; i < n; i++) {
            double x = r->item_logodds[mi * n + i];
            pm += sigmoid(x), lo += x;
        }
        r->p_match[mi] = pm / (double)n;
        r->logodds[mi] = lo / (double)n;
    }
    r->slope = ls_slope(r->mult, r->logodds, r->n_mult, 1);
    size_t anti = 0;
    for (size_t i = 0; i < n; i++) anti += ls_slope(r->mult, r->item_logodds + i, r->n_mult, n) < 0;
    r->anti_steerable = (double)anti / (double)n;
}

static int check_inputs(const bipo_eval_ctx *ctx, const bipo_eval_arm *arms, size_t n_arms,
                        const bipo_pairs *items, const bipo_ab_opts *o, int *letter) {
    if (!items || items->n == 0 || !o || o->n_mult == 0 || n_arms == 0) {
        bipo_set_error("eval: A/B needs at least one item, one multiplier and one arm (items %zu, "
                       "multipliers %zu, arms %zu)", items ? items->n : 0, o ? o->n_mult : 0, n_arms);
        return -1;
    }
    for (size_t a = 0; a < n_arms; a++)
        if (arms[a].v && arms[a].layer >= ctx->m->cfg.L) {
            bipo_set_error("eval arm '%s': layer %zu is past the model's last layer %zu",
                           arms[a].name ? arms[a].name : "?", arms[a].layer, ctx->m->cfg.L - 1);
            return -1;
        }
    size_t bad = items->n;
    for (size_t i = 0; i < items->n && bad == items->n; i++)
        if (!bipo_answer_is_letter(items->p[i].matching) ||
            !bipo_answer_is_letter(items->p[i].not_matching))
            bad = i;
    *letter = o->protocol == BIPO_AB_LETTER || (o->protocol == BIPO_AB_AUTO && bad == items->n);
    if (o->protocol == BIPO_AB_LETTER && bad < items->n) {
        bipo_set_error("%s line %zu: answer '%s' / '%s' is not a letter choice like \" (A)\"; use "
                       "protocol: text (or auto) for pairs with whole responses",
                       items->path ? items->path : "items", items->p[bad].line,
                       items->p[bad].matching, items->p[bad].not_matching);
        return -1;
    }
    return 0;
}

int bipo_eval_ab(const bipo_eval_ctx *ctx, const bipo_eval_arm *arms, size_t n_arms,
                 const bipo_pairs *items, const bipo_ab_opts *o, bipo_ab_result *out) {
    int letter = 0;
    if (check_inputs(ctx, arms, n_arms, items, o, &letter) != 0) return -1;
    const bipo_backend *be = ctx->m->be;
    size_t C = ctx->m->cfg.C, n = items->n, n_cp = n_arms * o->n_mult;
    float **vb = xcalloc(n_arms, sizeof *vb);
    ab_copy *cp = xcalloc(n_cp, sizeof *cp);
    const char **sys = xmalloc((n_cp + 1) * sizeof *sys);
    size_t n_sys = 1;
    sys[0] = ctx->system;
    for (size_t a = 0; a < n_arms; a++) {
        memset(&out[a], 0, sizeof out[a]);
        snprintf(out[a].name, sizeof out[a].name, "%s", arms[a].name ? arms[a].name : "");
        out[a].n_mult = o->n_mult, out[a].n_items = n;
        out[a].mult = xmalloc(o->n_mult * sizeof(double));
        memcpy(out[a].mult, o->mult, o->n_mult * sizeof(double));
        out[a].p_match = xcalloc(o->n_mult, sizeof(double));
        out[a].logodds = xcalloc(o->n_mult, sizeof(double));
        out[a].item_logodds = xcalloc(o->n_mult * n, sizeof(double));
        out[a].protocol = letter ? BIPO_AB_LETTER : BIPO_AB_TEXT;
        if (letter) { // which letter matches: the earlier one of the pair, or the later
            out[a].item_first = xmalloc(n ? n : 1);
            for (size_t i = 0; i < n; i++) {
                const char *m = strchr(items->p[i].matching, '('), *x = strchr(items->p[i].not_matching, '(');
                out[a].item_first[i] = m && x && m[1] < x[1];
            }
        }
        out[a].positions = o->positions;
        if (arms[a].v) {
            vb[a] = be->alloc(C);
            be->upload(vb[a], arms[a].v, C);
        }
        for (size_t mi = 0; mi < o->n_mult; mi++) {
            ab_copy *c = &cp[a * o->n_mult + mi];
            double mu = o->mult[mi];
            c->arm = a, c->mi = mi, c->layer = arms[a].layer, c->sys = ctx->system;
            c->c = (bipo_score_copy){vb[a], (float)mu};
            if (!arms[a].v) // prompting baseline: the system prompt carries the steering
                c->sys = mu < 0 ? (arms[a].system_minus ? arms[a].system_minus : BIPO_EVAL_SYSTEM_MINUS)
                       : mu > 0 ? (arms[a].system_plus ? arms[a].system_plus : BIPO_EVAL_SYSTEM_PLUS)
                                : ctx->system;
            size_t s = 0;
            while (s < n_sys && !same_text(sys[s], c->sys)) s++;
            if (s == n_sys) sys[n_sys++] = c->sys;
            c->sys_id = s;
        }
    }
    // an unsteered copy runs at any split: put it at a layer its system runs anyway
    for (size_t c = 0; c < n_cp; c++)
        if (!cp[c].c.v) {
            cp[c].layer = 0;
            for (size_t d = 0; d < n_cp; d++)
                if (cp[d].c.v && cp[d].sys_id == cp[c].sys_id) { cp[c].layer = cp[d].layer; break; }
        }
    bipo_scorer sc;
    bipo_scorer_init(&sc, ctx->m);
    int rc = 0;
    for (size_t s = 0; s < n_sys && rc == 0; s++) {
        int used = 0;
        for (size_t c = 0; c < n_cp; c++) used |= cp[c].sys_id == s;
        if (!used) continue;
        bipo_score_group *g = NULL;
        if ((rc = build_groups(ctx, items, sys[s], letter, o, &g)) != 0) break;
        run_system(ctx, &sc, g, n, cp, n_cp, s, out);
        for (size_t i = 0; i < n; i++) bipo_score_group_free(&g[i]);
        free(g);
    }
    bipo_scorer_free(&sc);
    for (size_t a = 0; a < n_arms; a++) {
        if (vb[a]) be->free(vb[a]);
        if (rc == 0) finish_result(&out[a]);
        else bipo_ab_result_free(&out[a]);
    }
    free(vb), free(cp), free(sys);
    return rc;
}
