#!/usr/bin/env bash
# bench/bipo_vs_ref.sh [ROUNDS] [-- bipo_step options] — the per-step speed ratio against the
# PyTorch reference, measured in alternating rounds: each round runs bench/bipo_ref.py (10
# replayed steps) and then build/bench/bipo_step on the same steps, so both sides of a round
# share the machine's state (this shared VM's speed drifts up to 2-3x over minutes). Prints one
# row per round (medians over steps 2-10 of each side) and the median ratio over the rounds.
# Needs the reference venv (bench/bipo_ref_setup.sh) and the default model (scripts/fetch-model).
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
CACHE=${BIPO_CACHE:-$HOME/.cache/bipo-pipeline}
PY=${BIPO_REF_PY:-$CACHE/ref-venv/bin/python}
STEP=${BIPO_STEP_BIN:-build/bench/bipo_step}
B=$CACHE/bench
mkdir -p "$B"
[ -x "$PY" ] || { echo "bipo_vs_ref: no reference venv at $PY (run bench/bipo_ref_setup.sh)" >&2; exit 1; }
[ -x "$STEP" ] || { echo "bipo_vs_ref: $STEP not built (scripts/build)" >&2; exit 1; }
ORDER=$B/order-seed0-10.json
T=$(mktemp -d /tmp/bipo-vs-ref-XXXXXX)
trap 'rm -rf "$T"' EXIT
echo "| round | reference ms/step | ours ms/step | ratio | max loss diff |"
echo "|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
  "$PY" bench/bipo_ref.py --steps 10 --seed 0 --order "$ORDER" --out "$T/ref$r.json" >"$T/ref$r.log" 2>&1 ||
    { cat "$T/ref$r.log"; exit 1; }
  "$STEP" --order "$ORDER" --ref "$T/ref$r.json" "$@" >"$T/ours$r.log" 2>&1 || { cat "$T/ours$r.log"; exit 1; }
  awk -F'|' -v r="$r" '/^\| median ms\/step/ {ours=$3; ref=$4; ratio=$5}
       /^\| max \|loss - ref loss\|/ {diff=$5}
       END {gsub(/ /, "", ours); gsub(/ /, "", ref); gsub(/ /, "", ratio); gsub(/ /, "", diff);
            printf "| %d | %s | %s | %s | %s |\n", r, ref, ours, ratio, diff}' "$T/ours$r.log" | tee -a "$T/rows"
done
awk -F'|' '{gsub(/[ x]/, "", $5); print $5}' "$T/rows" | sort -g | awk '{v[NR]=$1} END {
  printf "\nmedian ratio over %d rounds: %.1fx (min %.1fx, max %.1fx)\n", NR, v[int((NR+1)/2)], v[1], v[NR]}'
grep -h "step GEMMs" "$T/ours1.log" | sed 's/.*step GEMMs/ours: step GEMMs/'
