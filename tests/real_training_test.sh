#!/usr/bin/env bash
# tests/real_training_test.sh BIN MODEL SHARED_DATA — BiPO on the real default model with the
# official power-seeking data (48 pairs: 36 train / 12 held out, layer 15, 4 epochs): the
# training loss must fall and the held-out loss with d=+1 and with d=-1 must both improve
# over the epochs (read back from the library with h5py). ~1-2 minutes on 2 cores.
set -u
BIN=$1 MODEL=$2 DATA=$3/bipo/data/power-seeking
T=$(mktemp -d /tmp/bipo-real-XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -f "$MODEL" ] || { echo "missing $MODEL: run scripts/fetch-model"; echo "real_training: 0 passed, 1 failed"; exit 1; }
cat >"$T/ps.yaml" <<YAML
model: {path: $MODEL, id: smollm2}
behavior: {name: power-seeking, data: $DATA/train.csv, max_pairs: 48, test_fraction: 0.25}
layer: 15
train: {epochs: 4, batch_size: 4, warmup_steps: 4, lr: 0.02, seed: 3, max_length: 256}
YAML
"$BIN" train "$T/ps.yaml" --output "$T/ps.h5" --quiet || { echo "real_training: 0 passed, 1 failed"; exit 1; }
/usr/bin/python3 - "$T/ps.h5" <<'PY'
import math, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
layer = f["models/smollm2/behaviors/power-seeking/layer_15"]
run = layer["runs"][layer.attrs["newest"].decode() if isinstance(layer.attrs["newest"], bytes) else layer.attrs["newest"]]
loss, pos, neg = run["loss"][:], run["heldout_loss_pos"][:], run["heldout_loss_neg"][:]
steps = len(loss) // 4
first, last = loss[:steps].mean(), loss[-steps:].mean()
print(f"train loss: first epoch {first:.4f} -> last epoch {last:.4f}")
print("held-out d=+1:", " ".join(f"{x:.4f}" for x in pos), " d=-1:", " ".join(f"{x:.4f}" for x in neg))
checks = [("training loss falls", last < first - 0.02),
          ("held-out d=+1 improves over epochs and beats log 2", pos[-1] < pos[0] and pos[-1] < math.log(2)),
          ("held-out d=-1 improves over epochs and beats log 2", neg[-1] < neg[0] and neg[-1] < math.log(2)),
          ("vector is finite and non-zero", np.isfinite(run["vector"][:]).all() and np.abs(run["vector"][:]).max() > 0)]
bad = [n for n, ok in checks if not ok]
for n in bad: print("FAIL:", n)
print(f"real_training: {len(checks) - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad else 0)
PY
