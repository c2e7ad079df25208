// pipeline/store_eval.c — see store_eval.h and docs/LIBRARY.md ("Evaluation"). The generic
// result tree and its HDF5 form: a table is a group, its arrays 1-D datasets (f64, f32, i64,
// little-endian; strings fixed-length UTF-8), its attributes scalar attributes; written in the
// store's transactions.
#include "store_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h" // defines: H5_TRY, put_list, dset_put, group_find, child_names, ...

// ---- building ---------------------------------------------------------------------------------
void bipo_eval_table_init(bipo_eval_table *t, const char *name) {
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
}

bipo_eval_table *bipo_eval_table_child(bipo_eval_table *t, const char *name) {
    t->kids = xrealloc(t->kids, (t->n_kids + 1) * sizeof *t->kids);
    bipo_eval_table_init(&t->kids[t->n_kids], name);
    return &t->kids[t->n_kids++];
}

static size_t ev_size(bipo_ev_type type) {
    return type == BIPO_EV_F32 ? sizeof(float) : type == BIPO_EV_STR ? sizeof(char *) : 8;
}

bipo_eval_array *bipo_eval_table_array(bipo_eval_table *t, const char *name, bipo_ev_type type,
                                       const void *x, size_t n) {
    t->arrays = xrealloc(t->arrays, (t->n_arrays + 1) * sizeof *t->arrays);
    bipo_eval_array *a = &t->arrays[t->n_arrays++];
    memset(a, 0, sizeof *a);
    a->name = xstrdup(name), a->type = type, a->n = n;
    a->x = xmalloc(n ? n * ev_size(type) : 1);
    if (type == BIPO_EV_STR) // deep copy
        for (size_t k = 0; k < n; k++) ((char **)a->x)[k] = xstrdup(((char *const *)x)[k] ? ((char *const *)x)[k] : "");
    else if (n)
        memcpy(a->x, x, n * ev_size(type));
    return a;
}

void bipo_eval_table_attr(bipo_attr **a, size_t *n, bipo_attr v) {
    *a = xrealloc(*a, (*n + 1) * sizeof **a);
    v.key = xstrdup(v.key);
    if (v.type == BIPO_ATTR_STR) v.s = xstrdup(v.s ? v.s : "");
    (*a)[(*n)++] = v;
}

static void attrs_free(bipo_attr *a, size_t n) {
    for (size_t i = 0; i < n; i++) free((char *)a[i].key), free((char *)a[i].s);
    free(a);
}

void bipo_eval_table_free(bipo_eval_table *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_arrays; i++) {
        if (t->arrays[i].type == BIPO_EV_STR)
            for (size_t k = 0; k < t->arrays[i].n; k++) free(((char **)t->arrays[i].x)[k]);
        free(t->arrays[i].name), free(t->arrays[i].x);
        attrs_free(t->arrays[i].attrs, t->arrays[i].n_attrs);
    }
    for (size_t i = 0; i < t->n_kids; i++) bipo_eval_table_free(&t->kids[i]);
    free(t->arrays), free(t->kids), free(t->name);
    attrs_free(t->attrs, t->n_attrs);
    memset(t, 0, sizeof *t);
}

const bipo_eval_table *bipo_eval_table_find(const bipo_eval_table *t, const char *name) {
    for (size_t i = 0; t && i < t->n_kids; i++)
        if (!strcmp(t->kids[i].name, name)) return &t->kids[i];
    return NULL;
}
const bipo_eval_array *bipo_eval_table_get(const bipo_eval_table *t, const char *name) {
    for (size_t i = 0; t && i < t->n_arrays; i++)
        if (!strcmp(t->arrays[i].name, name)) return &t->arrays[i];
    return NULL;
}
const bipo_attr *bipo_eval_attr_get(const bipo_attr *a, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(a[i].key, key)) return &a[i];
    return NULL;
}

void bipo_store_run_path(char *out, size_t n, const char *model, const char *behavior, int layer,
                         const char *run) {
    snprintf(out, n, "models/%s/behaviors/%s/layer_%d/runs/%s", model, behavior, layer, run);
}

