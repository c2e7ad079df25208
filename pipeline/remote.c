// pipeline/remote.c — see remote.h.
#include "remote.h" // defines: bipo_blob, blob_put_*, blob_get_* (implemented here)

#include <stdlib.h>
#include <string.h>

#include "util.h" // defines: CHECK, xmalloc, xrealloc

#define MPI_CHECK(call)                                                                        \
    do {                                                                                       \
        int rc_ = (call);                                                                      \
        CHECK(rc_ == MPI_SUCCESS, "%s failed (MPI error %d)", #call, rc_);                    \
    } while (0)

void blob_free(bipo_blob *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}
void blob_put(bipo_blob *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = xrealloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, x, n);
    b->n += n;
}
void blob_put_u64(bipo_blob *b, uint64_t v) { blob_put(b, &v, 8); }
void blob_put_str(bipo_blob *b, const char *s) {
    blob_put_u64(b, s ? strlen(s) + 1 : 0);
    if (s) blob_put(b, s, strlen(s) + 1);
}
void blob_put_f32s(bipo_blob *b, const float *x, size_t n) { blob_put(b, x, n * sizeof(float)); }

static const void *take(bipo_blob *b, size_t n) {
    CHECK(b->at + n <= b->n, "malformed message: %zu bytes wanted at %zu of %zu", n, b->at, b->n);
    const void *p = b->p + b->at;
    b->at += n;
    return p;
}
uint64_t blob_get_u64(bipo_blob *b) {
    uint64_t v;
    memcpy(&v, take(b, 8), 8);
    return v;
}
char *blob_get_str(bipo_blob *b) {
    uint64_t n = blob_get_u64(b);
    if (!n) return NULL;
    char *s = xmalloc(n);
    memcpy(s, take(b, n), n);
    s[n - 1] = 0;
    return s;
}
float *blob_get_f32s(bipo_blob *b, size_t n) {
    float *x = xmalloc((n ? n : 1) * sizeof(float));
    if (n) memcpy(x, take(b, n * sizeof(float)), n * sizeof(float));
    return x;
}

void blob_put_key(bipo_blob *b, const bipo_job_key *k) {
    blob_put_str(b, k->model_id);
    blob_put_str(b, k->behavior);
    blob_put_u64(b, (uint64_t)k->layer);
    blob_put_str(b, k->config_hash);
}
void blob_get_key(bipo_blob *b, bipo_job_key *k) {
    k->model_id = blob_get_str(b);
    k->behavior = blob_get_str(b);
    k->layer = (int)blob_get_u64(b);
    k->config_hash = blob_get_str(b);
}
void free_key(bipo_job_key *k) {
    free((char *)k->model_id), free((char *)k->behavior), free((char *)k->config_hash);
}

void blob_put_run_data(bipo_blob *b, const bipo_run_data *d) {
    uint64_t h[5] = {d->C, d->n_steps, d->n_epochs, d->n_saved, d->vector != NULL};
    blob_put(b, h, sizeof h);
    if (d->vector) blob_put_f32s(b, d->vector, d->C);
    blob_put_f32s(b, d->loss, d->n_steps);
    blob_put_f32s(b, d->heldout_pos, d->n_epochs);
    blob_put_f32s(b, d->heldout_neg, d->n_epochs);
    blob_put_f32s(b, d->epoch_vectors, d->n_saved * d->C);
    blob_put(b, d->epoch_ids, d->n_saved * sizeof(int32_t));
}
void blob_get_run_data(bipo_blob *b, bipo_run_data *d) {
    memset(d, 0, sizeof *d);
    uint64_t h[5];
    memcpy(h, take(b, sizeof h), sizeof h);
    d->C = h[0], d->n_steps = h[1], d->n_epochs = h[2], d->n_saved = h[3];
    d->vector = h[4] ? blob_get_f32s(b, d->C) : NULL;
    d->loss = blob_get_f32s(b, d->n_steps);
    d->heldout_pos = blob_get_f32s(b, d->n_epochs);
    d->heldout_neg = blob_get_f32s(b, d->n_epochs);
    d->epoch_vectors = blob_get_f32s(b, d->n_saved * d->C);
    d->epoch_ids = xmalloc((d->n_saved ? d->n_saved : 1) * sizeof(int32_t));
    if (d->n_saved) memcpy(d->epoch_ids, take(b, d->n_saved * sizeof(int32_t)), d->n_saved * sizeof(int32_t));
}

