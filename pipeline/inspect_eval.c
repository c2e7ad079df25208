// pipeline/inspect_eval.c — the evaluation part of `inspect` (cmd_inspect.c calls in): every
// run's eval tree read back generically (pipeline/store_eval.h) as JSON, and the short tables:
// p_match per multiplier and method for each evaluated run (and its MMLU / TruthfulQA / neutral
// text values per multiplier), and for a layer sweep (a behavior evaluated at several layers)
// the range p(max m) - p(min m) per layer and method, best marked — as a table and, from the
// same function (sweep_collect), as the JSON's "sweep".
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect_eval.h" // defines: bipo_inspect_eval_*
#include "store_eval.h"   // defines: bipo_store_read_eval, bipo_eval_table

static json_t *attr_json(const bipo_attr *a) {
    if (a->type == BIPO_ATTR_STR) return json_string(a->s);
    if (a->type == BIPO_ATTR_INT) return json_integer((json_int_t)a->i);
    return isfinite(a->d) ? json_real(a->d) : json_null();
}

json_t *bipo_eval_table_json(const bipo_eval_table *t) {
    json_t *o = json_object();
    for (size_t i = 0; i < t->n_attrs; i++) json_object_set_new(o, t->attrs[i].key, attr_json(&t->attrs[i]));
    for (size_t i = 0; i < t->n_arrays; i++) {
        const bipo_eval_array *a = &t->arrays[i];
        json_t *arr = json_array();
        for (size_t k = 0; k < a->n && a->type == BIPO_EV_STR; k++)
            json_array_append_new(arr, json_string(((char **)a->x)[k])); // invalid UTF-8: null
        for (size_t k = 0; k < a->n && a->type != BIPO_EV_STR; k++) {
            double x = a->type == BIPO_EV_F64 ? ((double *)a->x)[k]
                       : a->type == BIPO_EV_F32 ? ((float *)a->x)[k] : (double)((int64_t *)a->x)[k];
            json_array_append_new(arr, a->type == BIPO_EV_I64 ? json_integer((json_int_t)x)
                                       : isfinite(x) ? json_real(x) : json_null());
        }
        json_object_set_new(o, a->name, arr);
    }
    for (size_t i = 0; i < t->n_kids; i++) json_object_set_new(o, t->kids[i].name, bipo_eval_table_json(&t->kids[i]));
    return o;
}

// The run's eval tree (1), none (0), or -1.
static int read_run_eval(bipo_store *s, const bipo_run_entry *e, bipo_eval_table *t) {
    char path[6 * BIPO_NAME_MAX];
    bipo_store_run_path(path, sizeof path, e->model, e->behavior, e->layer, e->run);
    strcat(path, "/eval");
    return bipo_store_read_eval(s, path, t);
}

int bipo_inspect_eval_json(bipo_store *s, const bipo_run_entry *e, json_t *run) {
    bipo_eval_table t;
    int rc = read_run_eval(s, e, &t);
    if (rc <= 0) return rc;
    json_object_set_new(run, "eval", bipo_eval_table_json(&t));
    bipo_eval_table_free(&t);
    return 0;
}

int bipo_inspect_eval_library_json(bipo_store *s, json_t *top) {
    bipo_eval_table t;
    int rc = bipo_store_read_eval(s, "eval", &t);
    if (rc <= 0) return rc;
    json_object_set_new(top, "eval", bipo_eval_table_json(&t));
    bipo_eval_table_free(&t);
    return 0;
}

static const double *arr(const bipo_eval_table *t, const char *name, size_t *n) {
    const bipo_eval_array *a = bipo_eval_table_get(t, name);
    *n = a && a->type == BIPO_EV_F64 ? a->n : 0;
    return *n ? a->x : NULL;
}

// p(max m) - p(min m) of one arm; NAN when absent.
static double range_of(const bipo_eval_table *arm) {
    size_t nm, np;
    const double *m = arr(arm, "multipliers", &nm), *p = arr(arm, "p_match", &np);
    if (!m || np != nm) return NAN;
    size_t lo = 0, hi = 0;
    for (size_t k = 1; k < nm; k++) lo = m[k] < m[lo] ? k : lo, hi = m[k] > m[hi] ? k : hi;
    return p[hi] - p[lo];
}

