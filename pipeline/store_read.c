// pipeline/store_read.c — see store.h and docs/LIBRARY.md. Reading the vector library: find
// a run, read a run, its vector or a checkpoint, and the listing and consistency check behind
// `inspect`. Reads see the committed library, or inside a batch its uncommitted side file.
#include "store_internal.h" // defines: bipo_store, H5_TRY, FAIL, get_f32, child_names, group_find

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The arrays of a run or checkpoint (written by store.c put_run_data), epoch vectors in order.
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

// ---- runs -----------------------------------------------------------------------------------
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

int bipo_store_read_model(bipo_store *s, const char *model_id, bipo_model_entry *out) {
    char path[2 * BIPO_NAME_MAX];
    hid_t g = -1;
    int rc = -1, have = 0;
    ENTER(s);
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "models/%s", model_id);
    H5_TRY(have = group_find(cur(s), path, &g));
    if (!have) FAIL("no model '%s' in the library", model_id);
    H5_TRY(get_s(g, "source", out->source, sizeof out->source));
    H5_TRY(get_s(g, "architecture", out->architecture, sizeof out->architecture));
    H5_TRY(get_s(g, "fingerprint", out->fingerprint, sizeof out->fingerprint));
    H5_TRY(get_s(g, "dtype", out->dtype, sizeof out->dtype));
    H5_TRY(get_i(g, "hidden", &out->hidden));
    H5_TRY(get_i(g, "layers", &out->layers));
    rc = 0;
fail:
    return H5_DONE(rc, g);
}

// ---- checkpoints ----------------------------------------------------------------------------
int bipo_store_read_run_attr(bipo_store *s, const char *model_id, const char *behavior,
                             int layer, const char *run, const char *key, char *buf, size_t n) {
    hid_t r = -1;
    int rc = -1;
    ENTER(s);
    H5_TRY(r = open_run(cur(s), model_id, behavior, layer, run, NULL));
    H5_TRY(rc = get_s(r, key, buf, n));
fail:
    return H5_DONE(rc, r);
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
