// workers/hparams.c — the table of training settings (see hparams.h) and what reads it here:
// defaults, typed access through the offsets, the job-hash text.
#include "hparams.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define OFF(m) offsetof(bipo_hparams, m)
// ROW(member, type, default, lo, hi, flags, hash key [, .yaml = ..., .elem = ..., .names = ...])
#define ROW(m, type, def, lo, hi, flags, hash, ...) \
    {#m, BIPO_HP_##type, OFF(m), def, lo, hi, flags, hash, __VA_ARGS__}
#define Y BIPO_HP_YAML
#define H BIPO_HP_HASH
#define A BIPO_HP_ATTR
#define GT BIPO_HP_LO_OPEN

static const char *const SCHED_NAMES[] = {"cosine", "linear", "constant", NULL};
static const int SCHED_VALUES[] = {BIPO_SCHED_COSINE, BIPO_SCHED_LINEAR, BIPO_SCHED_CONSTANT};
static const char *const MATMUL_NAMES[] = {"bf16x3", "fp32", NULL};
static const char *const SPACE_NAMES[] = {"auto", "always", "never", NULL};
static const int SPACE_VALUES[] = {BIPO_SPACE_AUTO, BIPO_SPACE_ALWAYS, BIPO_SPACE_NEVER};
static const char *const EOS_NAMES[] = {"auto", "true", "false", NULL};
static const int EOS_VALUES[] = {-1, 1, 0};
static const char *const PRESET_NAMES[] = {"none", "bipo-official", NULL};
static const int PRESET_VALUES[] = {BIPO_PRESET_NONE, BIPO_PRESET_BIPO_OFFICIAL};
static const int MATMUL_VALUES[] = {BIPO_MATMUL_BF16X3, BIPO_MATMUL_FP32};

// Order matters twice: the BIPO_HP_HASH rows give the job hash's bytes in this order, and
// the BIPO_HP_ATTR rows the attribute order of a run. Append new rows at the end.
const bipo_hp_field bipo_hp_fields[] = {
    ROW(beta, DOUBLE, 0.1, 0, INFINITY, Y | H | A | GT, "beta"),
    ROW(lr, DOUBLE, 5e-4, 0, INFINITY, Y | H | A | GT, "lr"),
    ROW(epochs, SIZE, 20, 1, 0, Y | H | A, "epochs"),
    ROW(schedule_epochs, SIZE, 0, 0, 0, Y | H | A, "sched_epochs"),
    ROW(batch_size, SIZE, 4, 1, 0, Y | H | A, "batch"),
    ROW(warmup_steps, SIZE, 100, 0, 0, Y | H | A, "warmup"),
    ROW(first_step_lr_zero, BOOL, 1, 0, 0, Y | H | A, "zero"),
    ROW(schedule, ENUM, BIPO_SCHED_COSINE, 0, 0, Y | H | A, "sched", .names = SCHED_NAMES, .values = SCHED_VALUES),
    ROW(forward_matmul, ENUM, BIPO_MATMUL_BF16X3, 0, 0, Y | A, NULL, .names = MATMUL_NAMES, .values = MATMUL_VALUES),
    ROW(backward_matmul, ENUM, BIPO_MATMUL_BF16X3, 0, 0, Y | A, NULL, .names = MATMUL_NAMES, .values = MATMUL_VALUES),
    ROW(weight_decay, DOUBLE, 0.05, 0, INFINITY, Y | H | A, "wd"),
    ROW(adam_beta1, DOUBLE, 0.9, 0, 1, Y | H | A, "b1", .yaml = "adam_betas", .elem = 1),
    ROW(adam_beta2, DOUBLE, 0.999, 0, 1, Y | H | A, "b2", .yaml = "adam_betas", .elem = 2),
    ROW(adam_eps, DOUBLE, 1e-8, 0, INFINITY, Y | H | A | GT, "eps"),
    ROW(grad_clip, DOUBLE, 1.0, 0, INFINITY, Y | H | A, "clip"),
    ROW(seed, U64, 42, 0, 0, Y | H | A, "seed"),
    ROW(max_length, SIZE, 512, 0, 0, Y | H | A, "max_length"),
    ROW(log_every, SIZE, 1, 1, 0, Y, NULL),
    ROW(checkpoint_every, SIZE, 0, 0, 0, Y, NULL),
    ROW(shared_prompt, BOOL, 1, 0, 0, Y, NULL),
    ROW(cache_bytes, SIZE, (double)((size_t)2 << 30), 0, 0, 0, NULL), // set from cache.memory_mb
    ROW(use_cache, BOOL, 1, 0, 0, 0, NULL),                              // tests only
    // The response form is hashed as resolved for each job (pipeline/plan.c: bipo_job_hash), so
    // that "auto" cannot silently reuse a run trained in another form; not hashed here.
    ROW(response_space, ENUM, BIPO_SPACE_AUTO, 0, 0, Y | A, NULL, .names = SPACE_NAMES, .values = SPACE_VALUES),
    ROW(score_eos, ENUM, -1, 0, 0, Y | A, NULL, .names = EOS_NAMES, .values = EOS_VALUES),
    // Read before every other train: key (pipeline/config.c); its effect is in the other rows.
    ROW(preset, ENUM, BIPO_PRESET_NONE, 0, 0, Y | A, NULL, .names = PRESET_NAMES, .values = PRESET_VALUES),
#ifdef BIPO_HPARAMS_TEST // tests/test_hparams.c: the one line a new setting needs (and its member)
    ROW(test_knob, DOUBLE, 0.25, 0, INFINITY, Y | BIPO_HP_HASH_IF_SET | A, "test_knob"),
#endif
};
const size_t bipo_hp_n_fields = sizeof bipo_hp_fields / sizeof bipo_hp_fields[0];

const bipo_hp_field *bipo_hp_find(const char *name) {
    for (size_t i = 0; i < bipo_hp_n_fields; i++)
        if (!strcmp(bipo_hp_fields[i].name, name)) return &bipo_hp_fields[i];
    return NULL;
}

const char *bipo_hp_key(const bipo_hp_field *f) { return f->yaml ? f->yaml : f->name; }

uint64_t bipo_hp_get_u64(const bipo_hparams *hp, const bipo_hp_field *f) {
    const char *p = (const char *)hp + f->off;
    switch (f->type) {
    case BIPO_HP_SIZE: return *(const size_t *)p;
    case BIPO_HP_U64: return *(const uint64_t *)p;
    case BIPO_HP_BOOL:
    case BIPO_HP_ENUM: return (uint64_t)(int64_t)*(const int *)p;
    default: return (uint64_t)*(const double *)p;
    }
}

void bipo_hp_set_u64(bipo_hparams *hp, const bipo_hp_field *f, uint64_t v) {
    char *p = (char *)hp + f->off;
    switch (f->type) {
    case BIPO_HP_SIZE: *(size_t *)p = (size_t)v; break;
    case BIPO_HP_U64: *(uint64_t *)p = v; break;
    case BIPO_HP_BOOL:
    case BIPO_HP_ENUM: *(int *)p = (int)(int64_t)v; break;
    default: *(double *)p = (double)v; break;
    }
}

double bipo_hp_get_double(const bipo_hparams *hp, const bipo_hp_field *f) {
    if (f->type != BIPO_HP_DOUBLE) return (double)bipo_hp_get_u64(hp, f);
    return *(const double *)((const char *)hp + f->off);
}

void bipo_hp_set_double(bipo_hparams *hp, const bipo_hp_field *f, double v) {
    if (f->type != BIPO_HP_DOUBLE) bipo_hp_set_u64(hp, f, (uint64_t)v);
    else *(double *)((char *)hp + f->off) = v;
}

int bipo_hp_is_default(const bipo_hparams *hp, const bipo_hp_field *f) {
    if (f->type == BIPO_HP_DOUBLE) return bipo_hp_get_double(hp, f) == f->def;
    return bipo_hp_get_u64(hp, f) == (uint64_t)(int64_t)f->def;
}

const char *bipo_hp_enum_name(const bipo_hparams *hp, const bipo_hp_field *f) {
    int v = (int)bipo_hp_get_u64(hp, f);
    for (size_t i = 0; f->names && f->names[i]; i++)
        if (f->values[i] == v) return f->names[i];
    return "?";
}

void bipo_hparams_defaults(bipo_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    for (size_t i = 0; i < bipo_hp_n_fields; i++)
        if (bipo_hp_fields[i].type == BIPO_HP_DOUBLE) bipo_hp_set_double(hp, &bipo_hp_fields[i], bipo_hp_fields[i].def);
        else bipo_hp_set_u64(hp, &bipo_hp_fields[i], (uint64_t)(int64_t)bipo_hp_fields[i].def);
}

// The official BiPO code's effective settings (github.com/CaoYuanpu/BiPO at cef1d00, train.py;
// docs/EVAL.md lists them with their lines): beta 0.1 (l. 68), lr 5e-4 (l. 75), cosine (l. 76)
// with 100 warmup steps (l. 77) over num_train_epochs = 100 (l. 92; `epochs` truncates it),
// batch 4 (l. 81), max_length 2048 (l. 91), weight decay 0: the script declares 0.05 (l. 78) but
// never passes it to DPOConfig (l. 197-216), whose default is 0; AdamW and clipping at the
// Trainer's defaults (betas 0.9/0.999, eps 1e-8, max_grad_norm 1.0); responses " " + answer
// (l. 135-136) with the end of turn scored (TRL's tokenize_row); the system prompt
// BIPO_DEFAULT_SYSTEM (l. 16, 129) is the pipeline's default already.
void bipo_hparams_preset(bipo_hparams *hp, int preset) {
    hp->preset = preset;
    if (preset != BIPO_PRESET_BIPO_OFFICIAL) return;
    hp->beta = 0.1, hp->lr = 5e-4, hp->schedule = BIPO_SCHED_COSINE, hp->warmup_steps = 100;
    hp->schedule_epochs = 100, hp->batch_size = 4, hp->max_length = 2048, hp->weight_decay = 0;
    hp->adam_beta1 = 0.9, hp->adam_beta2 = 0.999, hp->adam_eps = 1e-8, hp->grad_clip = 1.0;
    hp->first_step_lr_zero = 1;
    hp->response_space = BIPO_SPACE_ALWAYS, hp->score_eos = 1;
}

void bipo_hparams_hash_text(const bipo_hparams *hp, unsigned which, char *buf, size_t cap, int *k) {
    for (size_t i = 0; i < bipo_hp_n_fields; i++) {
        const bipo_hp_field *f = &bipo_hp_fields[i];
        if (!(f->flags & which) || !f->hash_key || *k >= (int)cap - 1) continue;
        if (which == BIPO_HP_HASH_IF_SET && bipo_hp_is_default(hp, f)) continue;
        char v[32];
        if (f->type == BIPO_HP_DOUBLE) snprintf(v, sizeof v, "%.17g", bipo_hp_get_double(hp, f));
        else if (f->type == BIPO_HP_BOOL || f->type == BIPO_HP_ENUM) snprintf(v, sizeof v, "%d", (int)bipo_hp_get_u64(hp, f));
        else snprintf(v, sizeof v, "%llu", (unsigned long long)bipo_hp_get_u64(hp, f));
        *k += snprintf(buf + *k, cap - (size_t)*k, which == BIPO_HP_HASH ? "%s=%s|" : "|%s=%s", f->hash_key, v);
    }
}
