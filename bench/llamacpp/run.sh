#!/usr/bin/env bash
# bench/llamacpp/run.sh — the llama.cpp reference numbers for bench/forward.
#
#  (a) dequantize the default model to an all-F32 GGUF (bench/llamacpp/dequantize_gguf.py) in
#      the model cache — our forward runs f32 math on weights dequantized once at load, so the
#      like-for-like llama.cpp number is llama.cpp on F32 weights;
#  (b) build llama.cpp's llama-bench (only that target) from a source tree OUTSIDE this repo;
#  (c) run `llama-bench -m F32.gguf -p 128,512 -n 0 -t $THREADS -o json` and save the JSON.
#
# Environment (all optional):
#   BIPO_CACHE     model cache (default ~/.cache/bipo-pipeline); the F32 GGUF goes there
#   LLAMA_CPP_SRC  a llama.cpp source tree. When unset, the script takes the copy vendored in
#                  the PyPI sdist of llama-cpp-python (pip download, no build, no install) and
#                  unpacks it under $WORK. A git snapshot of ggml-org/llama.cpp works the same.
#   LLAMA_CPP_PY_VERSION  that sdist's version (default 0.3.36)
#   WORK           build folder (default /tmp/bipo-llamacpp)
#   THREADS        threads for llama-bench (default 2)
#   OUT            result JSON (default $WORK/llama-bench-f32.json)
#   PY             python with the `gguf` package (default python3)
#   REPS           llama-bench repetitions per size (default 5, its own default)
# Nothing is written inside the repository. The build is ~5-10 min on 2 cores.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${BIPO_CACHE:-$HOME/.cache/bipo-pipeline}"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
F32="$CACHE/SmolLM2-135M-Instruct.F32.gguf"
WORK="${WORK:-/tmp/bipo-llamacpp}"
THREADS="${THREADS:-2}"
OUT="${OUT:-$WORK/llama-bench-f32.json}"
PY="${PY:-python3}"
REPS="${REPS:-5}"
VER="${LLAMA_CPP_PY_VERSION:-0.3.36}"
mkdir -p "$WORK"

[ -f "$MODEL" ] || { echo "run.sh: $MODEL missing: run scripts/fetch-model first" >&2; exit 1; }

# (a) F32 GGUF, (b) llama.cpp source + llama-bench (bench/llamacpp/source.sh)
. "$HERE/source.sh"
llama_f32_model "$MODEL" "$F32"
llama_build llama-bench || exit 1
BENCH="$WORK/build/bin/llama-bench"

# (c) the benchmark: prompt processing only (-n 0), REPS repetitions, JSON
echo "run.sh: llama-bench -m $F32 -p 128,512 -n 0 -t $THREADS -r $REPS" >&2
"$BENCH" -m "$F32" -p 128,512 -n 0 -t "$THREADS" -r "$REPS" -o json >"$OUT"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    print(f"llama.cpp {r.get('model_type','')} pp{r['n_prompt']}: {r['avg_ts']:.1f} ± {r['stddev_ts']:.1f} t/s"
          f"  (threads {r['n_threads']}, {r.get('cpu_info','')}, build {r.get('build_commit','?')})")
PYEOF
echo "$OUT"
