// pipeline/report.c — see report.h. Reads every run group generically (bipo_store_read_eval on
// the run path: its attributes are the provenance, its arrays the loss curves, its eval/ child
// the results) and writes the page section by section; plots come from report_svg.c.
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_svg.h" // defines: bipo_svg_lines, bipo_svg_bars, bipo_html_puts
#include "store_eval.h" // defines: bipo_store_read_eval, bipo_eval_table, bipo_store_run_path
#include "util.h"       // defines: xmalloc, xcalloc

static const char *CSS =
    "body{font-family:sans-serif;font-size:13px;margin:16px;color:#222;background:#fff}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:24px;border-bottom:1px solid #ccc}"
    "h3{font-size:14px;margin:12px 0 4px}"
    "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:2px 6px;"
    "text-align:left;vertical-align:top}th{background:#f0f0f0}td.sys{max-width:220px;"
    "word-break:break-word}.plots{display:flex;flex-wrap:wrap;gap:6px}"
    "svg.plot{font-size:11px;background:#fff}svg .title{font-weight:bold;font-size:12px}"
    ".none{color:#777}pre{white-space:pre-wrap;margin:0;max-width:360px;font-size:12px}"
    "table.gen td{max-width:360px}";

typedef struct {
    const bipo_run_entry *e;
    bipo_eval_table t;          // the run group: attrs, loss arrays, kid "eval"
    const bipo_eval_table *ev;  // its eval/ (NULL when not evaluated)
} run_info;

static int plot_k; // the next plot number (area colour), counts over the whole page

// The next plot: id "<kind>-<idx>" written into id[ID_MAX].
#define ID_MAX (3 * BIPO_NAME_MAX)
static bipo_svg_plot next_plot(char *id, const char *kind, int idx, const char *title, const char *xl,
                               const char *yl) {
    snprintf(id, ID_MAX, "%s-%d", kind, idx);
    return (bipo_svg_plot){id, title, xl, yl, plot_k++, 0, 0};
}

// An array as doubles (malloc'd; [n]), NULL when absent.
static double *as_f64(const bipo_eval_table *t, const char *name, size_t *n) {
    const bipo_eval_array *a = bipo_eval_table_get(t, name);
    *n = a && a->type != BIPO_EV_STR ? a->n : 0;
    if (!a || a->type == BIPO_EV_STR) return NULL;
    double *x = xmalloc((a->n ? a->n : 1) * sizeof *x);
    for (size_t k = 0; k < a->n; k++)
        x[k] = a->type == BIPO_EV_F64 ? ((double *)a->x)[k]
               : a->type == BIPO_EV_F32 ? ((float *)a->x)[k] : (double)((int64_t *)a->x)[k];
    return x;
}

static void attr_cell(FILE *f, const bipo_eval_table *t, const char *key, size_t max_chars, const char *cls) {
    const bipo_attr *a = bipo_eval_attr_get(t->attrs, t->n_attrs, key);
    fprintf(f, "<td%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    if (!a) fputs("<span class=\"none\">-</span>", f);
    else if (a->type == BIPO_ATTR_INT) fprintf(f, "%lld", (long long)a->i);
    else if (a->type == BIPO_ATTR_DOUBLE) fprintf(f, "%.4g", a->d);
    else {
        char *s = xstrdup(a->s);
        if (max_chars && strlen(s) > max_chars) s[max_chars] = 0;
        bipo_html_puts(f, s);
        free(s);
    }
    fputs("</td>", f);
}

static void td_text(FILE *f, const char *s) {
    fputs("<td>", f);
    bipo_html_puts(f, s);
    fputs("</td>", f);
}

static void runs_table(FILE *f, const run_info *r, size_t n) {
    static const char *head[] = {"model", "fingerprint", "behavior", "layer", "run", "data hash",
                                 "beta", "lr", "epochs", "system prompt", "git revision", "created",
                                 "final loss", "|v|"};
    fputs("<h2>Runs</h2><table id=\"runs\"><tr>", f);
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) fprintf(f, "<th>%s</th>", head[i]);
    fputs("</tr>\n", f);
    for (size_t i = 0; i < n; i++) {
        const bipo_run_entry *e = r[i].e;
        fputs("<tr>", f);
        td_text(f, e->model);
        attr_cell(f, &r[i].t, "model_fingerprint", 12, NULL);
        td_text(f, e->behavior);
        fprintf(f, "<td>%d</td><td>", e->layer);
        bipo_html_puts(f, e->run);
        fprintf(f, "%s</td>", e->newest ? " (newest)" : "");
        attr_cell(f, &r[i].t, "data_hash", 12, NULL);
        attr_cell(f, &r[i].t, "beta", 0, NULL);
        attr_cell(f, &r[i].t, "lr", 0, NULL);
        attr_cell(f, &r[i].t, "epochs", 0, NULL);
        attr_cell(f, &r[i].t, "system_prompt", 0, "sys");
        attr_cell(f, &r[i].t, "git_revision", 12, NULL);
        td_text(f, e->created);
        fprintf(f, "<td>%.4f</td><td>%.4f</td></tr>\n", e->final_loss, e->vector_norm);
    }
    fputs("</table>\n", f);
}

