#!/usr/bin/env bash
# tests/fetch_data_test.sh BIN SOURCE_DIR SHARED_DATA MODEL — scripts/fetch-data from a local
# mirror into a temp folder: every manifest file arrives with its sha256, a second run copies
# nothing, a corrupted mirror file is refused and leaves no file, a damaged installed file is
# replaced; then `plan` runs on every shipped config with the data there (BIPO_DATA set, and
# unset with BIPO_CACHE pointing at the cache whose data/ holds it).
set -uo pipefail
BIN=$1 SRC=$2 SHARED=$3 MODEL=$4
. "$(dirname "$0")/testlib.sh"
T=$(mktemp -d /tmp/bipo-fetch-data-XXXXXX)
trap 'rm -rf "$T"' EXIT
FD="$SRC/scripts/fetch-data"
if [ ! -d "$SHARED/mmlu" ]; then echo "fetch_data: no data mirror at $SHARED (skipped)"; exit 77; fi
n_manifest=$(grep -cv -e '^#' -e '^path' "$SRC/data/MANIFEST.tsv")

# first run: everything copied, the last line is the data folder
out=$(BIPO_CACHE="$T/cache" BIPO_DATA_MIRROR="$SHARED" "$FD" 2>"$T/err1")
check "first run exits 0 ($(cat "$T/err1"))" test $? -eq 0
check "last line is the data folder (got '$(echo "$out" | tail -1)')" test "$(echo "$out" | tail -1)" = "$T/cache/data"
D="$T/cache/data"
n_files=$(find "$D" -type f | wc -l)
check "$n_files files in the data folder, manifest lists $n_manifest" test "$n_files" -eq "$n_manifest"
check "first run reports the copies" grep -q "$n_manifest files copied" "$T/err1"
(cd "$D" && grep -v -e '^#' -e '^path' "$SRC/data/MANIFEST.tsv" | awk -F'\t' '{print $2 "  " $1}' |
  sha256sum -c --quiet) >"$T/sums" 2>&1
check "every file matches its sha256 ($(head -3 "$T/sums"))" test $? -eq 0
check "MMLU file is byte-identical to the mirror" cmp -s "$D/mmlu/test/abstract_algebra_test.csv" "$SHARED/mmlu/test/abstract_algebra_test.csv"

# second run: nothing copied
BIPO_DATA="$D" BIPO_DATA_MIRROR="$SHARED" "$FD" >"$T/out2" 2>"$T/err2"
check "second run exits 0" test $? -eq 0
check "second run copies nothing ($(cat "$T/err2"))" grep -q "nothing copied" "$T/err2"

# a corrupted mirror file is refused and nothing is left behind
F=mmlu/dev/abstract_algebra_dev.csv
mkdir -p "$T/bad/$(dirname $F)"
{ cat "$SHARED/$F"; echo "x"; } >"$T/bad/$F"
BIPO_DATA="$T/d2" BIPO_DATA_MIRROR="$T/bad" "$FD" "$F" >/dev/null 2>"$T/err3"
check "corrupted mirror file: non-zero exit" test $? -ne 0
check "corrupted mirror file: sha256 error naming the file ($(cat "$T/err3"))" grep -q "$F: sha256 mismatch" "$T/err3"
check "corrupted mirror file: not installed" test ! -e "$T/d2/$F"
check "corrupted mirror file: no temp files left" test -z "$(ls -A "$T/d2")"
# a damaged installed file is replaced from the mirror
echo "damage" >>"$D/$F"
BIPO_DATA="$D" BIPO_DATA_MIRROR="$SHARED" "$FD" mmlu/ >/dev/null 2>"$T/err4"
check "damaged file: replaced ($(cat "$T/err4"))" grep -q "1 files copied, 9 already present" "$T/err4"
check "damaged file: identical again" cmp -s "$D/$F" "$SHARED/$F"
BIPO_DATA="$D" BIPO_DATA_MIRROR="$T/nope" "$FD" >/dev/null 2>"$T/err5"
check "missing mirror folder is an error" grep -q "is not a folder" "$T/err5"

# every shipped config plans with the data folder
if [ ! -f "$MODEL" ]; then
  echo "fetch_data: default model $MODEL missing (scripts/fetch-model): plan checks skipped"
  summary fetch_data
  exit $?
fi
for c in "$SRC"/configs/*.yaml; do
  BIPO_DATA="$D" "$BIN" plan "$c" >"$T/plan" 2>&1
  check "plan $(basename "$c") with BIPO_DATA: $(tail -2 "$T/plan")" test $? -eq 0
  (unset BIPO_DATA; BIPO_CACHE="$T/cache" "$BIN" plan "$c") >"$T/plan2" 2>&1
  check "plan $(basename "$c") with BIPO_DATA unset: $(tail -2 "$T/plan2")" test $? -eq 0
  check "same plan either way" cmp -s "$T/plan" "$T/plan2"
done
check "personas.yaml plans 42 jobs" grep -q '^| 42 |' <(BIPO_DATA="$D" "$BIN" plan "$SRC/configs/personas.yaml" 2>&1)
# without the data the error names the missing file
(unset BIPO_DATA; BIPO_CACHE="$T/empty" "$BIN" plan "$SRC/configs/personas.yaml") >"$T/plan3" 2>&1
check "no data: plan fails naming the path ($(tail -1 "$T/plan3"))" grep -q "$T/empty/data/anthropic-evals" "$T/plan3"
summary fetch_data
