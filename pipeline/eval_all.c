// pipeline/eval_all.c — `bipo-pipeline eval CONFIG`: the eval: block on the vectors already in
// the library, no training. Per model (weights loaded once): every behavior × layer job of the
// config whose complete run (same job hash as `train`) exists and has no eval with the same
// settings hash is evaluated exactly as after training (bipo_eval_job, each run its own
// transaction, so a killed eval resumes where it stopped); then the compose and transfer
// entries on that model, filed under /eval/compose/<name> and /eval/transfer/<name>.
// Under mpirun rank 0 does all of it and the other ranks return at once (the simplest correct
// split: evaluation is short next to training, and one writer needs no messages).
// bipo_eval_entries is the compose / transfer half alone: `train` runs it on rank 0 after its
// last job (sched.c), on the vectors just stored.
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"        // defines: bipo_chat_for, bipo_chat_template_by_name
#include "config_eval.h" // defines: bipo_eval_cfg, bipo_eval_settings_hash
#include "eval_job.h"    // defines: bipo_eval_job, bipo_eval_arms, bipo_eval_ab_table
#include "kernels.h"     // defines: bipo_backend_open
#include "model.h"       // defines: bipo_model_load
#include "util.h"        // defines: bipo_set_error, xcalloc

typedef struct {
    bipo_store *s;
    bipo_listing l;
    const bipo_config_file *c;
    const bipo_run_opts *o;
    int runs;   // 1: the jobs' runs too (`eval`); 0: compose / transfer only (after `train`)
    size_t n_done, n_skipped, n_missing;
} lib_state;

static int root_sink_eval(bipo_sink *k, const bipo_eval_where *w, const bipo_eval_table *t, size_t n) {
    return bipo_eval_write(((lib_state *)k->ctx)->s, w, t, n);
}

// A library vector: method bipo = the newest run's `vector`, caa / caa_norm_matched = the
// dataset of that name beside it (written by the run's eval). NULL + error when absent.
static float *library_vector(lib_state *ls, const char *model, const char *behavior, int layer,
                             unsigned method, size_t *C) {
    for (size_t i = 0; i < ls->l.n_runs; i++) {
        const bipo_run_entry *e = &ls->l.runs[i];
        if (!e->newest || e->layer != layer || strcmp(e->model, model) || strcmp(e->behavior, behavior)) continue;
        char path[6 * BIPO_NAME_MAX];
        bipo_store_run_path(path, sizeof path, model, behavior, layer, e->run);
        strcat(path, method == BIPO_EVAL_BIPO ? "/vector" : method == BIPO_EVAL_CAA ? "/caa" : "/caa_norm_matched");
        float *v = bipo_store_read_f32(ls->s, path, C);
        if (!v && method != BIPO_EVAL_BIPO)
            bipo_set_error("%s: no %s vector (evaluate the run with method %s first)", path,
                           bipo_eval_method_name(method), bipo_eval_method_name(method));
        return v;
    }
    bipo_set_error("%s: no run of model '%s', behavior '%s', layer %d in the library", bipo_store_path(ls->s),
                   model, behavior, layer);
    return NULL;
}

