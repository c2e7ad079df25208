// pipeline/sched.h — the run across MPI ranks: rank 0 checks the plan (plan.h), ranks split
// into groups, each group's leader asks rank 0 for jobs and the group runs them (job.h).
#ifndef BIPO_SCHED_H
#define BIPO_SCHED_H

#include "config.h" // defines: bipo_config_file
#include "plan.h"   // defines: bipo_run_opts

// Runs every job of the config on all MPI ranks; complete jobs are skipped, in-progress ones
// resume from their checkpoint. 0 ok; 1 on a failure (message printed).
int bipo_train_all(const bipo_config_file *c, const bipo_run_opts *o);

#endif
