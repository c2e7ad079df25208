// pipeline/inspect_eval.c — the evaluation part of `inspect` (cmd_inspect.c calls in): every
// run's eval tree read back generically (pipeline/store_eval.h) as JSON, and the short tables:
// p_match per multiplier and method for each evaluated run, and for a layer sweep (a behavior
// evaluated at several layers) the range p(max m) - p(min m) per layer and method, best marked.
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
        for (size_t k = 0; k < a->n; k++) {
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

// "multiplier" row then one p_match row per arm.
void bipo_inspect_ab_rows(const bipo_eval_table *ab, const char *indent) {
    size_t nm = 0;
    const double *m = ab->n_kids ? arr(&ab->kids[0], "multipliers", &nm) : NULL;
    printf("%s%-18s", indent, "multiplier");
    for (size_t k = 0; k < nm; k++) printf(" %7g", m[k]);
    printf("   slope\n");
    for (size_t a = 0; a < ab->n_kids; a++) {
        size_t np;
        const double *p = arr(&ab->kids[a], "p_match", &np);
        const bipo_attr *sl = bipo_eval_attr_get(ab->kids[a].attrs, ab->kids[a].n_attrs, "logodds_slope");
        printf("%s%-18s", indent, ab->kids[a].name);
        for (size_t k = 0; k < np; k++) printf(" %7.3f", p[k]);
        printf(" %7.3f\n", sl ? sl->d : NAN);
    }
}

static void sweep_table(bipo_store *s, const bipo_listing *l, size_t i0, size_t i1) {
    const char *methods[] = {"bipo", "caa", "caa_norm_matched", "prompt"};
    double r[64][4];
    int layer[64];
    size_t nl = 0;
    for (size_t i = i0; i < i1 && nl < 64; i++) {
        bipo_eval_table t;
        if (!l->runs[i].newest || read_run_eval(s, &l->runs[i], &t) <= 0) continue;
        const bipo_eval_table *ab = bipo_eval_table_find(&t, "ab");
        for (int k = 0; k < 4; k++) {
            const bipo_eval_table *arm = bipo_eval_table_find(ab, methods[k]);
            r[nl][k] = arm ? range_of(arm) : NAN;
        }
        layer[nl++] = l->runs[i].layer;
        bipo_eval_table_free(&t);
    }
    if (nl < 2) return;
    printf("\nlayer sweep %s / %s: p_match(max m) - p_match(min m), * = best layer\n  %5s", l->runs[i0].model,
           l->runs[i0].behavior, "layer");
    for (int k = 0; k < 4; k++) printf(" %18s", methods[k]);
    printf("\n");
    int best[4] = {-1, -1, -1, -1};
    for (int k = 0; k < 4; k++)
        for (size_t q = 0; q < nl; q++)
            if (isfinite(r[q][k]) && (best[k] < 0 || r[q][k] > r[best[k]][k])) best[k] = (int)q;
    for (size_t q = 0; q < nl; q++) {
        printf("  %5d", layer[q]);
        for (int k = 0; k < 4; k++)
            if (isfinite(r[q][k])) printf(" %17.3f%s", r[q][k], best[k] == (int)q ? "*" : " ");
            else printf(" %18s", "-");
        printf("\n");
    }
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
        bipo_eval_table_free(&t);
    }
    for (size_t i = 0; i < l->n_runs;) { // runs are sorted by model, behavior, layer
        size_t j = i;
        while (j < l->n_runs && !strcmp(l->runs[j].model, l->runs[i].model) &&
               !strcmp(l->runs[j].behavior, l->runs[i].behavior))
            j++;
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
        }
    bipo_eval_table_free(&lib);
}
