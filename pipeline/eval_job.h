// pipeline/eval_job.h — evaluation in the job: the config's `eval:` block run on a trained
// vector (after `train`'s job, or by `bipo-pipeline eval` on the library's vectors), results
// filed under the run as generic tables (pipeline/store_eval.h).
//
// Under MPI only rank 0 writes the library: a group leader evaluates the job it trained and
// hands the tables to its sink (train.h): rank 0 writes them, another leader sends them as an
// MSG_EVAL message (pipeline/eval_msg.c), which rank 0 writes between its own steps. Members
// of a group that are not its leader do not evaluate (the evaluation is not data parallel);
// they wait for the group's next job.
#ifndef BIPO_EVAL_JOB_H
#define BIPO_EVAL_JOB_H
#include <stddef.h>

#include "config.h"     // defines: bipo_config_file
#include "eval.h"       // defines: bipo_eval_ctx, bipo_eval_arm, bipo_ab_result
#include "remote.h"     // defines: bipo_blob
#include "store_eval.h" // defines: bipo_eval_table, bipo_eval_where
#include "train.h"      // defines: bipo_job_ctx, bipo_run_opts, bipo_behavior_data

// The hook of bipo_run_job: evaluates the finished job's vector v (host [C]) at `layer` and
// sends the tables to j->sink. 0, or -1 + bipo_set_error.
int bipo_eval_job(bipo_job_ctx *j, size_t layer, const char *hash, const float *v);

// `bipo-pipeline eval`: every complete run of the config's jobs (skipping those evaluated
// with the same settings hash), then the compose and transfer entries. Rank 0 alone; the
// other ranks of an mpirun return at once. 0 ok, 1 on a failure (message printed).
int bipo_eval_all(const bipo_config_file *c, const bipo_run_opts *o);
// The compose and transfer entries alone (what `train` runs on rank 0 after its last job, when
// the config has any). Same return as bipo_eval_all.
int bipo_eval_entries(const bipo_config_file *c, const bipo_run_opts *o);

// ---- the pieces (eval_job.c, eval_knowledge.c) -------------------------------------------------
// How a long evaluation reports and stays responsive: a progress line per chunk, and the sink's
// poll between chunks and arms (rank 0's sink serves the other leaders' messages meanwhile).
typedef struct {
    const char *label; // "<prefix>  eval <behavior> / layer L"
    int quiet;         // the last line of each set only
    bipo_sink *sink;   // its poll, when set, runs at every tick; NULL = none
} bipo_eval_progress;
// One tick: poll, then "<label>[ what]: done/n items x n_arms arms, x items/s, ETA t" (every arm
// on the same items at once), or with `pairs` (arms one after another) "done/n (item, arm)
// pairs of n_arms arms, x pairs/s, ETA t". t0: the set's start.
void bipo_eval_progress_tick(const bipo_eval_progress *pr, const char *what, size_t done, size_t n,
                             size_t n_arms, int pairs, double t0);
// A/B curves of arms on items, in chunks with a progress tick each, chunk results merged (means
// weighted by items; item_logodds concatenated). out[n_arms].
int bipo_eval_arms(const bipo_eval_ctx *ec, const bipo_eval_arm *arms, size_t n_arms,
                   const bipo_pairs *items, const bipo_ab_opts *o, const bipo_eval_progress *pr,
                   bipo_ab_result *out);
// Knowledge and truthfulness: the config's mmlu / truthfulqa / neutral_text sets (those set),
// every arm at each set's multipliers (default -1, 0, +1), as the child tables mmlu/<arm>
// {multipliers, accuracy, p_correct}, truthfulqa/<arm> {multipliers, mc1, mc2} and
// neutral/<arm> {multipliers, mean_logprob} of ev. 0, or -1 + bipo_set_error.
int bipo_eval_knowledge(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, const bipo_eval_arm *arms,
                        size_t na, const bipo_eval_progress *pr, bipo_eval_table *ev);
// Free text (eval_generate.c): the config's generate / jailbreak sets decoded with vector v at
// layer (generate at its multipliers, jailbreak at -M, 0, +M), as the child tables generate/ and
// jailbreak/ of ev (layout: docs/EVAL.md). A failing jailbreak judge is not a -1: the tables
// are kept (attr judge_error) and judge_err[cap] holds the message (else ""), so the caller
// stores the generations and then fails. 0, or -1 + bipo_set_error.
int bipo_eval_generations(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, size_t layer, const float *v,
                          const bipo_eval_progress *pr, bipo_eval_table *ev, char *judge_err, size_t cap);
// One arm's result as the table ab/<name> (multipliers, p_match, logodds, item_logodds;
// logodds_slope, anti_steerable, protocol, positions, n_items).
void bipo_eval_ab_table(bipo_eval_table *ab, const bipo_ab_result *r);

// ---- the eval-result message (pipeline/eval_msg.c): encoder and decoder side by side ----------
void blob_put_eval(bipo_blob *b, const bipo_eval_where *w, const bipo_eval_table *t, size_t n);
// Reads what blob_put_eval wrote and writes it to the store: 0, or -1 + bipo_set_error.
int blob_get_eval_write(bipo_blob *b, bipo_store *s);
// Decoder alone (tests): *key/*path filled (one is NULL), tables malloc'd; free with
// bipo_eval_msg_free.
void blob_get_eval(bipo_blob *b, bipo_job_key **key, char **path, bipo_eval_table **t, size_t *n);
void bipo_eval_msg_free(bipo_job_key *key, char *path, bipo_eval_table *t, size_t n);
// The sink of a leader on another rank: sends the tables to rank 0.
int bipo_eval_sink_remote(bipo_sink *s, const bipo_eval_where *w, const bipo_eval_table *t, size_t n);
// Rank 0's write of an evaluation, with its one-line report.
int bipo_eval_write(bipo_store *s, const bipo_eval_where *w, const bipo_eval_table *t, size_t n);

#endif
