// pipeline/plan.h — the plan of a run: config -> jobs (model x behavior x layer), each job's
// data and hash, and rank 0's checks of every input before any weights are loaded. Read first:
// plan.h -> sched.h (the MPI run) -> job.h (one job).
#ifndef BIPO_PLAN_H
#define BIPO_PLAN_H
#include <stddef.h>

#include "config.h"  // defines: bipo_config_file
#include "dataset.h" // defines: bipo_pairs
#include "store.h"   // defines: bipo_attr

typedef struct {
    size_t model, behavior; // indices into the config's models / behaviors
    size_t layer;
} bipo_job;

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

// Expands the config into jobs, model-major (jobs for one model are adjacent so a rank group
// keeps its weights loaded). *jobs malloc'd.
size_t bipo_plan(const bipo_config_file *c, bipo_job **jobs);

typedef struct {
    bipo_pairs train, test;
    char hash[65]; // train file + test file (or the split rule)
    // how responses join prompts: train.response_space, and train.score_eos with auto resolved
    // (0 when every answer is a letter choice, else 1)
    bipo_response_form form;
} bipo_behavior_data;

// Loads a behavior's train and test pairs (split by seed unless test_data is given).
int bipo_load_behavior(const bipo_config_file *c, const bipo_behavior_cfg *b, bipo_behavior_data *d);
void bipo_free_behavior(bipo_behavior_data *d);
// Pairs -> tokenized BiPO examples with the model's chat template.
int bipo_tokenize_pairs(const bipo_pairs *p, const bipo_tokenizer *tok,
                        const bipo_chat_template *tpl, const char *system,
                        const bipo_response_form *form, size_t max_length, bipo_example **ex,
                        size_t *n_trunc);
// The system prompt of a model's jobs (its own, else the template default).
const char *bipo_system_of(const bipo_model_cfg *mc);

// What rank 0 learns of each model without loading its weights.
typedef struct {
    char fingerprint[65];   // of the weights (and the LoRA adapter)
    char template_name[32]; // the chat template in effect
} bipo_model_check;

// Rank 0's checks before anything is loaded: every behavior's data (into bd[n_behaviors]),
// every model's header, tensor table, tokenizer, template and layers (into mp[n_models]).
// 0, or -1 + bipo_set_error naming the first bad input.
int bipo_plan_check(const bipo_config_file *c, bipo_behavior_data *bd, bipo_model_check *mp);

// The settings that determine a job's result (see plan.c). out: 64 hex digits.
// d: the behavior's data (its hash and resolved response form).
void bipo_job_hash(const bipo_config_file *c, const char *fingerprint, const char *template_name,
                   const char *system, const char *behavior, const bipo_behavior_data *d,
                   size_t layer, char out[65]);
// The hyperparameters of a run as library attributes (the BIPO_HP_ATTR rows of the table in
// workers/hparams.c, in table order); out has room for bipo_hp_n_fields. Returns the count.
size_t bipo_hparams_attrs(const bipo_hparams *hp, bipo_attr *out);

// "42s", "3m05s", "2h10m" ("?" when unknown).
void bipo_fmt_duration(char *b, size_t n, double seconds);

#endif
