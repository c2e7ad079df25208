// pipeline/train.c — from a validated config to complete entries in the vector library.
// Order of work: every behavior's data is loaded (and every bad line reported) before any
// model is; per model: weights + tokenizer once, then per behavior the tokenized pairs once,
// then one job per layer. A job whose exact settings (job hash) already have a complete run
// is skipped; one with a checkpoint resumes from it.
#define _GNU_SOURCE
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bipo.h"    // defines: bipo_trainer, bipo_examples_build
#include "chat.h"    // defines: bipo_chat_template_by_name, bipo_chat_for
#include "config_eval.h" // defines: bipo_config_split_seed
#include "dataset.h" // defines: bipo_pairs_load, bipo_pairs_split
#include "eval_job.h" // defines: bipo_eval_job
#include "kernels.h" // defines: bipo_backend_by_name
#include "model.h"   // defines: bipo_model_load
#include "store.h"   // defines: bipo_store_*
#include "util.h"    // defines: bipo_sha256, bipo_now

#ifndef BIPO_GIT_REVISION
#define BIPO_GIT_REVISION "unknown"
#endif

size_t bipo_plan(const bipo_config_file *c, bipo_job **jobs) {
    size_t n = 0, cap = 16;
    *jobs = xmalloc(cap * sizeof **jobs);
    for (size_t m = 0; m < c->n_models; m++) {
        const bipo_layer_list *ls = bipo_config_model_layers(c, m);
        for (size_t b = 0; b < c->n_behaviors; b++)
            for (size_t l = 0; l < ls->n; l++) {
                if (n == cap) *jobs = xrealloc(*jobs, (cap *= 2) * sizeof **jobs);
                (*jobs)[n++] = (bipo_job){m, b, ls->v[l]};
            }
    }
    return n;
}

// ---- data ------------------------------------------------------------------------------------
int bipo_load_behavior(const bipo_config_file *c, const bipo_behavior_cfg *b, bipo_behavior_data *d) {
    memset(d, 0, sizeof *d);
    bipo_pairs all = {0};
    if (bipo_pairs_load(&all, b->data, b->format, &b->fields) != 0) return -1;
    if (b->max_pairs && all.n > b->max_pairs) all.n = b->max_pairs; // rest freed with all
    char rule[160];
    if (b->test_data) {
        if (bipo_pairs_load(&d->test, b->test_data, b->format, &b->fields) != 0) {
            bipo_pairs_free(&all);
            return -1;
        }
        d->train = all;
        snprintf(rule, sizeof rule, "test:%s", d->test.sha256);
    } else {
        bipo_pairs_split(&all, b->test_fraction, bipo_config_split_seed(c), &d->train, &d->test);
        bipo_pairs_free(&all);
        snprintf(rule, sizeof rule, "split:%.17g:%llu:%zu", b->test_fraction,
                 (unsigned long long)bipo_config_split_seed(c), b->max_pairs);
    }
    bipo_sha256 sh;
    bipo_sha256_init(&sh);
    bipo_sha256_update(&sh, d->train.sha256, 64);
    bipo_sha256_update(&sh, rule, strlen(rule));
    bipo_sha256_hex(&sh, d->hash);
    return 0;
}

void bipo_free_behavior(bipo_behavior_data *d) {
    bipo_pairs_free(&d->train);
    bipo_pairs_free(&d->test);
}

int bipo_tokenize_pairs(const bipo_pairs *p, const bipo_tokenizer *tok,
                          const bipo_chat_template *tpl, const char *system, size_t max_length,
                          bipo_example **ex, size_t *n_trunc) {
    const char **q = xmalloc((p->n + 1) * sizeof *q), **a = xmalloc((p->n + 1) * sizeof *a),
               **o = xmalloc((p->n + 1) * sizeof *o);
    for (size_t i = 0; i < p->n; i++) q[i] = p->p[i].question, a[i] = p->p[i].matching, o[i] = p->p[i].not_matching;
    int rc = bipo_examples_build(tok, tpl, system, q, a, o, p->n, max_length, ex, n_trunc);
    free(q), free(a), free(o);
    if (rc != 0) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: %s", p->path, bipo_last_error());
        bipo_set_error("%s", msg);
    }
    return rc;
}

