// pipeline/store_eval.h — evaluation results in the vector library (docs/LIBRARY.md, "eval").
//
// Every kind of result (A/B curves, the held-out split, MMLU / TruthfulQA scores, compose and
// transfer curves, generations) is one generic tree: a bipo_eval_table is a named group holding
// named 1-D numeric or string arrays, scalar attributes and child tables. The job fills tables, the store writes
// them recursively as HDF5 groups / datasets / attributes, `inspect` reads them back the same
// way, and the MPI message (pipeline/eval_msg.c) carries them. A new kind of result is a new
// table, no new store code.
#ifndef BIPO_STORE_EVAL_H
#define BIPO_STORE_EVAL_H
#include <stddef.h>
#include <stdint.h>

#include "store.h" // defines: bipo_store, bipo_attr, bipo_job_key

// BIPO_EV_STR: x is char *[n] (each string owned by the array; NULL is stored as ""), written
// as a fixed-length UTF-8 string dataset (the store's string convention, store_h5.c).
typedef enum { BIPO_EV_F64 = 0, BIPO_EV_F32 = 1, BIPO_EV_I64 = 2, BIPO_EV_STR = 3 } bipo_ev_type;

typedef struct {
    char *name;
    bipo_ev_type type;
    void *x; // [n] double, float, int64_t or char *
    size_t n;
    bipo_attr *attrs; // the dataset's own attributes (e.g. method = "caa")
    size_t n_attrs;
} bipo_eval_array;

typedef struct bipo_eval_table {
    char *name; // group name; "." = write into the parent group itself (datasets beside others)
    bipo_attr *attrs;
    size_t n_attrs;
    bipo_eval_array *arrays;
    size_t n_arrays;
    struct bipo_eval_table *kids;
    size_t n_kids;
} bipo_eval_table;

// Building (everything is copied; the table owns it). Returns the new element.
void bipo_eval_table_init(bipo_eval_table *t, const char *name);
bipo_eval_table *bipo_eval_table_child(bipo_eval_table *t, const char *name);
bipo_eval_array *bipo_eval_table_array(bipo_eval_table *t, const char *name, bipo_ev_type type,
                                       const void *x, size_t n);
void bipo_eval_table_attr(bipo_attr **a, size_t *n, bipo_attr v); // copies key and string
#define BIPO_EVAL_ATTR(t, v) bipo_eval_table_attr(&(t)->attrs, &(t)->n_attrs, (v))
void bipo_eval_table_free(bipo_eval_table *t);
// Lookups (NULL when absent).
const bipo_eval_table *bipo_eval_table_find(const bipo_eval_table *t, const char *name);
const bipo_eval_array *bipo_eval_table_get(const bipo_eval_table *t, const char *name);
const bipo_attr *bipo_eval_attr_get(const bipo_attr *a, size_t n, const char *key);

// Where a table goes: under a run (the job's key, resolved by rank 0 to the complete run with
// that config hash) or under a library path ("eval/compose", "eval/transfer").
typedef struct bipo_eval_where {
    const bipo_job_key *key; // run target, or NULL
    const char *path;        // library path when key == NULL
} bipo_eval_where;

// Writes tables t[0..n) under `where`, each replacing a same-named group (or, for ".",
// same-named datasets), all in one transaction (or inside the caller's begin/commit).
int bipo_store_write_eval(bipo_store *s, const bipo_eval_where *where, const bipo_eval_table *t, size_t n);
// Reads the group at path (relative to the root) as a table named by its last part:
// 1 read, 0 absent, -1 error.
int bipo_store_read_eval(bipo_store *s, const char *path, bipo_eval_table *out);
// The run's eval settings_hash attribute: 1 (hash copied), 0 no eval yet, -1 error.
int bipo_store_eval_hash(bipo_store *s, const char *run_path, char hash[65]);
// A float dataset at a library path (malloc'd, *n set); NULL + error when absent.
float *bipo_store_read_f32(bipo_store *s, const char *path, size_t *n);
// "models/<m>/behaviors/<b>/layer_<L>/runs/<run>"
void bipo_store_run_path(char *out, size_t n, const char *model, const char *behavior, int layer,
                         const char *run);

#endif
