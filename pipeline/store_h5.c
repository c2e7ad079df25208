// pipeline/store_h5.c — the vector library's HDF5 helpers (see store.h and docs/LIBRARY.md):
// the error reporting behind H5_TRY and small attribute/dataset/group helpers that writes
// (store.c) and reads (store_read.c) share. What the library holds is in those two files.
#include "store_internal.h" // defines: bipo_store, H5_TRY, FAIL, store_err (helpers implemented here)

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- errors and HDF5 helpers ----------------------------------------------------------------
_Thread_local const char *g_file = "";
_Thread_local int g_reported;

void store_err(const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bipo_set_error("%s: %s", g_file, msg);
    g_reported = 1;
}

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *out) {
    if (n == 0) snprintf(out, 256, "%s() in %s: %s", e->func_name, e->file_name, e->desc);
    return 0;
}

// A failed HDF5 call: report the innermost entry of HDF5's error stack, unless a helper of
// ours already said what went wrong (the stack is then empty). The error-stack calls here are
// the only unchecked HDF5 calls: there is nothing left to report their failure to.
void h5_fail(const char *expr, const char *func, int line) {
    ssize_t n = H5Eget_num(H5E_DEFAULT);
    if (n > 0 || !g_reported) {
        char what[256] = "no HDF5 error stack";
        if (n > 0) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, what);
        store_err("HDF5 call failed in %s():%d: %s: %s", func, line, expr, what);
    }
    H5Eclear2(H5E_DEFAULT);
}

// Closes every valid id; a failed close turns a success into an error. Returns rc.
int h5_done(int rc, const hid_t *ids, size_t n) {
    for (size_t k = 0; k < n; k++) {
        hid_t id = ids[k];
        if (id < 0) continue;
        herr_t e;
        switch (H5Iget_type(id)) {
        case H5I_FILE: e = H5Fclose(id); break;
        case H5I_GROUP: e = H5Gclose(id); break;
        case H5I_DATASET: e = H5Dclose(id); break;
        case H5I_ATTR: e = H5Aclose(id); break;
        case H5I_DATASPACE: e = H5Sclose(id); break;
        case H5I_DATATYPE: e = H5Tclose(id); break;
        case H5I_GENPROP_LST: e = H5Pclose(id); break;
        default: e = -1;
        }
        if (e < 0 && rc == 0) {
            h5_fail("close", __func__, __LINE__);
            rc = -1;
        }
    }
    return rc;
}

// Strings are written fixed-length (UTF-8, NUL-terminated, size = longest + 1): variable-length
// strings live in a global heap whose 4 KiB collections are never reclaimed when an object is
// replaced, so every transaction would grow the file. h5py reads them as bytes (.decode()).
// vlen = 1 gives the variable-length type (for reading files written by other tools).
hid_t str_type(size_t size, int vlen) {
    hid_t t = -1;
    H5_TRY(t = H5Tcopy(H5T_C_S1));
    H5_TRY(H5Tset_size(t, vlen ? H5T_VARIABLE : size ? size : 1));
    H5_TRY(H5Tset_cset(t, H5T_CSET_UTF8));
    if (!vlen) H5_TRY(H5Tset_strpad(t, H5T_STR_NULLTERM));
    return t;
fail:
    H5_DONE(-1, t);
    return -1;
}

int attr_del(hid_t obj, const char *name) {
    htri_t e;
    H5_TRY(e = H5Aexists(obj, name));
    if (e) H5_TRY(H5Adelete(obj, name));
    return 0;
fail:
    return -1;
}

