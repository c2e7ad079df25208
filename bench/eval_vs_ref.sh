#!/usr/bin/env bash
# bench/eval_vs_ref.sh [ROUNDS] [N] — the A/B curve's speed against the way a PyTorch user computes
# it, in alternating rounds on the same machine state: bench/eval_ref.py (HF transformers fp32, a
# forward hook on layers[12], one forward per item and multiplier) and then build/bench/eval_ab
# (our scorer: lower layers once per item, the 7 multipliers as copies in one packed batch) on
# the same N items x 7 multipliers (default 100), positions all (BiPO's: every position
# steered, what the reference does) and, for scale, positions answer (CAA's: from the assistant
# turn on; the reference has no such variant). Prints one row per round and the median ratio.
# Needs the reference venv (bench/bipo_ref_setup.sh) and the default model (scripts/fetch-model).
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${2:-100}
THREADS=${BIPO_THREADS:-$(nproc)}
CACHE=${BIPO_CACHE:-$HOME/.cache/bipo-pipeline}
PY=${BIPO_REF_PY:-$CACHE/ref-venv/bin/python}
[ -x "$PY" ] || { echo "eval_vs_ref: no reference venv at $PY (run bench/bipo_ref_setup.sh)" >&2; exit 1; }
[ -x build/bench/eval_ab ] || { echo "eval_vs_ref: build/bench/eval_ab not built (scripts/build)" >&2; exit 1; }
T=$(mktemp -d /tmp/bipo-eval-vs-ref-XXXXXX)
trap 'rm -rf "$T"' EXIT
echo "| round | reference items/s | ours items/s (all) | ratio (all) | ours items/s (answer) | ratio (answer) |"
echo "|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
  "$PY" bench/eval_ref.py --n "$N" --reps 1 --threads "$THREADS" >"$T/ref$r.log" 2>&1 || { cat "$T/ref$r.log"; exit 1; }
  build/bench/eval_ab --n "$N" --reps 1 --threads "$THREADS" >"$T/all$r.log" 2>&1 || { cat "$T/all$r.log"; exit 1; }
  build/bench/eval_ab --n "$N" --reps 1 --threads "$THREADS" --positions answer >"$T/ans$r.log" 2>&1 ||
    { cat "$T/ans$r.log"; exit 1; }
  ref=$(awk '/^eval_ref: median/ {print $3}' "$T/ref$r.log")
  sall=$(awk '/^median/ {print $2}' "$T/all$r.log")
  sans=$(awk '/^median/ {print $2}' "$T/ans$r.log")
  # items/s from seconds (the bench prints items/s rounded to 0.1)
  awk -v r="$r" -v ref="$ref" -v sa="$sall" -v sn="$sans" -v n="$N" 'BEGIN {
    a = n / sa; b = n / sn; printf "| %d | %.3f | %.3f | %.1fx | %.3f | %.1fx |\n", r, ref, a, a / ref, b, b / ref }' |
    tee -a "$T/rows"
done
awk -F'|' '{gsub(/[ x]/, "", $5); print $5}' "$T/rows" | sort -g | awk '{v[NR]=$1} END {
  printf "\nmedian ratio (positions all) over %d rounds: %.1fx (min %.1fx, max %.1fx)\n", NR, v[int((NR+1)/2)], v[1], v[NR]}'
grep -h "^eval_ref: torch" "$T/ref1.log"
grep -h "^eval_ab:" "$T/all1.log" | head -1
