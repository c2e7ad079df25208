#!/usr/bin/env bash
# bench/llamacpp_control_vector.sh — does llama.cpp steer like we do with our exported vector?
#
#  1. a library vector for the default model: $LIB (default: configs/quickstart.yaml trained
#     into $WORK/quick.h5 when that file is missing: a few minutes on 2 cores);
#  2. `bipo-pipeline export --format gguf` (llama.cpp control vector, direction.L) and f32;
#  3. llama.cpp's llama-completion (built alone from $LLAMA_CPP_SRC or the llama-cpp-python
#     sdist: bench/llamacpp/source.sh) on the F32 copy of the model — our forward is f32 math
#     on the Q4_1 weights dequantized once, so both sides compute the same function;
#  4. for M in $MULTS: the first $N greedy tokens of ours
#       bipo-pipeline generate --vector v.f32 --layer L --multiplier M
#     and of llama.cpp's
#       llama-completion --control-vector-scaled v.gguf:M   (--temp 0: greedy)
#     on the same chat-formatted prompt, side by side; then llama.cpp with the vector relabelled
#     direction.(L-1) and direction.(L+1) at the largest M: only direction.L should match ours.
# Environment (all optional): BIPO (bipo-pipeline binary, default build/bipo-pipeline), LIB,
#   BIPO_CACHE, WORK (/tmp/bipo-llamacpp), LLAMA_CPP_SRC, LLAMA_CPP_PY_VERSION (0.3.36),
#   PY (python3 with gguf; default /usr/bin/python3), N (32), MULTS ("-4 0 4"), THREADS (2).
# A bench (prints a table), not a test. Nothing is written inside the repository.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BIPO="${BIPO:-$ROOT/build/bipo-pipeline}"
CACHE="${BIPO_CACHE:-$HOME/.cache/bipo-pipeline}"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
F32="$CACHE/SmolLM2-135M-Instruct.F32.gguf"
WORK="${WORK:-/tmp/bipo-llamacpp}"
LIB="${LIB:-$WORK/quick.h5}"
PY="${PY:-/usr/bin/python3}"
VER="${LLAMA_CPP_PY_VERSION:-0.3.36}"
N="${N:-32}"
MULTS="${MULTS:--4 0 4}"
THREADS="${THREADS:-2}"
PROMPT=$'<|im_start|>system\nYou are a helpful, honest and concise assistant.<|im_end|>\n<|im_start|>user\nHow was your weekend?<|im_end|>\n<|im_start|>assistant\n'
mkdir -p "$WORK"
[ -x "$BIPO" ] || { echo "llamacpp_control_vector.sh: $BIPO missing: scripts/build first" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "llamacpp_control_vector.sh: $MODEL missing: scripts/fetch-model" >&2; exit 1; }

. "$HERE/llamacpp/source.sh"
llama_f32_model "$MODEL" "$F32"
llama_build llama-completion || exit 1
LLAMA="$WORK/build/bin/llama-completion"

if [ ! -f "$LIB" ]; then
  echo "llamacpp_control_vector.sh: training configs/quickstart.yaml into $LIB" >&2
  "$BIPO" train "$ROOT/configs/quickstart.yaml" -o "$LIB" --quiet >&2
fi
L=$("$BIPO" export "$LIB" --model SmolLM2-135M-Instruct -o "$WORK/cv.f32" --print-layer)
"$BIPO" export "$LIB" --model SmolLM2-135M-Instruct --layer "$L" --format gguf -o "$WORK/cv.gguf" >&2
"$PY" "$HERE/llamacpp/cvec_relabel.py" "$WORK/cv.gguf" "$WORK/cv_below.gguf" $((L - 1))
"$PY" "$HERE/llamacpp/cvec_relabel.py" "$WORK/cv.gguf" "$WORK/cv_above.gguf" $((L + 1))

ours() { # M -> the greedy continuation
  OMP_NUM_THREADS=$THREADS "$BIPO" generate --model "$MODEL" --prompt "$PROMPT" --max-tokens "$N" \
    --vector "$WORK/cv.f32" --layer "$L" --multiplier "$1" --threads "$THREADS" 2>/dev/null
}
theirs() { # FILE M -> the greedy continuation
  "$LLAMA" -m "$F32" -p "$PROMPT" -n "$N" --temp 0 --seed 0 -no-cnv --no-display-prompt \
    --no-warmup -t "$THREADS" -c 512 --control-vector-scaled "$1:$2" 2>/dev/null </dev/null |
    sed 's/ \[end of text\]$//'
}
same() { # A B -> "same" or the length of their common prefix
  "$PY" -c 'import os,sys; a,b=sys.argv[1].strip(),sys.argv[2].strip(); print("identical" if a==b else f"differ after {len(os.path.commonprefix([a,b]))} of {max(len(a),len(b))} chars")' "$1" "$2"
}
show() { printf '%s' "$1" | tr '\n' ' ' | cut -c1-150; }

echo "# our layer $L (output of model.layers[$L]) = llama.cpp direction.$L; $N greedy tokens"
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; llama.cpp from llama-cpp-python $VER sdist"
top=""
for M in $MULTS; do
  a=$(ours "$M"); b=$(theirs "$WORK/cv.gguf" "$M"); top=$M
  echo "M=$M  ours     : $(show "$a")"
  echo "M=$M  llama.cpp: $(show "$b")"
  echo "M=$M  -> $(same "$a" "$b")"
done
a=$(ours "$top")
for f in below above; do
  b=$(theirs "$WORK/cv_$f.gguf" "$top")
  n=$([ $f = below ] && echo $((L - 1)) || echo $((L + 1)))
  echo "M=$top  llama.cpp direction.$n: $(show "$b")"
  echo "M=$top  -> vs ours at layer $L: $(same "$a" "$b")"
done
