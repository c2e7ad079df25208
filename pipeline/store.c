// pipeline/store.c — see store.h and docs/LIBRARY.md.
// Three parts: (1) one check macro for every HDF5 call and small attribute/dataset helpers,
// (2) the transaction (lock, side file, fsync, rename), (3) the library operations.
#define _GNU_SOURCE // copy_file_range
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <linux/fs.h> // defines: FICLONE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h" // defines: bipo_set_error, xmalloc

struct bipo_store {
    char *path, *tmp, *lockpath;
    bipo_store_mode mode;
    int lock_fd; // -1 in READ mode
    hid_t fid;   // the committed library, read-only
    hid_t wfid;  // the open transaction's side file (read-write), or -1
    int batch;   // inside bipo_store_begin/commit
    int failed;  // a call inside the batch failed: commit aborts
};

// ---- (1) errors and HDF5 helpers ------------------------------------------------------------
// Error context: the library path of the current public call, and whether a message naming
// the real problem has already been recorded (then H5_TRY up the call chain keeps it).
static _Thread_local const char *g_file = "";
static _Thread_local int g_reported;

static void store_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void store_err(const char *fmt, ...) {
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
static void h5_fail(const char *expr, const char *func, int line) {
    ssize_t n = H5Eget_num(H5E_DEFAULT);
    if (n > 0 || !g_reported) {
        char what[256] = "no HDF5 error stack";
        if (n > 0) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, what);
        store_err("HDF5 call failed in %s():%d: %s: %s", func, line, expr, what);
    }
    H5Eclear2(H5E_DEFAULT);
}

// The one check for every herr_t / hid_t / htri_t (and for our helpers, which return -1):
// a negative value records the error and jumps to the function's `fail:` label.
#define H5_TRY(expr)                                                                               \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            h5_fail(#expr, __func__, __LINE__);                                                    \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        store_err(__VA_ARGS__);                                                                    \
        goto fail;                                                                                 \
    } while (0)