// ---- HDF5 form --------------------------------------------------------------------------------
static const hid_t *file_type(bipo_ev_type t) {
    static hid_t ft[3];
    ft[0] = H5T_IEEE_F64LE, ft[1] = H5T_IEEE_F32LE, ft[2] = H5T_STD_I64LE;
    return &ft[t];
}
static hid_t mem_type(bipo_ev_type t) {
    return t == BIPO_EV_F64 ? H5T_NATIVE_DOUBLE : t == BIPO_EV_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64;
}

static int unlink_if(hid_t g, const char *name) {
    htri_t e;
    H5_TRY(e = H5Lexists(g, name, H5P_DEFAULT));
    if (e) H5_TRY(H5Ldelete(g, name, H5P_DEFAULT));
    return 0;
fail:
    return -1;
}

// A string array as one fixed-length UTF-8 dataset (width: the longest string + 1).
static int put_strings(hid_t g, const bipo_eval_array *a) {
    char *const *s = a->x;
    size_t w = 1;
    for (size_t k = 0; k < a->n; k++) w = strlen(s[k]) + 1 > w ? strlen(s[k]) + 1 : w;
    char *buf = xcalloc(a->n ? a->n : 1, w);
    for (size_t k = 0; k < a->n; k++) memcpy(buf + k * w, s[k], strlen(s[k]));
    hid_t t = -1;
    int rc = -1;
    H5_TRY(t = str_type(w, 0));
    H5_TRY(dset_put(g, a->name, t, t, buf, a->n));
    rc = 0;
fail:
    free(buf);
    return H5_DONE(rc, t);
}

// The strings of a 1-D string dataset (fixed or variable length) into a new array of t.
static int get_strings(hid_t g, hid_t d, hid_t ft, const char *name, bipo_eval_table *t, bipo_eval_array **out) {
    hid_t sp = -1, mt = -1;
    hssize_t np;
    char **s = NULL, *buf = NULL;
    size_t n = 0, w = 0;
    int vlen, rc = -1;
    H5_TRY(sp = H5Dget_space(d));
    H5_TRY(np = H5Sget_simple_extent_npoints(sp));
    n = (size_t)np;
    H5_TRY(vlen = H5Tis_variable_str(ft));
    H5_TRY(mt = H5Tcopy(H5T_C_S1));
    H5_TRY(H5Tset_cset(mt, H5Tget_cset(ft))); // ASCII <-> UTF-8 has no conversion path
    s = xcalloc(n + 1, sizeof *s);
    if (vlen) {
        H5_TRY(H5Tset_size(mt, H5T_VARIABLE));
        H5_TRY(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, s));
    } else {
        w = H5Tget_size(ft) + 1; // room for the terminator of a full-width string
        buf = xcalloc(n + 1, w);
        H5_TRY(H5Tset_size(mt, w));
        H5_TRY(H5Tset_strpad(mt, H5T_STR_NULLTERM));
        H5_TRY(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf));
        for (size_t k = 0; k < n; k++) s[k] = buf + k * w;
    }
    *out = bipo_eval_table_array(t, name, BIPO_EV_STR, s, n);
    if (vlen) H5_TRY(H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, s));
    rc = 0;
fail:
    (void)g;
    free(s), free(buf);
    return H5_DONE(rc, mt, sp);
}

static int put_array(hid_t g, const bipo_eval_array *a) {
    hid_t d = -1;
    int rc = -1;
    H5_TRY(unlink_if(g, a->name));
    if (a->type == BIPO_EV_STR) H5_TRY(put_strings(g, a));
    else H5_TRY(dset_put(g, a->name, *file_type(a->type), mem_type(a->type), a->x, a->n));
    if (a->n_attrs) {
        H5_TRY(d = H5Dopen2(g, a->name, H5P_DEFAULT));
        H5_TRY(put_list(d, a->attrs, a->n_attrs));
    }
    rc = 0;
fail:
    return H5_DONE(rc, d);
}

