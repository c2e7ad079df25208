// workers/bipo.h — BiPO training of one steering vector for one (model, behavior, layer).
//
// For a pair (prompt q, target rT, opposite rO) and a direction d in {-1,+1} drawn per step:
//   lp(r, v)  = sum over response tokens (+ appended EOS) of log p(r_t | q, r_<t ; h_L += v)
//   ref(r)    = lp(r, 0)                                     (cached once)
//   margin    = beta * d * [(lp(rT, d v) - ref(rT)) - (lp(rO, d v) - ref(rO))]
//   loss      = mean over the batch of softplus(-margin) = -log sigmoid(margin)
// Only v is trained (AdamW). h_L (layer L's output before v) of every sequence is cached, so a
// step runs only layers L+1..N-1 forward and back (activation-only backward), and the LM head
// only at scored rows. Workers know nothing of YAML or HDF5: the pipeline fills bipo_hparams
// and stores what bipo_trainer produces.
#ifndef BIPO_BIPO_H
#define BIPO_BIPO_H
#include <stddef.h>
#include <stdint.h>

#include "chat.h"    // defines: bipo_chat_template, bipo_tokenizer, bipo_response_form
#include "dataset.h" // defines: bipo_pairs
#include "model.h" // defines: bipo_model, bipo_acts, bipo_grads

typedef enum { BIPO_SCHED_COSINE = 0, BIPO_SCHED_LINEAR = 1, BIPO_SCHED_CONSTANT = 2 } bipo_schedule;
typedef enum { BIPO_PRESET_NONE = 0, BIPO_PRESET_BIPO_OFFICIAL = 1 } bipo_preset;

typedef struct {
    double beta;           // 0.1
    double lr;             // 5e-4
    size_t epochs;         // epochs actually run
    size_t schedule_epochs; // length of the LR schedule in epochs (0 = epochs)
    size_t batch_size;     // 4 pairs
    size_t warmup_steps;   // 100
    int first_step_lr_zero; // 1: step 0 uses lr * 0/warmup (HF get_*_schedule_with_warmup)
    bipo_schedule schedule;
    double weight_decay;   // 0.05 (decoupled, torch AdamW)
    double adam_beta1, adam_beta2, adam_eps; // 0.9, 0.999, 1e-8
    double grad_clip;      // 1.0 (global norm; 0 = off)
    uint64_t seed;         // data order and d
    size_t cache_bytes;    // budget for cached h_L (host memory); past it h_L is recomputed
    int use_cache;         // 0: recompute h_L every step (for tests: must give the same numbers)
    int shared_prompt;     // 1: the prompt shared by target and opposite runs once per step
    // GEMM arithmetic of the layers above L and the LM head: forward_matmul for every forward
    // there (the steps, the reference log-probs, held-out evaluation: so lp - ref is exactly 0
    // at v = 0 in either), backward_matmul for the activation-only backward. Default bf16x3
    // for both: ~1e-6 relative per GEMM, 1.3-1.7x faster GEMMs (bench/gemm). h_L (layers
    // 0..L) is always fp32. BIPO_MATMUL_BF16X3 falls back to fp32 where the hardware lacks it
    // (kernels.h); bipo_trainer_init stores what is in effect.
    bipo_matmul_precision forward_matmul, backward_matmul;
    // settings of the run around the trainer (read by the pipeline, not by bipo_trainer):
    size_t max_length;       // 512 tokens per sequence (prompt truncated from the left)
    size_t log_every;        // 1: a log line every N steps
    size_t checkpoint_every; // 0: checkpoint at each epoch's end only; N: also every N steps
    // How responses join their prompts (chat.h, bipo_response_form); read by the pipeline when
    // it tokenizes, not by the trainer. response_space: BIPO_SPACE_AUTO|ALWAYS|NEVER; score_eos:
    // 1, 0, or -1 = auto (0 for letter-answer data, where the EOS after the letter would carry
    // the loss and the letter itself barely move; 1 for text responses).
    int response_space;
    int score_eos;
    int preset;              // BIPO_PRESET_*: the defaults the train: block started from
#ifdef BIPO_HPARAMS_TEST
    double test_knob; // tests/test_hparams.c: a setting that only the table (workers/hparams.c) knows
#endif
} bipo_hparams;
// Every member's default, bounds, YAML key and place in the job hash is one row of the table
// in workers/hparams.c (hparams.h); this fills the defaults from it.
void bipo_hparams_defaults(bipo_hparams *hp);

// One tokenized pair. Sequences are prompt + response + EOS; rows p-1 .. n-2 are scored
// (they predict tokens p .. n-1).
typedef struct {
    int *tok[2];     // [0] target, [1] opposite
    size_t n[2];     // lengths
    size_t p[2];     // first response token index (prompt length) in each
    size_t truncated; // prompt tokens dropped from the left to fit max_length
} bipo_example;
void bipo_example_free(bipo_example *e);

