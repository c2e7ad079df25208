#!/usr/bin/env bash
# tests/slurm_test.sh BIN MAKE_TINY SRC_DIR — the Slurm batch scripts on a REAL single-node Slurm:
# scripts/slurm-local installs slurm-wlm + munge when missing (apt-get; needs root), starts a
# private munged + slurmctld + slurmd in a temp folder, and the trap stops them at the end.
# On it, in CPU mode with 2 ranks, a tiny plan (tiny random model, 1 behavior x 2 layers,
# 2 epochs):
#   A. jobs/transfer.sbatch, LAUNCHER=mpirun: completes in one attempt, library complete
#   B. jobs/nightly.sbatch, LAUNCHER=srun (--mpi=pmix): the first attempt stops early (exit 3,
#      via --stop-after-steps), the script requeues the job, the second attempt resumes and
#      completes the plan: COMPLETED, Restarts=1, library complete
#   C. the same stop with MAX_REQUEUES=0: the job fails with the run's status, no requeue
#   D. a bad config (exit 2, FATAL_EXIT_CODES): fails at once, no requeue
# Prints "slurm_test: N passed, M failed"; exits non-zero on any failure.
set -u
BIN=$(realpath "$1") MAKE_TINY=$(realpath "$2") SRC=$(realpath "$3")
T=$(mktemp -d /tmp/bipo-slurm-XXXXXX)
chmod 0755 "$T"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
summary() { echo "slurm_test: $pass passed, $fail failed"; }
cleanup() {
  "$SRC/scripts/slurm-local" stop "$T/slurm" >/dev/null 2>&1
  [ -n "${SLURM_TEST_KEEP:-}" ] && echo "slurm_test: kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm_test: needs root (a private Slurm with SlurmUser=root); run as root" >&2
  bad "not root"; summary; exit 1
fi
t0=$(date +%s)
if ! out=$("$SRC/scripts/slurm-local" start "$T/slurm" 2>&1); then
  bad "slurm-local start: $out"
  for f in "$T"/slurm/log/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  summary; exit 1
fi
ok
export SLURM_CONF=$T/slurm/slurm.conf
echo "slurm_test: Slurm $(sinfo -V 2>/dev/null | awk '{print $2}') up in $(( $(date +%s) - t0 )) s:" \
     "$(sinfo -h -o '%P %D %t %c')"

# ---- the tiny plan --------------------------------------------------------------------------
"$MAKE_TINY" "$T/m" >/dev/null || { bad "make_tiny"; summary; exit 1; }
DATA="$SRC/configs/data"
cat >"$T/tiny.yaml" <<EOF
model: {path: $T/m/tiny.gguf, id: tiny, template: chatml}
behavior: {name: positive, data: $DATA/positive_train.csv, test_data: $DATA/positive_test.csv}
layers: [1, 2]
train:
  epochs: 2
  batch_size: 4
  warmup_steps: 2
  lr: 0.01
  max_length: 96
ranks_per_job: 1
EOF
# the first attempt of a job stops after 16 steps (past epoch 1's checkpoint at 13 steps of 50
# pairs / batch 4), exit 3; requeued attempts (SLURM_RESTART_COUNT >= 1) run to the end
cat >"$T/bipo-stop-first" <<EOF
#!/bin/bash
if [ "\${SLURM_RESTART_COUNT:-0}" -eq 0 ]; then exec "$BIN" "\$@" --stop-after-steps 16; fi
exec "$BIN" "\$@"
EOF
chmod +x "$T/bipo-stop-first"

# submit SCRIPT VAR=VALUE... : prints the job id. CPU mode: no GPUs (SBATCH_GPUS_PER_TASK=0
# clears the script's --gpus-per-task=1), 2 ranks of 1 cpu; output into $T.
submit() {
  local script=$1; shift
  (cd "$T" && env REPO="$SRC" BIPO_BACKEND=cpu SBATCH_GPUS_PER_TASK=0 OMP_NUM_THREADS=1 "$@" \
    sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=10 \
      --output="$T/%x-%j.out" "$SRC/$script")
}
field() { grep -o -E "(^| )$2=[^ ]*" <<<"$1" | head -1 | sed 's/^ *[^=]*=//'; }
# wait_job ID [SECONDS]: until the job has ended; sets JOB (scontrol's one-line record). A
# requeued job waits in PENDING with Reason=BeginTime (Slurm delays a requeued job ~2 min):
# once the node is idle again (the killed attempt's steps are gone: starting earlier lets the new
# step collide with the old one, "task launch failed"), start it now instead.
wait_job() {
  local id=$1 limit=${2:-60} t=0 s st
  while [ $t -lt $((limit * 2)) ]; do
    s=$(scontrol show job -o "$id" 2>/dev/null)
    st=$(field "$s" JobState)
    case "$st" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        JOB=$s; return 0 ;;
      PENDING)
        case "$(field "$s" Reason)" in # reasons that never clear by themselves: stop waiting
          PartitionConfig|ReqNodeNotAvail*|BadConstraints|PartitionNodeLimit|Resources_*) break ;;
        esac
        if [ "$(field "$s" Reason)" = BeginTime ] && [ "$(sinfo -h -o %t)" = idle ] &&
           [ -z "$(squeue -h -s -o %i)" ]; then
          sleep 1; scontrol update JobId="$id" StartTime=now >/dev/null 2>&1
        fi ;;
    esac
    sleep 0.5; t=$((t + 1))
  done
  JOB=$s
  scancel "$id" 2>/dev/null
  echo "slurm_test: job $id stuck: $s" >&2
  echo "slurm_test: $(sinfo -h -o '%P %D %t %c %E')" >&2
  return 1
}
complete_runs() { "$BIN" inspect "$1" 2>/dev/null | grep -c complete; }
show_log() { echo "--- $1" >&2; tail -30 "$1" >&2; }

