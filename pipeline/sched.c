// pipeline/sched.c — the run across MPI ranks.
//
// Rank 0 reads and checks everything that can be checked without training (config, data,
// model headers and tensor tables, tokenizers, templates, layers) and works out every job's
// hash; a bad input ends the run there, before any rank loads weights. Ranks then split into
// groups of ranks_per_job (MPI_Comm_split). Each group's leader asks rank 0 for a job (rank 0
// prefers one for the model the group already holds, skips complete ones, and sends the
// job's checkpoint if there is one) and broadcasts it to its group; the group trains it data
// parallel (MPI_Allreduce of loss and gradient) and the leader sends checkpoints and the
// finished run to rank 0, the only rank that opens the library. Rank 0 leads group 0 as well
// and serves the other leaders between its own steps. Fatal errors on any rank call
// MPI_Abort (the die hook), so no rank waits forever in a collective.
//
// In this file, top-down: rank 0's dispatcher and library writes (dispatch, serve, sinks),
// world setup (ranks_per_group, open_backend, world_split, check_inputs), load for a job
// (load_model, tokenize_behavior) and the group loop (next_job, group_loop), then
// bipo_train_all putting them together.
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bipo.h"      // defines: bipo_dp, bipo_example
#include "chat.h"      // defines: bipo_chat_template_by_name
#include "eval_job.h"  // defines: bipo_eval_write, blob_get_eval_write, bipo_eval_sink_remote, bipo_eval_entries
#include "config_eval.h" // defines: bipo_eval_cfg (compose / transfer entries)
#include "comm_nccl.h" // defines: bipo_nccl_init, bipo_nccl_allreduce (CUDA builds)
#include "job.h"       // defines: bipo_run_job, bipo_job_ctx, bipo_sink
#include "kernels.h"   // defines: bipo_backend_open, bipo_blas_config
#include "model.h"     // defines: bipo_model_load, bipo_lora_merge
#include "plan.h"      // defines: bipo_plan, bipo_plan_check, bipo_job_hash, bipo_load_behavior
#include "remote.h"    // defines: bipo_blob, msg_put_* / msg_get_*, msg_send, msg_recv
#include "sched.h"     // defines: bipo_train_all
#include "store.h"     // defines: bipo_store_*
#include "util.h"      // defines: CHECK, bipo_now, xmalloc

#ifndef BIPO_GIT_REVISION
#define BIPO_GIT_REVISION "unknown"
#endif

typedef struct {
    int rank, size;          // world
    int group, n_groups;     // this rank's group
    int grank, gsize;        // rank within the group
    MPI_Comm gcomm;
} world;

// ---- rank 0: the plan, the library and the dispatcher ----------------------------------------
typedef struct {
    const bipo_config_file *c;
    const bipo_run_opts *o;
    const char *out;
    const bipo_backend *be;
    bipo_store *store; // opened at the first dispatch
    bipo_job *jobs;
    size_t n_jobs, n_done, n_skipped;
    char (*hash)[65];
    int *state;        // 0 pending, 1 running, 2 finished or skipped
    int leaders_left;  // other groups' leaders not yet told "no more jobs"
    const char *hosts; // every rank's host, for provenance
    char start_time[32];
    double t0;
    int failed;
} plan_state;

static void plan_eta(plan_state *ps, char *buf, size_t n) {
    size_t finished = ps->n_done;
    double el = bipo_now() - ps->t0;
    size_t todo = ps->n_jobs - ps->n_done - ps->n_skipped;
    if (finished == 0) snprintf(buf, n, "?");
    else bipo_fmt_duration(buf, n, el / (double)finished * (double)todo);
}


