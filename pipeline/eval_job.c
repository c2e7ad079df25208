// pipeline/eval_job.c — one run's evaluation (see eval_job.h): the arms the config asks for
// (BiPO's vector, CAA's and its norm-matched copy, the prompting baseline) on the behavior's
// held-out items, measured in chunks with a progress line, then on the knowledge sets
// (eval_knowledge.c) and in free text (eval_generate.c), filed as tables under the run. Between
// chunks the sink's poll runs, so rank 0 keeps serving the other leaders while it evaluates.
#include "eval_job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"        // defines: bipo_chat_template_by_name
#include "config_eval.h" // defines: bipo_eval_cfg, bipo_eval_settings_hash
#include "util.h"        // defines: bipo_now, xcalloc

enum { CHUNK = 4 }; // items per bipo_eval_ab call: the progress line's granularity

// ---- arms in chunks, merged -------------------------------------------------------------------
static void merge_into(bipo_ab_result *acc, const bipo_ab_result *r, size_t done) {
    size_t n = done + r->n_items, M = r->n_mult;
    double wa = (double)done / (double)n, wr = (double)r->n_items / (double)n;
    if (!done) { // first chunk: take its shape
        snprintf(acc->name, sizeof acc->name, "%s", r->name);
        acc->n_mult = M, acc->protocol = r->protocol, acc->positions = r->positions;
        acc->mult = xcalloc(M, sizeof(double)), acc->p_match = xcalloc(M, sizeof(double));
        acc->logodds = xcalloc(M, sizeof(double));
        memcpy(acc->mult, r->mult, M * sizeof(double));
    }
    for (size_t m = 0; m < M; m++) {
        acc->p_match[m] = wa * acc->p_match[m] + wr * r->p_match[m];
        acc->logodds[m] = wa * acc->logodds[m] + wr * r->logodds[m];
    }
    // the slope is linear in the mean log-odds and anti_steerable a fraction of items: both
    // merge as item-weighted means
    acc->slope = wa * acc->slope + wr * r->slope;
    acc->anti_steerable = wa * acc->anti_steerable + wr * r->anti_steerable;
    double *il = xcalloc(M * n, sizeof(double)); // [mi * n + item]
    for (size_t m = 0; m < M; m++) {
        if (done) memcpy(il + m * n, acc->item_logodds + m * done, done * sizeof(double));
        memcpy(il + m * n + done, r->item_logodds + m * r->n_items, r->n_items * sizeof(double));
    }
    free(acc->item_logodds);
    acc->item_logodds = il;
    if (r->item_first) {
        acc->item_first = xrealloc(acc->item_first, n);
        memcpy(acc->item_first + done, r->item_first, r->n_items);
    }
    acc->n_items = n;
}

int bipo_eval_arms(const bipo_eval_ctx *ec, const bipo_eval_arm *arms, size_t n_arms,
                   const bipo_pairs *items, const bipo_ab_opts *o, const bipo_eval_progress *pr,
                   bipo_ab_result *out) {
    bipo_ab_result *r = xcalloc(n_arms, sizeof *r);
    memset(out, 0, n_arms * sizeof *out);
    double t0 = bipo_now();
    for (size_t at = 0; at < items->n; at += CHUNK) {
        bipo_pairs part = *items;
        part.p = items->p + at;
        part.n = items->n - at < CHUNK ? items->n - at : CHUNK;
        if (bipo_eval_ab(ec, arms, n_arms, &part, o, r) != 0) {
            for (size_t a = 0; a < n_arms; a++) bipo_ab_result_free(&out[a]);
            free(r);
            return -1;
        }
        for (size_t a = 0; a < n_arms; a++) merge_into(&out[a], &r[a], at), bipo_ab_result_free(&r[a]);
        bipo_eval_progress_tick(pr, "", at + part.n, items->n, n_arms, 0, t0);
    }
    free(r);
    return 0;
}

void bipo_eval_ab_table(bipo_eval_table *ab, const bipo_ab_result *r) {
    bipo_eval_table *t = bipo_eval_table_child(ab, r->name);
    bipo_eval_table_array(t, "multipliers", BIPO_EV_F64, r->mult, r->n_mult);
    bipo_eval_table_array(t, "p_match", BIPO_EV_F64, r->p_match, r->n_mult);
    bipo_eval_table_array(t, "logodds", BIPO_EV_F64, r->logodds, r->n_mult);
    bipo_eval_table_array(t, "item_logodds", BIPO_EV_F64, r->item_logodds, r->n_mult * r->n_items);
    if (r->item_first) { // letter protocol: p_match with one-letter preference taken out
        double *bal = xmalloc(r->n_mult * sizeof *bal);
        bipo_ab_balanced(r, bal);
        bipo_eval_table_array(t, "p_match_balanced", BIPO_EV_F64, bal, r->n_mult);
        free(bal);
    }
    BIPO_EVAL_ATTR(t, BIPO_ATTR_D("logodds_slope", r->slope));
    BIPO_EVAL_ATTR(t, BIPO_ATTR_D("anti_steerable", r->anti_steerable));
    BIPO_EVAL_ATTR(t, BIPO_ATTR_S("protocol", r->protocol == BIPO_AB_LETTER ? "letter" : "text"));
    BIPO_EVAL_ATTR(t, BIPO_ATTR_S("positions", r->positions == BIPO_POS_ANSWER ? "answer" : "all"));
    BIPO_EVAL_ATTR(t, BIPO_ATTR_I("n_items", (int64_t)r->n_items));
}

