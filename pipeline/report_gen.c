// pipeline/report_gen.c — the generations of `bipo-pipeline report` (report.h): the texts a
// run's eval stored under
//
//   runs/<run>/eval/generate/<i>      i = multiplier index; attr multiplier (f64)
//       prompt     [n] string         the prompts (row labels; optional)
//       <name>     [n] string         any other string dataset: the generations ("response", ...)
//
// shown as one table, a column per multiplier (ascending) and a row per prompt, so the same
// prompt's answers sit side by side. The generic eval reader (store_eval.c) keeps numbers only,
// so this file reads the string datasets itself with HDF5 (read-only, no file locking, as the
// store opens the library). Fixed-length (the store's) and variable-length strings both work.
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"     // defines: bipo_report_generations
#include "report_svg.h" // defines: bipo_html_puts
#include "util.h"       // defines: bipo_set_error, xmalloc

typedef struct {
    char name[256];
    double m;       // the multiplier (or the index when the attribute is absent)
    char **names;   // [nd] string dataset names
    char ***texts;  // [nd][n_items[d]] their strings
    size_t *n_items, nd;
} gen_col;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *ctx) {
    (void)g, (void)info;
    gen_col **cols = ctx;
    size_t n = 0;
    while ((*cols)[n].name[0]) n++;
    *cols = xrealloc(*cols, (n + 2) * sizeof **cols);
    memset(&(*cols)[n], 0, 2 * sizeof **cols);
    snprintf((*cols)[n].name, sizeof (*cols)[n].name, "%s", name);
    return 0;
}

// The strings of a 1-D (or scalar) string dataset, malloc'd; NULL when it is not a string one.
static char **read_strings(hid_t g, const char *name, size_t *n) {
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT), ft = d < 0 ? -1 : H5Dget_type(d), sp = -1, mt = -1;
    char **out = NULL;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) goto done;
    sp = H5Dget_space(d);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (np < 0) goto done;
    *n = (size_t)np;
    out = xcalloc(*n + 1, sizeof *out);
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft)); // ASCII <-> UTF-8 has no conversion path: read as stored
    if (H5Tis_variable_str(ft) > 0) {
        char **buf = xcalloc(*n + 1, sizeof *buf);
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) {
            for (size_t k = 0; k < *n; k++) out[k] = xstrdup(buf[k] ? buf[k] : "");
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
        }
        free(buf);
    } else {
        size_t w = H5Tget_size(ft) + 1; // room for the terminator of a full-width string
        char *buf = xcalloc(*n + 1, w);
        H5Tset_size(mt, w);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0)
            for (size_t k = 0; k < *n; k++) out[k] = xstrdup(buf + k * w);
        free(buf);
    }
    for (size_t k = 0; k < *n; k++)
        if (!out[k]) out[k] = xstrdup(""); // a failed read shows empty cells, not garbage
done:
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (d >= 0) H5Dclose(d);
    return out;
}

static void read_col(hid_t gen, gen_col *c, double index) {
    hid_t g = H5Gopen2(gen, c->name, H5P_DEFAULT);
    c->m = index;
    if (g < 0) return;
    if (H5Aexists(g, "multiplier") > 0) {
        hid_t a = H5Aopen(g, "multiplier", H5P_DEFAULT);
        if (a >= 0) H5Aread(a, H5T_NATIVE_DOUBLE, &c->m), H5Aclose(a);
    }
    gen_col *names = xcalloc(1, sizeof *names);
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &names); // dataset names
    for (size_t i = 0; names[i].name[0]; i++) {
        size_t n = 0;
        char **s = read_strings(g, names[i].name, &n);
        if (!s) continue;
        c->names = xrealloc(c->names, (c->nd + 1) * sizeof *c->names);
        c->texts = xrealloc(c->texts, (c->nd + 1) * sizeof *c->texts);
        c->n_items = xrealloc(c->n_items, (c->nd + 1) * sizeof *c->n_items);
        c->names[c->nd] = xstrdup(names[i].name), c->texts[c->nd] = s, c->n_items[c->nd++] = n;
    }
    free(names);
    H5Gclose(g);
}

