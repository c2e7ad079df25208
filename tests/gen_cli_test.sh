#!/usr/bin/env bash
# tests/gen_cli_test.sh BIN MAKE_TINY SRC_DIR — the steering options of `generate` and
# `logprobs` on a tiny random model and a library trained here: a library entry as --vector
# (its layer, system prompt and template become the defaults), the raw exported vector giving
# the same tokens, a multiplier list decoded in one batch giving what each multiplier gives
# alone, --system, logprobs per multiplier, and bad input (missing entry, bad list, layer out
# of range, unknown method) as one clear line and a non-zero exit.
# Prints "gen_cli_test: N passed, M failed".
set -u
BIN=$1 MAKE_TINY=$2 SRC=$3
T=$(mktemp -d /tmp/bipo-gencli-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"

"$MAKE_TINY" "$T/m" || { echo "gen_cli_test: 0 passed, 1 failed"; exit 1; }
DATA="$SRC/configs/data"
M="$T/m/tiny.gguf"
cat >"$T/a.yaml" <<YAML
model: {path: $M, id: tiny, template: chatml, system_prompt: "Be brief."}
behavior: {name: positive, data: $DATA/positive_train.csv}
layer: 1
train: {epochs: 2, batch_size: 4, warmup_steps: 1, lr: 0.05, max_length: 96}
YAML
"$BIN" train "$T/a.yaml" --output "$T/a.h5" --quiet >/dev/null 2>&1
check "library trained" test -s "$T/a.h5"
"$BIN" export "$T/a.h5" --output "$T/a.f32" >/dev/null 2>&1
# sampled: the tiny random model's greedy tokens hardly depend on the prompt, sampled ones do
G=("$BIN" generate --model "$M" --prompt "I feel" --max-tokens 8 --temperature 1 --seed 3)
gen() { "${G[@]}" "$@" 2>/dev/null | tr -d '\000'; } # text with NUL bytes dropped

# a library entry = the raw vector at the run's layer with the run's system prompt + template
"${G[@]}" --vector "$T/a.h5:tiny/positive/1" --multiplier 0.5 >/dev/null 2>&1
check "generate --vector LIB:entry exits 0" test $? -eq 0
lib=$(gen --vector "$T/a.h5:tiny/positive/1" --multiplier 0.5)
raw=$(gen --vector "$T/a.f32" --layer 1 --multiplier 0.5 --template chatml --system "Be brief.")
check "library entry = raw vector + run's layer, system prompt, template" test "$lib" = "$raw"
dflt=$(gen --vector "$T/a.f32" --layer 1 --multiplier 0.5 --template chatml)
check "the run's system prompt matters here (the template's default gives other tokens)" test "$dflt" != "$lib"
meth=$(gen --vector "$T/a.h5:tiny/positive/1/bipo" --multiplier 0.5)
check "method bipo is the default" test "$meth" = "$lib"
other=$(gen --vector "$T/a.h5:tiny/positive/1" --multiplier 0.5 --system "Be long.")
nosys=$(gen --vector "$T/a.f32" --layer 1 --multiplier 0.5 --template chatml --system "Be long.")
check "--system overrides the run's system prompt" test "$other" = "$nosys"

# a multiplier list: one labeled continuation each, equal to that multiplier alone
"${G[@]}" --vector "$T/a.h5:tiny/positive/1" --multiplier -0.5,0,0.5 >/dev/null 2>&1
check "multiplier list exits 0" test $? -eq 0
multi=$(gen --vector "$T/a.h5:tiny/positive/1" --multiplier -0.5,0,0.5)
want=""
for m in -0.5 0 0.5; do # the same seed for every multiplier, as alone
  one=$(gen --vector "$T/a.h5:tiny/positive/1" --multiplier $m)
  want+="[multiplier $m]"$'\n'"$one"$'\n'
done
check "each batched continuation = that multiplier alone" test "$multi" = "${want%$'\n'}"
check "three labels" test "$(grep -c '^\[multiplier ' <<<"$multi")" -eq 3
check "the multipliers give different continuations" test "$(sed -n 2p <<<"$multi")" != "$(sed -n 4p <<<"$multi")"

# logprobs: one block of lines per multiplier, steering changes the numbers, 0 = unsteered
L=("$BIN" logprobs --model "$M" --tokens 1,5,9,11 --top-k 2)
lp=$("${L[@]}" --vector "$T/a.h5:tiny/positive/1" --multiplier -0.5,0,0.5 2>/dev/null)
check "logprobs: 4 lines per multiplier" test "$(wc -l <<<"$lp")" -eq 12
plain=$("${L[@]}" 2>/dev/null | sed -n 1p | sed 's/.*"next_logprob":\([^,]*\),.*/\1/')
zero=$(grep '"multiplier":0.0' <<<"$lp" | sed -n 1p | sed 's/.*"next_logprob":\([^,]*\),.*/\1/')
four=$(grep '"multiplier":0.5' <<<"$lp" | sed -n 1p | sed 's/.*"next_logprob":\([^,]*\),.*/\1/')
check "logprobs at multiplier 0 = unsteered ($zero vs $plain)" test "$zero" = "$plain"
check "logprobs at multiplier 0.5 differ ($four vs $plain)" test "$four" != "$plain"

# bad input: one line naming the problem, non-zero exit
expect_fail() { # expect_fail WHAT PATTERN CMD...
  local what=$1 pat=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  check "$what: non-zero exit" test $rc -ne 0
  check "$what: one line matching '$pat' (got: $err)" bash -c "[ \$(wc -l <<<\"\$1\") -eq 1 ] && grep -Eq -- \"\$2\" <<<\"\$1\"" _ "$err" "$pat"
}
expect_fail "missing behavior" "no runs for model 'tiny', behavior 'nope', layer 1" "${G[@]}" --vector "$T/a.h5:tiny/nope/1"
expect_fail "missing library" "nope.h5" "${G[@]}" --vector "$T/nope.h5:tiny/positive/1"
expect_fail "bad list" "--multiplier '1,x': entry 2" "${G[@]}" --vector "$T/a.h5:tiny/positive/1" --multiplier 1,x
expect_fail "empty entry" "--multiplier '1,,2': entry 2" "${G[@]}" --vector "$T/a.h5:tiny/positive/1" --multiplier 1,,2
expect_fail "layer out of range" "--layer 7 is out of range: the model has 4 layers" "${G[@]}" --vector "$T/a.h5:tiny/positive/1" --layer 7
expect_fail "unknown method" "method 'caa'" "${G[@]}" --vector "$T/a.h5:tiny/positive/1/caa"
expect_fail "raw file needs a layer" "give its --layer" "${G[@]}" --vector "$T/a.f32"
expect_fail "unknown template" "template" "${G[@]}" --template nope
expect_fail "multiplier without vector" "need a --vector" "${G[@]}" --multiplier 1,2
expect_fail "logprobs: bad list" "--multiplier" "${L[@]}" --vector "$T/a.f32" --layer 1 --multiplier 2,
summary gen_cli_test
