# shellcheck shell=bash
# jobs/train-loop.sh — the body shared by jobs/nightly.sbatch and jobs/transfer.sbatch (sourced,
# not run): launch `bipo-pipeline train` over the allocation's ranks, and requeue the job until
# the plan is complete. The caller sets JOB_KIND and the defaults it wants; every variable below
# may be overridden from the submitting environment (sbatch exports it by default).
#
#   CONFIG         plan config (relative paths: to REPO)
#   LIBRARY        HDF5 vector library to write / resume (must be on a filesystem all nodes share)
#   BIPO           the bipo-pipeline binary                  [REPO/build/bipo-pipeline]
#   MAX_REQUEUES   requeues before giving up                 [3]
#   LAUNCHER       srun | mpirun | none                      [srun]
#   SRUN_MPI       srun --mpi= type; auto = pmix if `srun --mpi=list` has it, else pmi2   [auto]
#   MPIRUN_ARGS    extra mpirun arguments (LAUNCHER=mpirun)  []
#   BIPO_BACKEND   auto | cuda | cpu (passed as --backend)   [auto]
#   RANKS_PER_JOB  ranks that train one vector together (--ranks-per-job; empty: the config's)
#   BIPO_EXTRA_ARGS  more arguments for `train` (word-split) []
#   FATAL_EXIT_CODES exit codes that mean "fix the input", never requeued [2 = config/usage error]
#   STOP_SIGNAL    what the launcher gets when the time-limit warning (USR1) arrives [TERM]
#   SRUN_KILL_ON_BAD_EXIT  srun --kill-on-bad-exit (one rank failing ends the others)    [1]
#   COMPLETE_PATTERN  the line (ERE) rank 0 prints when the plan is complete; exit 0 without it
#                  is not trusted (srun has returned 0 for a step that failed to launch)
#                  ['^all [0-9]+ jobs complete']
#   MODULES        `module load` these first (space-separated), when `module` exists   []
#
# Exit status: 0 = plan complete; otherwise the last run's status (after MAX_REQUEUES requeues,
# a fatal exit code, or a failed `scontrol requeue`). While requeues are left, a run that ends
# without completing the plan (non-zero exit, or USR1 before the time limit) requeues the job:
# Slurm ends this instance and starts the script again from the top later; the rerun skips the
# finished jobs of the plan and resumes the others from their last checkpoint.

log() { echo "[$(date '+%F %T')] ${JOB_KIND:-bipo}: $*"; }

REPO=${REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$REPO" || { log "cannot cd to REPO=$REPO"; exit 1; }
BIPO=${BIPO:-$REPO/build/bipo-pipeline}
MAX_REQUEUES=${MAX_REQUEUES:-3}
LAUNCHER=${LAUNCHER:-srun}
SRUN_MPI=${SRUN_MPI:-auto}
BIPO_BACKEND=${BIPO_BACKEND:-auto}
RANKS_PER_JOB=${RANKS_PER_JOB:-}
BIPO_EXTRA_ARGS=${BIPO_EXTRA_ARGS:-}
FATAL_EXIT_CODES=${FATAL_EXIT_CODES:-2}
STOP_SIGNAL=${STOP_SIGNAL:-TERM}
MODULES=${MODULES:-}
SRUN_KILL_ON_BAD_EXIT=${SRUN_KILL_ON_BAD_EXIT:-1}
COMPLETE_PATTERN=${COMPLETE_PATTERN:-'^all [0-9]+ jobs complete'}
ATTEMPT=${SLURM_RESTART_COUNT:-0}
NTASKS=${SLURM_NTASKS:-1}
CPUS=${SLURM_CPUS_PER_TASK:-1}
GPUS_PER_TASK=${SLURM_GPUS_PER_TASK:-0}

if [ -n "$MODULES" ]; then
  if type module >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    module load $MODULES || { log "module load $MODULES failed"; exit 1; }
  else
    log "MODULES=$MODULES set but there is no 'module' command; continuing without"
  fi
fi

[ -x "$BIPO" ] || { log "BIPO=$BIPO is not an executable (build it, or set BIPO)"; exit 1; }
[ -f "$CONFIG" ] || { log "CONFIG=$CONFIG not found"; exit 1; }
mkdir -p "$(dirname "$LIBRARY")" || { log "cannot create the folder of LIBRARY=$LIBRARY"; exit 1; }

# one OpenMP/BLAS team per rank, sized by the allocation
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPUS}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS}

args=(train "$CONFIG" --output "$LIBRARY")
[ "$BIPO_BACKEND" != auto ] && args+=(--backend "$BIPO_BACKEND")
[ -n "$RANKS_PER_JOB" ] && args+=(--ranks-per-job "$RANKS_PER_JOB")
# shellcheck disable=SC2206
[ -n "$BIPO_EXTRA_ARGS" ] && args+=($BIPO_EXTRA_ARGS)