// The distinct host names of the ranks of comm, comma-separated (collective; malloc'd).
static char *host_list(MPI_Comm comm) {
    enum { HN = 64 };
    int n;
    MPI_Comm_size(comm, &n);
    char me[HN] = "", *all = xcalloc((size_t)n, HN), *out = xcalloc((size_t)n, HN + 1);
    gethostname(me, HN - 1);
    MPI_Allgather(me, HN, MPI_CHAR, all, HN, MPI_CHAR, comm);
    for (int i = 0; i < n; i++) {
        const char *h = all + (size_t)i * HN;
        int seen = 0;
        for (int k = 0; k < i && !seen; k++) seen = !strncmp(h, all + (size_t)k * HN, HN);
        if (!seen) strcat(strcat(out, *out ? "," : ""), h);
    }
    free(all);
    return out;
}

static int ensure_store(plan_state *ps) {
    if (ps->store) return 0;
    ps->store = bipo_store_open(ps->out, BIPO_STORE_WRITE);
    if (!ps->store) return -1;
    int n_ranks = 0, len = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    MPI_Get_library_version(mpi_version, &len);
    char *nl = strchr(mpi_version, '\n');
    if (nl) *nl = 0;
    const char *hosts = ps->hosts;
    bipo_attr prov[] = {BIPO_ATTR_S("mpi_version", mpi_version),
                        BIPO_ATTR_S("blas_config", bipo_blas_config()),
                        BIPO_ATTR_S("start_time_utc", ps->start_time),
                        BIPO_ATTR_S("git_revision", BIPO_GIT_REVISION),
                        BIPO_ATTR_S("bipo_version", BIPO_VERSION),
                        BIPO_ATTR_S("compiler", __VERSION__),
                        BIPO_ATTR_S("blas_core", bipo_blas_corename()),
                        BIPO_ATTR_S("backend", ps->be->name), BIPO_ATTR_S("config_path", ps->c->path),
                        BIPO_ATTR_S("config_hash", ps->c->config_hash), BIPO_ATTR_S("hosts", hosts),
                        BIPO_ATTR_I("n_ranks", n_ranks)};
    return bipo_store_write_provenance(ps->store, ps->c->text, prov, sizeof prov / sizeof prov[0], NULL);
}

// Next job for a group that holds model `loaded` (-1 none): same model first, then plan order.
// Complete jobs are skipped here. Returns the job index or -1; *ck gets its checkpoint.
static long dispatch(plan_state *ps, int group, long loaded, bipo_checkpoint *ck, int *have_ck) {
    *have_ck = 0;
    if (ps->failed || ensure_store(ps) != 0) {
        if (!ps->failed) fprintf(stderr, "bipo-pipeline train: %s\n", bipo_last_error());
        ps->failed = 1;
        return -1;
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < ps->n_jobs; i++) {
            if (ps->state[i] != 0 || (pass == 0 && (long)ps->jobs[i].model != loaded)) continue;
            const bipo_job *jb = &ps->jobs[i];
            bipo_job_key key = {ps->c->models[jb->model].id, ps->c->behaviors[jb->behavior].name,
                                (int)jb->layer, ps->hash[i]};
            char run[BIPO_NAME_MAX];
            int found = bipo_store_find_run(ps->store, &key, run);
            if (found < 0 || (found == 0 && (*have_ck = bipo_store_read_checkpoint(ps->store, &key, ck)) < 0)) {
                fprintf(stderr, "bipo-pipeline train: %s\n", bipo_last_error());
                ps->failed = 1;
                return -1;
            }
            if (found == 1) {
                ps->state[i] = 2;
                ps->n_skipped++;
                printf("[job %zu/%zu] %s / %s / layer %zu: complete (run %s), skipped\n", i + 1,
                       ps->n_jobs, key.model_id, key.behavior, jb->layer, run);
                continue;
            }
            ps->state[i] = 1;
            char eta[32];
            plan_eta(ps, eta, sizeof eta);
            printf("[job %zu/%zu] %s / %s / layer %zu: start on group %d%s (plan ETA %s)\n", i + 1,
                   ps->n_jobs, key.model_id, key.behavior, jb->layer, group,
                   *have_ck ? ", resuming from its checkpoint" : "", eta);
            fflush(stdout);
            return (long)i;
        }
    return -1;
}