static void free_col(gen_col *c) {
    for (size_t d = 0; d < c->nd; d++) {
        for (size_t k = 0; k < c->n_items[d]; k++) free(c->texts[d][k]);
        free(c->texts[d]), free(c->names[d]);
    }
    free(c->texts), free(c->names), free(c->n_items);
}

static int by_m(const void *a, const void *b) {
    double x = ((const gen_col *)a)->m, y = ((const gen_col *)b)->m;
    return (x > y) - (x < y);
}

// Column c's strings of dataset `name` at item k, or NULL.
static const char *text_at(const gen_col *c, const char *name, size_t k) {
    for (size_t d = 0; d < c->nd; d++)
        if (!strcmp(c->names[d], name)) return k < c->n_items[d] ? c->texts[d][k] : NULL;
    return NULL;
}

static void write_table(FILE *f, gen_col *cols, size_t nc, int idx, const char *title) {
    size_t rows = 0;
    for (size_t c = 0; c < nc; c++)
        for (size_t d = 0; d < cols[c].nd; d++) rows = cols[c].n_items[d] > rows ? cols[c].n_items[d] : rows;
    fprintf(f, "<h3>generations: ");
    bipo_html_puts(f, title);
    fprintf(f, "</h3><table id=\"gen-%d\" class=\"gen\"><tr><th>prompt</th>", idx);
    for (size_t c = 0; c < nc; c++) fprintf(f, "<th>m = %g</th>", cols[c].m);
    fputs("</tr>\n", f);
    for (size_t k = 0; k < rows; k++) {
        const char *prompt = NULL;
        for (size_t c = 0; c < nc && !prompt; c++) prompt = text_at(&cols[c], "prompt", k);
        fputs("<tr><td><pre>", f);
        bipo_html_puts(f, prompt ? prompt : "");
        fputs("</pre></td>", f);
        for (size_t c = 0; c < nc; c++) {
            fputs("<td>", f);
            for (size_t d = 0; d < cols[c].nd; d++) {
                if (!strcmp(cols[c].names[d], "prompt") || k >= cols[c].n_items[d]) continue;
                if (cols[c].nd > 2) { // several kinds of text: label each
                    fputs("<b>", f);
                    bipo_html_puts(f, cols[c].names[d]);
                    fputs("</b>", f);
                }
                fputs("<pre>", f);
                bipo_html_puts(f, cols[c].texts[d][k]);
                fputs("</pre>", f);
            }
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

int bipo_report_generations(FILE *f, const char *lib_path, const char *run_path, int idx, const char *title) {
    char path[2048];
    snprintf(path, sizeof path, "%s/eval/generate", run_path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), file = -1, gen = -1;
    int rc = -1;
    // the store has the file open: HDF5 shares it when the close degree matches the store's
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 || H5Pset_file_locking(fapl, 0, 1) < 0 ||
        (file = H5Fopen(lib_path, H5F_ACC_RDONLY, fapl)) < 0) {
        bipo_set_error("%s: cannot open the library to read its generations", lib_path);
        goto done;
    }
    rc = 0;
    // every part of the path must exist before H5Gopen2 (a missing group is no error here)
    for (char *p = strchr(path, '/'); ; p = strchr(p + 1, '/')) {
        if (p) *p = 0;
        int have = H5Lexists(file, path, H5P_DEFAULT) > 0;
        if (p) *p = '/';
        if (!have) goto done;
        if (!p) break;
    }
    if ((gen = H5Gopen2(file, path, H5P_DEFAULT)) < 0) goto done;
    gen_col *cols = xcalloc(1, sizeof *cols);
    H5Literate(gen, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &cols);
    size_t nc = 0;
    while (cols[nc].name[0]) nc++;
    for (size_t c = 0; c < nc; c++) read_col(gen, &cols[c], atof(cols[c].name));
    if (nc) qsort(cols, nc, sizeof *cols, by_m);
    if (nc) write_table(f, cols, nc, idx, title);
    for (size_t c = 0; c < nc; c++) free_col(&cols[c]);
    free(cols);
done:
    if (gen >= 0) H5Gclose(gen);
    if (file >= 0) H5Fclose(file);
    if (fapl >= 0) H5Pclose(fapl);
    return rc;
}
