// pipeline/train.h — a training run: the plan (model × behavior × layer jobs) and one job's
// execution from data to a complete entry in the vector library.
#ifndef BIPO_TRAIN_H
#define BIPO_TRAIN_H
#include <stddef.h>

#include "config.h"  // defines: bipo_config_file
#include "dataset.h" // defines: bipo_pairs
#include "store.h"   // defines: bipo_job_key, bipo_checkpoint, bipo_attr

typedef struct {
    size_t model, behavior; // indices into the config's models / behaviors
    size_t layer;
} bipo_job;

// Expands the config into jobs, model-major (jobs for one model are adjacent so a rank group
// keeps its weights loaded). *jobs malloc'd.
size_t bipo_plan(const bipo_config_file *c, bipo_job **jobs);

// Options of a run that are not in the config.
typedef struct {
    const char *output;   // library path (overrides the config's output)
    const char *backend;  // "auto", "cpu", "cuda"
    int threads;          // 0 = all cores
    int quiet;            // no per-step lines
    long stop_after_steps; // testing: exit(3) after this many optimizer steps of a job (-1 off)
    int ranks_per_job;    // --ranks-per-job (0: the config's, else automatic)
    int fail_on_rank;     // testing: this rank dies with a fatal error at its first job (-1 off)
} bipo_run_opts;

// ---- the pieces pipeline/sched.c puts together (pipeline/train.c) ----------------------------
typedef struct {
    bipo_pairs train, test;
    char hash[65]; // train file + test file (or the split rule)
} bipo_behavior_data;

// Loads a behavior's train and test pairs (split by seed unless test_data is given).
int bipo_load_behavior(const bipo_config_file *c, const bipo_behavior_cfg *b, bipo_behavior_data *d);
void bipo_free_behavior(bipo_behavior_data *d);
// Pairs -> tokenized BiPO examples with the model's chat template.
int bipo_tokenize_pairs(const bipo_pairs *p, const bipo_tokenizer *tok,
                        const bipo_chat_template *tpl, const char *system, size_t max_length,
                        bipo_example **ex, size_t *n_trunc);
void bipo_job_hash(const bipo_config_file *c, const char *fingerprint, const char *template_name,
                   const char *system, const char *behavior, const char *data_hash, size_t layer,
                   char out[65]);
// ---- one job ----------------------------------------------------------------------------------
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

int bipo_run_job(bipo_job_ctx *j, size_t layer, const char *hash, bipo_checkpoint *ck);
void bipo_fmt_duration(char *b, size_t n, double seconds);

// Runs every job of the config on all MPI ranks (pipeline/sched.c); complete jobs are skipped, in-progress ones
// resume from their checkpoint. 0 ok; 1 on a failure (message printed).
int bipo_train_all(const bipo_config_file *c, const bipo_run_opts *o);

#endif
