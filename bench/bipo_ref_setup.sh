#!/usr/bin/env bash
# bench/bipo_ref_setup.sh — the Python environment of the BiPO reference benchmark
# (bench/bipo_ref.py): PyTorch + HF transformers + gguf + numpy + accelerate (transformers
# needs it to load a GGUF) from PyPI, in a venv OUTSIDE the repository. For the benchmark
# only; nothing in the project imports it.
#
#   bench/bipo_ref_setup.sh            # creates/updates $BIPO_REF_VENV, prints its python
#
#   BIPO_CACHE      model/bench cache             (default ~/.cache/bipo-pipeline)
#   BIPO_REF_VENV   the venv                      (default $BIPO_CACHE/ref-venv)
#   BIPO_REF_PIP    requirement specs instead of the unpinned default list (then pip always
#                   runs), e.g. "torch==2.15.0 transformers==5.24.0 gguf numpy accelerate"
#   PYTHON          interpreter for the venv      (default python3)
#
# Idempotent: when the venv already imports all of them it does nothing but print the
# versions. PyPI's Linux x86_64 torch wheel is the CUDA build and
# pulls the nvidia-* runtime wheels (a few GB); PyPI has no CPU-only variant of it (the
# "+cpu" wheels live on PyTorch's own index, which this project's machines cannot reach).
# The benchmark runs it on CPU regardless. Size and install time: bench/README.md.
set -euo pipefail

CACHE="${BIPO_CACHE:-$HOME/.cache/bipo-pipeline}"
VENV="${BIPO_REF_VENV:-$CACHE/ref-venv}"
PY="${PYTHON:-python3}"
REQS=(torch transformers gguf numpy accelerate)
if [ -n "${BIPO_REF_PIP:-}" ]; then read -r -a REQS <<<"$BIPO_REF_PIP"; fi

check() {
    "$VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as md
import torch, transformers, gguf, numpy, accelerate
print(", ".join(f"{p} {md.version(p)}" for p in ("torch", "transformers", "gguf", "numpy", "accelerate")))
EOF
}

if [ -x "$VENV/bin/python" ] && check >/dev/null && [ -z "${BIPO_REF_PIP:-}" ]; then
    echo "bipo_ref_setup: $VENV is ready: $(check)"
    echo "$VENV/bin/python"
    exit 0
fi

mkdir -p "$CACHE"
t0=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${REQS[@]}"
t1=$(date +%s)
echo "bipo_ref_setup: installed ${REQS[*]} in $((t1 - t0)) s; venv size $(du -sh "$VENV" | cut -f1)"
echo "bipo_ref_setup: $(check)"
echo "$VENV/bin/python"
