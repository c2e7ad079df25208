// pipeline/job.c — one job, top-down (bipo_run_job): the data it was handed (tokenized
// pairs, a checkpoint) -> build the trainer -> train (steps, held-out loss per epoch,
// checkpoints) -> store the run. The group leader logs and writes through its sink; the other
// ranks of the group only compute.
#define _GNU_SOURCE
#include "job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bipo.h"    // defines: bipo_trainer
#include "eval_job.h" // defines: bipo_eval_job (pipeline/eval_job.c)
#include "hparams.h" // defines: bipo_hp_n_fields
#include "peak.h"    // defines: bipo_peak_gflops
#include "util.h"    // defines: bipo_now, xmalloc

#ifndef BIPO_GIT_REVISION
#define BIPO_GIT_REVISION "unknown"
#endif

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

// ---- build the trainer ----------------------------------------------------------------------
// The trainer and its caches (one forward per sequence); the leader logs what it holds.
static int build_trainer(bipo_job_ctx *j, size_t layer, bipo_trainer *t) {
    const bipo_hparams *hp = &j->c->train.hp;
    double t0 = bipo_now();
    if (bipo_trainer_init(t, j->model, layer, hp, j->train, j->n_train, j->test, j->n_test, j->dp) != 0)
        return -1;
    if (j->sink)
        printf("%s  %zu train / %zu test pairs, %zu steps of batch %zu, cache %.0f MB%s (%.1fs)\n",
               j->prefix, j->n_train, j->n_test, t->steps_per_epoch * hp->epochs, hp->batch_size,
               t->cache_used / 1048576.0,
               t->cache_misses ? " (budget reached: recomputing the rest)" : "", bipo_now() - t0);
    return 0;
}

// Optimizer state, data position and the run data so far from checkpoint ck (consumed).
static int resume(bipo_job_ctx *j, bipo_trainer *t, bipo_checkpoint *ck, bipo_run_data *d,
                  size_t *cap_loss, size_t *cap_ep) {
    if (restore_checkpoint(t, ck, d) != 0) return -1;
    *cap_loss = d->n_steps;
    *cap_ep = d->n_epochs;
    if (j->sink)
        printf("%s  resumed from checkpoint at step %llu (epoch %zu)\n", j->prefix,
               (unsigned long long)t->step, t->epoch);
    return 0;
}

// ---- train ------------------------------------------------------------------------------------
// The step line, like llm.c's: loss, ms, tokens/s, GFLOP/s and the fraction of the peak
// (BIPO_PEAK_GFLOPS, else one core's measured fp32 FMA rate x this rank's threads; the line
// says which).
static void log_step(const bipo_job_ctx *j, const bipo_trainer *t, double loss, double dt,
                     double ema, size_t total) {
    const char *src;
    double peak = bipo_peak_gflops(0, &src), gflops = bipo_trainer_step_flops(t) / dt / 1e9;
    char eta[32];
    bipo_fmt_duration(eta, sizeof eta, (double)(total - t->step) * (ema ? ema : dt));
    printf("%s  epoch %zu/%zu step %llu/%zu loss %.4f |v| %.4f d %+d lr %.2e %.0f ms/step "
           "%.0f tok/s %.1f GFLOP/s %.1f%% of peak %.0f (%s) ETA %s\n",
           j->prefix, t->epoch + (t->pos ? 1 : 0), j->c->train.hp.epochs, (unsigned long long)t->step, total,
           loss, vnorm(t->v, t->C), t->last_d, t->last_lr, dt * 1e3, t->last_tokens / dt, gflops,
           100.0 * gflops / peak, peak, src, eta);
    fflush(stdout);
}

// After an epoch: held-out loss in both directions, and the vector if it is a save epoch.
static void end_epoch(const bipo_job_ctx *j, bipo_trainer *t, bipo_run_data *d, size_t *cap_ep) {
    double hp = bipo_trainer_eval(t, 1, +1), hn = bipo_trainer_eval(t, 1, -1);
    if (d->n_epochs == *cap_ep) {
        *cap_ep = *cap_ep ? 2 * *cap_ep : 16;
        d->heldout_pos = xrealloc(d->heldout_pos, *cap_ep * sizeof(float));
        d->heldout_neg = xrealloc(d->heldout_neg, *cap_ep * sizeof(float));
    }
    d->heldout_pos[d->n_epochs] = (float)hp;
    d->heldout_neg[d->n_epochs++] = (float)hn;
    if (j->sink)
        printf("%s  epoch %zu done: held-out loss d=+1 %.4f  d=-1 %.4f  |v| %.4f\n",
               j->prefix, t->epoch, hp, hn, vnorm(t->v, t->C));
    if (!is_save_epoch(&j->c->train, t->epoch)) return;
    d->epoch_vectors = xrealloc(d->epoch_vectors, (d->n_saved + 1) * t->C * sizeof(float));
    d->epoch_ids = xrealloc(d->epoch_ids, (d->n_saved + 1) * sizeof(int32_t));
    memcpy(d->epoch_vectors + d->n_saved * t->C, t->v, t->C * sizeof(float));
    d->epoch_ids[d->n_saved++] = (int32_t)t->epoch;
}

// The leader's checkpoint: vector, optimizer state and data position (the last epoch goes
// straight to the run instead).
static int write_checkpoint(bipo_job_ctx *j, bipo_trainer *t, bipo_run_data *d, const bipo_job_key *key) {
    bipo_checkpoint cw;
    uint64_t rng2[2];
    d->vector = t->v;
    to_checkpoint(t, d, &cw, rng2);
    int rc = j->sink->checkpoint(j->sink, key, &cw);
    free(cw.order);
    d->vector = NULL;
    return rc;
}