static void run_title(char *out, size_t n, const bipo_run_entry *e) {
    snprintf(out, n, "%s / %s / layer %d / %s", e->model, e->behavior, e->layer, e->run);
}

// Per-step loss and the per-epoch held-out losses, placed at the last step of their epoch.
static void loss_plot(FILE *f, const run_info *r, int idx) {
    size_t S, E, E2;
    double *loss = as_f64(&r->t, "loss", &S), *hp = as_f64(&r->t, "heldout_loss_pos", &E),
           *hn = as_f64(&r->t, "heldout_loss_neg", &E2);
    double *xs = xmalloc((S + 1) * sizeof *xs), *xe = xmalloc((E + 1) * sizeof *xe);
    for (size_t k = 0; k < S; k++) xs[k] = (double)(k + 1);
    for (size_t e = 0; e < E; e++) xe[e] = (double)(e + 1) * (double)S / (double)E;
    bipo_svg_series s[3] = {{"loss", bipo_svg_color("loss", 0), xs, loss, S, 0},
                            {"heldout +1", bipo_svg_color("heldout +1", 0), xe, hp, E, 0},
                            {"heldout -1", bipo_svg_color("heldout -1", 0), xe, hn, E2 < E ? E2 : E, 1}};
    char title[6 * BIPO_NAME_MAX];
    run_title(title, sizeof title, r->e);
    char id[ID_MAX];
    bipo_svg_plot p = next_plot(id, "loss", idx, title, "step", "loss");
    bipo_svg_lines(f, &p, s, E ? 3 : 1);
    free(loss), free(hp), free(hn), free(xs), free(xe);
}

// One line per arm of an ab/ table: p_match against the multipliers.
static void ab_plot(FILE *f, const bipo_eval_table *ab, const char *kind, int idx, const char *title) {
    size_t n = ab->n_kids, m = 0;
    bipo_svg_series *s = xcalloc(n + 1, sizeof *s);
    for (size_t a = 0; a < n; a++) {
        size_t nx, ny;
        double *x = as_f64(&ab->kids[a], "multipliers", &nx), *y = as_f64(&ab->kids[a], "p_match", &ny);
        if (!x || !y || nx != ny) {
            free(x), free(y);
            continue;
        }
        const char *name = ab->kids[a].name; // the flat prompting baseline dashed: lines beneath show
        s[m++] = (bipo_svg_series){name, bipo_svg_color(name, a), x, y, nx, !strcmp(name, "prompt")};
    }
    char id[ID_MAX];
    bipo_svg_plot p = next_plot(id, kind, idx, title, "multiplier m", "p(matching answer)");
    p.unit_y = 1;
    bipo_svg_lines(f, &p, s, m);
    for (size_t a = 0; a < m; a++) free((void *)s[a].x), free((void *)s[a].y);
    free(s);
}

// The arms of a metric group: its kids holding "multipliers", or the group itself.
static size_t metric_arms(const bipo_eval_table *g, const bipo_eval_table **arms, size_t max) {
    size_t n = 0;
    if (bipo_eval_table_get(g, "multipliers") && max) arms[n++] = g;
    for (size_t i = 0; i < g->n_kids && n < max; i++)
        if (bipo_eval_table_get(&g->kids[i], "multipliers")) arms[n++] = &g->kids[i];
    return n;
}