void blob_put_checkpoint(bipo_blob *b, const bipo_checkpoint *c) {
    blob_put_run_data(b, &c->d);
    blob_put_f32s(b, c->adam_m, c->d.C);
    blob_put_f32s(b, c->adam_v, c->d.C);
    uint64_t h[4] = {(uint64_t)c->step, (uint64_t)c->epoch, c->n_rng, c->n_order};
    blob_put(b, h, sizeof h);
    blob_put(b, c->rng, c->n_rng * 8);
    blob_put(b, c->order, c->n_order * 8);
}
void blob_get_checkpoint(bipo_blob *b, bipo_checkpoint *c) {
    memset(c, 0, sizeof *c);
    blob_get_run_data(b, &c->d);
    c->adam_m = blob_get_f32s(b, c->d.C);
    c->adam_v = blob_get_f32s(b, c->d.C);
    uint64_t h[4];
    memcpy(h, take(b, sizeof h), sizeof h);
    c->step = (int64_t)h[0], c->epoch = (int64_t)h[1], c->n_rng = h[2], c->n_order = h[3];
    c->rng = xmalloc((c->n_rng ? c->n_rng : 1) * 8);
    c->order = xmalloc((c->n_order ? c->n_order : 1) * 8);
    if (c->n_rng) memcpy(c->rng, take(b, c->n_rng * 8), c->n_rng * 8);
    if (c->n_order) memcpy(c->order, take(b, c->n_order * 8), c->n_order * 8);
}

void blob_put_attrs(bipo_blob *b, const bipo_attr *a, size_t n) {
    blob_put_u64(b, n);
    for (size_t i = 0; i < n; i++) {
        blob_put_str(b, a[i].key);
        blob_put_u64(b, (uint64_t)a[i].type);
        blob_put_str(b, a[i].s);
        blob_put_u64(b, (uint64_t)a[i].i);
        blob_put(b, &a[i].d, sizeof(double));
    }
}
bipo_attr *blob_get_attrs(bipo_blob *b, size_t *n) {
    *n = (size_t)blob_get_u64(b);
    bipo_attr *a = xcalloc(*n ? *n : 1, sizeof *a);
    for (size_t i = 0; i < *n; i++) {
        a[i].key = blob_get_str(b);
        a[i].type = (bipo_attr_type)blob_get_u64(b);
        a[i].s = blob_get_str(b);
        a[i].i = (int64_t)blob_get_u64(b);
        memcpy(&a[i].d, take(b, sizeof(double)), sizeof(double));
    }
    return a;
}
void free_attrs(bipo_attr *a, size_t n) {
    for (size_t i = 0; i < n; i++) free((char *)a[i].key), free((char *)a[i].s);
    free(a);
}

// ---- messages: each encoder beside its decoder -------------------------------------------------
void msg_put_request(bipo_blob *b, int group, long loaded) {
    blob_put_u64(b, MSG_REQUEST);
    blob_put_u64(b, (uint64_t)group);
    blob_put_u64(b, (uint64_t)(loaded + 1));
}
void msg_get_request(bipo_blob *b, int *group, long *loaded) {
    *group = (int)blob_get_u64(b);
    *loaded = (long)blob_get_u64(b) - 1;
}

void msg_put_job(bipo_blob *b, long job, const bipo_checkpoint *ck) {
    blob_put_u64(b, (uint64_t)(job + 1));
    blob_put_u64(b, ck != NULL);
    if (ck) blob_put_checkpoint(b, ck);
}
long msg_get_job(bipo_blob *b, bipo_checkpoint *ck, int *have) {
    long job = (long)blob_get_u64(b) - 1;
    *have = (int)blob_get_u64(b);
    memset(ck, 0, sizeof *ck);
    if (*have) blob_get_checkpoint(b, ck);
    return job;
}