// Closes every valid id; a failed close turns a success into an error. Returns rc.
static int h5_done(int rc, const hid_t *ids, size_t n) {
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
#define H5_DONE(rc, ...)                                                                           \
    h5_done((rc), (const hid_t[]){__VA_ARGS__}, sizeof((hid_t[]){__VA_ARGS__}) / sizeof(hid_t))

// Strings are written fixed-length (UTF-8, NUL-terminated, size = longest + 1): variable-length
// strings live in a global heap whose 4 KiB collections are never reclaimed when an object is
// replaced, so every transaction would grow the file. h5py reads them as bytes (.decode()).
// vlen = 1 gives the variable-length type (for reading files written by other tools).
static hid_t str_type(size_t size, int vlen) {
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

static int attr_del(hid_t obj, const char *name) {
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
static int put_s(hid_t o, const char *k, const char *v) {
    return attr_put(o, k, BIPO_ATTR_STR, &v);
}
static int put_i(hid_t o, const char *k, int64_t v) { return attr_put(o, k, BIPO_ATTR_INT, &v); }
static int put_d(hid_t o, const char *k, double v) { return attr_put(o, k, BIPO_ATTR_DOUBLE, &v); }
static int put_list(hid_t o, const bipo_attr *a, size_t n) {
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
static int get_s(hid_t obj, const char *name, char *buf, size_t n) {
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
static int get_i(hid_t o, const char *k, int64_t *v) { return get_num(o, k, H5T_NATIVE_INT64, v); }
static int get_d(hid_t o, const char *k, double *v) { return get_num(o, k, H5T_NATIVE_DOUBLE, v); }

// 1-D dataset [n] of filetype from memory x (memtype).
static int dset_put(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *x,
                    size_t n) {
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
static int put_f32(hid_t loc, const char *name, const float *x, size_t n) {
    return dset_put(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x, n);
}
// Reads a 1-D dataset into a malloc'd array of elem-byte memtype elements; *n its length.
static int dset_get(hid_t loc, const char *name, hid_t memtype, size_t elem, void **out,
                    size_t *n) {
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
static int get_f32(hid_t loc, const char *name, float **x, size_t *n) {
    return dset_get(loc, name, H5T_NATIVE_FLOAT, sizeof(float), (void **)x, n);
}

static hid_t group_ensure(hid_t loc, const char *name) {
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
static int group_find(hid_t loc, const char *path, hid_t *g) {
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
static int child_names(hid_t loc, const char *name, char ***names, size_t *n) {
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
static void free_names(char **names, size_t n) {
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
}

static void iso_now(char out[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

// ---- (2) files, lock and transaction --------------------------------------------------------
static hid_t make_fapl(void) {
    hid_t p = -1;
    H5_TRY(p = H5Pcreate(H5P_FILE_ACCESS));
    H5_TRY(H5Pset_fclose_degree(p, H5F_CLOSE_STRONG)); // close = everything closed, flushed
    // Our own lock + rename replace HDF5's flock, which fails on some cluster file systems.
    H5_TRY(H5Pset_file_locking(p, 0, 1));
    return p;
fail:
    H5_DONE(-1, p);
    return -1;
}

static hid_t h5_open(const char *path, unsigned flags) {
    hid_t fapl = -1, f = -1;
    H5_TRY(fapl = make_fapl());
    H5_TRY(f = H5Fopen(path, flags, fapl));
fail:
    H5_DONE(0, fapl);
    return f;
}

// Opens path read-only and checks it is a bipo library: one clear error naming the file.
static hid_t open_library(const char *path) {
    struct stat st;
    hid_t f = -1;
    htri_t is;
    char fmt[64];
    int64_t ver = 0;
    if (stat(path, &st) != 0) FAIL("cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode)) FAIL("not a regular file");
    is = H5Fis_hdf5(path); // negative ("cannot tell") is reported as not HDF5 too
    H5Eclear2(H5E_DEFAULT);
    if (is <= 0)
        FAIL("not an HDF5 file (a bipo vector library is HDF5; was another file given, or "
             "is the path a typo?)");
    if ((f = h5_open(path, H5F_ACC_RDONLY)) < 0) FAIL("HDF5 file cannot be opened (damaged?)");
    if (get_s(f, "format", fmt, sizeof fmt) <= 0 || strcmp(fmt, BIPO_LIBRARY_FORMAT) != 0)
        FAIL("an HDF5 file but not a bipo vector library (no root attribute format = \"%s\"); "
             "refusing to use it — give a new path for the library",
             BIPO_LIBRARY_FORMAT);
    if (get_i(f, "format_version", &ver) <= 0 || ver < 1 || ver > BIPO_LIBRARY_VERSION)
        FAIL("bipo library format_version %lld is not supported (this program reads 1..%d)",
             (long long)ver, BIPO_LIBRARY_VERSION);
    return f;
fail:
    H5_DONE(0, f);
    return -1;
}

// Copies src to dst (new file, same permission bits): reflink where the file system allows,
// else copy_file_range, else read/write.
static int copy_file(const char *src, const char *dst) {
    int in = -1, out = -1, rc = -1;
    struct stat st;
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0 || fstat(in, &st) != 0) goto fail;
    if ((out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777)) < 0)
        goto fail;
    if (ioctl(out, FICLONE, in) != 0) {
        off_t left = st.st_size;
        while (left > 0) {
            ssize_t k = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
            if (k <= 0) break;
            left -= k;
        }
        if (left > 0) { // copy_file_range unsupported here: plain copy from where it stopped
            char buf[1 << 16];
            if (lseek(in, st.st_size - left, SEEK_SET) < 0 ||
                lseek(out, st.st_size - left, SEEK_SET) < 0)
                goto fail;
            ssize_t k;
            while ((k = read(in, buf, sizeof buf)) > 0)
                for (ssize_t w = 0, m; w < k; w += m)
                    if ((m = write(out, buf + w, (size_t)(k - w))) <= 0) goto fail;
            if (k < 0) goto fail;
        }
    }
    rc = 0;
fail:
    if (rc) store_err("cannot copy the library to the side file %s: %s", dst, strerror(errno));
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0 && rc == 0) {
        store_err("cannot write the side file %s: %s", dst, strerror(errno));
        rc = -1;
    }
    return rc;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        store_err("fsync %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static char *dir_of(const char *path) {
    char *d = xstrdup(path), *slash = strrchr(d, '/');
    if (!slash)
        strcpy(d, ".");
    else if (slash == d)
        d[1] = 0;
    else
        *slash = 0;
    return d;
}

// Removes "<path>.tmp.<digits>" left by a killed writer (we hold the lock: nobody else writes).
static void remove_stale(const bipo_store *s) {
    char *dir = dir_of(s->path);
    const char *base = strrchr(s->path, '/') ? strrchr(s->path, '/') + 1 : s->path;
    size_t nb = strlen(base);
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        const char *n = e->d_name;
        if (strncmp(n, base, nb) != 0 || strncmp(n + nb, ".tmp.", 5) != 0) continue;
        const char *p = n + nb + 5;
        if (!*p || strspn(p, "0123456789") != strlen(p)) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, n);
        unlink(full);
    }
    if (dp) closedir(dp);
    free(dir);
}

// Starts a transaction: the side file is a copy of the library (or a new library).
static int txn_begin(bipo_store *s, int create) {
    hid_t fcpl = -1, fapl = -1;
    if (s->mode != BIPO_STORE_WRITE) {
        store_err("opened read-only; open it for writing to change it");
        return -1;
    }
    if (s->wfid >= 0) {
        store_err("a transaction is already open");
        return -1;
    }
    s->failed = 0;
    if (create) {
        H5_TRY(fcpl = H5Pcreate(H5P_FILE_CREATE));
        // Free-space tracking persists across sessions, so space freed by replacing a
        // checkpoint in one transaction is reused by the next.
        H5_TRY(H5Pset_file_space_strategy(fcpl, H5F_FSPACE_STRATEGY_FSM_AGGR, 1, 1));
        H5_TRY(fapl = make_fapl());
        H5_TRY(s->wfid = H5Fcreate(s->tmp, H5F_ACC_TRUNC, fcpl, fapl));
    } else {
        H5_TRY(copy_file(s->path, s->tmp));
        H5_TRY(s->wfid = h5_open(s->tmp, H5F_ACC_RDWR));
    }
    return H5_DONE(0, fcpl, fapl);
fail:
    H5_DONE(-1, fcpl, fapl);
    s->wfid = -1;
    unlink(s->tmp);
    return -1;
}

void bipo_store_abort(bipo_store *s) {
    if (!s || s->wfid < 0) return;
    H5_DONE(0, s->wfid);
    s->wfid = -1;
    s->batch = 0;
    unlink(s->tmp);
}

// Flush, close, fsync the side file, rename it over the library, fsync the directory.
static int txn_commit(bipo_store *s) {
    char *dir = NULL;
    hid_t f = s->wfid;
    if (s->failed) FAIL("a write in this transaction failed; nothing was committed");
    H5_TRY(H5Fflush(f, H5F_SCOPE_GLOBAL));
    s->wfid = -1;
    H5_TRY(H5_DONE(0, f));
    H5_TRY(fsync_path(s->tmp, O_RDONLY));
    if (rename(s->tmp, s->path) != 0)
        FAIL("cannot rename %s over the library: %s", s->tmp, strerror(errno));
    dir = dir_of(s->path);
    H5_TRY(fsync_path(dir, O_RDONLY | O_DIRECTORY));
    free(dir);
    if (s->fid >= 0) H5_TRY(H5_DONE(0, s->fid));
    s->fid = -1;
    H5_TRY(s->fid = h5_open(s->path, H5F_ACC_RDONLY));
    s->batch = 0;
    return 0;
fail:
    free(dir);
    s->wfid = f >= 0 && H5Iis_valid(f) > 0 ? f : -1;
    bipo_store_abort(s);
    s->batch = 0;
    return -1;
}

#define ENTER(s) (g_file = (s)->path, g_reported = 0, bipo_clear_error())
static hid_t cur(const bipo_store *s) { return s->wfid >= 0 ? s->wfid : s->fid; }

// Wraps one write: its own transaction unless inside a batch.
static int write_begin(bipo_store *s) { return s->batch ? 0 : txn_begin(s, 0); }
static int write_end(bipo_store *s, int rc) {
    if (s->batch) {
        if (rc) s->failed = 1;
        return rc;
    }
    if (rc) {
        bipo_store_abort(s);
        return -1;
    }
    return txn_commit(s);
}

bipo_store *bipo_store_open(const char *path, bipo_store_mode mode) {
    bipo_store *s = xcalloc(1, sizeof *s);
    hid_t root = -1;
    char now[32];
    size_t n = strlen(path) + 32;
    s->path = xstrdup(path);
    s->tmp = xmalloc(n);
    s->lockpath = xmalloc(n);
    snprintf(s->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    snprintf(s->lockpath, n, "%s.lock", path);
    s->mode = mode;
    s->lock_fd = -1;
    s->fid = s->wfid = -1;
    ENTER(s);
    H5_TRY(H5Eset_auto2(H5E_DEFAULT, NULL, NULL)); // errors are reported through H5_TRY
    int exists = access(path, F_OK) == 0;
    if (mode == BIPO_STORE_READ || exists) { // validate before creating any file next to it
        H5_TRY(s->fid = open_library(path));
        if (mode == BIPO_STORE_READ) return s;
        H5_TRY(H5_DONE(0, s->fid));
        s->fid = -1;
    }
    s->lock_fd = open(s->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) FAIL("cannot create the lock file %s: %s", s->lockpath, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
        FAIL(errno == EWOULDBLOCK ? "another process is writing this library (lock %s is held); "
                                    "two writers at once are not supported"
                                  : "cannot lock %s: %s",
             s->lockpath, strerror(errno));
    remove_stale(s);
    if (access(path, F_OK) == 0) {
        H5_TRY(s->fid = open_library(path));
        return s;
    }
    H5_TRY(txn_begin(s, 1)); // a new library, created through the same rename
    H5_TRY(root = H5Gopen2(s->wfid, "/", H5P_DEFAULT));
    iso_now(now);
    H5_TRY(put_s(root, "format", BIPO_LIBRARY_FORMAT));
    H5_TRY(put_i(root, "format_version", BIPO_LIBRARY_VERSION));
    H5_TRY(put_s(root, "created", now));
    H5_TRY(H5_DONE(0, root));
    root = -1;
    const char *top[] = {"models", "checkpoints", "provenance"};
    for (int k = 0; k < 3; k++) {
        H5_TRY(root = group_ensure(s->wfid, top[k]));
        H5_TRY(H5_DONE(0, root));
        root = -1;
    }
    H5_TRY(txn_commit(s));
    return s;
fail:
    H5_DONE(0, root);
    bipo_store_close(s);
    return NULL;
}

void bipo_store_close(bipo_store *s) {
    if (!s) return;
    bipo_store_abort(s);
    if (s->fid >= 0) H5_DONE(0, s->fid);
    if (s->lock_fd >= 0) close(s->lock_fd); // releases the flock
    free(s->path);
    free(s->tmp);
    free(s->lockpath);
    free(s);
}

const char *bipo_store_path(const bipo_store *s) { return s->path; }

int bipo_store_begin(bipo_store *s) {
    ENTER(s);
    if (txn_begin(s, 0) < 0) return -1;
    s->batch = 1;
    return 0;
}
int bipo_store_commit(bipo_store *s) {
    ENTER(s);
    if (s->wfid < 0) {
        store_err("commit without begin");
        return -1;
    }
    return txn_commit(s);
}

// ---- (3) runs -------------------------------------------------------------------------------
static int valid_name(const char *what, const char *v, int hash) {
    if (!v || !*v) {
        store_err("%s is empty", what);
        return -1;
    }
    size_t n = strlen(v);
    const char *ok = hash ? "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ"
                          : "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ._+=@-";
    if (n >= BIPO_NAME_MAX || strspn(v, ok) != n || v[0] == '.' || (hash && n < 12)) {
        store_err("%s '%s' is not a valid name (%s)", what, v,
                  hash ? "expected at least 12 letters/digits, e.g. a sha256 hex digest"
                       : "use 1-127 of A-Z a-z 0-9 . _ + = @ -, not starting with '.'; e.g. "
                         "SmolLM2-135M-Instruct for HuggingFaceTB/SmolLM2-135M-Instruct");
        return -1;
    }
    return 0;
}
static int valid_key(const bipo_job_key *k) {
    if (valid_name("model id", k->model_id, 0) || valid_name("behavior", k->behavior, 0) ||
        valid_name("config hash", k->config_hash, 1))
        return -1;
    if (k->layer < 0 || k->layer > 100000) {
        store_err("layer %d out of range", k->layer);
        return -1;
    }
    return 0;
}
static void layer_path(char *out, size_t n, const char *model, const char *behavior, int layer) {
    snprintf(out, n, "models/%s/behaviors/%s/layer_%d", model, behavior, layer);
}

static double norm2(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

// Every count > 0 needs its array (the caller's data, checked before a transaction starts).
static int data_ok(const char *what, const bipo_run_data *d) {
    if (!d || !d->C || !d->vector || (d->n_steps && !d->loss) ||
        (d->n_epochs && (!d->heldout_pos || !d->heldout_neg)) ||
        (d->n_saved && (!d->epoch_vectors || !d->epoch_ids))) {
        store_err("%s: no vector, or an array missing for its count", what);
        return -1;
    }
    return 0;
}

// The arrays shared by runs and checkpoints.
static int put_run_data(hid_t g, const bipo_run_data *d) {
    hid_t ev = -1;
    int rc = -1;
    H5_TRY(put_f32(g, "vector", d->vector, d->C));
    H5_TRY(put_f32(g, "loss", d->loss, d->n_steps));
    H5_TRY(put_f32(g, "heldout_loss_pos", d->heldout_pos, d->n_epochs));
    H5_TRY(put_f32(g, "heldout_loss_neg", d->heldout_neg, d->n_epochs));
    H5_TRY(ev = H5Gcreate2(g, "epoch_vectors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (size_t e = 0; e < d->n_saved; e++) {
        char name[32];
        snprintf(name, sizeof name, "epoch_%d", (int)d->epoch_ids[e]);
        H5_TRY(put_f32(ev, name, d->epoch_vectors + e * d->C, d->C));
    }
    rc = 0;
fail:
    return H5_DONE(rc, ev);
}
static int get_run_data(hid_t g, bipo_run_data *d) {
    hid_t ev = -1;
    char **names = NULL;
    size_t nn = 0, n2 = 0, m = 0;
    int rc = -1;
    memset(d, 0, sizeof *d);
    H5_TRY(get_f32(g, "vector", &d->vector, &d->C));
    H5_TRY(get_f32(g, "loss", &d->loss, &d->n_steps));
    H5_TRY(get_f32(g, "heldout_loss_pos", &d->heldout_pos, &d->n_epochs));
    H5_TRY(get_f32(g, "heldout_loss_neg", &d->heldout_neg, &n2));
    if (n2 != d->n_epochs)
        FAIL("heldout_loss_pos has %zu values, heldout_loss_neg %zu", d->n_epochs, n2);
    H5_TRY(ev = H5Gopen2(g, "epoch_vectors", H5P_DEFAULT));
    H5_TRY(child_names(ev, ".", &names, &nn));
    d->epoch_vectors = xmalloc((nn ? nn : 1) * d->C * sizeof(float));
    d->epoch_ids = xmalloc((nn ? nn : 1) * sizeof(int32_t));
    for (size_t e = 0; e < nn; e++) { // names sort as strings: order by epoch number
        int id;
        if (sscanf(names[e], "epoch_%d", &id) != 1) FAIL("unexpected epoch vector '%s'", names[e]);
        size_t at = 0;
        while (at < e && d->epoch_ids[at] < id) at++;
        memmove(d->epoch_ids + at + 1, d->epoch_ids + at, (e - at) * sizeof(int32_t));
        memmove(d->epoch_vectors + (at + 1) * d->C, d->epoch_vectors + at * d->C,
                (e - at) * d->C * sizeof(float));
        float *x = NULL;
        H5_TRY(get_f32(ev, names[e], &x, &m));
        memcpy(d->epoch_vectors + at * d->C, x, (m == d->C ? m : 0) * sizeof(float));
        free(x);
        if (m != d->C) FAIL("epoch vector '%s' has %zu values, the vector %zu", names[e], m, d->C);
        d->epoch_ids[at] = id;
        d->n_saved = e + 1;
    }
    rc = 0;
fail:
    free_names(names, nn);
    if (rc) bipo_run_data_free(d);
    return H5_DONE(rc, ev);
}

void bipo_run_data_free(bipo_run_data *d) {
    free(d->vector);
    free(d->loss);
    free(d->heldout_pos);
    free(d->heldout_neg);
    free(d->epoch_vectors);
    free(d->epoch_ids);
    memset(d, 0, sizeof *d);
}

static int find_run_in(hid_t f, const bipo_job_key *k, char run[BIPO_NAME_MAX]) {
    char path[4 * BIPO_NAME_MAX], **names = NULL, best[32] = "";
    size_t nn = 0;
    hid_t g = -1, r = -1;
    int rc = -1, found = 0, best_n = 0;
    layer_path(path, sizeof path, k->model_id, k->behavior, k->layer);
    strcat(path, "/runs");
    H5_TRY(found = group_find(f, path, &g));
    if (!found) return 0;
    found = 0;
    H5_TRY(child_names(g, ".", &names, &nn));
    for (size_t i = 0; i < nn; i++) {
        char hash[BIPO_NAME_MAX], status[32], fin[32];
        H5_TRY(r = H5Gopen2(g, names[i], H5P_DEFAULT));
        H5_TRY(get_s(r, "config_hash", hash, sizeof hash));
        H5_TRY(get_s(r, "status", status, sizeof status));
        H5_TRY(get_s(r, "finished", fin, sizeof fin));
        H5_TRY(H5_DONE(0, r));
        r = -1;
        if (strcmp(hash, k->config_hash) || strcmp(status, "complete")) continue;
        int n = names[i][12] == '-' ? atoi(names[i] + 13) : 1; // <hash12>-<n>: written n-th
        int cmp = strcmp(fin, best);
        if (found && (cmp < 0 || (cmp == 0 && n < best_n))) continue;
        snprintf(best, sizeof best, "%s", fin); // the latest finished one with this config
        best_n = n;
        if (run) snprintf(run, BIPO_NAME_MAX, "%s", names[i]);
        found = 1;
    }
    rc = found;
fail:
    free_names(names, nn);
    return H5_DONE(rc, r, g);
}

int bipo_store_find_run(bipo_store *s, const bipo_job_key *k, char run[BIPO_NAME_MAX]) {
    ENTER(s);
    if (valid_key(k)) return -1;
    return find_run_in(cur(s), k, run);
}

// /models/<m>: created with m's attrs, or checked against them.
static hid_t model_group(hid_t f, const char *id, const bipo_model_info *m, size_t C) {
    char path[2 * BIPO_NAME_MAX], fp[256];
    hid_t g = -1;
    int64_t hidden = 0;
    int have = 0;
    if ((int64_t)C != m->hidden)
        FAIL("vector has %zu values but model %s has hidden size %lld", C, id,
             (long long)m->hidden);
    snprintf(path, sizeof path, "models/%s", id);
    H5_TRY(have = group_find(f, path, &g));
    if (have) {
        H5_TRY(get_s(g, "fingerprint", fp, sizeof fp));
        H5_TRY(get_i(g, "hidden", &hidden));
        if (m->fingerprint && strcmp(fp, m->fingerprint))
            FAIL("model id '%s' is already in the library with fingerprint %.16s…, this model has "
                 "%.16s… (a different model under the same id: give it another model id)",
                 id, fp, m->fingerprint);
        if (hidden != m->hidden)
            FAIL("model '%s': library hidden %lld, now %lld", id, (long long)hidden,
                 (long long)m->hidden);
        return g;
    }
    H5_TRY(g = H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(put_s(g, "source", m->source ? m->source : ""));
    H5_TRY(put_s(g, "architecture", m->architecture ? m->architecture : ""));
    H5_TRY(put_s(g, "fingerprint", m->fingerprint ? m->fingerprint : ""));
    H5_TRY(put_s(g, "dtype", m->dtype ? m->dtype : ""));
    H5_TRY(put_i(g, "hidden", m->hidden));
    H5_TRY(put_i(g, "layers", m->layers));
    return g;
fail:
    H5_DONE(0, g);
    return -1;
}

static int do_write_run(hid_t f, const bipo_job_key *k, const bipo_model_info *m,
                        const bipo_behavior_info *b, const bipo_run_data *d, const bipo_attr *attrs,
                        size_t n_attrs, char *run_out) {
    hid_t mg = -1, bh = -1, bg = -1, lg = -1, rs = -1, r = -1, sp = -1, t = -1, a = -1;
    char name[BIPO_NAME_MAX], now[32], *paths = NULL;
    int rc = -1;
    htri_t e = 1;
    static const char *OWNED[] = {"status", "config_hash", "finished", "vector_norm"};
    for (size_t i = 0; i < n_attrs; i++)
        for (int j = 0; j < 4; j++)
            if (attrs[i].key && !strcmp(attrs[i].key, OWNED[j]))
                FAIL("attribute '%s' is set by the store, not by the caller", OWNED[j]);
    H5_TRY(mg = model_group(f, k->model_id, m, d->C));
    H5_TRY(bh = group_ensure(mg, "behaviors"));
    H5_TRY(bg = group_ensure(bh, k->behavior));
    if (b) { // data_paths: a 1-D array of fixed-length strings
        hsize_t n = b->n_data_paths;
        size_t w = 1;
        for (size_t i = 0; i < n; i++)
            w = strlen(b->data_paths[i]) + 1 > w ? strlen(b->data_paths[i]) + 1 : w;
        paths = xcalloc(n ? n : 1, w);
        for (size_t i = 0; i < n; i++)
            memcpy(paths + i * w, b->data_paths[i], strlen(b->data_paths[i]));
        H5_TRY(attr_del(bg, "data_paths"));
        H5_TRY(t = str_type(w, 0));
        H5_TRY(sp = H5Screate_simple(1, &n, NULL));
        H5_TRY(a = H5Acreate2(bg, "data_paths", t, sp, H5P_DEFAULT, H5P_DEFAULT));
        if (n) H5_TRY(H5Awrite(a, t, paths));
        H5_TRY(put_s(bg, "data_hash", b->data_hash ? b->data_hash : ""));
    }
    snprintf(name, sizeof name, "layer_%d", k->layer);
    H5_TRY(lg = group_ensure(bg, name));
    H5_TRY(put_i(lg, "layer", k->layer));
    H5_TRY(rs = group_ensure(lg, "runs"));
    for (int n = 1; e; n++) { // first free name: <hash12>, <hash12>-2, ...
        if (n == 1)
            snprintf(name, sizeof name, "%.12s", k->config_hash);
        else
            snprintf(name, sizeof name, "%.12s-%d", k->config_hash, n);
        H5_TRY(e = H5Lexists(rs, name, H5P_DEFAULT));
    }
    H5_TRY(r = H5Gcreate2(rs, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(put_run_data(r, d));
    iso_now(now);
    H5_TRY(put_s(r, "created", now)); // replaced by the caller's start time when given
    H5_TRY(put_s(r, "model_fingerprint", m->fingerprint ? m->fingerprint : ""));
    if (b && b->data_hash) H5_TRY(put_s(r, "data_hash", b->data_hash));
    if (d->n_steps) H5_TRY(put_d(r, "final_loss", d->loss[d->n_steps - 1]));
    H5_TRY(put_list(r, attrs, n_attrs));
    H5_TRY(put_s(r, "status", "complete"));
    H5_TRY(put_s(r, "config_hash", k->config_hash));
    H5_TRY(put_s(r, "finished", now));
    H5_TRY(put_d(r, "vector_norm", norm2(d->vector, d->C)));
    H5_TRY(put_s(lg, "newest", name));
    if (run_out) snprintf(run_out, BIPO_NAME_MAX, "%s", name);
    rc = 0;
fail:
    free(paths);
    return H5_DONE(rc, a, sp, t, r, rs, lg, bg, bh, mg);
}

int bipo_store_write_run(bipo_store *s, const bipo_job_key *k, const bipo_model_info *m,
                         const bipo_behavior_info *b, const bipo_run_data *d,
                         const bipo_attr *attrs, size_t n_attrs, char run[BIPO_NAME_MAX]) {
    ENTER(s);
    if (valid_key(k)) return -1;
    if (data_ok("run", d)) return -1;
    if (!m) {
        store_err("run %s/%s/layer_%d: no model info", k->model_id, k->behavior, k->layer);
        return -1;
    }
    if (write_begin(s)) return -1;
    return write_end(s, do_write_run(s->wfid, k, m, b, d, attrs, n_attrs, run));
}

// Opens the group of a run; run == NULL: the layer's newest (name written to resolved).
static hid_t open_run(hid_t f, const char *model, const char *behavior, int layer, const char *run,
                      char resolved[BIPO_NAME_MAX]) {
    char path[5 * BIPO_NAME_MAX], newest[BIPO_NAME_MAX];
    hid_t lg = -1, r = -1;
    int have = 0;
    layer_path(path, sizeof path, model, behavior, layer);
    H5_TRY(have = group_find(f, path, &lg));
    if (!have) FAIL("no runs for model '%s', behavior '%s', layer %d", model, behavior, layer);
    if (!run) {
        H5_TRY(have = get_s(lg, "newest", newest, sizeof newest));
        if (!have) FAIL("%s has no newest run", path);
        run = newest;
    }
    snprintf(path, sizeof path, "runs/%s", run);
    H5_TRY(have = group_find(lg, path, &r));
    if (!have)
        FAIL("no run '%s' for model '%s', behavior '%s', layer %d", run, model, behavior, layer);
    if (resolved) snprintf(resolved, BIPO_NAME_MAX, "%s", run);
fail:
    H5_DONE(0, lg);
    return r;
}

int bipo_store_read_run(bipo_store *s, const char *model_id, const char *behavior, int layer,
                        const char *run, bipo_run_data *out) {
    hid_t r = -1;
    int rc = -1;
    ENTER(s);
    memset(out, 0, sizeof *out);
    H5_TRY(r = open_run(cur(s), model_id, behavior, layer, run, NULL));
    H5_TRY(get_run_data(r, out));
    rc = 0;
fail:
    return H5_DONE(rc, r);
}

float *bipo_store_read_vector(bipo_store *s, const char *model_id, const char *behavior, int layer,
                              const char *run, size_t *C) {
    hid_t r = -1;
    float *v = NULL;
    ENTER(s);
    H5_TRY(r = open_run(cur(s), model_id, behavior, layer, run, NULL));
    H5_TRY(get_f32(r, "vector", &v, C));
fail:
    H5_DONE(0, r);
    return v;
}

// ---- checkpoints ----------------------------------------------------------------------------
static void ckpt_name(char *out, size_t n, const bipo_job_key *k) {
    snprintf(out, n, "%s:%s:layer_%d:%s", k->model_id, k->behavior, k->layer, k->config_hash);
}

static int do_write_checkpoint(hid_t f, const bipo_job_key *k, const bipo_checkpoint *c) {
    char name[4 * BIPO_NAME_MAX], now[32];
    hid_t cg = -1, g = -1;
    htri_t e;
    int rc = -1;
    ckpt_name(name, sizeof name, k);
    H5_TRY(cg = group_ensure(f, "checkpoints"));
    H5_TRY(e = H5Lexists(cg, name, H5P_DEFAULT));
    if (e) H5_TRY(H5Ldelete(cg, name, H5P_DEFAULT)); // its space is reused (persistent FSM)
    H5_TRY(g = H5Gcreate2(cg, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(put_run_data(g, &c->d));
    H5_TRY(put_f32(g, "adam_m", c->adam_m, c->d.C));
    H5_TRY(put_f32(g, "adam_v", c->adam_v, c->d.C));
    H5_TRY(dset_put(g, "rng", H5T_STD_U64LE, H5T_NATIVE_UINT64, c->rng, c->n_rng));
    H5_TRY(dset_put(g, "order", H5T_STD_U64LE, H5T_NATIVE_UINT64, c->order, c->n_order));
    iso_now(now);
    H5_TRY(put_i(g, "step", c->step));
    H5_TRY(put_i(g, "epoch", c->epoch));
    H5_TRY(put_s(g, "model_id", k->model_id));
    H5_TRY(put_s(g, "behavior", k->behavior));
    H5_TRY(put_i(g, "layer", k->layer));
    H5_TRY(put_s(g, "config_hash", k->config_hash));
    H5_TRY(put_s(g, "written", now));
    rc = 0;
fail:
    return H5_DONE(rc, g, cg);
}

int bipo_store_write_checkpoint(bipo_store *s, const bipo_job_key *k, const bipo_checkpoint *c) {
    ENTER(s);
    if (valid_key(k) || data_ok("checkpoint", &c->d)) return -1;
    if (!c->adam_m || !c->adam_v || (c->n_rng && !c->rng) || (c->n_order && !c->order)) {
        store_err("checkpoint: adam_m/adam_v missing, or rng/order missing for its count");
        return -1;
    }
    if (write_begin(s)) return -1;
    return write_end(s, do_write_checkpoint(s->wfid, k, c));
}

int bipo_store_read_checkpoint(bipo_store *s, const bipo_job_key *k, bipo_checkpoint *out) {
    char path[5 * BIPO_NAME_MAX] = "checkpoints/";
    hid_t g = -1;
    size_t m1 = 0, m2 = 0;
    int rc = -1, have = 0;
    ENTER(s);
    memset(out, 0, sizeof *out);
    if (valid_key(k)) return -1;
    ckpt_name(path + strlen(path), sizeof path - strlen(path), k);
    H5_TRY(have = group_find(cur(s), path, &g));
    if (!have) return 0;
    H5_TRY(get_run_data(g, &out->d));
    H5_TRY(get_f32(g, "adam_m", &out->adam_m, &m1));
    H5_TRY(get_f32(g, "adam_v", &out->adam_v, &m2));
    if (m1 != out->d.C || m2 != out->d.C)
        FAIL("checkpoint %s: adam_m/adam_v sizes differ from the vector", path);
    H5_TRY(dset_get(g, "rng", H5T_NATIVE_UINT64, 8, (void **)&out->rng, &out->n_rng));
    H5_TRY(dset_get(g, "order", H5T_NATIVE_UINT64, 8, (void **)&out->order, &out->n_order));
    if (get_i(g, "step", &out->step) <= 0 || get_i(g, "epoch", &out->epoch) <= 0)
        FAIL("checkpoint %s has no step/epoch", path);
    rc = 1;
fail:
    if (rc < 0) bipo_checkpoint_free(out);
    return H5_DONE(rc, g);
}

void bipo_checkpoint_free(bipo_checkpoint *c) {
    bipo_run_data_free(&c->d);
    free(c->adam_m);
    free(c->adam_v);
    free(c->rng);
    free(c->order);
    memset(c, 0, sizeof *c);
}

static int do_delete_checkpoint(hid_t f, const char *name) {
    hid_t cg = -1;
    htri_t e;
    int rc = -1;
    H5_TRY(cg = group_ensure(f, "checkpoints"));
    H5_TRY(e = H5Lexists(cg, name, H5P_DEFAULT));
    if (e) H5_TRY(H5Ldelete(cg, name, H5P_DEFAULT));
    rc = 0;
fail:
    return H5_DONE(rc, cg);
}

int bipo_store_delete_checkpoint(bipo_store *s, const bipo_job_key *k) {
    char path[5 * BIPO_NAME_MAX] = "checkpoints/";
    hid_t g = -1;
    int have = 0;
    ENTER(s);
    if (valid_key(k)) return -1;
    ckpt_name(path + strlen(path), sizeof path - strlen(path), k);
    H5_TRY(have = group_find(cur(s), path, &g));
    H5_TRY(H5_DONE(0, g));
    if (!have) return 0; // nothing to delete: no transaction
    if (write_begin(s)) return -1;
    return write_end(s, do_delete_checkpoint(s->wfid, path + strlen("checkpoints/")));
fail:
    return -1;
}

// ---- provenance -----------------------------------------------------------------------------
static int do_write_provenance(hid_t f, const char *config_text, const bipo_attr *attrs,
                               size_t n_attrs, char *name_out) {
    char name[BIPO_NAME_MAX], stamp[32], now[32], ver[32];
    hid_t pg = -1, g = -1, t = -1, sp = -1, d = -1;
    unsigned maj, min, rel;
    htri_t e = 1;
    int rc = -1;
    time_t tt = time(NULL);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(stamp, sizeof stamp, "run_%Y%m%dT%H%M%SZ", &tm);
    H5_TRY(pg = group_ensure(f, "provenance"));
    for (int n = 1; e; n++) { // two pipeline runs in the same second: run_..Z-2
        if (n == 1)
            snprintf(name, sizeof name, "%s", stamp);
        else
            snprintf(name, sizeof name, "%s-%d", stamp, n);
        H5_TRY(e = H5Lexists(pg, name, H5P_DEFAULT));
    }
    H5_TRY(g = H5Gcreate2(pg, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(H5get_libversion(&maj, &min, &rel));
    snprintf(ver, sizeof ver, "%u.%u.%u", maj, min, rel);
    iso_now(now);
    H5_TRY(put_s(g, "hdf5_version", ver));
    H5_TRY(put_s(g, "created", now));
    H5_TRY(put_list(g, attrs, n_attrs));
    if (config_text) {
        H5_TRY(t = str_type(strlen(config_text) + 1, 0));
        H5_TRY(sp = H5Screate(H5S_SCALAR));
        H5_TRY(d = H5Dcreate2(g, "config_text", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        H5_TRY(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, config_text));
    }
    H5_TRY(put_s(pg, "latest", name));
    if (name_out) snprintf(name_out, BIPO_NAME_MAX, "%s", name);
    rc = 0;
fail:
    return H5_DONE(rc, d, sp, t, g, pg);
}

int bipo_store_write_provenance(bipo_store *s, const char *config_text, const bipo_attr *attrs,
                                size_t n_attrs, char name[BIPO_NAME_MAX]) {
    ENTER(s);
    if (write_begin(s)) return -1;
    return write_end(s, do_write_provenance(s->wfid, config_text, attrs, n_attrs, name));
}

// ---- listing and checking -------------------------------------------------------------------
// Visits every run: fn(run group, entry with names and newest filled, model hidden, ctx).
typedef int (*run_visit_fn)(hid_t r, bipo_run_entry *e, int64_t hidden, void *ctx);

static int visit_runs(hid_t f, run_visit_fn fn, void *ctx) {
    char **ms = NULL, **bs = NULL, **ls = NULL, **rs = NULL;
    size_t nm = 0, nb = 0, nl = 0, nr = 0;
    hid_t models = -1, mg = -1, bg = -1, lg = -1, r = -1;
    int rc = -1, have;
    H5_TRY(models = H5Gopen2(f, "models", H5P_DEFAULT));
    H5_TRY(child_names(models, ".", &ms, &nm));
    for (size_t i = 0; i < nm; i++) {
        int64_t hidden = -1;
        char path[3 * BIPO_NAME_MAX];
        H5_TRY(mg = H5Gopen2(models, ms[i], H5P_DEFAULT));
        if (get_i(mg, "hidden", &hidden) <= 0) FAIL("/models/%s has no hidden attribute", ms[i]);
        H5_TRY(have = group_find(mg, "behaviors", &bg));
        if (have) H5_TRY(child_names(bg, ".", &bs, &nb));
        for (size_t j = 0; j < nb; j++) {
            bipo_run_entry e;
            char newest[BIPO_NAME_MAX];
            H5_TRY(child_names(bg, bs[j], &ls, &nl));
            for (size_t l = 0; l < nl; l++) {
                snprintf(path, sizeof path, "%s/%s", bs[j], ls[l]);
                H5_TRY(lg = H5Gopen2(bg, path, H5P_DEFAULT));
                H5_TRY(get_s(lg, "newest", newest, sizeof newest));
                H5_TRY(have = group_find(lg, "runs", &r));
                if (have) H5_TRY(child_names(r, ".", &rs, &nr));
                H5_TRY(H5_DONE(0, r));
                r = -1;
                for (size_t q = 0; q < nr; q++) {
                    memset(&e, 0, sizeof e);
                    snprintf(e.model, sizeof e.model, "%s", ms[i]);
                    snprintf(e.behavior, sizeof e.behavior, "%s", bs[j]);
                    snprintf(e.run, sizeof e.run, "%s", rs[q]);
                    if (sscanf(ls[l], "layer_%d", &e.layer) != 1)
                        FAIL("unexpected group %s/%s", ms[i], path);
                    e.newest = !strcmp(newest, rs[q]);
                    snprintf(path, sizeof path, "runs/%s", rs[q]);
                    H5_TRY(r = H5Gopen2(lg, path, H5P_DEFAULT));
                    H5_TRY(fn(r, &e, hidden, ctx));
                    H5_TRY(H5_DONE(0, r));
                    r = -1;
                }
                free_names(rs, nr), rs = NULL, nr = 0;
                H5_TRY(H5_DONE(0, lg));
                lg = -1;
            }
            free_names(ls, nl), ls = NULL, nl = 0;
        }
        free_names(bs, nb), bs = NULL, nb = 0;
        H5_TRY(H5_DONE(0, bg, mg));
        bg = mg = -1;
    }
    rc = 0;
fail:
    free_names(ms, nm), free_names(bs, nb), free_names(ls, nl), free_names(rs, nr);
    return H5_DONE(rc, r, lg, bg, mg, models);
}

static int list_run(hid_t r, bipo_run_entry *e, int64_t hidden, void *ctx) {
    bipo_listing *l = ctx;
    hid_t d = -1, sp = -1;
    hssize_t n;
    int rc = -1;
    e->final_loss = e->vector_norm = NAN;
    H5_TRY(get_s(r, "status", e->status, sizeof e->status));
    H5_TRY(get_s(r, "config_hash", e->config_hash, sizeof e->config_hash));
    H5_TRY(get_s(r, "created", e->created, sizeof e->created));
    H5_TRY(get_s(r, "finished", e->finished, sizeof e->finished));
    H5_TRY(get_d(r, "final_loss", &e->final_loss));
    H5_TRY(get_d(r, "vector_norm", &e->vector_norm));
    const char *names[2] = {"vector", "loss"};
    size_t *sizes[2] = {&e->C, &e->n_steps};
    for (int k = 0; k < 2; k++) {
        H5_TRY(d = H5Dopen2(r, names[k], H5P_DEFAULT));
        H5_TRY(sp = H5Dget_space(d));
        H5_TRY(n = H5Sget_simple_extent_npoints(sp));
        *sizes[k] = (size_t)n;
        H5_TRY(H5_DONE(0, sp, d));
        sp = d = -1;
    }
    l->runs = xrealloc(l->runs, (l->n_runs + 1) * sizeof *l->runs);
    l->runs[l->n_runs++] = *e;
    rc = 0;
fail:
    return H5_DONE(rc, sp, d);
}

static int by_key(const void *pa, const void *pb) { // model, behavior, layer (numeric), run
    const bipo_run_entry *a = pa, *b = pb;
    int c = strcmp(a->model, b->model);
    if (!c) c = strcmp(a->behavior, b->behavior);
    if (!c) c = (a->layer > b->layer) - (a->layer < b->layer);
    return c ? c : strcmp(a->run, b->run);
}

int bipo_store_list(bipo_store *s, bipo_listing *l) {
    hid_t f = cur(s), g = -1;
    char **names = NULL;
    size_t nn = 0;
    int rc = -1;
    int64_t ver = 0;
    ENTER(s);
    memset(l, 0, sizeof *l);
    H5_TRY(get_i(f, "format_version", &ver));
    l->format_version = (int)ver;
    H5_TRY(get_s(f, "created", l->created, sizeof l->created));
    H5_TRY(visit_runs(f, list_run, l));
    if (l->n_runs) qsort(l->runs, l->n_runs, sizeof *l->runs, by_key);
    H5_TRY(child_names(f, "checkpoints", &names, &nn));
    l->checkpoints = xcalloc(nn + 1, sizeof *l->checkpoints);
    for (size_t k = 0; k < nn; k++) {
        bipo_checkpoint_entry *c = &l->checkpoints[k];
        int64_t layer = -1;
        char path[5 * BIPO_NAME_MAX];
        snprintf(c->name, sizeof c->name, "%s", names[k]);
        snprintf(path, sizeof path, "checkpoints/%s", names[k]);
        H5_TRY(g = H5Gopen2(f, path, H5P_DEFAULT));
        H5_TRY(get_s(g, "model_id", c->model, sizeof c->model));
        H5_TRY(get_s(g, "behavior", c->behavior, sizeof c->behavior));
        H5_TRY(get_s(g, "config_hash", c->config_hash, sizeof c->config_hash));
        H5_TRY(get_s(g, "written", c->written, sizeof c->written));
        H5_TRY(get_i(g, "layer", &layer));
        H5_TRY(get_i(g, "step", &c->step));
        H5_TRY(get_i(g, "epoch", &c->epoch));
        c->layer = (int)layer;
        H5_TRY(H5_DONE(0, g));
        g = -1;
        l->n_checkpoints = k + 1;
    }
    free_names(names, nn), names = NULL, nn = 0;
    H5_TRY(child_names(f, "provenance", &names, &nn));
    l->provenance = xcalloc(nn + 1, sizeof *l->provenance);
    for (size_t k = 0; k < nn; k++) snprintf(l->provenance[k], BIPO_NAME_MAX, "%s", names[k]);
    l->n_provenance = nn;
    rc = 0;
fail:
    free_names(names, nn);
    if (rc) bipo_listing_free(l);
    return H5_DONE(rc, g);
}

void bipo_listing_free(bipo_listing *l) {
    free(l->runs);
    free(l->checkpoints);
    free(l->provenance);
    memset(l, 0, sizeof *l);
}

static int check_run(hid_t r, bipo_run_entry *e, int64_t hidden, void *ctx) {
    bipo_run_data d;
    char hash[BIPO_NAME_MAX], status[32];
    int rc = -1;
    memset(&d, 0, sizeof d);
    (*(size_t *)ctx)++;
    H5_TRY(get_run_data(r, &d));
    H5_TRY(get_s(r, "status", status, sizeof status));
    H5_TRY(get_s(r, "config_hash", hash, sizeof hash));
    if (strcmp(status, "complete"))
        FAIL("run %s/%s/layer_%d/%s has status '%s'", e->model, e->behavior, e->layer, e->run,
             status);
    if ((int64_t)d.C != hidden)
        FAIL("run %s/%s/layer_%d/%s: vector has %zu values, model hidden %lld", e->model,
             e->behavior, e->layer, e->run, d.C, (long long)hidden);
    if (strncmp(hash, e->run, 12))
        FAIL("run %s/%s/layer_%d/%s: config_hash %s does not match its name", e->model, e->behavior,
             e->layer, e->run, hash);
    rc = 0;
fail:
    bipo_run_data_free(&d);
    return rc;
}

int bipo_store_check(bipo_store *s) {
    hid_t f = cur(s);
    bipo_listing l;
    int rc = -1;
    size_t visited = 0;
    ENTER(s);
    H5_TRY(bipo_store_list(s, &l));             // every run's attrs and sizes readable
    H5_TRY(visit_runs(f, check_run, &visited)); // every run's arrays readable and consistent
    for (size_t i = 0; i < l.n_runs; i++) {     // every layer has exactly one newest run
        size_t j = i, newest = 0;
        while (j < l.n_runs && !strcmp(l.runs[j].model, l.runs[i].model) &&
               !strcmp(l.runs[j].behavior, l.runs[i].behavior) &&
               l.runs[j].layer == l.runs[i].layer)
            newest += l.runs[j++].newest;
        if (newest != 1)
            FAIL("%s/%s/layer_%d: newest names no existing run", l.runs[i].model,
                 l.runs[i].behavior, l.runs[i].layer);
        i = j - 1;
    }
    for (size_t k = 0; k < l.n_checkpoints; k++) {
        bipo_job_key key = {l.checkpoints[k].model, l.checkpoints[k].behavior,
                            l.checkpoints[k].layer, l.checkpoints[k].config_hash};
        bipo_checkpoint c;
        H5_TRY(bipo_store_read_checkpoint(s, &key, &c));
        bipo_checkpoint_free(&c);
    }
    rc = 0;
fail:
    bipo_listing_free(&l);
    return rc;
}
