#!/usr/bin/env bash
# bench/jobs_per_hour.sh [BIN] [MODEL] — pipeline throughput on this machine: the same plan
# (4 jobs: the project's pair set on SmolLM2 at layers 8, 10, 12, 14; 2 epochs each) run by
# 1 rank with all cores, and by 2 ranks in groups of 1 (2 jobs at once, 1 core each) and of 2
# (data parallel). Prints a table of wall time and jobs/hour.
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/bipo-pipeline}
MODEL=${2:-${BIPO_CACHE:-$HOME/.cache/bipo-pipeline}/SmolLM2-135M-Instruct.Q4_1.gguf}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
T=$(mktemp -d /tmp/bipo-jph-XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/plan.yaml" <<YAML
model: {path: $MODEL, id: smollm2}
behavior: {name: positive, data: $PWD/configs/data/positive_train.csv, test_data: $PWD/configs/data/positive_test.csv}
layers: [8, 10, 12, 14]
train: {epochs: 2, batch_size: 4, warmup_steps: 4, lr: 0.02, max_length: 256}
YAML
run() { # label, command...
  local label=$1; shift
  rm -f "$T/lib.h5"
  local t0=$(date +%s.%N)
  "$@" "$BIN" train "$T/plan.yaml" --output "$T/lib.h5" --quiet >"$T/log" 2>&1 || { cat "$T/log"; exit 1; }
  local t1=$(date +%s.%N)
  awk -v l="$label" -v a="$t0" -v b="$t1" 'BEGIN{s=b-a; printf "| %s | %.1f | %.1f |\n", l, s, 4*3600/s}'
}
echo "| ranks | wall s (4 jobs) | jobs/hour |"
echo "|---|---:|---:|"
run "1 rank, 2 threads" env OMP_NUM_THREADS=2
run "2 ranks, groups of 1 (2 jobs at once)" env OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none
run "2 ranks, one group of 2 (data parallel)" env OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none -x OMP_NUM_THREADS sh -c 'exec "$0" "$@" --ranks-per-job 2'