# ---- A: transfer.sbatch, mpirun inside the allocation, one attempt --------------------------
if id=$(submit jobs/transfer.sbatch LAUNCHER=mpirun CONFIG="$T/tiny.yaml" LIBRARY="$T/a.h5" BIPO="$BIN"); then
  ok
  if wait_job "$id"; then ok; else bad "A: job $id did not end in time ($(field "$JOB" JobState))"; summary; exit 1; fi
  log="$T/bipo-transfer-$id.out"
  check "A: COMPLETED with exit 0:0 (got $(field "$JOB" JobState) $(field "$JOB" ExitCode))" \
    test "$(field "$JOB" JobState) $(field "$JOB" ExitCode)" = "COMPLETED 0:0"
  check "A: no requeue (Restarts=$(field "$JOB" Restarts))" test "$(field "$JOB" Restarts)" = 0
  check "A: log says plan complete" grep -q "plan complete" "$log"
  check "A: ran 2 ranks under mpirun" grep -q "on 2 ranks" "$log"
  check "A: inspect --check" "$BIN" inspect "$T/a.h5" --check
  check "A: 2 complete runs (got $(complete_runs "$T/a.h5"))" test "$(complete_runs "$T/a.h5")" -eq 2
  [ $fail -gt 0 ] && show_log "$log"
else
  bad "A: sbatch failed: $id"
fi

# ---- B: nightly.sbatch, srun, stopped first attempt -> requeue -> complete --------------------
f0=$fail
if id=$(submit jobs/nightly.sbatch CONFIG="$T/tiny.yaml" LIBRARY="$T/b.h5" BIPO="$T/bipo-stop-first" MAX_REQUEUES=2); then
  ok
  if wait_job "$id" 120; then ok; else bad "B: job $id did not end in time ($(field "$JOB" JobState))"; summary; exit 1; fi
  log="$T/bipo-nightly-$id.out"
  check "B: COMPLETED with exit 0:0 (got $(field "$JOB" JobState) $(field "$JOB" ExitCode))" \
    test "$(field "$JOB" JobState) $(field "$JOB" ExitCode)" = "COMPLETED 0:0"
  check "B: requeued once (Restarts=$(field "$JOB" Restarts))" test "$(field "$JOB" Restarts)" = 1
  check "B: first attempt stopped with status 3 (or 143, see C)" grep -q -E "run ended with status (3|143) " "$log"
  check "B: the script requeued the job" grep -q "requeueing job $id (requeue 1 of 2)" "$log"
  check "B: second attempt ran" grep -q "attempt 2 of 3" "$log"
  check "B: srun launched with --mpi=pmix or pmi2" grep -q -E "run: srun --mpi=(pmix|pmi2)" "$log"
  check "B: the rerun resumed from a checkpoint" grep -q "resumed from checkpoint" "$log"
  check "B: log says plan complete" grep -q "plan complete" "$log"
  check "B: inspect --check" "$BIN" inspect "$T/b.h5" --check
  check "B: 2 complete runs (got $(complete_runs "$T/b.h5"))" test "$(complete_runs "$T/b.h5")" -eq 2
  [ $fail -gt $f0 ] && show_log "$log"
else
  bad "B: sbatch failed: $id"
fi

# ---- C: MAX_REQUEUES=0: the stopped run's status, no requeue ------------------------------------
f0=$fail
if id=$(submit jobs/nightly.sbatch CONFIG="$T/tiny.yaml" LIBRARY="$T/c.h5" BIPO="$T/bipo-stop-first" MAX_REQUEUES=0); then
  if wait_job "$id"; then ok; else bad "C: job $id did not end in time"; fi
  log="$T/bipo-nightly-$id.out"
  # 3 from the stopped rank; 143 when srun's --kill-on-bad-exit ended the other rank first
  # (srun returns the highest status of its tasks)
  check "C: FAILED with exit 3:0 or 143:0 (got $(field "$JOB" JobState) $(field "$JOB" ExitCode))" \
    grep -q -x -E "FAILED (3|143):0" <<<"$(field "$JOB" JobState) $(field "$JOB" ExitCode)"
  check "C: not requeued" test "$(field "$JOB" Restarts)" = 0
  check "C: log says giving up" grep -q "plan incomplete after 0 requeues: giving up" "$log"
  [ $fail -gt $f0 ] && show_log "$log"
else
  bad "C: sbatch failed: $id"
fi

# ---- D: a config error is fatal: no requeue ------------------------------------------------------
f0=$fail
printf 'model: {path: %s/m/tiny.gguf}\nbehavior: {name: p, data: %s/positive_train.csv}\nlayer: 1\ntrian: {}\n' "$T" "$DATA" >"$T/bad.yaml"
if id=$(submit jobs/nightly.sbatch CONFIG="$T/bad.yaml" LIBRARY="$T/d.h5" BIPO="$BIN"); then
  if wait_job "$id"; then ok; else bad "D: job $id did not end in time"; fi
  log="$T/bipo-nightly-$id.out"
  check "D: FAILED with exit 2:0 (got $(field "$JOB" JobState) $(field "$JOB" ExitCode))" \
    test "$(field "$JOB" JobState) $(field "$JOB" ExitCode)" = "FAILED 2:0"
  check "D: not requeued" test "$(field "$JOB" Restarts)" = 0
  check "D: the config error is in the job's output" grep -q "bad.yaml:4:1" "$log"
  check "D: no library written" test ! -e "$T/d.h5"
  [ $fail -gt $f0 ] && show_log "$log"
else
  bad "D: sbatch failed: $id"
fi

echo "slurm_test: $(( $(date +%s) - t0 )) s in all"
summary
[ "$fail" -eq 0 ]