static long job_of_key(plan_state *ps, const bipo_job_key *k) {
    for (size_t i = 0; i < ps->n_jobs; i++)
        if (!strcmp(ps->hash[i], k->config_hash) && (int)ps->jobs[i].layer == k->layer &&
            !strcmp(ps->c->models[ps->jobs[i].model].id, k->model_id) &&
            !strcmp(ps->c->behaviors[ps->jobs[i].behavior].name, k->behavior))
            return (long)i;
    return -1;
}

static int write_result(plan_state *ps, const bipo_job_key *k, const bipo_model_info *mi,
                        const bipo_behavior_info *bi, const bipo_run_data *d, const bipo_attr *a,
                        size_t n) {
    char run[BIPO_NAME_MAX];
    if (bipo_store_begin(ps->store) != 0 ||
        bipo_store_write_run(ps->store, k, mi, bi, d, a, n, run) != 0 ||
        bipo_store_delete_checkpoint(ps->store, k) != 0 || bipo_store_commit(ps->store) != 0) {
        bipo_store_abort(ps->store);
        return -1;
    }
    long i = job_of_key(ps, k);
    if (i >= 0) ps->state[i] = 2;
    ps->n_done++;
    double norm = 0;
    for (size_t q = 0; q < d->C; q++) norm += (double)d->vector[q] * d->vector[q];
    char eta[32];
    plan_eta(ps, eta, sizeof eta);
    printf("[job %ld/%zu] %s / %s / layer %d: done, run %s, final loss %.4f, |v| %.4f "
           "(%zu done, %zu skipped, plan ETA %s)\n",
           i + 1, ps->n_jobs, k->model_id, k->behavior, k->layer, run,
           d->n_steps ? d->loss[d->n_steps - 1] : 0.0, sqrt(norm), ps->n_done, ps->n_skipped, eta);
    fflush(stdout);
    return 0;
}

// Handles every message waiting from other groups' leaders (or blocks for one if `wait`).
static void serve(plan_state *ps, int wait) {
    bipo_blob b = {0};
    while (wait ? ps->leaders_left > 0 : msg_pending(BIPO_TAG_TO_ROOT, MPI_COMM_WORLD)) {
        int src = msg_recv(&b, MPI_ANY_SOURCE, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD), rc = 0;
        uint64_t type = blob_get_u64(&b);
        if (type == MSG_REQUEST) {
            int group, have = 0;
            long loaded;
            msg_get_request(&b, &group, &loaded);
            bipo_checkpoint ck = {0};
            long job = dispatch(ps, group, loaded, &ck, &have);
            bipo_blob r = {0};
            msg_put_job(&r, job, have ? &ck : NULL);
            msg_send(&r, src, BIPO_TAG_REPLY, MPI_COMM_WORLD);
            blob_free(&r);
            if (have) bipo_checkpoint_free(&ck);
            if (job < 0) ps->leaders_left--;
        } else if (type == MSG_CHECKPOINT) {
            bipo_job_key k;
            bipo_checkpoint ck;
            msg_get_checkpoint(&b, &k, &ck);
            rc = bipo_store_write_checkpoint(ps->store, &k, &ck);
            bipo_checkpoint_free(&ck);
            free_key(&k);
        } else if (type == MSG_RESULT) {
            bipo_result_msg r;
            msg_get_result(&b, &r);
            rc = write_result(ps, &r.k, &r.mi, &r.bi, &r.d, r.a, r.n);
            msg_result_free(&r);
        } else if (type == MSG_EVAL) { // pipeline/eval_msg.c
            rc = blob_get_eval_write(&b, ps->store);
        } else {
            BIPO_FATAL("unknown message type %llu from rank %d", (unsigned long long)type, src);
        }
        CHECK(rc == 0, "writing the library for rank %d: %s", src, bipo_last_error());
        blob_free(&b);
    }
}