// Arms on a behavior's items filed as /eval/<kind>/<name>/ab/<arm>; skipped when its settings
// hash (eval settings + what the vectors are) is already there.
static int eval_entry(lib_state *ls, const bipo_eval_ctx *ec, const char *kind, const char *name,
                      const bipo_behavior_cfg *bc, const bipo_behavior_data *d, const bipo_eval_arm *arms,
                      size_t na, const char *what) {
    const bipo_eval_cfg *e = ls->c->eval;
    bipo_pairs items = d->test, own = {0};
    if (e->test_data && bipo_pairs_load(&own, e->test_data, bc->format, &bc->fields) != 0) return -1;
    if (e->test_data) items = own;
    if (e->max_items && items.n > e->max_items) items.n = e->max_items;
    char shash[65], full[65], path[256], label[256];
    bipo_eval_settings_hash(e, bc->name, e->test_data ? own.sha256 : d->hash, shash);
    bipo_sha256 h;
    bipo_sha256_init(&h);
    bipo_sha256_update(&h, shash, 64);
    bipo_sha256_update(&h, what, strlen(what));
    bipo_sha256_hex(&h, full);
    snprintf(path, sizeof path, "eval/%s/%s", kind, name);
    bipo_eval_table old;
    int have = bipo_store_read_eval(ls->s, path, &old), rc = -1;
    if (have < 0) goto out;
    const bipo_attr *oh = have ? bipo_eval_attr_get(old.attrs, old.n_attrs, "settings_hash") : NULL;
    int same = oh && !strcmp(oh->s, full);
    if (have) bipo_eval_table_free(&old);
    if (same) {
        printf("[eval] %s %s: already evaluated with these settings, skipped\n", kind, name);
        ls->n_skipped++;
        rc = 0;
        goto out;
    }
    snprintf(label, sizeof label, "  eval %s %s", kind, name);
    bipo_ab_opts o = {e->mult, e->n_mult, e->positions, e->protocol, e->score_eos};
    bipo_ab_result *res = xcalloc(na, sizeof *res);
    bipo_eval_progress pr = {label, ls->o->quiet, NULL};
    bipo_eval_table t;
    bipo_eval_table_init(&t, name);
    bipo_eval_ctx ecf = *ec; // the items in the form the behavior's runs were trained in
    ecf.form = &d->form;
    if (bipo_eval_arms(&ecf, arms, na, &items, &o, &pr, res) == 0) {
        BIPO_EVAL_ATTR(&t, BIPO_ATTR_S("settings_hash", full));
        BIPO_EVAL_ATTR(&t, BIPO_ATTR_S("vectors", what));
        BIPO_EVAL_ATTR(&t, BIPO_ATTR_S("behavior", bc->name));
        BIPO_EVAL_ATTR(&t, BIPO_ATTR_I("n_items", (int64_t)items.n));
        bipo_eval_table *ab = bipo_eval_table_child(&t, "ab");
        for (size_t a = 0; a < na; a++) bipo_eval_ab_table(ab, &res[a]), bipo_ab_result_free(&res[a]);
        snprintf(path, sizeof path, "eval/%s", kind);
        bipo_eval_where w = {NULL, path};
        rc = bipo_eval_knowledge(&ecf, e, arms, na, &pr, &t) != 0 ? -1 : bipo_eval_write(ls->s, &w, &t, 1);
        ls->n_done += rc == 0;
    }
    bipo_eval_table_free(&t);
    free(res);
out:
    bipo_pairs_free(&own);
    return rc;
}

static long behavior_index(const bipo_config_file *c, const char *name) {
    for (size_t b = 0; b < c->n_behaviors; b++)
        if (!strcmp(c->behaviors[b].name, name)) return (long)b;
    return -1;
}

static int compose_one(lib_state *ls, const bipo_eval_ctx *ec, const bipo_compose_cfg *cc,
                       const bipo_behavior_data *bd) {
    size_t C = ec->m->cfg.C, n;
    float *sum = xcalloc(C, sizeof *sum);
    char what[2048] = "";
    for (size_t k = 0; k < cc->n_terms; k++) {
        const bipo_compose_term *t = &cc->terms[k];
        float *v = library_vector(ls, cc->model, t->behavior, (int)t->layer, t->method, &n);
        if (!v) return free(sum), -1;
        if (n != C) {
            bipo_set_error("compose '%s': the %s vector of %s / %s / layer %zu has %zu values, model '%s' "
                           "hidden %zu", cc->name, bipo_eval_method_name(t->method), cc->model, t->behavior,
                           t->layer, n, cc->model, C);
            return free(v), free(sum), -1;
        }
        for (size_t i = 0; i < C; i++) sum[i] += (float)(t->multiplier * v[i]);
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s/%zu/%s*%.17g", k ? " + " : "",
                 t->behavior, t->layer, bipo_eval_method_name(t->method), t->multiplier);
        free(v);
    }
    bipo_eval_arm arm = {cc->name, cc->terms[0].layer, sum, NULL, NULL};
    long b = behavior_index(ls->c, cc->behavior);
    int rc = eval_entry(ls, ec, "compose", cc->name, &ls->c->behaviors[b], &bd[b], &arm, 1, what);
    free(sum);
    return rc;
}

