// pipeline/job.h — one job: the tokenized pairs of one behavior on one loaded model and layer,
// trained data parallel over a rank group, stored as one run of the vector library. Its
// steps read top-down in bipo_run_job: load data (checkpoint) -> build trainer -> train ->
// store. A post-training step (evaluation) goes between train and store.
#ifndef BIPO_JOB_H
#define BIPO_JOB_H
#include <stddef.h>

#include "bipo.h"  // defines: bipo_model, bipo_example, bipo_dp
#include "plan.h"  // defines: bipo_run_opts, bipo_behavior_data
#include "store.h" // defines: bipo_job_key, bipo_checkpoint, bipo_attr

// Where a job's writes go: rank 0 writes the library itself; a group leader on another rank
// sends them to rank 0 (pipeline/sched.c). Non-leaders write nothing.
struct bipo_eval_where;
struct bipo_eval_table;
typedef struct bipo_sink {
    int (*checkpoint)(struct bipo_sink *s, const bipo_job_key *k, const bipo_checkpoint *c);
    int (*result)(struct bipo_sink *s, const bipo_job_key *k, const bipo_model_info *mi,
                  const bipo_behavior_info *bi, const bipo_run_data *d, const bipo_attr *a,
                  size_t n);
    void (*poll)(struct bipo_sink *s); // called after every step (rank 0 serves messages)
    void *ctx;
    // evaluation tables of a run (pipeline/eval_job.h); NULL: the sink takes none
    int (*eval)(struct bipo_sink *s, const struct bipo_eval_where *w,
                const struct bipo_eval_table *t, size_t n);
} bipo_sink;

typedef struct {
    const bipo_config_file *c;
    const bipo_run_opts *o;
    bipo_sink *sink;     // NULL on group members that are not the leader
    const bipo_dp *dp;   // data parallelism of this rank group (NULL: one rank)
    int n_ranks;         // ranks working on this job
    const char *prefix;  // log prefix ("" or "[group 2] ")
    bipo_model *model;
    const bipo_tokenizer *tok; // the model's tokenizer (evaluation)
    const bipo_model_cfg *mc;
    const bipo_behavior_cfg *bc;
    const bipo_behavior_data *data;
    bipo_example *train, *test;
    size_t n_train, n_test, n_trunc;
    const char *template_name, *system;
    size_t job_index, n_jobs;
    const char *hosts;   // the group's hosts (provenance)
} bipo_job_ctx;

// Trains one job (this rank's share of it) from scratch or from checkpoint ck (may be NULL;
// consumed). The group leader (j->sink != NULL) logs and writes; the others only compute.
// 0, or -1 + bipo_set_error.
int bipo_run_job(bipo_job_ctx *j, size_t layer, const char *hash, bipo_checkpoint *ck);

#endif