void msg_put_checkpoint(bipo_blob *b, const bipo_job_key *k, const bipo_checkpoint *c) {
    blob_put_u64(b, MSG_CHECKPOINT);
    blob_put_key(b, k);
    blob_put_checkpoint(b, c);
}
void msg_get_checkpoint(bipo_blob *b, bipo_job_key *k, bipo_checkpoint *c) {
    blob_get_key(b, k);
    blob_get_checkpoint(b, c);
}

void msg_put_result(bipo_blob *b, const bipo_job_key *k, const bipo_model_info *mi,
                    const bipo_behavior_info *bi, const bipo_run_data *d, const bipo_attr *a, size_t n) {
    blob_put_u64(b, MSG_RESULT);
    blob_put_key(b, k);
    const char *ms[4] = {mi->source, mi->architecture, mi->fingerprint, mi->dtype};
    for (int q = 0; q < 4; q++) blob_put_str(b, ms[q]);
    blob_put_u64(b, (uint64_t)mi->hidden);
    blob_put_u64(b, (uint64_t)mi->layers);
    blob_put_u64(b, bi->n_data_paths);
    for (size_t q = 0; q < bi->n_data_paths; q++) blob_put_str(b, bi->data_paths[q]);
    blob_put_str(b, bi->data_hash);
    blob_put_run_data(b, d);
    blob_put_attrs(b, a, n);
}
void msg_get_result(bipo_blob *b, bipo_result_msg *r) {
    blob_get_key(b, &r->k);
    char *s[4];
    for (int q = 0; q < 4; q++) s[q] = blob_get_str(b);
    int64_t hidden = (int64_t)blob_get_u64(b), layers = (int64_t)blob_get_u64(b);
    r->mi = (bipo_model_info){s[0], s[1], s[2], s[3], hidden, layers};
    size_t np = (size_t)blob_get_u64(b);
    char **paths = xcalloc(np + 1, sizeof *paths);
    for (size_t q = 0; q < np; q++) paths[q] = blob_get_str(b);
    char *dh = blob_get_str(b);
    r->bi = (bipo_behavior_info){(const char *const *)paths, np, dh};
    blob_get_run_data(b, &r->d);
    r->a = blob_get_attrs(b, &r->n);
}
void msg_result_free(bipo_result_msg *r) {
    free_attrs(r->a, r->n);
    bipo_run_data_free(&r->d);
    for (size_t q = 0; q < r->bi.n_data_paths; q++) free((char *)r->bi.data_paths[q]);
    free((void *)r->bi.data_paths), free((char *)r->bi.data_hash);
    const char *ms[4] = {r->mi.source, r->mi.architecture, r->mi.fingerprint, r->mi.dtype};
    for (int q = 0; q < 4; q++) free((char *)ms[q]);
    free_key(&r->k);
    memset(r, 0, sizeof *r);
}

// ---- transport ---------------------------------------------------------------------------------
void msg_send(const bipo_blob *b, int dest, int tag, MPI_Comm comm) {
    CHECK(b->n < (size_t)1 << 31, "message of %zu bytes is too large", b->n);
    MPI_CHECK(MPI_Send(b->p, (int)b->n, MPI_BYTE, dest, tag, comm));
}
int msg_recv(bipo_blob *b, int source, int tag, MPI_Comm comm) {
    MPI_Status st;
    MPI_CHECK(MPI_Probe(source, tag, comm, &st));
    int n;
    MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &n));
    blob_free(b);
    b->p = xmalloc((size_t)n + 1);
    b->n = b->cap = (size_t)n;
    MPI_CHECK(MPI_Recv(b->p, n, MPI_BYTE, st.MPI_SOURCE, tag, comm, MPI_STATUS_IGNORE));
    return st.MPI_SOURCE;
}
int msg_pending(int tag, MPI_Comm comm) {
    int flag = 0;
    MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, tag, comm, &flag, MPI_STATUS_IGNORE));
    return flag;
}
void blob_bcast(bipo_blob *b, MPI_Comm comm) {
    int rank;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    uint64_t n = b->n;
    MPI_CHECK(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, comm));
    if (rank != 0) {
        blob_free(b);
        b->p = xmalloc(n + 1);
        b->n = b->cap = n;
    }
    if (n) MPI_CHECK(MPI_Bcast(b->p, (int)n, MPI_BYTE, 0, comm));
    b->at = 0;
}