static int transfer_one(lib_state *ls, const bipo_eval_ctx *ec, const bipo_transfer_cfg *tc,
                        const bipo_behavior_data *bd) {
    size_t n, C = ec->m->cfg.C;
    float *v = library_vector(ls, tc->from_model, tc->from_behavior, (int)tc->from_layer, tc->from_method, &n);
    if (!v) return -1;
    if (n != C) {
        bipo_set_error("transfer '%s': the vector of model '%s' (hidden %zu) cannot be applied to model '%s' "
                       "(hidden %zu): hidden sizes must agree", tc->name, tc->from_model, n, tc->to_model, C);
        free(v);
        return -1;
    }
    for (size_t i = 0; i < tc->to_layers.n; i++)
        if (tc->to_layers.v[i] >= ec->m->cfg.L) {
            bipo_set_error("transfer '%s': layer %zu is out of range for model '%s' (%zu layers)", tc->name,
                           tc->to_layers.v[i], tc->to_model, ec->m->cfg.L);
            free(v);
            return -1;
        }
    bipo_eval_arm *arms = xcalloc(tc->to_layers.n, sizeof *arms);
    char (*names)[32] = xcalloc(tc->to_layers.n, sizeof *names), what[512];
    for (size_t i = 0; i < tc->to_layers.n; i++) {
        snprintf(names[i], sizeof names[i], "layer_%zu", tc->to_layers.v[i]);
        arms[i] = (bipo_eval_arm){names[i], tc->to_layers.v[i], v, NULL, NULL};
    }
    snprintf(what, sizeof what, "%s/%s/%zu/%s -> %s", tc->from_model, tc->from_behavior, tc->from_layer,
             bipo_eval_method_name(tc->from_method), tc->to_model);
    long b = behavior_index(ls->c, tc->from_behavior);
    int rc = eval_entry(ls, ec, "transfer", tc->name, &ls->c->behaviors[b], &bd[b], arms, tc->to_layers.n, what);
    free(arms), free(names), free(v);
    return rc;
}

// Whether model m has compose or transfer entries (the only work when !ls->runs).
static int has_entries(const bipo_eval_cfg *e, const char *id) {
    for (size_t i = 0; i < e->n_compose; i++)
        if (!strcmp(e->compose[i].model, id)) return 1;
    for (size_t i = 0; i < e->n_transfer; i++)
        if (!strcmp(e->transfer[i].to_model, id)) return 1;
    return 0;
}

// Every job of model m (when ls->runs), then its compose and transfer entries.
static int eval_model(lib_state *ls, size_t m, const bipo_backend *be, bipo_behavior_data *bd) {
    const bipo_config_file *c = ls->c;
    const bipo_model_cfg *mc = &c->models[m];
    bipo_model model = {0};
    bipo_tokenizer *tok = NULL;
    const bipo_chat_template *tpl = NULL;
    bipo_example *none = NULL;
    int rc = -1;
    if (bipo_model_load(&model, mc->path, be) != 0 || (mc->lora && bipo_lora_merge(&model, mc->lora) != 0) ||
        !(tok = bipo_tokenizer_load(mc->path)))
        goto out;
    tpl = mc->template_name && strcmp(mc->template_name, "auto") ? bipo_chat_template_by_name(mc->template_name)
                                                                  : bipo_chat_for(tok);
    if (!tpl || bipo_config_check_layers(c, m, model.cfg.L) != 0) goto out;
    const char *system = mc->system_prompt ? mc->system_prompt : BIPO_DEFAULT_SYSTEM;
    printf("model %s: %zu layers, hidden %zu, template %s\n", mc->id, model.cfg.L, model.cfg.C, tpl->name);
    bipo_sink sink = {NULL, NULL, NULL, ls, root_sink_eval};
    const bipo_layer_list *layers = bipo_config_model_layers(c, m);
    for (size_t b = 0; ls->runs && b < c->n_behaviors; b++)
        for (size_t li = 0; li < layers->n; li++) {
            size_t L = layers->v[li];
            char hash[65], run[BIPO_NAME_MAX], path[6 * BIPO_NAME_MAX], have_hash[65], want[65], ih[65];
            bipo_job_hash(c, model.fingerprint, tpl->name, system, c->behaviors[b].name, &bd[b], L, hash);
            bipo_job_key key = {mc->id, c->behaviors[b].name, (int)L, hash};
            int found = bipo_store_find_run(ls->s, &key, run);
            if (found < 0) goto out;
            if (!found) {
                printf("[eval] %s / %s / layer %zu: no complete run for this config (train it first), skipped\n",
                       mc->id, key.behavior, L);
                ls->n_missing++;
                continue;
            }
            bipo_store_run_path(path, sizeof path, mc->id, key.behavior, (int)L, run);
            if (bipo_store_eval_hash(ls->s, path, have_hash) < 0) goto out;
            bipo_pairs own = {0};
            if (c->eval->test_data && bipo_pairs_load(&own, c->eval->test_data, c->behaviors[b].format,
                                                      &c->behaviors[b].fields) != 0)
                goto out;
            snprintf(ih, sizeof ih, "%s", c->eval->test_data ? own.sha256 : bd[b].hash);
            bipo_pairs_free(&own);
            bipo_eval_settings_hash(c->eval, key.behavior, ih, want);
            if (!strcmp(have_hash, want)) {
                printf("[eval] %s / %s / layer %zu: run %s already evaluated with these settings, skipped\n",
                       mc->id, key.behavior, L, run);
                ls->n_skipped++;
                continue;
            }
            size_t C;
            float *v = bipo_store_read_vector(ls->s, mc->id, key.behavior, (int)L, run, &C);
            if (!v) goto out;
            bipo_job_ctx j = {.c = c, .o = ls->o, .sink = &sink, .prefix = "", .model = &model, .tok = tok,
                              .mc = mc, .bc = &c->behaviors[b], .data = &bd[b], .train = none,
                              .template_name = tpl->name, .system = system};
            int r = bipo_eval_job(&j, L, hash, v);
            free(v);
            if (r != 0) goto out;
            ls->n_done++;
        }
    bipo_eval_ctx ec = {&model, tok, tpl, system, c->train.hp.max_length, c->train.hp.forward_matmul};
    for (size_t i = 0; i < c->eval->n_compose; i++)
        if (!strcmp(c->eval->compose[i].model, mc->id) && compose_one(ls, &ec, &c->eval->compose[i], bd) != 0)
            goto out;
    for (size_t i = 0; i < c->eval->n_transfer; i++)
        if (!strcmp(c->eval->transfer[i].to_model, mc->id) && transfer_one(ls, &ec, &c->eval->transfer[i], bd) != 0)
            goto out;
    rc = 0;
out:
    if (tok) bipo_tokenizer_free(tok);
    bipo_model_free(&model);
    return rc;
}

