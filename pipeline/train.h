// pipeline/train.h — the coordinator's headers in reading order: plan.h (jobs, data, checks,
// job hash) -> sched.h (the MPI run) -> job.h (one job from data to a library entry).
#ifndef BIPO_TRAIN_H
#define BIPO_TRAIN_H
#include "plan.h"  // defines: bipo_job, bipo_plan, bipo_load_behavior, bipo_job_hash, bipo_run_opts
#include "sched.h" // defines: bipo_train_all
#include "job.h"   // defines: bipo_run_job, bipo_job_ctx, bipo_sink
#endif
