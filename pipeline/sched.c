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
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bipo.h"    // defines: bipo_dp, bipo_example
#include "chat.h"      // defines: bipo_chat_for, bipo_chat_template_by_name
#include "eval_job.h"  // defines: bipo_eval_write, blob_get_eval_write, bipo_eval_sink_remote
#include "comm_nccl.h" // defines: bipo_nccl_init, bipo_nccl_allreduce (CUDA builds)
#include "kernels.h" // defines: bipo_backend_by_name
#include "model.h"   // defines: bipo_model_load, bipo_model_probe
#include "remote.h"  // defines: bipo_blob, msg_send, msg_recv
#include "store.h"   // defines: bipo_store_*
#include "train.h"   // defines: bipo_run_job, bipo_job_hash, bipo_load_behavior
#include "util.h"

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

char *openblas_get_config(void);

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
                        BIPO_ATTR_S("blas_config", openblas_get_config()),
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
        int src = msg_recv(&b, MPI_ANY_SOURCE, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
        uint64_t type = blob_get_u64(&b);
        if (type == MSG_REQUEST) {
            int group = (int)blob_get_u64(&b);
            long loaded = (long)blob_get_u64(&b) - 1;
            bipo_checkpoint ck = {0};
            int have = 0;
            long job = dispatch(ps, group, loaded, &ck, &have);
            bipo_blob r = {0};
            blob_put_u64(&r, (uint64_t)(job + 1));
            blob_put_u64(&r, (uint64_t)have);
            if (have) blob_put_checkpoint(&r, &ck);
            msg_send(&r, src, BIPO_TAG_REPLY, MPI_COMM_WORLD);
            blob_free(&r);
            if (have) bipo_checkpoint_free(&ck);
            if (job < 0) ps->leaders_left--;
        } else if (type == MSG_CHECKPOINT || type == MSG_RESULT) {
            bipo_job_key k;
            blob_get_key(&b, &k);
            int rc;
            if (type == MSG_CHECKPOINT) {
                bipo_checkpoint ck;
                blob_get_checkpoint(&b, &ck);
                rc = bipo_store_write_checkpoint(ps->store, &k, &ck);
                bipo_checkpoint_free(&ck);
            } else {
                bipo_model_info mi;
                char *s[4];
                for (int q = 0; q < 4; q++) s[q] = blob_get_str(&b);
                mi = (bipo_model_info){s[0], s[1], s[2], s[3], (int64_t)blob_get_u64(&b),
                                       (int64_t)blob_get_u64(&b)};
                size_t np = (size_t)blob_get_u64(&b);
                char **paths = xcalloc(np + 1, sizeof *paths);
                for (size_t q = 0; q < np; q++) paths[q] = blob_get_str(&b);
                char *dh = blob_get_str(&b);
                bipo_behavior_info bi = {(const char *const *)paths, np, dh};
                bipo_run_data d;
                blob_get_run_data(&b, &d);
                size_t na;
                bipo_attr *a = blob_get_attrs(&b, &na);
                rc = write_result(ps, &k, &mi, &bi, &d, a, na);
                free_attrs(a, na);
                bipo_run_data_free(&d);
                for (size_t q = 0; q < np; q++) free(paths[q]);
                free(paths), free(dh);
                for (int q = 0; q < 4; q++) free(s[q]);
            }
            free_key(&k);
            CHECK(rc == 0, "writing the library for rank %d: %s", src, bipo_last_error());
        } else if (type == MSG_EVAL) { // pipeline/eval_msg.c
            CHECK(blob_get_eval_write(&b, ps->store) == 0, "writing the evaluation of rank %d: %s", src,
                  bipo_last_error());
        } else {
            BIPO_FATAL("unknown message type %llu from rank %d", (unsigned long long)type, src);
        }
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
    blob_put_u64(&b, MSG_CHECKPOINT);
    blob_put_key(&b, k);
    blob_put_checkpoint(&b, c);
    msg_send(&b, 0, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
    blob_free(&b);
    return 0;
}
static int remote_result(bipo_sink *s, const bipo_job_key *k, const bipo_model_info *mi,
                         const bipo_behavior_info *bi, const bipo_run_data *d, const bipo_attr *a,
                         size_t n) {
    bipo_blob b = {0};
    blob_put_u64(&b, MSG_RESULT);
    blob_put_key(&b, k);
    const char *ms[4] = {mi->source, mi->architecture, mi->fingerprint, mi->dtype};
    for (int q = 0; q < 4; q++) blob_put_str(&b, ms[q]);
    blob_put_u64(&b, (uint64_t)mi->hidden);
    blob_put_u64(&b, (uint64_t)mi->layers);
    blob_put_u64(&b, bi->n_data_paths);
    for (size_t q = 0; q < bi->n_data_paths; q++) blob_put_str(&b, bi->data_paths[q]);
    blob_put_str(&b, bi->data_hash);
    blob_put_run_data(&b, d);
    blob_put_attrs(&b, a, n);
    msg_send(&b, 0, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
    blob_free(&b);
    return 0;
}

static void abort_hook(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static void group_allreduce(double *buf, size_t n, void *ctx) {
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, *(MPI_Comm *)ctx);
    CHECK(rc == MPI_SUCCESS, "MPI_Allreduce of the gradient failed (%d)", rc);
}

// ---- rank 0's checks before anything is loaded ------------------------------------------------
typedef struct {
    char fingerprint[65];
    char template_name[32];
} model_probe;

static int validate(const bipo_config_file *c, bipo_behavior_data *bd, model_probe *mp) {
    for (size_t b = 0; b < c->n_behaviors; b++)
        if (bipo_load_behavior(c, &c->behaviors[b], &bd[b]) != 0) return -1;
    for (size_t m = 0; m < c->n_models; m++) {
        bipo_model pm;
        if (bipo_model_probe(&pm, c->models[m].path) != 0) return -1;
        snprintf(mp[m].fingerprint, sizeof mp[m].fingerprint, "%s", pm.fingerprint);
        size_t L = pm.cfg.L;
        bipo_model_free(&pm);
        if (c->models[m].lora && bipo_lora_fingerprint(mp[m].fingerprint, c->models[m].lora, mp[m].fingerprint) != 0)
            return -1;
        if (bipo_config_check_layers(c, m, L) != 0) return -1;
        bipo_tokenizer *tok = bipo_tokenizer_load(c->models[m].path);
        if (!tok) return -1;
        const char *tn = c->models[m].template_name;
        const bipo_chat_template *tpl = !tn || !strcmp(tn, "auto") ? bipo_chat_for(tok)
                                                                   : bipo_chat_template_by_name(tn);
        bipo_tokenizer_free(tok);
        if (!tpl) return -1;
        snprintf(mp[m].template_name, sizeof mp[m].template_name, "%s", tpl->name);
    }
    return 0;
}

static const char *system_of(const bipo_model_cfg *mc) {
    return mc->system_prompt ? mc->system_prompt : BIPO_DEFAULT_SYSTEM;
}

// ---- the run ------------------------------------------------------------------------------------
static void free_examples(bipo_example *ex, size_t n) {
    for (size_t i = 0; i < n; i++) bipo_example_free(&ex[i]);
    free(ex);
}

int bipo_train_all(const bipo_config_file *c, const bipo_run_opts *o) {
    world w;
    MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w.size);
    bipo_set_rank(w.size > 1 ? w.rank : -1);
    bipo_set_die_hook(abort_hook);
    const char *out = o->output ? o->output : c->output;
    bipo_behavior_data *bd = xcalloc(c->n_behaviors, sizeof *bd);
    model_probe *mp = xcalloc(c->n_models, sizeof *mp);
    bipo_job *jobs;
    size_t n_jobs = bipo_plan(c, &jobs);
    // rank 0 checks every input before any rank loads weights
    int ok = 1;
    if (w.rank == 0) {
        if (!out) {
            fprintf(stderr, "bipo-pipeline train: %s: no `output:` in the config and no --output given\n", c->path);
            ok = 0;
        } else if (validate(c, bd, mp) != 0) {
            fprintf(stderr, "bipo-pipeline train: %s\n", bipo_last_error());
            ok = 0;
        }
    }
    int rpj = o->ranks_per_job ? o->ranks_per_job : (int)c->ranks_per_job;
    if (rpj <= 0) rpj = n_jobs == 1 ? w.size : 1; // one job: all ranks on it
    if (ok && w.rank == 0 && (rpj > w.size || w.size % rpj != 0)) {
        fprintf(stderr, "bipo-pipeline train: %d ranks cannot be split into groups of ranks_per_job = %d "
                        "(use a divisor of the rank count)\n", w.size, rpj);
        ok = 0;
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(mp, (int)(c->n_models * sizeof *mp), MPI_BYTE, 0, MPI_COMM_WORLD);
    if (!ok) {
        for (size_t b = 0; b < c->n_behaviors; b++) bipo_free_behavior(&bd[b]);
        free(bd), free(mp), free(jobs);
        return 1;
    }
    if (w.rank != 0)
        for (size_t b = 0; b < c->n_behaviors; b++)
            CHECK(bipo_load_behavior(c, &c->behaviors[b], &bd[b]) == 0, "%s", bipo_last_error());
    // threads: the user's, else the node's cores shared by the ranks on it
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
    if (threads > 0) bipo_backend_cpu_set_threads(threads);
    const bipo_backend *be = bipo_backend_by_name(o->backend);
    CHECK(be, "backend '%s' is not available", o->backend);
    w.gsize = rpj;
    w.n_groups = w.size / rpj;
    w.group = w.rank / rpj;
    w.grank = w.rank % rpj;
    MPI_Comm_split(MPI_COMM_WORLD, w.group, w.grank, &w.gcomm);
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
            const bipo_model_cfg *mc = &c->models[jb->model];
            bipo_job_hash(c, mp[jb->model].fingerprint, mp[jb->model].template_name, system_of(mc),
                          c->behaviors[jb->behavior].name, bd[jb->behavior].hash, jb->layer, ps.hash[i]);
        }
        printf("plan: %zu job%s (%zu model%s x %zu behavior%s x layers) on %d rank%s in %d group%s "
               "of %d -> %s\n", n_jobs, n_jobs == 1 ? "" : "s", c->n_models, c->n_models == 1 ? "" : "s",
               c->n_behaviors, c->n_behaviors == 1 ? "" : "s", w.size, w.size == 1 ? "" : "s",
               w.n_groups, w.n_groups == 1 ? "" : "s", rpj, out);
        fflush(stdout);
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
    long loaded = -1, tokenized = -1;
    bipo_model model = {0};
    bipo_tokenizer *tok = NULL;
    const bipo_chat_template *tpl = NULL;
    bipo_job_ctx j = {0};
    for (;;) {
        bipo_blob jb = {0};
        if (w.grank == 0) {
            if (w.rank == 0) {
                bipo_checkpoint ck = {0};
                int have = 0;
                long job = dispatch(&ps, 0, loaded, &ck, &have);
                blob_put_u64(&jb, (uint64_t)(job + 1));
                blob_put_u64(&jb, (uint64_t)have);
                if (have) blob_put_checkpoint(&jb, &ck), bipo_checkpoint_free(&ck);
            } else {
                bipo_blob req = {0};
                blob_put_u64(&req, MSG_REQUEST);
                blob_put_u64(&req, (uint64_t)w.group);
                blob_put_u64(&req, (uint64_t)(loaded + 1));
                msg_send(&req, 0, BIPO_TAG_TO_ROOT, MPI_COMM_WORLD);
                blob_free(&req);
                msg_recv(&jb, 0, BIPO_TAG_REPLY, MPI_COMM_WORLD);
            }
        }
        if (w.gsize > 1) blob_bcast(&jb, w.gcomm);
        jb.at = 0;
        long job = (long)blob_get_u64(&jb) - 1;
        int have = (int)blob_get_u64(&jb);
        bipo_checkpoint ck = {0};
        if (have) blob_get_checkpoint(&jb, &ck);
        blob_free(&jb);
        if (job < 0) break;
        if (o->fail_on_rank == w.rank) BIPO_FATAL("injected failure (--fail-on-rank %d)", w.rank);
        const bipo_job *J = &jobs[job];
        const bipo_model_cfg *mc = &c->models[J->model];
        if ((long)J->model != loaded) { // the group keeps one model's weights at a time
            if (loaded >= 0) bipo_model_free(&model), bipo_tokenizer_free(tok);
            CHECK(bipo_model_load(&model, mc->path, be) == 0, "%s", bipo_last_error());
            if (mc->lora) CHECK(bipo_lora_merge(&model, mc->lora) == 0, "%s", bipo_last_error());
            CHECK((tok = bipo_tokenizer_load(mc->path)), "%s", bipo_last_error());
            tpl = bipo_chat_template_by_name(mp[J->model].template_name);
            CHECK(tpl, "%s", bipo_last_error());
            loaded = (long)J->model;
            tokenized = -1;
            if (w.grank == 0)
                printf("%smodel %s: %s, %zu layers, hidden %zu, %s weights, template %s\n", prefix,
                       mc->id, model.cfg.arch_name, model.cfg.L, model.cfg.C, model.source_dtype, tpl->name);
        }
        if ((long)J->behavior != tokenized) {
            free_examples(j.train, j.n_train);
            free_examples(j.test, j.n_test);
            memset(&j, 0, sizeof j);
            size_t t1 = 0, t2 = 0;
            const bipo_behavior_data *d = &bd[J->behavior];
            CHECK(bipo_tokenize_pairs(&d->train, tok, tpl, system_of(mc), c->train.max_length, &j.train, &t1) == 0 &&
                      (!d->test.n || bipo_tokenize_pairs(&d->test, tok, tpl, system_of(mc), c->train.max_length, &j.test, &t2) == 0),
                  "%s", bipo_last_error());
            j.n_train = d->train.n;
            j.n_test = d->test.n;
            j.n_trunc = t1 + t2;
            tokenized = (long)J->behavior;
            if (j.n_trunc && w.grank == 0)
                printf("%swarning: %zu sequence%s of %s longer than max_length %zu: prompt truncated from the left\n",
                       prefix, j.n_trunc, j.n_trunc == 1 ? "" : "s", c->behaviors[J->behavior].name, c->train.max_length);
        }
        j.c = c;
        j.o = o;
        j.sink = w.grank == 0 ? (w.rank == 0 ? &root : &remote) : NULL;
        j.dp = w.gsize > 1 ? &dp : NULL;
        j.n_ranks = w.gsize;
        j.prefix = prefix;
        j.model = &model;
        j.tok = tok;
        j.mc = mc;
        j.bc = &c->behaviors[J->behavior];
        j.data = &bd[J->behavior];
        j.template_name = tpl->name;
        j.system = system_of(mc);
        j.job_index = (size_t)job;
        j.hosts = group_hosts;
        j.n_jobs = n_jobs;
        char hash[65];
        bipo_job_hash(c, model.fingerprint, tpl->name, system_of(mc), j.bc->name, j.data->hash, J->layer, hash);
        int rc = bipo_run_job(&j, J->layer, hash, have ? &ck : NULL);
        if (have) bipo_checkpoint_free(&ck);
        CHECK(rc == 0, "%s / %s / layer %zu: %s", mc->id, j.bc->name, J->layer, bipo_last_error());
    }
    if (w.rank == 0) serve(&ps, 1); // until every other leader has been told the plan is done
    free_examples(j.train, j.n_train);
    free_examples(j.test, j.n_test);
    if (loaded >= 0) bipo_model_free(&model), bipo_tokenizer_free(tok);
    int failed = ps.failed;
    MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (w.rank == 0) {
        if (ps.store) bipo_store_close(ps.store);
        if (!failed) {
            char el[32];
            bipo_fmt_duration(el, sizeof el, bipo_now() - ps.t0);
            printf("all %zu jobs complete in %s (%zu trained, %zu already complete): %s\n", n_jobs, el,
                   ps.n_done, ps.n_skipped, out);
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