static int eval_library(const bipo_config_file *c, const bipo_run_opts *o, int runs) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return 0;
    const char *out = o->output ? o->output : c->output;
    if (!c->eval) {
        fprintf(stderr, "bipo-pipeline eval: %s: no `eval:` block (see configs/quickstart.yaml)\n", c->path);
        return 1;
    }
    if (!out) {
        fprintf(stderr, "bipo-pipeline eval: %s: no `output:` in the config and no --output given\n", c->path);
        return 1;
    }
    const bipo_backend *be = bipo_backend_open(o->backend, o->threads);
    if (!be) {
        fprintf(stderr, "bipo-pipeline eval: %s\n", bipo_last_error());
        return 1;
    }
    lib_state ls = {.c = c, .o = o, .runs = runs};
    bipo_behavior_data *bd = xcalloc(c->n_behaviors, sizeof *bd);
    int rc = 1;
    double t0 = bipo_now();
    // the library must exist already: `eval` adds to vectors, it never makes a library
    if (!(ls.s = bipo_store_open(out, BIPO_STORE_READ))) goto out;
    bipo_store_close(ls.s);
    if (!(ls.s = bipo_store_open(out, BIPO_STORE_WRITE)) || bipo_store_list(ls.s, &ls.l) != 0) goto out;
    for (size_t b = 0; b < c->n_behaviors; b++)
        if (bipo_load_behavior(c, &c->behaviors[b], &bd[b]) != 0) goto out;
    for (size_t m = 0; m < c->n_models; m++)
        if ((runs || has_entries(c->eval, c->models[m].id)) && eval_model(&ls, m, be, bd) != 0) goto out;
    char el[32];
    bipo_fmt_duration(el, sizeof el, bipo_now() - t0);
    printf("eval complete in %s: %zu evaluated, %zu already evaluated, %zu without a run: %s\n", el, ls.n_done,
           ls.n_skipped, ls.n_missing, out);
    rc = 0;
out:
    if (rc) fprintf(stderr, "bipo-pipeline eval: %s\n", bipo_last_error());
    for (size_t b = 0; b < c->n_behaviors; b++) bipo_free_behavior(&bd[b]);
    free(bd);
    bipo_listing_free(&ls.l);
    bipo_store_close(ls.s);
    return rc;
}

int bipo_eval_all(const bipo_config_file *c, const bipo_run_opts *o) { return eval_library(c, o, 1); }
int bipo_eval_entries(const bipo_config_file *c, const bipo_run_opts *o) { return eval_library(c, o, 0); }