// Steps until the last epoch: loss curve, held-out losses and saved vectors into d.
static int train(bipo_job_ctx *j, bipo_trainer *t, bipo_run_data *d, size_t *cap_loss,
                 size_t *cap_ep, const bipo_job_key *key) {
    const bipo_hparams *hp = &j->c->train.hp;
    const int lead = j->sink != NULL;
    size_t total = t->steps_per_epoch * hp->epochs;
    double ema = 0;
    long steps_here = 0;
    while (t->epoch < hp->epochs) {
        double s0 = bipo_now();
        double loss = bipo_trainer_step(t);
        double dt = bipo_now() - s0;
        steps_here++;
        append_f(&d->loss, &d->n_steps, cap_loss, (float)loss);
        if (steps_here > 1) ema = ema ? 0.9 * ema + 0.1 * dt : dt; // step 0 (warm-up) excluded
        if (lead && j->sink->poll) j->sink->poll(j->sink);
        if (lead && !j->o->quiet && (t->step % hp->log_every == 0 || t->step == total))
            log_step(j, t, loss, dt, ema, total);
        int at_epoch_end = bipo_trainer_epoch_done(t);
        if (at_epoch_end) end_epoch(j, t, d, cap_ep);
        int every = hp->checkpoint_every && t->step % hp->checkpoint_every == 0;
        if (lead && t->epoch < hp->epochs && (at_epoch_end || every) && write_checkpoint(j, t, d, key) != 0)
            return -1;
        if (j->o->stop_after_steps >= 0 && steps_here >= j->o->stop_after_steps) {
            if (lead) printf("%s  stopping after %ld steps (--stop-after-steps)\n", j->prefix, steps_here);
            fflush(stdout);
            exit(3);
        }
    }
    return 0;
}

// ---- store --------------------------------------------------------------------------------------
// The finished run and the end of its checkpoint, in one transaction (the leader only).
static int store_run(bipo_job_ctx *j, const bipo_trainer *t, bipo_run_data *d,
                     const bipo_job_key *key, double elapsed) {
    if (!j->sink) return 0;
    const bipo_train_cfg *tc = &j->c->train;
    char save_list[256] = "";
    for (size_t i = 0, k = 0; i < tc->n_save_epochs && k < sizeof save_list - 12; i++)
        k += (size_t)snprintf(save_list + k, sizeof save_list - k, "%s%zu", i ? "," : "", tc->save_epochs[i]);
    // the config's settings, with the GEMM arithmetic the trainer actually used and score_eos
    // as resolved for this behavior's data (auto: false for letter answers)
    bipo_hparams hp = tc->hp;
    hp.forward_matmul = t->hp.forward_matmul;
    hp.backward_matmul = t->hp.backward_matmul;
    hp.score_eos = j->data->form.score_eos;
    bipo_attr *attrs = xmalloc((bipo_hp_n_fields + 16) * sizeof *attrs);
    size_t n = bipo_hparams_attrs(&hp, attrs);
    const bipo_attr run[] = {
        BIPO_ATTR_S("save_epochs", save_list),      BIPO_ATTR_S("template", j->template_name),
        BIPO_ATTR_S("system_prompt", j->system),    BIPO_ATTR_I("train_pairs", (int64_t)j->n_train),
        BIPO_ATTR_I("test_pairs", (int64_t)j->n_test),
        BIPO_ATTR_I("truncated_sequences", (int64_t)j->n_trunc),
        BIPO_ATTR_S("git_revision", BIPO_GIT_REVISION), BIPO_ATTR_S("hosts", j->hosts ? j->hosts : ""),
        BIPO_ATTR_I("n_ranks", j->n_ranks),          BIPO_ATTR_D("elapsed_s", elapsed),
        BIPO_ATTR_S("config_path", j->c->path),     BIPO_ATTR_S("config_text_hash", j->c->config_hash),
    };
    memcpy(attrs + n, run, sizeof run);
    n += sizeof run / sizeof run[0];
    const char *paths[2] = {j->data->train.path, j->data->test.path};
    bipo_behavior_info bi = {paths, j->bc->test_data ? 2 : 1, j->data->hash};
    bipo_model_info mi = {j->model->path, j->model->cfg.arch_name, j->model->fingerprint,
                          j->model->source_dtype, (int64_t)j->model->cfg.C, (int64_t)j->model->cfg.L};
    d->vector = t->v;
    int rc = j->sink->result(j->sink, key, &mi, &bi, d, attrs, n);
    d->vector = NULL; // owned by the trainer
    free(attrs);
    return rc;
}

int bipo_run_job(bipo_job_ctx *j, size_t layer, const char *hash, bipo_checkpoint *ck) {
    bipo_job_key key = {j->mc->id, j->bc->name, (int)layer, hash};
    double t0 = bipo_now();
    bipo_trainer t;
    if (build_trainer(j, layer, &t) != 0) return -1;
    bipo_run_data d = {.C = t.C};
    size_t cap_loss = 0, cap_ep = 0;
    int rc = -1;
    if (ck && resume(j, &t, ck, &d, &cap_loss, &cap_ep) != 0) goto out;
    if (train(j, &t, &d, &cap_loss, &cap_ep, &key) != 0) goto out;
    rc = store_run(j, &t, &d, &key, bipo_now() - t0);
    // the eval: block on the stored run (its results attach to that run); the leader only
    if (rc == 0 && j->sink && j->c->eval) rc = bipo_eval_job(j, layer, hash, t.v);
out:
    bipo_run_data_free(&d);
    bipo_trainer_free(&t);
    return rc;
}