// ---- one run --------------------------------------------------------------------------------
static double norm(const float *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

// The held-out split as indices into the behavior's data file (test pairs keep file order and
// their line; an index is the count of pairs, train or test, on earlier lines).
static void split_table(bipo_eval_table *ev, const bipo_config_file *c, const bipo_behavior_cfg *bc,
                        const bipo_behavior_data *d, const bipo_pairs *items, int override) {
    bipo_eval_table *sp = bipo_eval_table_child(ev, "split");
    size_t n = items->n;
    int64_t *idx = xcalloc(n ? n : 1, sizeof *idx), *line = xcalloc(n ? n : 1, sizeof *line);
    for (size_t i = 0; i < n; i++) {
        line[i] = (int64_t)items->p[i].line;
        size_t before = i; // items before it (file order)
        if (!override && !bc->test_data)
            for (size_t k = 0; k < d->train.n; k++) before += d->train.p[k].line < items->p[i].line;
        idx[i] = (int64_t)before;
    }
    bipo_eval_table_array(sp, "test_indices", BIPO_EV_I64, idx, n);
    bipo_eval_table_array(sp, "test_lines", BIPO_EV_I64, line, n);
    const char *src = override ? "eval.test_data" : bc->test_data ? "test_data" : "split";
    BIPO_EVAL_ATTR(sp, BIPO_ATTR_S("source", src));
    BIPO_EVAL_ATTR(sp, BIPO_ATTR_S("path", items->path ? items->path : ""));
    BIPO_EVAL_ATTR(sp, BIPO_ATTR_I("split_seed", (int64_t)bipo_config_split_seed(c)));
    BIPO_EVAL_ATTR(sp, BIPO_ATTR_D("test_fraction", bc->test_fraction));
    free(idx), free(line);
}

// The items a behavior is evaluated on: eval.test_data or the held-out pairs, first max_items.
// *own is loaded here (free it) when the override is set. 0 or -1.
static int eval_items(const bipo_eval_cfg *e, const bipo_behavior_cfg *bc, const bipo_behavior_data *d,
                      bipo_pairs *own, bipo_pairs *items, char hash[65]) {
    memset(own, 0, sizeof *own);
    if (e->test_data && bipo_pairs_load(own, e->test_data, bc->format, &bc->fields) != 0) return -1;
    *items = e->test_data ? *own : d->test;
    if (e->max_items && items->n > e->max_items) items->n = e->max_items;
    snprintf(hash, 65, "%s", e->test_data ? own->sha256 : d->hash);
    return 0;
}

int bipo_eval_job(bipo_job_ctx *j, size_t layer, const char *hash, const float *v) {
    const bipo_eval_cfg *e = j->c->eval;
    if (!j->sink->eval) return 0;
    bipo_pairs own, items;
    char ihash[65], shash[65], label[256];
    if (eval_items(e, j->bc, j->data, &own, &items, ihash) != 0) return -1;
    bipo_job_key key = {j->mc->id, j->bc->name, (int)layer, hash};
    snprintf(label, sizeof label, "%s  eval %s / layer %zu", j->prefix, j->bc->name, layer);
    if (!items.n) {
        printf("%s: no held-out items (set test_data, test_fraction > 0 or eval.test_data): skipped\n", label);
        bipo_pairs_free(&own);
        return 0;
    }
    bipo_eval_ctx ec = {j->model, j->tok, bipo_chat_template_by_name(j->template_name), j->system,
                        j->c->train.hp.max_length, j->c->train.hp.forward_matmul, &j->data->form};
    size_t C = j->model->cfg.C;
    float *caa = xcalloc(C, sizeof *caa), *caa_n = xcalloc(C, sizeof *caa_n);
    bipo_eval_arm arms[4];
    size_t na = 0;
    int rc = -1;
    double scale = 0;
    if (e->methods & BIPO_EVAL_BIPO) arms[na++] = (bipo_eval_arm){"bipo", layer, v, NULL, NULL};
    if (e->methods & (BIPO_EVAL_CAA | BIPO_EVAL_CAA_NORM)) {
        if (bipo_caa_vector(&ec, layer, &j->data->train, caa) != 0) goto out;
        double nc = norm(caa, C);
        scale = nc > 0 ? norm(v, C) / nc : 0;
        for (size_t i = 0; i < C; i++) caa_n[i] = (float)(caa[i] * scale);
        if (e->methods & BIPO_EVAL_CAA) arms[na++] = (bipo_eval_arm){"caa", layer, caa, NULL, NULL};
        if (e->methods & BIPO_EVAL_CAA_NORM) arms[na++] = (bipo_eval_arm){"caa_norm_matched", layer, caa_n, NULL, NULL};
    }
    if (e->methods & BIPO_EVAL_PROMPT) {
        arms[na] = (bipo_eval_arm){"prompt", layer, NULL, NULL, NULL};
        bipo_eval_prompts_for(e, j->bc->name, &arms[na].system_plus, &arms[na].system_minus);
        na++;
    }
    bipo_ab_opts o = {e->mult, e->n_mult, e->positions, e->protocol, e->score_eos};
    bipo_ab_result res[4];
    bipo_eval_progress pr = {label, j->o->quiet, j->sink};
    double t0 = bipo_now();
    if (bipo_eval_arms(&ec, arms, na, &items, &o, &pr, res) != 0) goto out;
    bipo_eval_table tabs[2];
    bipo_eval_table_init(&tabs[0], "eval");
    bipo_eval_table_init(&tabs[1], "."); // the CAA vectors beside the run's BiPO vector
    char judge_err[1024];
    if (bipo_eval_knowledge(&ec, e, arms, na, &pr, &tabs[0]) != 0 ||
        bipo_eval_generations(&ec, e, layer, v, &pr, &tabs[0], judge_err, sizeof judge_err) != 0) {
        for (size_t a = 0; a < na; a++) bipo_ab_result_free(&res[a]);
        bipo_eval_table_free(&tabs[0]), bipo_eval_table_free(&tabs[1]);
        goto out;
    }
    bipo_eval_settings_hash(e, j->bc->name, ihash, shash);
    BIPO_EVAL_ATTR(&tabs[0], BIPO_ATTR_S("settings_hash", shash));
    BIPO_EVAL_ATTR(&tabs[0], BIPO_ATTR_I("n_items", (int64_t)items.n));
    BIPO_EVAL_ATTR(&tabs[0], BIPO_ATTR_D("elapsed_s", bipo_now() - t0));
    bipo_eval_table *ab = bipo_eval_table_child(&tabs[0], "ab");
    for (size_t a = 0; a < na; a++) bipo_eval_ab_table(ab, &res[a]), bipo_ab_result_free(&res[a]);
    split_table(&tabs[0], j->c, j->bc, j->data, &items, e->test_data != NULL);
    if (e->methods & (BIPO_EVAL_CAA | BIPO_EVAL_CAA_NORM)) {
        bipo_eval_array *x = bipo_eval_table_array(&tabs[1], "caa", BIPO_EV_F32, caa, C);
        bipo_eval_table_attr(&x->attrs, &x->n_attrs, BIPO_ATTR_S("method", "caa"));
        x = bipo_eval_table_array(&tabs[1], "caa_norm_matched", BIPO_EV_F32, caa_n, C);
        bipo_eval_table_attr(&x->attrs, &x->n_attrs, BIPO_ATTR_S("method", "caa_norm_matched"));
        bipo_eval_table_attr(&x->attrs, &x->n_attrs, BIPO_ATTR_D("scale", scale));
    }
    bipo_eval_where w = {&key, NULL};
    rc = j->sink->eval(j->sink, &w, tabs, tabs[1].n_arrays ? 2 : 1);
    if (rc == 0 && judge_err[0]) // the generations are stored; the run still fails, naming the judge
        rc = -1, bipo_set_error("%s (the generations are stored; attr judge_error)", judge_err);
    bipo_eval_table_free(&tabs[0]), bipo_eval_table_free(&tabs[1]);
out:
    free(caa), free(caa_n);
    bipo_pairs_free(&own);
    return rc;
}

// Rank 0: the write and its report (p_match at the smallest and largest multiplier per arm).
int bipo_eval_write(bipo_store *s, const bipo_eval_where *w, const bipo_eval_table *t, size_t n) {
    if (bipo_store_write_eval(s, w, t, n) != 0) return -1;
    const bipo_eval_table *ab = bipo_eval_table_find(&t[0], "ab");
    char line[1024] = "";
    for (size_t i = 0; ab && i < ab->n_kids; i++) {
        const bipo_eval_array *p = bipo_eval_table_get(&ab->kids[i], "p_match");
        const bipo_eval_array *m = bipo_eval_table_get(&ab->kids[i], "multipliers");
        if (!p || !m || !p->n) continue;
        const double *px = p->x, *mx = m->x;
        size_t lo = 0, hi = 0;
        for (size_t k = 1; k < m->n; k++) lo = mx[k] < mx[lo] ? k : lo, hi = mx[k] > mx[hi] ? k : hi;
        snprintf(line + strlen(line), sizeof line - strlen(line), "  %s %.3f..%.3f", ab->kids[i].name, px[lo], px[hi]);
    }
    if (w->key)
        printf("[eval] %s / %s / layer %d: stored; p_match at min..max multiplier:%s\n", w->key->model_id,
               w->key->behavior, w->key->layer, line);
    else
        printf("[eval] %s/%s: stored;%s\n", w->path, t[0].name, line);
    fflush(stdout);
    return 0;
}