// Tokenizes n pairs with the chat template (workers/bipo_data.c); form: how each response joins
// its prompt (chat.h; NULL = BIPO_RESPONSE_OFFICIAL). Sequences longer than max_length (0 = no
// limit) lose prompt tokens from the left (after BOS); *n_truncated counts the sequences that
// were cut. 0, or -1 + bipo_set_error.
int bipo_examples_build(const bipo_tokenizer *tok, const bipo_chat_template *tpl, const char *system,
                        const bipo_response_form *form,
                        const char *const *question, const char *const *matching,
                        const char *const *not_matching, size_t n, size_t max_length,
                        bipo_example **out, size_t *n_truncated);
// The same for the pairs of a data set (training, held-out items, evaluation).
int bipo_examples_from_pairs(const bipo_tokenizer *tok, const bipo_chat_template *tpl,
                             const char *system, const bipo_response_form *form,
                             const bipo_pairs *p, size_t max_length, bipo_example **out,
                             size_t *n_truncated);

// Data parallelism inside a rank group: pair i belongs to rank i % size (its caches live
// there); every rank draws the same data order and d, computes the pairs of each batch it
// owns, and allreduce (a sum over the group, in place) combines loss and gradient. The
// pipeline supplies allreduce (MPI or NCCL); workers know nothing of either.
typedef struct {
    int size, rank;
    void (*allreduce)(double *buf, size_t n, void *ctx);
    void *ctx;
} bipo_dp;

typedef struct {
    bipo_model *m;
    bipo_dp dp;
    size_t layer;       // v is added to the output of model.layers[layer] (h_L below: L = layer)
    bipo_hparams hp;
    bipo_example *train, *test;
    size_t n_train, n_test;
    size_t C;
    // caches (host): h[i][k] = hidden_states[L+1] of example i sequence k, [n, C], or NULL
    float ***h_train, ***h_test;
    double (*ref_train)[2], (*ref_test)[2];
    size_t cache_used;  // bytes
    size_t cache_misses; // sequences whose h_L did not fit the budget
    // optimizer state (host, [C]) — a checkpoint is exactly these plus the counters below
    float *v, *adam_m, *adam_v;
    uint64_t step;      // optimizer steps taken
    uint64_t rng;       // state of the d / shuffle generator
    size_t epoch;       // epochs completed
    size_t *order;      // [n_train] this epoch's data order
    size_t pos;         // next index into order
    size_t steps_per_epoch, total_steps;
    // per-step telemetry
    double last_loss, last_lr, last_grad_norm;
    int last_d;
    size_t last_tokens; // tokens processed by the last step (forward rows above L)
    size_t last_rows;   // scored rows (LM head) of the last step
    double last_ctx;    // average keys per row in its attention
    // backend work buffers
    bipo_acts acts;
    bipo_grads grads;
    float *vb, *dvb, *hbuf, *lp, *lse, *dlogits;
    size_t hbuf_cap, row_cap;
} bipo_trainer;

// Builds the caches (one full forward per sequence: ref log-probs and h_L). 0 or -1 + error.
// dp NULL = a single rank.
int bipo_trainer_init(bipo_trainer *t, bipo_model *m, size_t layer, const bipo_hparams *hp,
                      bipo_example *train, size_t n_train, bipo_example *test, size_t n_test,
                      const bipo_dp *dp);
void bipo_trainer_free(bipo_trainer *t);
// Starts epoch t->epoch: draws the data order. Called by bipo_trainer_step when needed.
void bipo_trainer_begin_epoch(bipo_trainer *t);
// One optimizer step on the next batch; returns the batch loss. Sets last_* telemetry.
double bipo_trainer_step(bipo_trainer *t);
// One optimizer step on the given pairs and direction (the data order and d chosen by the
// caller: benchmarks replaying another implementation's batches). Does not move t->pos.
double bipo_trainer_step_with(bipo_trainer *t, const size_t *idx, size_t B, int d);
// Returns 1 when the step just taken finished an epoch.
int bipo_trainer_epoch_done(const bipo_trainer *t);
// Mean loss over a set with a fixed direction d (held-out evaluation; v unchanged).
double bipo_trainer_eval(bipo_trainer *t, int test_set, int d);
// The loss and dloss/dv of a given batch at a given v and d (for gradient tests).
double bipo_loss_grad(bipo_trainer *t, const size_t *idx, size_t B, int d, const float *v,
                      float *grad);
// FLOPs of the last step on this rank (forward + activation-only backward of layers L+1..N-1
// and of the LM head at the scored rows).
double bipo_trainer_step_flops(const bipo_trainer *t);

#endif
