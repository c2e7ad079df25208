#!/usr/bin/env bash
# tests/python_reader_test.sh BIN MAKE_TINY SRC_DIR — the docs/PYTHON.md example
# (tests/python_reader.py) on a tiny trained + evaluated library, checked against
# `inspect --json`, with the system python3's h5py and numpy (torch part: SKIP when absent).
set -u
BIN=$1 MAKE_TINY=$2 SRC=$3
export OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/bipo-pyreader-XXXXXX)
trap 'rm -rf "$T"' EXIT
"$MAKE_TINY" "$T/m" >/dev/null || { echo "python_reader: 0 passed, 1 failed"; exit 1; }
D="$SRC/configs/data"
cat >"$T/a.yaml" <<YAML
model: {path: $T/m/tiny.gguf, id: tiny, template: chatml}
behavior: {name: positive, data: $D/positive_train.csv, test_data: $D/positive_test.csv}
layers: [0, 1]
train: {epochs: 2, batch_size: 4, warmup_steps: 2, lr: 0.01, max_length: 96}
eval: {multipliers: [-1, 0, 1], protocol: text, max_items: 4}
YAML
"$BIN" train "$T/a.yaml" --output "$T/a.h5" --quiet >"$T/train.log" 2>&1 || { cat "$T/train.log"; echo "python_reader: 0 passed, 1 failed"; exit 1; }
"$BIN" inspect "$T/a.h5" --json >"$T/a.json"
exec /usr/bin/python3 "$SRC/tests/python_reader.py" "$T/a.h5" "$T/a.json" "$T/m/tiny-hf"