// "multiplier" row then one `key` row per arm (kids of parent), with the log-odds slope when asked.
static void value_rows(const bipo_eval_table *parent, const char *key, const char *indent, int slope) {
    size_t nm = 0;
    const double *m = parent->n_kids ? arr(&parent->kids[0], "multipliers", &nm) : NULL;
    printf("%s%-18s", indent, "multiplier");
    for (size_t k = 0; k < nm; k++) printf(" %7g", m[k]);
    printf(slope ? "   slope\n" : "\n");
    for (size_t a = 0; a < parent->n_kids; a++) {
        size_t np;
        const double *p = arr(&parent->kids[a], key, &np);
        printf("%s%-18s", indent, parent->kids[a].name);
        for (size_t k = 0; k < np; k++) printf(" %7.3f", p[k]);
        if (slope) {
            const bipo_attr *sl = bipo_eval_attr_get(parent->kids[a].attrs, parent->kids[a].n_attrs, "logodds_slope");
            printf(" %7.3f", sl ? sl->d : NAN);
        }
        printf("\n");
    }
}

void bipo_inspect_ab_rows(const bipo_eval_table *ab, const char *indent) { value_rows(ab, "p_match", indent, 1); }

// The knowledge sets of an eval tree (eval_knowledge.c): one short table per stored value.
static void knowledge_rows(const bipo_eval_table *ev) {
    static const char *const SET[][3] = {{"mmlu", "accuracy", "n_items"}, {"mmlu", "p_correct", "n_items"},
                                         {"truthfulqa", "mc1", "n_items"}, {"truthfulqa", "mc2", "n_items"},
                                         {"neutral", "mean_logprob", "n_tokens"}};
    for (size_t i = 0; i < sizeof SET / sizeof *SET; i++) {
        const bipo_eval_table *t = bipo_eval_table_find(ev, SET[i][0]);
        if (!t || !t->n_kids) continue;
        const bipo_attr *n = bipo_eval_attr_get(t->attrs, t->n_attrs, SET[i][2]);
        printf("  %s %s (%lld %s)\n", SET[i][0], SET[i][1], n ? (long long)n->i : 0LL, SET[i][2] + 2);
        value_rows(t, SET[i][1], "    ", 0);
    }
}

// ---- layer sweeps: one behavior of one model evaluated at several layers ---------------------
enum { SWEEP_MAX = 64, N_METHODS = 4 };
static const char *const METHODS[N_METHODS] = {"bipo", "caa", "caa_norm_matched", "prompt"};
typedef struct {
    size_t n;                     // evaluated layers (newest runs)
    int layer[SWEEP_MAX];
    double r[SWEEP_MAX][N_METHODS]; // p_match(max m) - p_match(min m); NAN: the method was not run
    int best[N_METHODS];          // index of the largest range, -1 when none
} sweep;

// The sweep of runs [i0, i1) (one model and behavior, sorted by layer): 0, or -1 on a read error.
static int sweep_collect(bipo_store *s, const bipo_listing *l, size_t i0, size_t i1, sweep *w) {
    w->n = 0;
    for (size_t i = i0; i < i1 && w->n < SWEEP_MAX; i++) {
        bipo_eval_table t;
        if (!l->runs[i].newest) continue;
        int rc = read_run_eval(s, &l->runs[i], &t);
        if (rc < 0) return -1;
        if (rc == 0) continue;
        const bipo_eval_table *ab = bipo_eval_table_find(&t, "ab");
        for (int k = 0; k < N_METHODS; k++) {
            const bipo_eval_table *arm = bipo_eval_table_find(ab, METHODS[k]);
            w->r[w->n][k] = arm ? range_of(arm) : NAN;
        }
        w->layer[w->n++] = l->runs[i].layer;
        bipo_eval_table_free(&t);
    }
    for (int k = 0; k < N_METHODS; k++) {
        w->best[k] = -1;
        for (size_t q = 0; q < w->n; q++)
            if (isfinite(w->r[q][k]) && (w->best[k] < 0 || w->r[q][k] > w->r[w->best[k]][k])) w->best[k] = (int)q;
    }
    return 0;
}

