// pipeline/store_internal.h — what the vector library's three files share; not an API (that is
// store.h). The store struct, the error context and the check macros every HDF5 call goes
// through, the HDF5 helpers of store_h5.c and the names of store.c, which store.c (writes)
// and store_read.c (reads) share.
#ifndef BIPO_STORE_INTERNAL_H
#define BIPO_STORE_INTERNAL_H
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h" // defines: bipo_store, bipo_attr, bipo_job_key, bipo_run_data
#include "util.h"  // defines: bipo_set_error, bipo_clear_error, xmalloc

struct bipo_store {
    char *path, *tmp, *lockpath;
    bipo_store_mode mode;
    int lock_fd; // -1 in READ mode
    hid_t fid;   // the committed library, read-only
    hid_t wfid;  // the open transaction's side file (read-write), or -1
    int batch;   // inside bipo_store_begin/commit
    int failed;  // a call inside the batch failed: commit aborts
};

// ---- errors (store_h5.c) --------------------------------------------------------------------
// Error context: the library path of the current public call, and whether a message naming
// the real problem has already been recorded (then H5_TRY up the call chain keeps it).
extern _Thread_local const char *g_file;
extern _Thread_local int g_reported;

void store_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void h5_fail(const char *expr, const char *func, int line);
int h5_done(int rc, const hid_t *ids, size_t n);

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
#define H5_DONE(rc, ...)                                                                           \
    h5_done((rc), (const hid_t[]){__VA_ARGS__}, sizeof((hid_t[]){__VA_ARGS__}) / sizeof(hid_t))

#define ENTER(s) (g_file = (s)->path, g_reported = 0, bipo_clear_error())
static inline hid_t cur(const bipo_store *s) { return s->wfid >= 0 ? s->wfid : s->fid; }

// ---- HDF5 helpers (store_h5.c; each explained at its definition) ----------------------------
hid_t str_type(size_t size, int vlen);
int attr_del(hid_t obj, const char *name);
int put_s(hid_t o, const char *k, const char *v);
int put_i(hid_t o, const char *k, int64_t v);
int put_d(hid_t o, const char *k, double v);
int put_list(hid_t o, const bipo_attr *a, size_t n);
int get_s(hid_t obj, const char *name, char *buf, size_t n);
int get_i(hid_t o, const char *k, int64_t *v);
int get_d(hid_t o, const char *k, double *v);
int dset_put(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *x, size_t n);
int put_f32(hid_t loc, const char *name, const float *x, size_t n);
int dset_get(hid_t loc, const char *name, hid_t memtype, size_t elem, void **out, size_t *n);
int get_f32(hid_t loc, const char *name, float **x, size_t *n);
hid_t group_ensure(hid_t loc, const char *name);
int group_find(hid_t loc, const char *path, hid_t *g);
int child_names(hid_t loc, const char *name, char ***names, size_t *n);
void free_names(char **names, size_t n);

// ---- names and paths (store.c) --------------------------------------------------------------
int valid_key(const bipo_job_key *k);
void layer_path(char *out, size_t n, const char *model, const char *behavior, int layer);
void ckpt_name(char *out, size_t n, const bipo_job_key *k);

#endif
