#!/usr/bin/env bash
# tests/cli_test.sh BIN MAKE_TINY SRC_DIR — the bipo-pipeline command line end to end on tiny
# random models: train (complete, skip on rerun, determinism, resume after a stop),
# export, inspect, generate, logprobs, and bad input (config, data, flags) with one clear
# message, a non-zero exit and nothing written. Prints "cli_test: N passed, M failed".
set -u
BIN=$1 MAKE_TINY=$2 SRC=$3
T=$(mktemp -d /tmp/bipo-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"

"$MAKE_TINY" "$T/m" || { echo "cli_test: 0 passed, 1 failed"; exit 1; }
DATA="$SRC/configs/data"
write_cfg() { # write_cfg FILE [extra train lines...]
  local f=$1; shift
  {
    echo "model: {path: $T/m/tiny.gguf, id: tiny, template: chatml}"
    echo "behavior: {name: positive, data: $DATA/positive_train.csv, test_data: $DATA/positive_test.csv}"
    echo "layer: 1"
    echo "train:"
    echo "  epochs: 3"
    echo "  batch_size: 4"
    echo "  warmup_steps: 2"
    echo "  lr: 0.01"
    echo "  max_length: 96"
    for l in "$@"; do echo "  $l"; done
  } >"$f"
}

# ---- train, rerun skips, export -----------------------------------------------------------
write_cfg "$T/a.yaml"
out=$("$BIN" train "$T/a.yaml" --output "$T/a.h5" --quiet 2>&1); rc=$?
check "train exits 0 ($out)" test $rc -eq 0
check "train reports completion" grep -q "all 1 jobs complete" <<<"$out"
check "library written" test -s "$T/a.h5"
out=$("$BIN" "$T/a.yaml" --output "$T/a.h5" 2>&1)
check "rerun skips the complete job" grep -q "skipped" <<<"$out"
check "inspect lists the run" bash -c "'$BIN' inspect '$T/a.h5' | grep -q 'tiny .*positive .* 1 .*complete'"
check "inspect --check" "$BIN" inspect "$T/a.h5" --check
check "export" "$BIN" export "$T/a.h5" --output "$T/a.f32"
check "exported vector has hidden size 64" test "$(stat -c %s "$T/a.f32")" -eq 256

# ---- determinism: a fresh run with the same seed gives the bit-identical vector -------------
"$BIN" train "$T/a.yaml" --output "$T/b.h5" --quiet >/dev/null 2>&1
"$BIN" export "$T/b.h5" --output "$T/b.f32" >/dev/null 2>&1
check "same seed -> bit-identical vector" cmp -s "$T/a.f32" "$T/b.f32"
write_cfg "$T/c.yaml" "seed: 7"
"$BIN" train "$T/c.yaml" --output "$T/a.h5" --quiet >/dev/null 2>&1
check "changed config adds a second run" bash -c "[ \$('$BIN' inspect '$T/a.h5' | grep -c complete) -eq 2 ]"

# ---- resume: stop mid-run (exit 3), rerun resumes and ends with the same vector -------------
"$BIN" train "$T/a.yaml" --output "$T/r.h5" --quiet --stop-after-steps 20 >/dev/null 2>&1; rc=$?
check "stopped run exits 3 (got $rc)" test $rc -eq 3
check "a checkpoint is left" bash -c "'$BIN' inspect '$T/r.h5' | grep -q '1 checkpoints'"
out=$("$BIN" train "$T/a.yaml" --output "$T/r.h5" 2>&1)
check "rerun resumes from the checkpoint" grep -q "resumed from checkpoint" <<<"$out"
"$BIN" export "$T/r.h5" --output "$T/r.f32" >/dev/null 2>&1
check "resumed vector == uninterrupted vector (bit-identical)" cmp -s "$T/a.f32" "$T/r.f32"
check "checkpoint removed after completion" bash -c "'$BIN' inspect '$T/r.h5' | grep -q '0 checkpoints'"
# mid-epoch: checkpoint every 5 steps (13 per epoch), stop at step 7, resume from step 5
write_cfg "$T/m.yaml" "checkpoint_every: 5"
"$BIN" train "$T/m.yaml" --output "$T/mid.h5" --quiet --stop-after-steps 7 >/dev/null 2>&1
out=$("$BIN" train "$T/m.yaml" --output "$T/mid.h5" 2>&1)
check "mid-epoch checkpoint resumes at step 5" grep -q "resumed from checkpoint at step 5 (epoch 0)" <<<"$out"
"$BIN" export "$T/mid.h5" --output "$T/mid.f32" >/dev/null 2>&1
check "resumed mid-epoch vector == uninterrupted vector (bit-identical)" cmp -s "$T/a.f32" "$T/mid.f32"

# ---- generate and logprobs ------------------------------------------------------------------
out=$("$BIN" generate --model "$T/m/tiny.gguf" --tokens 1,5,9 --max-tokens 5 2>/dev/null); rc=$?
check "generate --tokens runs" test $rc -eq 0
out=$("$BIN" generate --model "$T/m/tiny-hf" --tokens 1,5,9 --max-tokens 4 --vector "$T/a.f32" --layer 1 --multiplier -1 2>/dev/null); rc=$?
check "generate on the HF dir with a vector" test $rc -eq 0
n=$("$BIN" logprobs --model "$T/m/tiny.gguf" --tokens 1,5,9,11 --top-k 3 2>/dev/null | wc -l)
check "logprobs prints one line per position (got $n)" test "$n" -eq 4
check "logprobs JSON parses" bash -c "'$BIN' logprobs --model '$T/m/tiny.gguf' --tokens 1,5,9 | /usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'"

# ---- bad input: one message naming the place, non-zero exit, nothing written ----------------
expect_fail() { # expect_fail WHAT PATTERN CMD... : fails, stderr matches PATTERN, no output lib
  local what=$1 pat=$2; shift 2
  local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  if [ $rc -eq 0 ]; then bad "$what: exit 0"; return; fi
  if ! grep -qE -- "$pat" <<<"$err"; then bad "$what: message '$err' lacks /$pat/"; return; fi
  if [ "$(grep -c . <<<"$err")" -gt 2 ]; then bad "$what: more than one error line: $err"; return; fi
  ok
}
printf 'model: {path: %s/m/tiny.gguf}\nbehavior: {name: p, data: %s/positive_train.csv}\nlayer: 1\ntrain: {beta: -1}\n' "$T" "$DATA" >"$T/bad1.yaml"
expect_fail "beta <= 0" "bad1.yaml:4:[0-9]+: train.beta" "$BIN" train "$T/bad1.yaml" --output "$T/x.h5"
printf 'model: {path: %s/m/tiny.gguf}\nbehavior: {name: p, data: %s/positive_train.csv}\nlayer: 9\n' "$T" "$DATA" >"$T/bad2.yaml"
expect_fail "layer out of range" "bad2.yaml:3:[0-9]+: .*layer 9" "$BIN" train "$T/bad2.yaml" --output "$T/x.h5"
printf 'model: {path: %s/m/tiny.gguf}\nbehavior: {name: p, data: %s/positive_train.csv}\nlayer: 1\ntrian: {}\n' "$T" "$DATA" >"$T/bad3.yaml"
expect_fail "unknown key" "bad3.yaml:4:1: .*trian.*train" "$BIN" train "$T/bad3.yaml" --output "$T/x.h5"
printf 'question,matching,not_matching\n"a","b"\n' >"$T/bad.csv"
printf 'model: {path: %s/m/tiny.gguf}\nbehavior: {name: p, data: %s/bad.csv}\nlayer: 1\n' "$T" "$T" >"$T/bad4.yaml"
expect_fail "bad data line" "bad.csv:2" "$BIN" train "$T/bad4.yaml" --output "$T/x.h5"
printf 'model: {path: %s/nonexistent.gguf}\nbehavior: {name: p, data: %s/positive_train.csv}\nlayer: 1\n' "$T" "$DATA" >"$T/bad5.yaml"
expect_fail "missing model" "nonexistent.gguf" "$BIN" train "$T/bad5.yaml" --output "$T/x.h5"
check "no library written by the failed runs" test ! -e "$T/x.h5"
expect_fail "missing config" "nope.yaml" "$BIN" train "$T/nope.yaml"
expect_fail "bad flag value" "max-tokens" "$BIN" generate --model "$T/m/tiny.gguf" --tokens 1 --max-tokens abc
expect_fail "unknown flag" "unknown option" "$BIN" generate --model "$T/m/tiny.gguf" --tokens 1 --frobnicate
expect_fail "vector of the wrong size" "bytes" "$BIN" generate --model "$T/m/tiny.gguf" --tokens 1 --vector "$DATA/README.md" --layer 1
expect_fail "token id outside the vocabulary" "outside the vocabulary" "$BIN" logprobs --model "$T/m/tiny.gguf" --tokens 1,99999
expect_fail "unknown command" "unknown command" "$BIN" frobnicate
expect_fail "export from a non-library" "export" "$BIN" export "$DATA/README.md" --output "$T/y.f32"
# a failed run must not touch an existing library: the complete run stays, byte for byte
cp "$T/a.h5" "$T/a.before"
expect_fail "bad data into an existing library" "bad.csv:2" "$BIN" train "$T/bad4.yaml" --output "$T/a.h5"
check "existing library untouched" cmp -s "$T/a.h5" "$T/a.before"

summary cli_test