// The settings that determine a job's result: a rerun with the same hash skips the job, a
// changed one writes a new run (the old one is kept). Performance-only settings (cache size,
// threads, backend, ranks, shared_prompt, forward/backward_matmul: they move results by rounding only)
// are not part of it, nor are other jobs of the config:
// adding a behavior to a nightly config leaves the existing jobs' hashes alone.
void bipo_job_hash(const bipo_config_file *c, const char *fingerprint, const char *template_name,
                   const char *system, const char *behavior, const char *data_hash, size_t layer,
                   char out[65]) {
    const bipo_hparams *hp = &c->train.hp;
    char buf[2048];
    int k = snprintf(buf, sizeof buf,
                     "bipo-job-v1|model=%s|template=%s|system=%s|behavior=%s|data=%s|layer=%zu|"
                     "beta=%.17g|lr=%.17g|epochs=%zu|sched_epochs=%zu|batch=%zu|warmup=%zu|"
                     "zero=%d|sched=%d|wd=%.17g|b1=%.17g|b2=%.17g|eps=%.17g|clip=%.17g|"
                     "seed=%llu|max_length=%zu|save=",
                     fingerprint, template_name, system, behavior, data_hash, layer, hp->beta,
                     hp->lr, hp->epochs, hp->schedule_epochs, hp->batch_size, hp->warmup_steps,
                     hp->first_step_lr_zero, (int)hp->schedule, hp->weight_decay, hp->adam_beta1,
                     hp->adam_beta2, hp->adam_eps, hp->grad_clip, (unsigned long long)hp->seed,
                     c->train.max_length);
    for (size_t i = 0; i < c->train.n_save_epochs && k < (int)sizeof buf - 24; i++)
        k += snprintf(buf + k, sizeof buf - k, "%zu,", c->train.save_epochs[i]);
    bipo_sha256 sh;
    bipo_sha256_init(&sh);
    bipo_sha256_update(&sh, buf, (size_t)k);
    bipo_sha256_hex(&sh, out);
}

