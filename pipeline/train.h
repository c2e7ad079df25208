// pipeline/train.h — a training run: the plan (model × behavior × layer jobs) and one job's
// execution from data to a complete entry in the vector library.
#ifndef BIPO_TRAIN_H
#define BIPO_TRAIN_H
#include <stddef.h>

#include "config.h" // defines: bipo_config_file

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
} bipo_run_opts;

// Runs every job of the config in this process; complete jobs are skipped, in-progress ones
// resume from their checkpoint. 0 ok; 1 on a failure (message printed).
int bipo_train_all(const bipo_config_file *c, const bipo_run_opts *o);

#endif
