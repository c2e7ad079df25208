// pipeline/eval_msg.c — the eval-result message (MSG_EVAL, see eval_job.h): a leader on another
// rank sends its run's evaluation tables to rank 0, the only writer of the library. Encoder and
// decoder side by side, table by table, in the blob primitives of remote.h:
//   u64 MSG_EVAL | u64 has_key | key (remote.h) or str path | u64 n | n tables
//   table = str name | attrs | u64 n_arrays | arrays | u64 n_kids | kids
//   array = str name | u64 type | u64 n | n elements (8 or 4 bytes; strings: n str) | attrs
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_job.h" // defines: blob_put_eval, blob_get_eval
#include "util.h"     // defines: xcalloc, bipo_set_error

static void put_table(bipo_blob *b, const bipo_eval_table *t) {
    blob_put_str(b, t->name);
    blob_put_attrs(b, t->attrs, t->n_attrs);
    blob_put_u64(b, t->n_arrays);
    for (size_t i = 0; i < t->n_arrays; i++) {
        const bipo_eval_array *a = &t->arrays[i];
        blob_put_str(b, a->name);
        blob_put_u64(b, (uint64_t)a->type);
        blob_put_u64(b, a->n);
        if (a->type == BIPO_EV_STR)
            for (size_t k = 0; k < a->n; k++) blob_put_str(b, ((char **)a->x)[k]);
        else
            blob_put(b, a->x, a->n * (a->type == BIPO_EV_F32 ? 4 : 8));
        blob_put_attrs(b, a->attrs, a->n_attrs);
    }
    blob_put_u64(b, t->n_kids);
    for (size_t i = 0; i < t->n_kids; i++) put_table(b, &t->kids[i]);
}
static void get_table(bipo_blob *b, bipo_eval_table *t) {
    memset(t, 0, sizeof *t);
    t->name = blob_get_str(b);
    t->attrs = blob_get_attrs(b, &t->n_attrs);
    t->n_arrays = (size_t)blob_get_u64(b);
    t->arrays = xcalloc(t->n_arrays ? t->n_arrays : 1, sizeof *t->arrays);
    for (size_t i = 0; i < t->n_arrays; i++) {
        bipo_eval_array *a = &t->arrays[i];
        a->name = blob_get_str(b);
        a->type = (bipo_ev_type)blob_get_u64(b);
        CHECK(a->type <= BIPO_EV_STR, "malformed eval message: array type %d", (int)a->type);
        a->n = (size_t)blob_get_u64(b);
        if (a->type == BIPO_EV_STR) {
            char **s = a->x = xcalloc(a->n ? a->n : 1, sizeof *s);
            for (size_t k = 0; k < a->n; k++) s[k] = blob_get_str(b);
        } else
            a->x = blob_get_f32s(b, a->n * (a->type == BIPO_EV_F32 ? 1 : 2)); // raw: 4- or 8-byte elements
        a->attrs = blob_get_attrs(b, &a->n_attrs);
    }
    t->n_kids = (size_t)blob_get_u64(b);
    t->kids = xcalloc(t->n_kids ? t->n_kids : 1, sizeof *t->kids);
    for (size_t i = 0; i < t->n_kids; i++) get_table(b, &t->kids[i]);
}

void blob_put_eval(bipo_blob *b, const bipo_eval_where *w, const bipo_eval_table *t, size_t n) {
    blob_put_u64(b, MSG_EVAL);
    blob_put_u64(b, w->key != NULL);
    if (w->key) blob_put_key(b, w->key);
    else blob_put_str(b, w->path);
    blob_put_u64(b, n);
    for (size_t i = 0; i < n; i++) put_table(b, &t[i]);
}
// Reads from after the type word (the receiver has read it to pick the handler).
void blob_get_eval(bipo_blob *b, bipo_job_key **key, char **path, bipo_eval_table **t, size_t *n) {
    *key = NULL, *path = NULL;
    if (blob_get_u64(b)) {
        *key = xcalloc(1, sizeof **key);
        blob_get_key(b, *key);
    } else
        *path = blob_get_str(b);
    *n = (size_t)blob_get_u64(b);
    *t = xcalloc(*n ? *n : 1, sizeof **t);
    for (size_t i = 0; i < *n; i++) get_table(b, &(*t)[i]);
}

void bipo_eval_msg_free(bipo_job_key *key, char *path, bipo_eval_table *t, size_t n) {
    if (key) free_key(key), free(key);
    free(path);
    for (size_t i = 0; i < n; i++) bipo_eval_table_free(&t[i]);
    free(t);
}

int blob_get_eval_write(bipo_blob *b, bipo_store *s) {
    bipo_job_key *key;
    char *path;
    bipo_eval_table *t;
    size_t n;
    blob_get_eval(b, &key, &path, &t, &n);
    bipo_eval_where w = {key, path};
    int rc = bipo_eval_write(s, &w, t, n);
    bipo_eval_msg_free(key, path, t, n);
    return rc;
}

int bipo_eval_sink_remote(bipo_sink *s, const bipo_eval_where *w, const bipo_eval_table *t, size_t n) {
    bipo_blob b = {0};
    blob_put_eval(&b, w, t, n);
    msg_send(&b, 0, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
    blob_free(&b);
    return 0;
}