// For an eval group with per-multiplier arms (mmlu/<arm>/{multipliers, accuracy}, truthfulqa
// {mc1, mc2}, jailbreak {asr}, ...): one bar chart per metric, the multipliers of the first
// arm as categories, one bar per arm (matched by multiplier value).
static void metric_plots(FILE *f, const bipo_eval_table *g, int idx, const char *where) {
    const bipo_eval_table *arms[16];
    size_t na = metric_arms(g, arms, 16), nm;
    if (!na) return;
    double *m0 = as_f64(arms[0], "multipliers", &nm);
    char **cats = xcalloc(nm + 1, sizeof *cats);
    for (size_t c = 0; c < nm; c++) cats[c] = xmalloc(32), snprintf(cats[c], 32, "%g", m0[c]);
    for (size_t q = 0; q < arms[0]->n_arrays; q++) {
        const bipo_eval_array *metric = &arms[0]->arrays[q];
        if (!strcmp(metric->name, "multipliers") || !strncmp(metric->name, "item_", 5) || metric->n != nm) continue;
        bipo_svg_series *s = xcalloc(na, sizeof *s);
        for (size_t a = 0; a < na; a++) {
            size_t nx, ny;
            double *x = as_f64(arms[a], "multipliers", &nx), *y = as_f64(arms[a], metric->name, &ny);
            double *v = xmalloc((nm + 1) * sizeof *v);
            for (size_t c = 0; c < nm; c++) {
                v[c] = NAN;
                for (size_t k = 0; y && k < nx && k < ny; k++)
                    if (x[k] == m0[c]) v[c] = y[k];
            }
            const char *name = arms[a] == g ? g->name : arms[a]->name;
            s[a] = (bipo_svg_series){name, bipo_svg_color(name, a), NULL, v, nm, 0};
            free(x), free(y);
        }
        char title[8 * BIPO_NAME_MAX];
        snprintf(title, sizeof title, "%s %s — %s", g->name, metric->name, where);
        char id[ID_MAX], kind[2 * BIPO_NAME_MAX];
        snprintf(kind, sizeof kind, "%s-%s", g->name, metric->name);
        bipo_svg_plot p = next_plot(id, kind, idx, title, "multiplier m", metric->name);
        bipo_svg_bars(f, &p, (const char *const *)cats, nm, s, na);
        for (size_t a = 0; a < na; a++) free((void *)s[a].y);
        free(s);
    }
    for (size_t c = 0; c < nm; c++) free(cats[c]);
    free(cats), free(m0);
}

// p_match at the largest multiplier minus at the smallest; NAN when the arm lacks a curve.
static double pm_range(const bipo_eval_table *arm) {
    size_t nx, ny, lo = 0, hi = 0;
    double *x = as_f64(arm, "multipliers", &nx), *y = as_f64(arm, "p_match", &ny), r = NAN;
    if (x && y && nx == ny && nx) {
        for (size_t k = 1; k < nx; k++) lo = x[k] < x[lo] ? k : lo, hi = x[k] > x[hi] ? k : hi;
        r = y[hi] - y[lo];
    }
    free(x), free(y);
    return r;
}

// The layer sweep of one behavior: per method the range p(max m) - p(min m) against the layer.
static void sweep_plot(FILE *f, const run_info *const *rs, size_t n, int idx, const char *title) {
    const char *methods[8];
    size_t nmeth = 0;
    for (size_t i = 0; i < n; i++) {
        const bipo_eval_table *ab = bipo_eval_table_find(rs[i]->ev, "ab");
        for (size_t a = 0; ab && a < ab->n_kids; a++) {
            size_t q = 0;
            while (q < nmeth && strcmp(methods[q], ab->kids[a].name)) q++;
            if (q == nmeth && nmeth < 8) methods[nmeth++] = ab->kids[a].name;
        }
    }
    bipo_svg_series s[8];
    for (size_t q = 0; q < nmeth; q++) {
        double *x = xmalloc(n * sizeof *x), *y = xmalloc(n * sizeof *y);
        for (size_t i = 0; i < n; i++) {
            const bipo_eval_table *arm = bipo_eval_table_find(bipo_eval_table_find(rs[i]->ev, "ab"), methods[q]);
            x[i] = rs[i]->e->layer, y[i] = arm ? pm_range(arm) : NAN;
        }
        s[q] = (bipo_svg_series){methods[q], bipo_svg_color(methods[q], q), x, y, n, !strcmp(methods[q], "prompt")};
    }
    char id[ID_MAX];
    bipo_svg_plot p = next_plot(id, "sweep", idx, title, "layer L", "p(max m) - p(min m)");
    p.integer_x = 1;
    bipo_svg_lines(f, &p, s, nmeth);
    for (size_t q = 0; q < nmeth; q++) free((void *)s[q].x), free((void *)s[q].y);
}

