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