static void sweep_table(bipo_store *s, const bipo_listing *l, size_t i0, size_t i1) {
    sweep w;
    if (sweep_collect(s, l, i0, i1, &w) != 0 || w.n < 2) return;
    printf("\nlayer sweep %s / %s: p_match(max m) - p_match(min m), * = best layer\n  %5s", l->runs[i0].model,
           l->runs[i0].behavior, "layer");
    for (int k = 0; k < N_METHODS; k++) printf(" %18s", METHODS[k]);
    printf("\n");
    for (size_t q = 0; q < w.n; q++) {
        printf("  %5d", w.layer[q]);
        for (int k = 0; k < N_METHODS; k++)
            if (isfinite(w.r[q][k])) printf(" %17.3f%s", w.r[q][k], w.best[k] == (int)q ? "*" : " ");
            else printf(" %18s", "-");
        printf("\n");
    }
}

// The runs of one model and behavior: [i, *end) (the listing is sorted by model, behavior, layer).
static size_t group_end(const bipo_listing *l, size_t i) {
    size_t j = i;
    while (j < l->n_runs && !strcmp(l->runs[j].model, l->runs[i].model) &&
           !strcmp(l->runs[j].behavior, l->runs[i].behavior))
        j++;
    return j;
}

int bipo_inspect_sweep_json(bipo_store *s, const bipo_listing *l, json_t *top) {
    json_t *all = json_object();
    for (size_t i = 0; i < l->n_runs;) {
        size_t j = group_end(l, i);
        sweep w;
        if (sweep_collect(s, l, i, j, &w) != 0) return json_decref(all), -1;
        json_t *beh = json_object();
        for (int k = 0; k < N_METHODS && w.n; k++) {
            if (w.best[k] < 0) continue;
            json_t *m = json_object(), *layers = json_array(), *range = json_array();
            for (size_t q = 0; q < w.n; q++) {
                json_array_append_new(layers, json_integer(w.layer[q]));
                json_array_append_new(range, isfinite(w.r[q][k]) ? json_real(w.r[q][k]) : json_null());
            }
            json_object_set_new(m, "layers", layers);
            json_object_set_new(m, "range", range);
            json_object_set_new(m, "best_layer", json_integer(w.layer[w.best[k]]));
            json_object_set_new(beh, METHODS[k], m);
        }
        if (json_object_size(beh)) {
            json_t *model = json_object_get(all, l->runs[i].model);
            if (!model) json_object_set_new(all, l->runs[i].model, model = json_object());
            json_object_set_new(model, l->runs[i].behavior, beh);
        } else
            json_decref(beh);
        i = j;
    }
    json_object_set_new(top, "sweep", all);
    return 0;
}

void bipo_inspect_eval_tables(bipo_store *s, const bipo_listing *l) {
    for (size_t i = 0; i < l->n_runs; i++) {
        bipo_eval_table t;
        if (read_run_eval(s, &l->runs[i], &t) <= 0) continue;
        const bipo_eval_table *ab = bipo_eval_table_find(&t, "ab");
        const bipo_attr *n = bipo_eval_attr_get(t.attrs, t.n_attrs, "n_items");
        const bipo_attr *pr = ab && ab->n_kids ? bipo_eval_attr_get(ab->kids[0].attrs, ab->kids[0].n_attrs, "protocol") : NULL;
        printf("\neval %s / %s / layer %d (run %s, %lld items, %s protocol): p_match\n", l->runs[i].model,
               l->runs[i].behavior, l->runs[i].layer, l->runs[i].run, n ? (long long)n->i : 0LL,
               pr ? pr->s : "?");
        if (ab) bipo_inspect_ab_rows(ab, "  ");
        knowledge_rows(&t);
        bipo_eval_table_free(&t);
    }
    for (size_t i = 0; i < l->n_runs;) { // runs are sorted by model, behavior, layer
        size_t j = group_end(l, i);
        sweep_table(s, l, i, j);
        i = j;
    }
    bipo_eval_table lib;
    if (bipo_store_read_eval(s, "eval", &lib) <= 0) return;
    for (size_t k = 0; k < lib.n_kids; k++) // compose / transfer: <kind>/<name>/ab
        for (size_t e = 0; e < lib.kids[k].n_kids; e++) {
            const bipo_eval_table *ab = bipo_eval_table_find(&lib.kids[k].kids[e], "ab");
            printf("\n%s %s: p_match\n", lib.kids[k].name, lib.kids[k].kids[e].name);
            if (ab) bipo_inspect_ab_rows(ab, "  ");
            knowledge_rows(&lib.kids[k].kids[e]);
        }
    bipo_eval_table_free(&lib);
}