// Runs [i0, i1) share model and behavior: A/B + metric plots per evaluated newest run, then
// the sweep when two or more layers were evaluated, then each run's generations. 0 ok, -1.
// Plot and table ids end in the run's row of the runs table (ab-<row>, mmlu-accuracy-<row>, ...).
static int behavior_section(FILE *f, const char *lib, const run_info *r, size_t i0, size_t i1, int bidx) {
    const run_info **ev = xcalloc(i1 - i0 + 1, sizeof *ev);
    size_t n = 0;
    for (size_t i = i0; i < i1; i++)
        if (r[i].e->newest && r[i].ev) ev[n++] = &r[i];
    fputs("<h3>", f);
    bipo_html_puts(f, r[i0].e->model);
    fputs(" / ", f);
    bipo_html_puts(f, r[i0].e->behavior);
    fputs("</h3>\n", f);
    if (!n) fputs("<p class=\"none\">not evaluated</p>\n", f);
    else fputs("<div class=\"plots\">\n", f);
    for (size_t q = 0; q < n; q++) {
        char title[2 * BIPO_NAME_MAX], where[2 * BIPO_NAME_MAX];
        snprintf(where, sizeof where, "layer %d", ev[q]->e->layer);
        snprintf(title, sizeof title, "A/B %s, layer %d", ev[q]->e->behavior, ev[q]->e->layer);
        const bipo_eval_table *ab = bipo_eval_table_find(ev[q]->ev, "ab");
        int row = (int)(ev[q] - r);
        if (ab) ab_plot(f, ab, "ab", row, title);
        for (size_t g = 0; g < ev[q]->ev->n_kids; g++) {
            const bipo_eval_table *kid = &ev[q]->ev->kids[g];
            if (strcmp(kid->name, "ab") && strcmp(kid->name, "split")) metric_plots(f, kid, row, where);
        }
    }
    if (n >= 2) {
        char title[2 * BIPO_NAME_MAX];
        snprintf(title, sizeof title, "layer sweep: %s", r[i0].e->behavior);
        sweep_plot(f, ev, n, bidx, title);
    }
    if (n) fputs("</div>\n", f);
    int rc = 0;
    for (size_t q = 0; q < n && !rc; q++) {
        char path[6 * BIPO_NAME_MAX], title[6 * BIPO_NAME_MAX];
        const bipo_run_entry *e = ev[q]->e;
        bipo_store_run_path(path, sizeof path, e->model, e->behavior, e->layer, e->run);
        run_title(title, sizeof title, e);
        rc = bipo_report_generations(f, lib, path, (int)(ev[q] - r), title); // report_gen.c
    }
    free(ev);
    return rc;
}

// /eval/compose/<name>/ab and /eval/transfer/<name>/ab.
static void library_eval(FILE *f, bipo_store *s) {
    bipo_eval_table lib;
    if (bipo_store_read_eval(s, "eval", &lib) <= 0) return;
    fputs("<h2>Compose and transfer</h2><div class=\"plots\">\n", f);
    int idx = 0;
    for (size_t k = 0; k < lib.n_kids; k++)
        for (size_t e = 0; e < lib.kids[k].n_kids; e++) {
            const bipo_eval_table *ab = bipo_eval_table_find(&lib.kids[k].kids[e], "ab");
            char title[3 * BIPO_NAME_MAX];
            snprintf(title, sizeof title, "%s: %s", lib.kids[k].name, lib.kids[k].kids[e].name);
            if (ab) ab_plot(f, ab, lib.kids[k].name, idx++, title);
        }
    fputs("</div>\n", f);
    bipo_eval_table_free(&lib);
}

int bipo_report_write(bipo_store *s, const char *lib_path, FILE *f) {
    bipo_listing l;
    if (bipo_store_list(s, &l) != 0) return -1;
    run_info *r = xcalloc(l.n_runs + 1, sizeof *r);
    int rc = -1;
    for (size_t i = 0; i < l.n_runs; i++) {
        char path[6 * BIPO_NAME_MAX];
        r[i].e = &l.runs[i];
        bipo_store_run_path(path, sizeof path, r[i].e->model, r[i].e->behavior, r[i].e->layer, r[i].e->run);
        if (bipo_store_read_eval(s, path, &r[i].t) != 1) goto done;
        r[i].ev = bipo_eval_table_find(&r[i].t, "eval");
    }
    plot_k = 0;
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>bipo-pipeline report: ");
    bipo_html_puts(f, lib_path);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>Steering vector library</h1><p>", CSS);
    bipo_html_puts(f, lib_path);
    fprintf(f, " — bipo-library v%d, created ", l.format_version);
    bipo_html_puts(f, l.created);
    fprintf(f, "; %zu runs, %zu checkpoints (in-progress jobs), %zu provenance records.</p>\n", l.n_runs,
            l.n_checkpoints, l.n_provenance);
    runs_table(f, r, l.n_runs);
    fputs("<h2>Training loss</h2><div class=\"plots\">\n", f);
    for (size_t i = 0; i < l.n_runs; i++) loss_plot(f, &r[i], (int)i);
    fputs("</div>\n<h2>Evaluation</h2>\n", f);
    int bidx = 0;
    for (size_t i = 0; i < l.n_runs;) { // sorted by model, behavior, layer
        size_t j = i;
        while (j < l.n_runs && !strcmp(l.runs[j].model, l.runs[i].model) && !strcmp(l.runs[j].behavior, l.runs[i].behavior)) j++;
        if (behavior_section(f, lib_path, r, i, j, bidx++)) goto done;
        i = j;
    }
    library_eval(f, s);
    fputs("</body></html>\n", f);
    rc = ferror(f) ? (bipo_set_error("cannot write the report"), -1) : 0;
done:
    for (size_t i = 0; i < l.n_runs; i++) bipo_eval_table_free(&r[i].t);
    free(r);
    bipo_listing_free(&l);
    return rc;
}
