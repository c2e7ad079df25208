#!/usr/bin/env bash
# tests/mpi_test.sh BIN MAKE_TINY SRC_DIR MPIEXEC — the pipeline under mpirun on tiny models:
#  * -np 2 (one group of 2, data parallel) gives the 1-rank vector within 1e-5 relative
#  * -np 3 with ranks_per_job 1 runs 3 jobs concurrently; vectors bit-identical to 1 rank
#  * kill -9 of one rank mid-job: complete jobs untouched, the rerun resumes the interrupted
#    job and ends bit-identical to an uninterrupted run with the same rank count
#  * a nightly rerun that adds a behavior leaves the existing entries untouched
# Prints "mpi_test: N passed, M failed".
set -u
BIN=$1 MAKE_TINY=$2 SRC=$3 MPIEXEC=${4:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export OMP_NUM_THREADS=1
MPI="$MPIEXEC --oversubscribe --bind-to none"
T=$(mktemp -d /tmp/bipo-mpi-XXXXXX)
trap 'pkill -9 -f "$T/" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"
"$MAKE_TINY" "$T/m" >/dev/null || { echo "mpi_test: 0 passed, 1 failed"; exit 1; }
D="$SRC/configs/data"
ONE_BEHAVIOR="behavior: {name: positive, data: $D/positive_train.csv, test_data: $D/positive_test.csv}"
cfg() { # cfg FILE LAYERS EPOCHS [BEHAVIORS-yaml] [extra top-level line]
  local beh=${4:-$ONE_BEHAVIOR}
  cat >"$1" <<YAML
model: {path: $T/m/tiny.gguf, id: tiny, template: chatml}
$beh
layers: $2
train: {epochs: $3, batch_size: 4, warmup_steps: 2, lr: 0.01, max_length: 96}
${5:-}
YAML
}
vec() { "$BIN" export "$1" --output "$2" --layer "$3" ${4:+--behavior $4} >/dev/null 2>&1; }
relclose() { /usr/bin/python3 -c "
import numpy as np, sys
a = np.fromfile('$1', np.float32); b = np.fromfile('$2', np.float32)
d = float(np.linalg.norm(a - b) / np.linalg.norm(a)); print('   relative difference %.2e' % d)
sys.exit(0 if a.size == b.size and a.size > 0 and d <= 1e-5 else 1)"; }

# 1) one group of 2 ranks == 1 rank (within 1e-5)
cfg "$T/one.yaml" "[1]" 3
"$BIN" train "$T/one.yaml" --output "$T/r1.h5" --quiet >/dev/null 2>&1
$MPI -np 2 "$BIN" train "$T/one.yaml" --output "$T/r2.h5" --quiet >"$T/np2.log" 2>&1
check "np 2 run completes" grep -q "on 2 ranks in 1 group of 2" "$T/np2.log"
vec "$T/r1.h5" "$T/v1" 1; vec "$T/r2.h5" "$T/v2" 1
check "np 2 (data parallel) vector == 1-rank vector within 1e-5" relclose "$T/v1" "$T/v2"

# 2) 3 jobs on 3 ranks with ranks_per_job 1 == one by one on 1 rank (bit-identical)
cfg "$T/three.yaml" "[0, 1, 2]" 2 "" "ranks_per_job: 1"
"$BIN" train "$T/three.yaml" --output "$T/s1.h5" --quiet >/dev/null 2>&1
$MPI -np 3 "$BIN" train "$T/three.yaml" --output "$T/s3.h5" --quiet >"$T/np3.log" 2>&1
check "np 3: 3 groups" grep -q "on 3 ranks in 3 groups of 1" "$T/np3.log"
check "np 3: all jobs done" grep -q "all 3 jobs complete" "$T/np3.log"
check "np 3: jobs ran on 3 different groups" test "$(grep -o 'start on group [0-9]' "$T/np3.log" | sort -u | wc -l)" -eq 3
for L in 0 1 2; do
  vec "$T/s1.h5" "$T/a$L" $L; vec "$T/s3.h5" "$T/b$L" $L
  check "layer $L: concurrent vector bit-identical to sequential" cmp -s "$T/a$L" "$T/b$L"
done

# 3) kill -9 of one rank mid-job, rerun resumes, result bit-identical to an uninterrupted run.
# One group of 2 runs the two jobs one after the other: once the library holds job 1 and a
# checkpoint of job 2 (written after its first epoch of 40), a rank dies a random moment later.
cfg "$T/kill.yaml" "[0, 1]" 40 "" "ranks_per_job: 2"
$MPI -np 2 "$BIN" train "$T/kill.yaml" --output "$T/ref.h5" --quiet >/dev/null 2>&1
$MPI -np 2 "$BIN" train "$T/kill.yaml" --output "$T/k.h5" --quiet >"$T/kill.log" 2>&1 &
mp=$!
killed=0
for i in $(seq 1 600); do # wait for job 1 complete and a checkpoint of job 2
  if "$BIN" inspect "$T/k.h5" 2>/dev/null | grep -q "1 runs, 1 checkpoints"; then
    sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    pid=$(pgrep -f "bipo-pipeline train $T/kill.yaml" | grep -v "^$mp\$" | tail -n 1)
    [ -n "$pid" ] && kill -9 "$pid" && killed=1
    break
  fi
  sleep 0.05
done
wait $mp; rc=$?
check "a rank was killed mid-job (mpirun exit $rc)" test $killed -eq 1 -a $rc -ne 0
check "library readable after the kill" "$BIN" inspect "$T/k.h5" --check
done_layer=$("$BIN" inspect "$T/k.h5" | awk '$5=="complete"{print $3}' | head -n 1)
other=$((1 - ${done_layer:-0}))
vec "$T/k.h5" "$T/k0" "$done_layer"; vec "$T/ref.h5" "$T/r0" "$done_layer"
check "the job completed before the kill is intact" cmp -s "$T/k0" "$T/r0"
cp "$T/k.h5" "$T/k.before"
$MPI -np 2 "$BIN" train "$T/kill.yaml" --output "$T/k.h5" --quiet >"$T/resume.log" 2>&1
check "rerun skips the complete job" grep -q "complete (run .*), skipped" "$T/resume.log"
check "rerun resumes the interrupted job" grep -q "resuming from its checkpoint" "$T/resume.log"
vec "$T/k.h5" "$T/k1" "$other"; vec "$T/ref.h5" "$T/r1" "$other"
check "resumed vector bit-identical to the uninterrupted run" cmp -s "$T/k1" "$T/r1"
vec "$T/k.h5" "$T/k0b" "$done_layer"
check "complete job untouched by the rerun" cmp -s "$T/k0" "$T/k0b"

# 4) nightly rerun adds a behavior; existing entries untouched
cfg "$T/n1.yaml" "[1]" 2 "behaviors: [{name: positive, data: $D/positive_train.csv, test_data: $D/positive_test.csv}]"
cfg "$T/n2.yaml" "[1]" 2 "behaviors: [{name: positive, data: $D/positive_train.csv, test_data: $D/positive_test.csv}, {name: positive-split, data: $D/positive_train.csv}]"
$MPI -np 2 "$BIN" train "$T/n1.yaml" --output "$T/n.h5" --quiet >/dev/null 2>&1
vec "$T/n.h5" "$T/p0" 1 positive
run0=$("$BIN" inspect "$T/n.h5" | awk '$2=="positive"{print $4}')
$MPI -np 2 "$BIN" train "$T/n2.yaml" --output "$T/n.h5" --quiet >"$T/n2.log" 2>&1
check "nightly: new behavior trained" bash -c "'$BIN' inspect '$T/n.h5' | grep -q 'positive-split'"
check "nightly: existing job skipped" grep -q "complete (run $run0), skipped" "$T/n2.log"
vec "$T/n.h5" "$T/p1" 1 positive
check "nightly: existing vector untouched" cmp -s "$T/p0" "$T/p1"
check "nightly: existing run is still the only one for its layer" test "$("$BIN" inspect "$T/n.h5" | awk '$2=="positive"' | wc -l)" -eq 1

# 5) a fatal error on one rank ends the whole run (MPI_Abort), naming the rank, never a hang
err=$(timeout 120 $MPI -np 2 "$BIN" train "$T/one.yaml" --output "$T/f.h5" --quiet --fail-on-rank 1 2>&1 >/dev/null); rc=$?
check "failure on rank 1 ends the run (exit $rc, not a timeout)" test $rc -ne 0 -a $rc -ne 124
check "the message names the rank, file, line and cause" grep -qE "\[rank 1\] .*sched\.c:group_loop\(\):[0-9]+: injected failure" <<<"$err"

summary mpi_test