// Writes (replaces) one scalar attribute; v points to a const char *, int64_t or double.
static int attr_put(hid_t obj, const char *name, bipo_attr_type type, const void *v) {
    hid_t t = -1, sp = -1, a = -1, mt;
    int rc = -1;
    if (type == BIPO_ATTR_STR && strlen(*(const char *const *)v) >= 60000)
        FAIL("attribute '%s' is %zu bytes (limit 60000)", name, strlen(*(const char *const *)v));
    H5_TRY(attr_del(obj, name));
    if (type == BIPO_ATTR_STR)
        H5_TRY(t = str_type(strlen(*(const char *const *)v) + 1, 0));
    else
        H5_TRY(t = H5Tcopy(type == BIPO_ATTR_INT ? H5T_STD_I64LE : H5T_IEEE_F64LE));
    mt = type == BIPO_ATTR_STR ? t : type == BIPO_ATTR_INT ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
    if (type == BIPO_ATTR_STR) v = *(const char *const *)v; // fixed-length: the bytes themselves
    H5_TRY(sp = H5Screate(H5S_SCALAR));
    H5_TRY(a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(H5Awrite(a, mt, v));
    rc = 0;
fail:
    return H5_DONE(rc, a, sp, t);
}
int put_s(hid_t o, const char *k, const char *v) { return attr_put(o, k, BIPO_ATTR_STR, &v); }
int put_i(hid_t o, const char *k, int64_t v) { return attr_put(o, k, BIPO_ATTR_INT, &v); }
int put_d(hid_t o, const char *k, double v) { return attr_put(o, k, BIPO_ATTR_DOUBLE, &v); }
int put_list(hid_t o, const bipo_attr *a, size_t n) {
    for (size_t k = 0; k < n; k++) {
        const void *v = a[k].type == BIPO_ATTR_STR   ? (const void *)&a[k].s
                        : a[k].type == BIPO_ATTR_INT ? (const void *)&a[k].i
                                                     : (const void *)&a[k].d;
        if (!a[k].key || !*a[k].key || (a[k].type == BIPO_ATTR_STR && !a[k].s)) {
            store_err("attribute %zu has no key or no string value", k);
            return -1;
        }
        if (attr_put(o, a[k].key, a[k].type, v) < 0) return -1;
    }
    return 0;
}

// Reads a string attribute (variable or fixed length) into buf. 1 read, 0 absent, -1 error.
int get_s(hid_t obj, const char *name, char *buf, size_t n) {
    hid_t a = -1, t = -1, mt = -1;
    int rc = -1;
    htri_t e, vl;
    buf[0] = 0;
    H5_TRY(e = H5Aexists(obj, name));
    if (!e) return 0;
    H5_TRY(a = H5Aopen(obj, name, H5P_DEFAULT));
    H5_TRY(t = H5Aget_type(a));
    H5T_class_t cls;
    H5_TRY(cls = H5Tget_class(t));
    if (cls != H5T_STRING) FAIL("attribute '%s' is not a string", name);
    H5_TRY(vl = H5Tis_variable_str(t));
    if (vl) {
        char *p = NULL;
        H5_TRY(mt = str_type(0, 1));
        H5_TRY(H5Tset_cset(mt, H5Tget_cset(t)));
        H5_TRY(H5Aread(a, mt, &p));
        snprintf(buf, n, "%s", p ? p : "");
        H5_TRY(H5free_memory(p));
    } else {
        size_t sz = H5Tget_size(t); // 0 on error
        if (!sz) FAIL("attribute '%s': string of no size", name);
        char *tmp = xcalloc(sz + 1, 1);
        H5_TRY(mt = H5Tcopy(t));
        herr_t r = H5Aread(a, mt, tmp);
        snprintf(buf, n, "%s", tmp);
        free(tmp);
        H5_TRY(r);
    }
    rc = 1;
fail:
    return H5_DONE(rc, mt, t, a);
}
// Numeric attribute converted to int64 / double. 1 read, 0 absent, -1 error.
static int get_num(hid_t obj, const char *name, hid_t memtype, void *out) {
    hid_t a = -1;
    int rc = -1;
    htri_t e;
    H5_TRY(e = H5Aexists(obj, name));
    if (!e) return 0;
    H5_TRY(a = H5Aopen(obj, name, H5P_DEFAULT));
    H5_TRY(H5Aread(a, memtype, out));
    rc = 1;
fail:
    return H5_DONE(rc, a);
}
int get_i(hid_t o, const char *k, int64_t *v) { return get_num(o, k, H5T_NATIVE_INT64, v); }
int get_d(hid_t o, const char *k, double *v) { return get_num(o, k, H5T_NATIVE_DOUBLE, v); }

// 1-D dataset [n] of filetype from memory x (memtype).
int dset_put(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *x, size_t n) {
    hid_t sp = -1, d = -1;
    int rc = -1;
    hsize_t dim = n;
    H5_TRY(sp = H5Screate_simple(1, &dim, NULL));
    H5_TRY(d = H5Dcreate2(loc, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (n) H5_TRY(H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, x));
    rc = 0;
fail:
    return H5_DONE(rc, d, sp);
}
int put_f32(hid_t loc, const char *name, const float *x, size_t n) {
    return dset_put(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x, n);
}
// Reads a 1-D dataset into a malloc'd array of elem-byte memtype elements; *n its length.
int dset_get(hid_t loc, const char *name, hid_t memtype, size_t elem, void **out, size_t *n) {
    hid_t d = -1, sp = -1;
    int rc = -1;
    hsize_t dim = 0;
    *out = NULL;
    H5_TRY(d = H5Dopen2(loc, name, H5P_DEFAULT));
    H5_TRY(sp = H5Dget_space(d));
    int nd;
    H5_TRY(nd = H5Sget_simple_extent_ndims(sp));
    if (nd != 1) FAIL("dataset '%s' is not 1-D", name);
    H5_TRY(H5Sget_simple_extent_dims(sp, &dim, NULL));
    *out = xmalloc(dim ? dim * elem : 1);
    if (dim) H5_TRY(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out));
    *n = dim;
    rc = 0;
fail:
    if (rc) free(*out), *out = NULL;
    return H5_DONE(rc, sp, d);
}
int get_f32(hid_t loc, const char *name, float **x, size_t *n) {
    return dset_get(loc, name, H5T_NATIVE_FLOAT, sizeof(float), (void **)x, n);
}

hid_t group_ensure(hid_t loc, const char *name) {
    htri_t e;
    hid_t g = -1;
    H5_TRY(e = H5Lexists(loc, name, H5P_DEFAULT));
    if (e)
        H5_TRY(g = H5Gopen2(loc, name, H5P_DEFAULT));
    else
        H5_TRY(g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    return g;
fail:
    return -1;
}
// Opens loc/path when it exists: 1 (and *g), 0 absent, -1 error. path may have several parts.
int group_find(hid_t loc, const char *path, hid_t *g) {
    char part[4 * BIPO_NAME_MAX];
    const char *p = path;
    htri_t e;
    *g = -1;
    while (*p) { // H5Lexists needs each intermediate link checked
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - path) : strlen(path);
        snprintf(part, sizeof part, "%.*s", (int)len, path);
        H5_TRY(e = H5Lexists(loc, part, H5P_DEFAULT));
        if (!e) return 0;
        p = q ? q + 1 : path + len;
    }
    H5_TRY(*g = H5Gopen2(loc, path, H5P_DEFAULT));
    return 1;
fail:
    return -1;
}

// Child link names of group loc/name, sorted by name: a malloc'd array of *n strings.
int child_names(hid_t loc, const char *name, char ***names, size_t *n) {
    H5G_info_t info;
    *names = NULL;
    *n = 0;
    H5_TRY(H5Gget_info_by_name(loc, name, &info, H5P_DEFAULT));
    *names = xcalloc(info.nlinks + 1, sizeof **names);
    for (hsize_t k = 0; k < info.nlinks; k++) {
        ssize_t len;
        H5_TRY(len = H5Lget_name_by_idx(loc, name, H5_INDEX_NAME, H5_ITER_INC, k, NULL, 0,
                                        H5P_DEFAULT));
        (*names)[k] = xmalloc((size_t)len + 1);
        *n = k + 1;
        H5_TRY(H5Lget_name_by_idx(loc, name, H5_INDEX_NAME, H5_ITER_INC, k, (*names)[k],
                                  (size_t)len + 1, H5P_DEFAULT));
    }
    return 0;
fail:
    return -1;
}
void free_names(char **names, size_t n) {
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
}