void bipo_fmt_duration(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(b, n, "?");
    else if (s < 60) snprintf(b, n, "%.0fs", s);
    else if (s < 3600) snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static double vnorm(const float *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

static int is_save_epoch(const bipo_train_cfg *t, size_t e) {
    for (size_t i = 0; i < t->n_save_epochs; i++)
        if (t->save_epochs[i] == e) return 1;
    return 0;
}

// Run data and optimizer state of trainer t as a checkpoint (arrays borrowed, not copied).
static void to_checkpoint(bipo_trainer *t, bipo_run_data *d, bipo_checkpoint *ck, uint64_t *rng2) {
    memset(ck, 0, sizeof *ck);
    ck->d = *d;
    ck->adam_m = t->adam_m;
    ck->adam_v = t->adam_v;
    ck->step = (int64_t)t->step;
    ck->epoch = (int64_t)t->epoch;
    rng2[0] = t->rng;
    rng2[1] = t->pos; // position in this epoch's order
    ck->rng = rng2;
    ck->n_rng = 2;
    ck->order = (uint64_t *)xmalloc(t->n_train * sizeof(uint64_t));
    for (size_t i = 0; i < t->n_train; i++) ck->order[i] = t->order[i];
    ck->n_order = t->n_train;
}

static int restore_checkpoint(bipo_trainer *t, bipo_checkpoint *ck, bipo_run_data *d) {
    if (ck->d.C != t->C || ck->n_rng != 2 || ck->n_order != t->n_train) {
        bipo_set_error("checkpoint does not match this job (hidden %zu vs %zu, %zu vs %zu pairs)",
                       ck->d.C, t->C, ck->n_order, t->n_train);
        return -1;
    }
    memcpy(t->v, ck->d.vector, t->C * sizeof(float));
    memcpy(t->adam_m, ck->adam_m, t->C * sizeof(float));
    memcpy(t->adam_v, ck->adam_v, t->C * sizeof(float));
    t->step = (uint64_t)ck->step;
    t->epoch = (size_t)ck->epoch;
    t->rng = ck->rng[0];
    t->pos = (size_t)ck->rng[1];
    for (size_t i = 0; i < t->n_train; i++) t->order[i] = (size_t)ck->order[i];
    *d = ck->d; // take over the arrays so far
    memset(&ck->d, 0, sizeof ck->d);
    return 0;
}

static void append_f(float **a, size_t *n, size_t *cap, float x) {
    if (*n == *cap) *a = xrealloc(*a, (*cap = *cap ? 2 * *cap : 64) * sizeof **a);
    (*a)[(*n)++] = x;
}

// Trains one job (this rank's share of it) from scratch or from checkpoint ck (may be NULL;
// consumed). The group leader (j->sink != NULL) logs and writes; the others only compute.
int bipo_run_job(bipo_job_ctx *j, size_t layer, const char *hash, bipo_checkpoint *ck) {
    const bipo_config_file *c = j->c;
    const bipo_train_cfg *tc = &c->train;
    const int lead = j->sink != NULL;
    bipo_job_key key = {j->mc->id, j->bc->name, (int)layer, hash};
    bipo_trainer t;
    double t0 = bipo_now();
    if (bipo_trainer_init(&t, j->model, layer, &tc->hp, j->train, j->n_train, j->test, j->n_test, j->dp) != 0)
        return -1;
    if (lead)
        printf("%s  %zu train / %zu test pairs, %zu steps of batch %zu, cache %.0f MB%s (%.1fs)\n",
               j->prefix, j->n_train, j->n_test, t.steps_per_epoch * tc->hp.epochs,
               tc->hp.batch_size, t.cache_used / 1048576.0,
               t.cache_misses ? " (budget reached: recomputing the rest)" : "", bipo_now() - t0);
    bipo_run_data d = {.C = t.C};
    size_t cap_loss = 0, cap_ep = 0;
    if (ck) {
        if (restore_checkpoint(&t, ck, &d) != 0) goto fail;
        cap_loss = d.n_steps;
        cap_ep = d.n_epochs;
        if (lead)
            printf("%s  resumed from checkpoint at step %llu (epoch %zu)\n", j->prefix,
                   (unsigned long long)t.step, t.epoch);
    }
    size_t total = t.steps_per_epoch * tc->hp.epochs;
    double ema = 0;
    long steps_here = 0;
    while (t.epoch < tc->hp.epochs) {
        double s0 = bipo_now();
        double loss = bipo_trainer_step(&t);
        double dt = bipo_now() - s0;
        steps_here++;
        append_f(&d.loss, &d.n_steps, &cap_loss, (float)loss);
        if (steps_here > 1) ema = ema ? 0.9 * ema + 0.1 * dt : dt; // step 0 (warm-up) excluded
        double flops = bipo_trainer_step_flops(&t) / dt / 1e9;
        if (lead && j->sink->poll) j->sink->poll(j->sink);
        if (lead && !j->o->quiet && (t.step % tc->log_every == 0 || t.step == total)) {
            char eta[32];
            bipo_fmt_duration(eta, sizeof eta, (double)(total - t.step) * (ema ? ema : dt));
            printf("%s  epoch %zu/%zu step %llu/%zu loss %.4f |v| %.4f d %+d lr %.2e %.0f ms/step "
                   "%.0f tok/s %.1f GFLOP/s ETA %s\n",
                   j->prefix, t.epoch + (t.pos ? 1 : 0), tc->hp.epochs, (unsigned long long)t.step, total,
                   loss, vnorm(t.v, t.C), t.last_d, t.last_lr, dt * 1e3,
                   t.last_tokens / dt, flops, eta);
            fflush(stdout);
        }
        if (bipo_trainer_epoch_done(&t)) {
            double hp = bipo_trainer_eval(&t, 1, +1), hn = bipo_trainer_eval(&t, 1, -1);
            if (d.n_epochs == cap_ep) {
                cap_ep = cap_ep ? 2 * cap_ep : 16;
                d.heldout_pos = xrealloc(d.heldout_pos, cap_ep * sizeof(float));
                d.heldout_neg = xrealloc(d.heldout_neg, cap_ep * sizeof(float));
            }
            d.heldout_pos[d.n_epochs] = (float)hp;
            d.heldout_neg[d.n_epochs++] = (float)hn;
            if (lead)
                printf("%s  epoch %zu done: held-out loss d=+1 %.4f  d=-1 %.4f  |v| %.4f\n",
                       j->prefix, t.epoch, hp, hn, vnorm(t.v, t.C));
            if (is_save_epoch(tc, t.epoch)) {
                d.epoch_vectors = xrealloc(d.epoch_vectors, (d.n_saved + 1) * t.C * sizeof(float));
                d.epoch_ids = xrealloc(d.epoch_ids, (d.n_saved + 1) * sizeof(int32_t));
                memcpy(d.epoch_vectors + d.n_saved * t.C, t.v, t.C * sizeof(float));
                d.epoch_ids[d.n_saved++] = (int32_t)t.epoch;
            }
        }
        int at_epoch_end = bipo_trainer_epoch_done(&t);
        int every = tc->checkpoint_every && t.step % tc->checkpoint_every == 0;
        if (lead && t.epoch < tc->hp.epochs && (at_epoch_end || every)) {
            // the last epoch goes straight to the run; mid-epoch ones carry the data position
            bipo_checkpoint cw;
            uint64_t rng2[2];
            d.vector = t.v;
            to_checkpoint(&t, &d, &cw, rng2);
            int rc = j->sink->checkpoint(j->sink, &key, &cw);
            free(cw.order);
            d.vector = NULL;
            if (rc != 0) goto fail;
        }
        if (j->o->stop_after_steps >= 0 && steps_here >= j->o->stop_after_steps) {
            if (lead) printf("%s  stopping after %ld steps (--stop-after-steps)\n", j->prefix, steps_here);
            fflush(stdout);
            exit(3);
        }
    }
    // the finished run and the end of its checkpoint, in one transaction
    double elapsed = bipo_now() - t0;
    d.vector = t.v;
    char save_list[256] = "";
    for (size_t i = 0, k = 0; i < tc->n_save_epochs && k < sizeof save_list - 12; i++)
        k += (size_t)snprintf(save_list + k, sizeof save_list - k, "%s%zu", i ? "," : "", tc->save_epochs[i]);
    const char *sched[] = {"cosine", "linear", "constant"};
    bipo_attr attrs[] = {
        BIPO_ATTR_D("beta", tc->hp.beta),           BIPO_ATTR_D("lr", tc->hp.lr),
        BIPO_ATTR_I("epochs", (int64_t)tc->hp.epochs),
        BIPO_ATTR_I("schedule_epochs", (int64_t)tc->hp.schedule_epochs),
        BIPO_ATTR_I("batch_size", (int64_t)tc->hp.batch_size),
        BIPO_ATTR_I("warmup_steps", (int64_t)tc->hp.warmup_steps),
        BIPO_ATTR_I("first_step_lr_zero", tc->hp.first_step_lr_zero),
        BIPO_ATTR_S("schedule", sched[tc->hp.schedule]),
        BIPO_ATTR_S("forward_matmul", t.hp.forward_matmul == BIPO_MATMUL_BF16X3 ? "bf16x3" : "fp32"),
        BIPO_ATTR_S("backward_matmul", t.hp.backward_matmul == BIPO_MATMUL_BF16X3 ? "bf16x3" : "fp32"),
        BIPO_ATTR_D("weight_decay", tc->hp.weight_decay),
        BIPO_ATTR_D("adam_beta1", tc->hp.adam_beta1), BIPO_ATTR_D("adam_beta2", tc->hp.adam_beta2),
        BIPO_ATTR_D("adam_eps", tc->hp.adam_eps),   BIPO_ATTR_D("grad_clip", tc->hp.grad_clip),
        BIPO_ATTR_I("seed", (int64_t)tc->hp.seed),  BIPO_ATTR_I("max_length", (int64_t)tc->max_length),
        BIPO_ATTR_S("save_epochs", save_list),      BIPO_ATTR_S("template", j->template_name),
        BIPO_ATTR_S("system_prompt", j->system),    BIPO_ATTR_I("train_pairs", (int64_t)j->n_train),
        BIPO_ATTR_I("test_pairs", (int64_t)j->n_test),
        BIPO_ATTR_I("truncated_sequences", (int64_t)j->n_trunc),
        BIPO_ATTR_S("git_revision", BIPO_GIT_REVISION), BIPO_ATTR_S("hosts", j->hosts ? j->hosts : ""),
        BIPO_ATTR_I("n_ranks", j->n_ranks),          BIPO_ATTR_D("elapsed_s", elapsed),
        BIPO_ATTR_S("config_path", c->path),        BIPO_ATTR_S("config_text_hash", c->config_hash),
    };
    const char *paths[2] = {j->data->train.path, j->data->test.path};
    bipo_behavior_info bi = {paths, j->bc->test_data ? 2 : 1, j->data->hash};
    bipo_model_info mi = {j->model->path, j->model->cfg.arch_name, j->model->fingerprint,
                          j->model->source_dtype, (int64_t)j->model->cfg.C, (int64_t)j->model->cfg.L};
    if (lead && j->sink->result(j->sink, &key, &mi, &bi, &d, attrs, sizeof attrs / sizeof attrs[0]) != 0)
        goto fail;
    if (lead && c->eval && bipo_eval_job(j, layer, hash, t.v) != 0) goto fail; // pipeline/eval_job.c
    d.vector = NULL; // owned by the trainer
    bipo_run_data_free(&d);
    bipo_trainer_free(&t);
    return 0;
fail:
    if (d.vector == t.v) d.vector = NULL;
    bipo_run_data_free(&d);
    bipo_trainer_free(&t);
    return -1;
}