case "$LAUNCHER" in
  srun)
    if [ "$SRUN_MPI" = auto ]; then
      if srun --mpi=list 2>&1 | grep -qw pmix; then SRUN_MPI=pmix; else SRUN_MPI=pmi2; fi
    fi
    # Slurm 22.05 srun does not inherit --cpus-per-task from the batch allocation: pass it
    launch=(srun --mpi="$SRUN_MPI" --kill-on-bad-exit="$SRUN_KILL_ON_BAD_EXIT" --ntasks="$NTASKS" --cpus-per-task="$CPUS")
    [ "$GPUS_PER_TASK" != 0 ] && launch+=(--gpus-per-task="$GPUS_PER_TASK")
    # A requeued job numbers its steps from 0 again, and a step killed by the requeue leaves its
    # PMIx socket (SlurmdSpoolDir/stepd.slurm.pmix.JOB.STEP) behind (Slurm 22.05): the same step
    # number then fails to launch ("Address already in use", srun "task launch failed" and,
    # worse, status 0). Skip the step numbers earlier attempts used with empty steps.
    if [ "$ATTEMPT" -gt 0 ]; then
      for _ in $(seq 1 "$ATTEMPT"); do srun --ntasks=1 --mpi=none true >/dev/null 2>&1; done
    fi
    ;;
  mpirun)
    if [ "$(id -u)" -eq 0 ]; then
      export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    # shellcheck disable=SC2206
    launch=(mpirun -np "$NTASKS" -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS ${MPIRUN_ARGS:-})
    ;;
  none) launch=() ;;
  *) log "LAUNCHER=$LAUNCHER: use srun, mpirun or none"; exit 1 ;;
esac

stop_requested=0
child=
on_usr1() {
  stop_requested=1
  log "time limit near (USR1): stopping the run with SIG$STOP_SIGNAL"
  [ -n "$child" ] && kill -s "$STOP_SIGNAL" "$child" 2>/dev/null
}
trap on_usr1 USR1

log "job ${SLURM_JOB_ID:-none} attempt $((ATTEMPT + 1)) of $((MAX_REQUEUES + 1)) on ${SLURM_JOB_NODELIST:-$(hostname)}:" \
    "$NTASKS ranks x $CPUS cpus, gpus/task=$GPUS_PER_TASK, backend=$BIPO_BACKEND"
log "run: ${launch[*]} $BIPO ${args[*]}"
start=$(date +%s)
# the run's output goes to the job's output and to a copy for the completion check
runlog=$(mktemp "${TMPDIR:-/tmp}/bipo-run-XXXXXX.log")
trap 'rm -f "$runlog"' EXIT
exec {logfd}> >(tee -a "$runlog")
teepid=$!
# in the background, so that the USR1 trap runs while the run is going on (bash runs traps
# only between commands); `wait` returns early on a trapped signal, so wait again.
"${launch[@]}" "$BIPO" "${args[@]}" >&"$logfd" 2>&1 &
child=$!
wait "$child"; rc=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
child=
exec {logfd}>&-
wait "$teepid" 2>/dev/null
log "run ended with status $rc after $(( $(date +%s) - start )) s"
if [ "$rc" -eq 0 ] && ! grep -q -E "$COMPLETE_PATTERN" "$runlog"; then
  log "status 0 but no completion line (/$COMPLETE_PATTERN/) from rank 0: the run did not" \
      "finish the plan (a failed launch?); counting it as incomplete"
  rc=1
fi

if [ "$rc" -eq 0 ] && [ "$stop_requested" -eq 0 ]; then
  log "plan complete: $LIBRARY"
  exit 0
fi
if [ "$rc" -eq 0 ]; then
  # stopped on the time-limit warning but finished anyway
  log "plan complete (the run finished before the stop took effect): $LIBRARY"
  exit 0
fi
if [ "$stop_requested" -eq 0 ] && [[ " $FATAL_EXIT_CODES " == *" $rc "* ]]; then
  log "status $rc is fatal (FATAL_EXIT_CODES=$FATAL_EXIT_CODES): not requeueing; fix the input"
  exit "$rc"
fi
if [ -z "${SLURM_JOB_ID:-}" ]; then
  log "not under Slurm: cannot requeue; rerun to resume"
  exit "$rc"
fi
if [ "$ATTEMPT" -ge "$MAX_REQUEUES" ]; then
  log "plan incomplete after $MAX_REQUEUES requeues: giving up (status $rc); resubmit to resume"
  exit "$rc"
fi
log "plan incomplete: requeueing job $SLURM_JOB_ID (requeue $((ATTEMPT + 1)) of $MAX_REQUEUES)"
# Slurm ends this instance (SIGTERM) and queues the job again; its output is appended to the
# same file (--open-mode=append) and SLURM_RESTART_COUNT counts the attempts.
if ! scontrol requeue "$SLURM_JOB_ID"; then
  log "scontrol requeue failed (is the job --requeue? JobRequeue=0 on this cluster?)"
  exit "$rc"
fi
sleep 60 # Slurm kills us within KillWait
exit "$rc"