// Table t under parent: its group (replaced) or, for ".", the parent itself.
static int put_table(hid_t parent, const bipo_eval_table *t) {
    hid_t g = -1;
    int rc = -1;
    if (!strcmp(t->name, ".")) {
        H5_TRY(g = H5Gopen2(parent, ".", H5P_DEFAULT));
    } else {
        if (!*t->name || strchr(t->name, '/')) FAIL("eval table name '%s' cannot name a group", t->name);
        H5_TRY(unlink_if(parent, t->name));
        H5_TRY(g = H5Gcreate2(parent, t->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    }
    H5_TRY(put_list(g, t->attrs, t->n_attrs));
    for (size_t i = 0; i < t->n_arrays; i++) H5_TRY(put_array(g, &t->arrays[i]));
    for (size_t i = 0; i < t->n_kids; i++) H5_TRY(put_table(g, &t->kids[i]));
    rc = 0;
fail:
    return H5_DONE(rc, g);
}

// Opens (creating every missing part of) a library path.
static hid_t path_ensure(hid_t f, const char *path) {
    char *p = xstrdup(path), *save = NULL;
    hid_t g = -1, next = -1;
    H5_TRY(g = H5Gopen2(f, "/", H5P_DEFAULT));
    for (char *part = strtok_r(p, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        H5_TRY(next = group_ensure(g, part));
        H5_TRY(H5_DONE(0, g));
        g = next, next = -1;
    }
    free(p);
    return g;
fail:
    free(p);
    H5_DONE(0, g, next);
    return -1;
}

static int do_write_eval(bipo_store *s, const bipo_eval_where *w, const bipo_eval_table *t, size_t n) {
    char path[6 * BIPO_NAME_MAX], run[BIPO_NAME_MAX];
    hid_t g = -1;
    int rc = -1, found;
    if (w->key) { // the complete run with the job's config hash
        H5_TRY(found = bipo_store_find_run(s, w->key, run));
        if (!found)
            FAIL("no complete run of %s/%s/layer_%d with config %.12s to file its evaluation under",
                 w->key->model_id, w->key->behavior, w->key->layer, w->key->config_hash);
        bipo_store_run_path(path, sizeof path, w->key->model_id, w->key->behavior, w->key->layer, run);
        H5_TRY(g = H5Gopen2(s->wfid, path, H5P_DEFAULT));
    } else
        H5_TRY(g = path_ensure(s->wfid, w->path));
    for (size_t i = 0; i < n; i++) H5_TRY(put_table(g, &t[i]));
    rc = 0;
fail:
    return H5_DONE(rc, g);
}

int bipo_store_write_eval(bipo_store *s, const bipo_eval_where *w, const bipo_eval_table *t, size_t n) {
    int own = !s->batch; // its own transaction unless inside the caller's begin/commit
    if (own && bipo_store_begin(s) != 0) return -1;
    ENTER(s);
    int rc = do_write_eval(s, w, t, n);
    if (!own) {
        if (rc) s->failed = 1;
        return rc;
    }
    if (rc) {
        bipo_store_abort(s);
        return -1;
    }
    return bipo_store_commit(s);
}

// ---- reading ----------------------------------------------------------------------------------
typedef struct {
    bipo_attr *a;
    size_t n;
} attr_acc;

static herr_t read_attr(hid_t loc, const char *name, const H5A_info_t *info, void *ctx) {
    attr_acc *acc = ctx;
    hid_t a = -1, t = -1;
    H5T_class_t cls;
    char buf[60000];
    H5_TRY(a = H5Aopen(loc, name, H5P_DEFAULT));
    H5_TRY(t = H5Aget_type(a));
    H5_TRY(cls = H5Tget_class(t));
    if (cls == H5T_STRING) {
        H5_TRY(get_s(loc, name, buf, sizeof buf));
        bipo_eval_table_attr(&acc->a, &acc->n, BIPO_ATTR_S(name, buf));
    } else if (cls == H5T_INTEGER) {
        int64_t v;
        H5_TRY(get_i(loc, name, &v));
        bipo_eval_table_attr(&acc->a, &acc->n, BIPO_ATTR_I(name, v));
    } else if (cls == H5T_FLOAT) {
        double v;
        H5_TRY(get_d(loc, name, &v));
        bipo_eval_table_attr(&acc->a, &acc->n, BIPO_ATTR_D(name, v));
    }
    return H5_DONE(0, t, a);
fail:
    H5_DONE(0, t, a);
    return -1;
}

static int get_attrs(hid_t o, bipo_attr **a, size_t *n) {
    attr_acc acc = {0};
    hsize_t idx = 0;
    herr_t e = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, read_attr, &acc);
    *a = acc.a, *n = acc.n;
    H5_TRY(e);
    return 0;
fail:
    return -1;
}

static int get_table(hid_t parent, const char *name, bipo_eval_table *t) {
    hid_t g = -1, d = -1, ty = -1;
    char **names = NULL;
    size_t nn = 0;
    int rc = -1;
    bipo_eval_table_init(t, name);
    H5_TRY(g = H5Gopen2(parent, name, H5P_DEFAULT));
    H5_TRY(get_attrs(g, &t->attrs, &t->n_attrs));
    H5_TRY(child_names(g, ".", &names, &nn));
    for (size_t i = 0; i < nn; i++) {
        H5O_info_t info;
        H5_TRY(H5Oget_info_by_name(g, names[i], &info, H5P_DEFAULT));
        if (info.type == H5O_TYPE_GROUP) {
            t->kids = xrealloc(t->kids, (t->n_kids + 1) * sizeof *t->kids);
            H5_TRY(get_table(g, names[i], &t->kids[t->n_kids++]));
            continue;
        }
        if (info.type != H5O_TYPE_DATASET) continue;
        H5_TRY(d = H5Dopen2(g, names[i], H5P_DEFAULT));
        H5_TRY(ty = H5Dget_type(d));
        H5T_class_t cls;
        H5_TRY(cls = H5Tget_class(ty));
        size_t sz = H5Tget_size(ty);
        bipo_ev_type et = cls == H5T_INTEGER ? BIPO_EV_I64 : sz == 4 ? BIPO_EV_F32 : BIPO_EV_F64;
        bipo_eval_array *a = NULL;
        if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
            void *x = NULL;
            size_t n = 0;
            H5_TRY(dset_get(g, names[i], mem_type(et), ev_size(et), &x, &n));
            a = bipo_eval_table_array(t, names[i], et, x, n);
            free(x);
        } else if (cls == H5T_STRING)
            H5_TRY(get_strings(g, d, ty, names[i], t, &a));
        if (a) H5_TRY(get_attrs(d, &a->attrs, &a->n_attrs));
        H5_TRY(H5_DONE(0, ty, d));
        ty = d = -1;
    }
    rc = 0;
fail:
    free_names(names, nn);
    if (rc) bipo_eval_table_free(t);
    return H5_DONE(rc, ty, d, g);
}

int bipo_store_read_eval(bipo_store *s, const char *path, bipo_eval_table *out) {
    hid_t g = -1, parent = -1;
    int have, rc = -1;
    ENTER(s);
    memset(out, 0, sizeof *out);
    H5_TRY(have = group_find(cur(s), path, &g));
    if (!have) return 0;
    const char *slash = strrchr(path, '/');
    char *dir = xstrdup(path);
    dir[slash ? (size_t)(slash - path) : 0] = 0;
    parent = H5Gopen2(cur(s), *dir ? dir : "/", H5P_DEFAULT);
    free(dir);
    H5_TRY(parent);
    H5_TRY(get_table(parent, slash ? slash + 1 : path, out));
    rc = 1;
fail:
    return H5_DONE(rc, parent, g);
}

int bipo_store_eval_hash(bipo_store *s, const char *run_path, char hash[65]) {
    char path[6 * BIPO_NAME_MAX];
    hid_t g = -1;
    int have, rc = -1;
    ENTER(s);
    hash[0] = 0;
    snprintf(path, sizeof path, "%s/eval", run_path);
    H5_TRY(have = group_find(cur(s), path, &g));
    if (!have) return 0;
    H5_TRY(have = get_s(g, "settings_hash", hash, 65));
    rc = have;
fail:
    return H5_DONE(rc, g);
}

float *bipo_store_read_f32(bipo_store *s, const char *path, size_t *n) {
    float *x = NULL;
    hid_t g = -1;
    htri_t e = 0;
    int have;
    ENTER(s);
    char *dir = xstrdup(path), *last = strrchr(dir, '/');
    if (last) *last++ = 0;
    H5_TRY(have = last ? group_find(cur(s), dir, &g) : 1);
    if (have && !last) H5_TRY(g = H5Gopen2(cur(s), "/", H5P_DEFAULT));
    if (have) H5_TRY(e = H5Lexists(g, last ? last : dir, H5P_DEFAULT));
    if (!e) FAIL("no dataset %s in the library", path);
    H5_TRY(get_f32(g, last ? last : dir, &x, n));
    free(dir);
    H5_DONE(0, g);
    return x;
fail:
    free(dir), free(x);
    H5_DONE(0, g);
    return NULL;
}