// ---- sinks: where a leader's writes go ----------------------------------------------------------
static int root_checkpoint(bipo_sink *s, const bipo_job_key *k, const bipo_checkpoint *c) {
    return bipo_store_write_checkpoint(((plan_state *)s->ctx)->store, k, c);
}
static int root_result(bipo_sink *s, const bipo_job_key *k, const bipo_model_info *mi,
                       const bipo_behavior_info *bi, const bipo_run_data *d, const bipo_attr *a,
                       size_t n) {
    return write_result(s->ctx, k, mi, bi, d, a, n);
}
static void root_poll(bipo_sink *s) { serve(s->ctx, 0); }
static int root_eval(bipo_sink *s, const bipo_eval_where *w, const bipo_eval_table *t, size_t n) {
    return bipo_eval_write(((plan_state *)s->ctx)->store, w, t, n);
}

static int remote_checkpoint(bipo_sink *s, const bipo_job_key *k, const bipo_checkpoint *c) {
    bipo_blob b = {0};
    msg_put_checkpoint(&b, k, c);
    msg_send(&b, 0, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
    blob_free(&b);
    return 0;
}
static int remote_result(bipo_sink *s, const bipo_job_key *k, const bipo_model_info *mi,
                         const bipo_behavior_info *bi, const bipo_run_data *d, const bipo_attr *a,
                         size_t n) {
    bipo_blob b = {0};
    msg_put_result(&b, k, mi, bi, d, a, n);
    msg_send(&b, 0, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
    blob_free(&b);
    return 0;
}

static void abort_hook(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static void group_allreduce(double *buf, size_t n, void *ctx) {
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, *(MPI_Comm *)ctx);
    CHECK(rc == MPI_SUCCESS, "MPI_Allreduce of the gradient failed (%d)", rc);
}


// ---- world setup: ranks, threads, backend, groups -----------------------------------------------
// Ranks per group: --ranks-per-job, else the config's, else all ranks for a single job and
// one rank per job otherwise (check_inputs checks that it divides the world).
static int ranks_per_group(const bipo_config_file *c, const bipo_run_opts *o, size_t n_jobs, const world *w) {
    int rpj = o->ranks_per_job ? o->ranks_per_job : (int)c->ranks_per_job;
    return rpj > 0 ? rpj : n_jobs == 1 ? w->size : 1; // one job: all ranks on it
}

// The backend with its threads: the user's, else the node's cores shared by the ranks on it.
static const bipo_backend *open_backend(const bipo_run_opts *o) {
    int threads = o->threads;
    if (threads <= 0 && !getenv("OMP_NUM_THREADS")) {
        MPI_Comm node;
        int local = 1;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)(cores / local > 0 ? cores / local : 1);
    }
    const bipo_backend *be = bipo_backend_open(o->backend, threads);
    CHECK(be, "%s", bipo_last_error());
    return be;
}

static void world_split(world *w, int rpj) {
    w->gsize = rpj;
    w->n_groups = w->size / rpj;
    w->group = w->rank / rpj;
    w->grank = w->rank % rpj;
    MPI_Comm_split(MPI_COMM_WORLD, w->group, w->grank, &w->gcomm);
}

// Rank 0 checks every input before any rank loads weights, then the group size (bd, mp
// filled on rank 0; mp is broadcast, every other rank loads bd itself). 0, or -1 on every
// rank after rank 0 printed why.
static int check_inputs(const bipo_config_file *c, const char *out, const world *w, int rpj,
                        bipo_behavior_data *bd, bipo_model_check *mp) {
    int ok = 1;
    if (w->rank == 0) {
        if (!out) {
            fprintf(stderr, "bipo-pipeline train: %s: no `output:` in the config and no --output given\n", c->path);
            ok = 0;
        } else if (bipo_plan_check(c, bd, mp) != 0) {
            fprintf(stderr, "bipo-pipeline train: %s\n", bipo_last_error());
            ok = 0;
        }
        if (ok && (rpj > w->size || w->size % rpj != 0)) {
            fprintf(stderr, "bipo-pipeline train: %d ranks cannot be split into groups of ranks_per_job = %d "
                            "(use a divisor of the rank count)\n", w->size, rpj);
            ok = 0;
        }
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(mp, (int)(c->n_models * sizeof *mp), MPI_BYTE, 0, MPI_COMM_WORLD);
    if (!ok) return -1;
    if (w->rank != 0)
        for (size_t b = 0; b < c->n_behaviors; b++)
            CHECK(bipo_load_behavior(c, &c->behaviors[b], &bd[b]) == 0, "%s", bipo_last_error());
    return 0;
}

// ---- load for a job: the group keeps one model and one behavior's tokenized pairs -------------
typedef struct {
    long loaded, tokenized; // model and behavior indices held (-1 none)
    bipo_model model;
    bipo_tokenizer *tok;
    const bipo_chat_template *tpl;
    bipo_job_ctx j; // train/test examples of `tokenized`
} group_state;

static void free_examples(bipo_example *ex, size_t n) {
    for (size_t i = 0; i < n; i++) bipo_example_free(&ex[i]);
    free(ex);
}

static void load_model(group_state *g, const bipo_config_file *c, const bipo_model_check *mp,
                       size_t m, const bipo_backend *be, const world *w, const char *prefix) {
    const bipo_model_cfg *mc = &c->models[m];
    if (g->loaded >= 0) bipo_model_free(&g->model), bipo_tokenizer_free(g->tok);
    CHECK(bipo_model_load(&g->model, mc->path, be) == 0, "%s", bipo_last_error());
    if (mc->lora) CHECK(bipo_lora_merge(&g->model, mc->lora) == 0, "%s", bipo_last_error());
    CHECK((g->tok = bipo_tokenizer_load(mc->path)), "%s", bipo_last_error());
    g->tpl = bipo_chat_template_by_name(mp[m].template_name);
    CHECK(g->tpl, "%s", bipo_last_error());
    g->loaded = (long)m;
    g->tokenized = -1;
    if (w->grank == 0)
        printf("%smodel %s: %s, %zu layers, hidden %zu, %s weights, template %s\n", prefix, mc->id,
               g->model.cfg.arch_name, g->model.cfg.L, g->model.cfg.C, g->model.source_dtype, g->tpl->name);
}

static void tokenize_behavior(group_state *g, const bipo_config_file *c, const bipo_behavior_data *bd,
                              size_t m, size_t b, const world *w, const char *prefix) {
    const char *sys = bipo_system_of(&c->models[m]);
    size_t max_length = c->train.hp.max_length, t1 = 0, t2 = 0;
    bipo_job_ctx *j = &g->j;
    free_examples(j->train, j->n_train);
    free_examples(j->test, j->n_test);
    memset(j, 0, sizeof *j);
    const bipo_behavior_data *d = &bd[b];
    CHECK(bipo_tokenize_pairs(&d->train, g->tok, g->tpl, sys, &d->form, max_length, &j->train, &t1) == 0 &&
              (!d->test.n || bipo_tokenize_pairs(&d->test, g->tok, g->tpl, sys, &d->form, max_length, &j->test, &t2) == 0),
          "%s", bipo_last_error());
    j->n_train = d->train.n;
    j->n_test = d->test.n;
    j->n_trunc = t1 + t2;
    g->tokenized = (long)b;
    if (j->n_trunc && w->grank == 0)
        printf("%swarning: %zu sequence%s of %s longer than max_length %zu: prompt truncated from the left\n",
               prefix, j->n_trunc, j->n_trunc == 1 ? "" : "s", c->behaviors[b].name, max_length);
}

static void group_free(group_state *g) {
    free_examples(g->j.train, g->j.n_train);
    free_examples(g->j.test, g->j.n_test);
    if (g->loaded >= 0) bipo_model_free(&g->model), bipo_tokenizer_free(g->tok);
}

// ---- the group loop: ask for a job, load for it, run it ---------------------------------------
typedef struct {
    const bipo_config_file *c;
    const bipo_run_opts *o;
    const world *w;
    plan_state *ps;
    const bipo_behavior_data *bd;
    const bipo_model_check *mp;
    const bipo_backend *be;
    bipo_sink *sink; // this rank's (NULL: not a leader)
    const bipo_dp *dp;
    const char *prefix, *group_hosts;
} group_run;

// The group's next job (-1: none left): its leader asks rank 0 (rank 0 asks itself) and
// broadcasts the answer with the job's checkpoint, if any, to the group.
static long next_job(const group_run *r, long loaded, bipo_checkpoint *ck, int *have) {
    bipo_blob jb = {0};
    if (r->w->rank == 0) {
        bipo_checkpoint own = {0};
        int h = 0;
        long job = dispatch(r->ps, 0, loaded, &own, &h);
        msg_put_job(&jb, job, h ? &own : NULL);
        if (h) bipo_checkpoint_free(&own);
    } else if (r->w->grank == 0) {
        bipo_blob req = {0};
        msg_put_request(&req, r->w->group, loaded);
        msg_send(&req, 0, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
        blob_free(&req);
        msg_recv(&jb, 0, BIPO_TAG_REPLY, MPI_COMM_WORLD);
    }
    if (r->w->gsize > 1) blob_bcast(&jb, r->w->gcomm);
    jb.at = 0;
    long job = msg_get_job(&jb, ck, have);
    blob_free(&jb);
    return job;
}

static void group_loop(const group_run *r) {
    const bipo_config_file *c = r->c;
    group_state g = {.loaded = -1, .tokenized = -1};
    for (;;) {
        bipo_checkpoint ck;
        int have;
        long job = next_job(r, g.loaded, &ck, &have);
        if (job < 0) break;
        if (r->o->fail_on_rank == r->w->rank) BIPO_FATAL("injected failure (--fail-on-rank %d)", r->w->rank);
        const bipo_job *J = &r->ps->jobs[job];
        if ((long)J->model != g.loaded) load_model(&g, c, r->mp, J->model, r->be, r->w, r->prefix);
        if ((long)J->behavior != g.tokenized) tokenize_behavior(&g, c, r->bd, J->model, J->behavior, r->w, r->prefix);
        bipo_job_ctx *j = &g.j;
        const bipo_model_cfg *mc = &c->models[J->model];
        j->c = c, j->o = r->o, j->sink = r->sink, j->dp = r->dp, j->n_ranks = r->w->gsize;
        j->prefix = r->prefix, j->model = &g.model, j->tok = g.tok, j->mc = mc, j->bc = &c->behaviors[J->behavior];
        j->data = &r->bd[J->behavior], j->template_name = g.tpl->name, j->system = bipo_system_of(mc);
        j->job_index = (size_t)job, j->n_jobs = r->ps->n_jobs, j->hosts = r->group_hosts;
        char hash[65];
        bipo_job_hash(c, g.model.fingerprint, g.tpl->name, j->system, j->bc->name, j->data, J->layer, hash);
        int rc = bipo_run_job(j, J->layer, hash, have ? &ck : NULL);
        if (have) bipo_checkpoint_free(&ck);
        CHECK(rc == 0, "%s / %s / layer %zu: %s", mc->id, j->bc->name, J->layer, bipo_last_error());
    }
    if (r->w->rank == 0) serve(r->ps, 1); // until every other leader has been told the plan is done
    group_free(&g);
}

// ---- the run ------------------------------------------------------------------------------------
static void print_plan(const bipo_config_file *c, const world *w, size_t n_jobs, const char *out) {
    printf("plan: %zu job%s (%zu model%s x %zu behavior%s x layers) on %d rank%s in %d group%s "
           "of %d -> %s\n", n_jobs, n_jobs == 1 ? "" : "s", c->n_models, c->n_models == 1 ? "" : "s",
           c->n_behaviors, c->n_behaviors == 1 ? "" : "s", w->size, w->size == 1 ? "" : "s",
           w->n_groups, w->n_groups == 1 ? "" : "s", w->gsize, out);
    fflush(stdout);
}

int bipo_train_all(const bipo_config_file *c, const bipo_run_opts *o) {
    world w;
    MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w.size);
    bipo_set_rank(w.size > 1 ? w.rank : -1);
    bipo_set_die_hook(abort_hook);
    const char *out = o->output ? o->output : c->output;
    bipo_behavior_data *bd = xcalloc(c->n_behaviors, sizeof *bd);
    bipo_model_check *mp = xcalloc(c->n_models, sizeof *mp);
    bipo_job *jobs;
    size_t n_jobs = bipo_plan(c, &jobs);
    int rpj = ranks_per_group(c, o, n_jobs, &w);
    if (check_inputs(c, out, &w, rpj, bd, mp) != 0) {
        for (size_t b = 0; b < c->n_behaviors; b++) bipo_free_behavior(&bd[b]);
        free(bd), free(mp), free(jobs);
        return 1;
    }
    const bipo_backend *be = open_backend(o);
    world_split(&w, rpj);
    plan_state ps = {c, o, out, be};
    ps.jobs = jobs;
    ps.n_jobs = n_jobs;
    ps.hash = xcalloc(n_jobs ? n_jobs : 1, sizeof *ps.hash);
    ps.state = xcalloc(n_jobs ? n_jobs : 1, sizeof *ps.state);
    ps.leaders_left = w.n_groups - 1;
    ps.t0 = bipo_now();
    char *world_hosts = host_list(MPI_COMM_WORLD), *group_hosts = host_list(w.gcomm);
    ps.hosts = world_hosts;
    time_t now = time(NULL);
    strftime(ps.start_time, sizeof ps.start_time, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (w.rank == 0) {
        for (size_t i = 0; i < n_jobs; i++) {
            const bipo_job *jb = &jobs[i];
            bipo_job_hash(c, mp[jb->model].fingerprint, mp[jb->model].template_name,
                          bipo_system_of(&c->models[jb->model]), c->behaviors[jb->behavior].name,
                          &bd[jb->behavior], jb->layer, ps.hash[i]);
        }
        print_plan(c, &w, n_jobs, out);
    }
    bipo_sink root = {root_checkpoint, root_result, root_poll, &ps, root_eval};
    bipo_sink remote = {remote_checkpoint, remote_result, NULL, NULL, bipo_eval_sink_remote};
    bipo_dp dp = {w.gsize, w.grank, group_allreduce, &w.gcomm};
#ifdef BIPO_HAVE_NCCL
    bipo_nccl *nccl = NULL;
    if (w.gsize > 1 && !strcmp(be->name, "cuda")) { // vectors live on the GPU: NCCL
        nccl = bipo_nccl_init(w.gcomm);
        dp.allreduce = bipo_nccl_allreduce;
        dp.ctx = nccl;
    }
#endif
    char prefix[32] = "";
    if (w.n_groups > 1) snprintf(prefix, sizeof prefix, "[group %d] ", w.group);
    group_run r = {c, o, &w, &ps, bd, mp, be, w.grank == 0 ? (w.rank == 0 ? &root : &remote) : NULL,
                   w.gsize > 1 ? &dp : NULL, prefix, group_hosts};
    group_loop(&r);
    int failed = ps.failed;
    MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (w.rank == 0) {
        if (ps.store) bipo_store_close(ps.store);
        if (!failed) {
            char el[32];
            bipo_fmt_duration(el, sizeof el, bipo_now() - ps.t0);
            printf("all %zu jobs complete in %s (%zu trained, %zu already complete): %s\n", n_jobs, el,
                   ps.n_done, ps.n_skipped, out);
            fflush(stdout);
            // the eval: block's compose / transfer entries read the vectors just stored
            // (pipeline/eval_all.c; it reloads the models those entries use)
            if (c->eval && (c->eval->n_compose || c->eval->n_transfer) && bipo_eval_entries(c, o) != 0) failed = 1;
        }
    }
#ifdef BIPO_HAVE_NCCL
    bipo_nccl_free(nccl);
#endif
    MPI_Comm_free(&w.gcomm);
    for (size_t b = 0; b < c->n_behaviors; b++) bipo_free_behavior(&bd[b]);
    free(bd), free(mp), free(jobs), free(ps.hash), free(ps.state), free(world_hosts), free(group_hosts);
    return failed ? 1 : 0;
}
