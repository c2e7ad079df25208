#!/usr/bin/env bash
# bench/gpu-check.sh — the one GPU check: configure + build with CUDA for sm_90, the GPU tests
# (ctest -L gpu: every CUDA op vs CPU, a tiny model's forward + backward), then the BiPO-step
# benchmark on a Llama-2-7B-shaped random bf16 model. Writes a summary under $OUT (default
# build/gpu-check/). Needs no internet and no model files. Budget: <= 8 minutes on one H200.
#   bench/gpu-check.sh            (env: OUT, BUILD=build-gpu, JOBS=nproc)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-check}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"
S="$OUT/summary.txt"
: >"$S"
log() { echo "$*" | tee -a "$S"; }
t0=$(date +%s)
log "gpu-check $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown) $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$S" || true

# 1. build (tests + benchmarks), CUDA for sm_90 only (half the nvcc time of "80;90")
if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBIPO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    >"$OUT/configure.log" 2>&1; then
  log "FAIL configure (see $OUT/configure.log)"; tail -30 "$OUT/configure.log"; exit 1
fi
if ! cmake --build "$BUILD" -j"$JOBS" --target test_cuda_ops test_cuda_model test_cuda_table \
    test_cuda_bodies bench_gpu_step >"$OUT/build.log" 2>&1; then
  log "FAIL build (see $OUT/build.log)"; grep -E "error" "$OUT/build.log" | head -30; exit 1
fi
log "build: ok ($(( $(date +%s) - t0 )) s)"

# 2. the GPU tests (plus the two that run anywhere); a skip means no device: a failure here
rc=0
(cd "$BUILD" && BIPO_TEST_VERBOSE=1 timeout 300 ctest -L cuda --output-on-failure -V) >"$OUT/ctest.log" 2>&1 || rc=$?
grep -E "^[0-9]+: test_cuda_[a-z]+: |SKIP|tests passed|tests failed|NMSE" "$OUT/ctest.log" | sed 's/^[0-9]*: //' | tee -a "$S"
if grep -q "SKIP: no CUDA device" "$OUT/ctest.log"; then log "FAIL: the GPU tests found no CUDA device"; rc=1; fi
log "ctest -L cuda: rc $rc ($(( $(date +%s) - t0 )) s)"

# 3. the benchmark (bf16 weights, then f16 for comparison if time allows)
for wt in bf16; do
  BIPO_CUDA_WEIGHTS=$wt timeout 240 "$BUILD/bench/gpu_step" --steps 10 --warmup 3 >"$OUT/gpu_step_$wt.log" 2>&1
  brc=$?
  tee -a "$S" <"$OUT/gpu_step_$wt.log" >/dev/null
  cat "$OUT/gpu_step_$wt.log"
  log "gpu_step ($wt): rc $brc ($(( $(date +%s) - t0 )) s)"
  [ $brc -ne 0 ] && rc=1
done
log "gpu-check: $([ $rc -eq 0 ] && echo PASS || echo FAIL) in $(( $(date +%s) - t0 )) s; logs in $OUT"
exit $rc
