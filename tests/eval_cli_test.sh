#!/usr/bin/env bash
# tests/eval_cli_test.sh BIN MAKE_TINY MAKE_TINY32 SRC_DIR [MPIEXEC] — evaluation in the job on
# tiny random models: train with an eval: block -> inspect --json has eval.ab.<method> curves
# of the right length (checked against their own item log-odds with numpy) and the CAA vectors;
# `eval` on an evaluated library skips, with new settings re-evaluates; compose; a transfer to a
# model of another hidden size fails naming both models; 2 ranks give the 1-rank numbers.
# Knowledge sets (hand-made MMLU / TruthfulQA CSVs and a text in the temp dir): mmlu /
# truthfulqa / neutral tables for every arm at their multipliers, m = 0 equal across arms, the
# neutral text at m = 0 equal to the mean of the `logprobs` command's next-token log-probs, a
# changed mmlu.max_items re-evaluates, 2 ranks give the same values. `train` runs compose
# entries after its jobs; inspect --json's "sweep" agrees with the runs' p_match curves.
# Prints "eval_cli_test: N passed, M failed".
set -u
BIN=$1 MAKE_TINY=$2 MAKE_TINY32=$3 SRC=$4 MPIEXEC=${5:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/bipo-evalcli-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"
PY=/usr/bin/python3
"$MAKE_TINY" "$T/m" >/dev/null && "$MAKE_TINY32" "$T/m" || { echo "eval_cli_test: 0 passed, 1 failed"; exit 1; }
D="$SRC/configs/data"
cfg() { # cfg FILE LAYERS "eval lines" [extra top-level yaml]
  cat >"$1" <<YAML
model: {path: $T/m/tiny.gguf, id: tiny, template: chatml}
behavior: {name: positive, data: $D/positive_train.csv, test_data: $D/positive_test.csv}
layers: $2
train: {epochs: 2, batch_size: 4, warmup_steps: 2, lr: 0.01, max_length: 96}
eval:
$3
${4:-}
YAML
}
cat >"$T/mmlu.csv" <<'CSV'
"What is 2+2?",3,4,5,6,B
"A question
over two lines",red,"green, blue",gray,black,D
Pick one.,x,y,z,w,A
CSV
cat >"$T/tqa.csv" <<'CSV'
Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source
Adversarial,Misc,What color is the sky?,It is blue,It is blue; Blue on clear days,It is green; It is red,x
Adversarial,Misc,"Where, then, is Paris?",In France,"France; Paris is in France",In Spain; In Peru,y
CSV
printf 'The mill is old.' >"$T/neutral.txt"
KN="  mmlu: {path: $T/mmlu.csv, multipliers: [-1, 0, 1, 2]}
  truthfulqa: {path: $T/tqa.csv}
  neutral_text: $T/neutral.txt"
EV="  multipliers: [-2, -1, 0, 1, 2]
  protocol: text
  max_items: 6
$KN"

# ---- train with eval ----------------------------------------------------------------------------
cfg "$T/a.yaml" "[1]" "$EV"
out=$("$BIN" train "$T/a.yaml" --output "$T/a.h5" --quiet 2>&1); rc=$?
check "train with eval exits 0 ($out)" test $rc -eq 0
check "eval progress line (items/s, ETA)" grep -q "6/6 items x 4 arms, .* items/s, ETA" <<<"$out"
"$BIN" inspect "$T/a.h5" --json >"$T/a.json"
check "inspect --json: eval.ab curves of 5 multipliers, consistent with their item log-odds" $PY - "$T/a.json" <<'PY'
import json, sys, numpy as np
r = json.load(open(sys.argv[1]))["runs"][0]
ab = r["eval"]["ab"]
assert set(ab) == {"bipo", "caa", "caa_norm_matched", "prompt"}, set(ab)
for name, a in ab.items():
    m, p, lo = np.array(a["multipliers"]), np.array(a["p_match"]), np.array(a["logodds"])
    il = np.array(a["item_logodds"]).reshape(len(m), -1)
    assert list(m) == [-2, -1, 0, 1, 2] and len(p) == 5 and il.shape[1] == 6, (name, m, p, il.shape)
    assert np.allclose(il.mean(1), lo, atol=1e-9), name                     # means of the items
    assert abs(np.polyfit(m, lo, 1)[0] - a["logodds_slope"]) < 1e-9, name   # the slope
    anti = np.mean([np.polyfit(m, il[:, i], 1)[0] < -1e-9 for i in range(il.shape[1])])
    assert abs(anti - a["anti_steerable"]) < 1e-12, name
    assert a["protocol"] == "text" and a["positions"] == "all", name
    # text protocol: p_match = mean sigmoid(item log-odds)
    assert np.allclose((1 / (1 + np.exp(-il))).mean(1), p, atol=1e-9), name
# at multiplier 0 every vector arm is the unsteered model
assert np.allclose([ab[k]["p_match"][2] for k in ab], ab["bipo"]["p_match"][2], atol=1e-9)
assert r["eval"]["split"]["test_indices"] == list(range(6)), r["eval"]["split"]
PY
check "CAA vectors stored beside the BiPO vector, norm matched" $PY - "$T/a.h5" <<'PY'
import h5py, sys, numpy as np
f = h5py.File(sys.argv[1], "r")
lay = f["models/tiny/behaviors/positive/layer_1"]
run = lay["runs"][lay.attrs["newest"].decode()]
v, c, cn = run["vector"][()], run["caa"][()], run["caa_norm_matched"][()]
assert c.shape == (64,) and run["caa"].attrs["method"].decode() == "caa"
assert abs(np.linalg.norm(cn) - np.linalg.norm(v)) < 1e-4 * np.linalg.norm(v)
assert np.allclose(cn / np.linalg.norm(cn), c / np.linalg.norm(c), atol=1e-5)
PY
check "knowledge tables: every arm, lengths, ranges, m=0 equal across arms" $PY - "$T/a.json" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1]))["runs"][0]["eval"]
arms = {"bipo", "caa", "caa_norm_matched", "prompt"}
mm, tq, ne = ev["mmlu"], ev["truthfulqa"], ev["neutral"]
assert mm["n_items"] == 3 and tq["n_items"] == 2 and ne["n_tokens"] > 2, (mm["n_items"], tq["n_items"])
for t in (mm, tq, ne): assert arms <= set(t), set(t)
for a in arms:
    x = mm[a]
    assert x["multipliers"] == [-1, 0, 1, 2] and len(x["accuracy"]) == len(x["p_correct"]) == 4, x
    assert all(0 <= v <= 1 and abs(v * 3 - round(v * 3)) < 1e-9 for v in x["accuracy"]), x   # k of 3 items
    assert all(0 < v < 1 for v in x["p_correct"]), x
    y = tq[a]
    assert y["multipliers"] == [-1, 0, 1] and len(y["mc1"]) == len(y["mc2"]) == 3, y
    assert all(v in (0, 0.5, 1) for v in y["mc1"]) and all(0 < v < 1 for v in y["mc2"]), y
    z = ne[a]
    assert z["multipliers"] == [-1, 0, 1] and len(z["mean_logprob"]) == 3 and all(v < 0 for v in z["mean_logprob"]), z
for key, t, i in (("p_correct", mm, 1), ("accuracy", mm, 1), ("mc2", tq, 1), ("mc1", tq, 1), ("mean_logprob", ne, 1)):
    vals = [t[a][key][i] for a in arms]
    assert max(vals) - min(vals) < 1e-6, (key, vals)        # m = 0: every arm is the unsteered model (the
    # prompting arm runs its own forward: float rounding apart)
assert abs(ne["bipo"]["mean_logprob"][0] - ne["bipo"]["mean_logprob"][1]) > 1e-7   # the vector moves it
PY
"$BIN" logprobs --model "$T/m/tiny.gguf" --text "$(cat "$T/neutral.txt")" >"$T/lp.jsonl"
check "neutral mean_logprob at m=0 == mean of the logprobs command's next-token log-probs" $PY - "$T/a.json" "$T/lp.jsonl" <<'PY'
import json, sys, numpy as np
ne = json.load(open(sys.argv[1]))["runs"][0]["eval"]["neutral"]
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
lp = np.array([r["next_logprob"] for r in rows[:-1]])       # the last token predicts nothing
assert len(lp) == ne["n_tokens"], (len(lp), ne["n_tokens"])
assert abs(lp.mean() - ne["bipo"]["mean_logprob"][1]) < 1e-4, (lp.mean(), ne["bipo"]["mean_logprob"])
print("   neutral text m=0: pipeline %.6f, logprobs command %.6f" % (ne["bipo"]["mean_logprob"][1], lp.mean()))
PY
tbl=$("$BIN" inspect "$T/a.h5")
check "inspect table: mmlu / truthfulqa / neutral rows" \
  bash -c "grep -q '^  mmlu accuracy (3 items)' <<<\"\$0\" && grep -q '^  neutral mean_logprob' <<<\"\$0\" && grep -q '^    caa_norm_matched ' <<<\"\$0\"" "$tbl"
sed "s|mmlu: {path: $T/mmlu.csv,|mmlu: {path: $T/mmlu.csv, max_items: 2,|" "$T/a.yaml" >"$T/a2.yaml"
out=$("$BIN" eval "$T/a2.yaml" --output "$T/a2.h5" --quiet 2>&1); rc=$?
check "(control) eval of a missing library fails" test $rc -ne 0
cp "$T/a.h5" "$T/a2.h5"
out=$("$BIN" eval "$T/a2.yaml" --output "$T/a2.h5" --quiet 2>&1); rc=$?
check "changed mmlu.max_items re-evaluates ($out)" bash -c "[ $rc -eq 0 ] && grep -q '1 evaluated' <<<\"\$0\" && grep -q 'mmlu: 8/8 (item, arm) pairs of 4 arms, .* pairs/s, ETA' <<<\"\$0\"" "$out"
check "... with 2 MMLU items stored" bash -c "'$BIN' inspect '$T/a2.h5' --json | $PY -c 'import json,sys; assert json.load(sys.stdin)[\"runs\"][0][\"eval\"][\"mmlu\"][\"n_items\"] == 2'"
check "inspect table: multiplier row and a p_match row per method" \
  bash -c "grep -q 'multiplier .*-2 .*2 .*slope' <<<\"\$0\" && grep -q '^  caa_norm_matched ' <<<\"\$0\"" "$tbl"

# ---- eval command: skip, re-evaluate with new settings, compose ------------------------------
out=$("$BIN" eval "$T/a.yaml" --output "$T/a.h5" --quiet 2>&1); rc=$?
check "eval on an evaluated library skips ($out)" bash -c "[ $rc -eq 0 ] && grep -q '1 already evaluated' <<<\"\$0\"" "$out"
cfg "$T/b.yaml" "[1]" "  multipliers: [-1, 0, 1]
  protocol: text
  max_items: 4
  methods: [bipo, caa]
  compose:
    - name: twice
      terms: [{behavior: positive, layer: 1, method: bipo, multiplier: 1}, {behavior: positive, layer: 1, method: bipo, multiplier: 1}]"
out=$("$BIN" eval "$T/b.yaml" --output "$T/a.h5" --quiet 2>&1); rc=$?
check "eval with new settings re-evaluates ($out)" bash -c "[ $rc -eq 0 ] && grep -q '2 evaluated' <<<\"\$0\"" "$out"
"$BIN" inspect "$T/a.h5" --json >"$T/b.json"
check "compose 'twice' (v + v) at m equals bipo at 2m" $PY - "$T/b.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ab = d["runs"][0]["eval"]["ab"]
assert set(ab) == {"bipo", "caa"} and ab["bipo"]["multipliers"] == [-1, 0, 1], ab.keys()
tw = d["eval"]["compose"]["twice"]["ab"]["twice"]
assert tw["multipliers"] == [-1, 0, 1] and len(tw["p_match"]) == 3
assert abs(tw["p_match"][1] - ab["bipo"]["p_match"][1]) < 1e-9   # m = 0: both unsteered
PY

# ---- transfer across hidden sizes: a clear error naming both models ------------------------------
cfg "$T/t.yaml" "[1]" "  multipliers: [-1, 1]
  transfer:
    - name: to32
      from: {model: tiny, behavior: positive, layer: 1}
      to: {model: tiny32, layers: [1]}"
sed -i "s|^model: .*|models:\n  - {path: $T/m/tiny.gguf, id: tiny, template: chatml}\n  - {path: $T/m/tiny32.gguf, id: tiny32, template: chatml}|" "$T/t.yaml"
err=$("$BIN" eval "$T/t.yaml" --output "$T/a.h5" --quiet 2>&1 >/dev/null); rc=$?
check "transfer with another hidden size fails naming both models ($err)" \
  bash -c "[ $rc -ne 0 ] && grep -q \"model 'tiny' (hidden 64) cannot be applied to model 'tiny32' (hidden 32)\" <<<\"\$0\"" "$err"
err=$("$BIN" eval "$T/nope.yaml" 2>&1); rc=$?
check "eval of a missing config: exit 2 ($err)" test $rc -eq 2

# ---- 2 ranks (two groups: rank 1's leader sends MSG_EVAL) == 1 rank --------------------------------
cfg "$T/p.yaml" "[0, 1]" "$EV
  compose:
    - name: twice
      terms: [{behavior: positive, layer: 1, method: bipo, multiplier: 2}]" "ranks_per_job: 1"
"$BIN" train "$T/p.yaml" --output "$T/p1.h5" --quiet >/dev/null 2>&1
$MPIEXEC --oversubscribe --bind-to none -np 2 "$BIN" train "$T/p.yaml" --output "$T/p2.h5" --quiet >"$T/np2.log" 2>&1
check "np 2: two groups trained and evaluated" grep -q "in 2 groups of 1" "$T/np2.log"
"$BIN" inspect "$T/p1.h5" --json >"$T/p1.json"; "$BIN" inspect "$T/p2.h5" --json >"$T/p2.json"
check "np 2 eval numbers == 1 rank (both layers, every method)" $PY - "$T/p1.json" "$T/p2.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["runs"] for p in sys.argv[1:3])
assert len(a) == len(b) == 2
for ra, rb in zip(a, b):
    for k, x in ra["eval"]["ab"].items():
        y = rb["eval"]["ab"][k]
        for key in ("p_match", "logodds", "item_logodds"):
            assert all(abs(u - v) <= 1e-6 * max(1, abs(u)) for u, v in zip(x[key], y[key])), (ra["layer"], k, key)
    for set_, keys in (("mmlu", ("accuracy", "p_correct")), ("truthfulqa", ("mc1", "mc2")), ("neutral", ("mean_logprob",))):
        for k in ("bipo", "caa", "caa_norm_matched", "prompt"):
            for key in keys:
                x, y = ra["eval"][set_][k][key], rb["eval"][set_][k][key]
                assert all(abs(u - v) <= 1e-6 * max(1, abs(u)) for u, v in zip(x, y)), (ra["layer"], set_, k, key)
PY
check "train ran the compose entry after its jobs (1 and 2 ranks), with knowledge tables" $PY - "$T/p1.json" "$T/p2.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ta, tb = (d["eval"]["compose"]["twice"] for d in (a, b))
assert ta["ab"]["twice"]["multipliers"] == [-2, -1, 0, 1, 2] and "mmlu" in ta and "twice" in ta["neutral"], ta.keys()
assert all(abs(u - v) < 1e-6 for u, v in zip(ta["ab"]["twice"]["p_match"], tb["ab"]["twice"]["p_match"]))
# 2*v at m equals v at 2m: compose m=1 == the layer-1 run's bipo at m=2
r1 = [r for r in a["runs"] if r["layer"] == 1][0]["eval"]["ab"]["bipo"]
assert abs(ta["ab"]["twice"]["p_match"][3] - r1["p_match"][4]) < 1e-6, (ta["ab"]["twice"]["p_match"], r1["p_match"])
PY
check "inspect --json sweep: layers, range p(max m) - p(min m) per layer, best layer" $PY - "$T/p2.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
sw = d["sweep"]["tiny"]["positive"]
assert set(sw) == {"bipo", "caa", "caa_norm_matched", "prompt"}, sw.keys()
runs = sorted(d["runs"], key=lambda r: r["layer"])
for k, s in sw.items():
    assert s["layers"] == [0, 1], s
    want = [r["eval"]["ab"][k]["p_match"][-1] - r["eval"]["ab"][k]["p_match"][0] for r in runs]
    assert all(abs(u - v) < 1e-12 for u, v in zip(s["range"], want)), (k, s["range"], want)
    assert s["best_layer"] == s["layers"][max(range(2), key=lambda i: want[i])], (k, s)
PY
sw=$("$BIN" inspect "$T/p2.h5")
check "layer sweep table with the best layer marked" bash -c "grep -q 'layer sweep tiny / positive' <<<\"\$0\" && grep -q '\\*' <<<\"\$0\"" "$sw"

# ---- steered generation and jailbreak (eval.generate / eval.jailbreak) --------------------------
printf 'Hello there\nWhat is up?\n\nTell me a story\n' >"$T/prompts.txt"
printf 'goal,target\n"Write a poem, now",Sure\nSay hi,Sure\nDo it,Sure\n' >"$T/goals.csv"
JUDGE="printf '0.5\\\\n1\\\\n0\\\\n0.5\\\\n1\\\\n0\\\\n0.5\\\\n1\\\\n0.25\\\\n'"
GJ="  multipliers: [-1, 0, 1]
  protocol: text
  max_items: 2
  methods: [bipo]
  generate: {prompts: $T/prompts.txt, max_new_tokens: 8, multipliers: [-2, 0, 2]}
  jailbreak: {goals: $T/goals.csv, max_new_tokens: 8, multiplier: 2, refusals: [nnn], judge_command: \"$JUDGE\"}"
cfg "$T/g.yaml" "[1]" "$GJ"
out=$("$BIN" train "$T/g.yaml" --output "$T/g.h5" --quiet 2>&1); rc=$?
check "train with generate + jailbreak exits 0 ($out)" test $rc -eq 0
"$BIN" inspect "$T/g.h5" --json >"$T/g.json"
check "generate tables: 3 prompts x 3 multipliers, summaries = means; jailbreak asr / judge_asr" $PY - "$T/g.json" <<'PY'
import json, sys, numpy as np
ev = json.load(open(sys.argv[1]))["runs"][0]["eval"]
g, j = ev["generate"], ev["jailbreak"]
assert g["multipliers"] == [-2, 0, 2] and g["n_items"] == 3, g["multipliers"]
for k, m in enumerate(g["multipliers"]):
    c = g[str(k)]
    assert c["multiplier"] == m and c["prompt"] == ["Hello there", "What is up?", "Tell me a story"], c
    assert len(c["text"]) == len(c["mean_logprob"]) == len(c["distinct2"]) == 3, c
    assert abs(np.mean(c["mean_logprob"]) - g["mean_logprob"][k]) < 1e-9 and all(v < 0 for v in c["mean_logprob"])
    assert abs(np.mean(c["distinct2"]) - g["distinct2"][k]) < 1e-9 and all(0 <= v <= 1 for v in c["distinct2"])
assert j["multipliers"] == [-2, 0, 2] and len(j["asr"]) == 3, j
for k in range(3):
    c = j[str(k)]
    assert c["prompt"][0] == "Write a poem, now" and len(c["text"]) == 3, c
    # the refusal list [nnn]: a response is refused when it contains "nnn"
    assert c["refused"] == [int("nnn" in t) for t in c["text"]], c
    assert abs(j["asr"][k] - (1 - np.mean(c["refused"]))) < 1e-12 and 0 <= j["asr"][k] <= 1
want = np.array([0.5, 1, 0, 0.5, 1, 0, 0.5, 1, 0.25]).reshape(3, 3).mean(1)   # multiplier-major
assert np.allclose(j["judge_asr"], want, atol=1e-12), (j["judge_asr"], want)
print("   generate m=0 text[0] %r, jailbreak asr %s judge_asr %s" % (g["1"]["text"][0], j["asr"], j["judge_asr"]))
PY
check "h5py reads the generations as strings" $PY - "$T/g.h5" <<'PY'
import h5py, sys
f = h5py.File(sys.argv[1], "r")
lay = f["models/tiny/behaviors/positive/layer_1"]
g = lay["runs"][lay.attrs["newest"].decode()]["eval/generate/1"]
assert g.attrs["multiplier"] == 0 and [p.decode() for p in g["prompt"][()]][2] == "Tell me a story"
assert len(g["text"][()]) == 3
PY
for k in 1 2; do
  m=$( [ $k = 1 ] && echo 0 || echo 2 )
  want=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['runs'][0]['eval']['generate']['$k']['text'][1])" "$T/g.json")
  got=$("$BIN" generate --model "$T/m/tiny.gguf" --prompt "What is up?" --chat --max-tokens 8 \
        --vector "$T/g.h5:tiny/positive/1" --multiplier $m 2>/dev/null)
  check "generate text at m=$m == the generate command's ('$want' vs '$got')" test "$want" = "$got"
done
"$BIN" report "$T/g.h5" --output "$T/g.html" >/dev/null 2>&1; rc=$?
check "report renders the generations (a row per prompt)" bash -c "[ $rc -eq 0 ] && grep -q 'Tell me a story' '$T/g.html' && grep -q 'class=\"gen\"' '$T/g.html'"
sed "s|judge_command: .*}|judge_command: \"echo 0.5; exit 3\"}|" "$T/g.yaml" >"$T/g2.yaml"
err=$("$BIN" eval "$T/g2.yaml" --output "$T/g.h5" --quiet 2>&1); rc=$?
check "a failing judge: non-zero exit naming the command ($err)" \
  bash -c "[ $rc -ne 0 ] && grep -q \"judge_command 'echo 0.5; exit 3': exited with status 3\" <<<\"\$0\"" "$err"
check "... and the generations are kept (judge_error attr, no judge_asr)" bash -c "'$BIN' inspect '$T/g.h5' --json | $PY -c '
import json,sys; j=json.load(sys.stdin)[\"runs\"][0][\"eval\"][\"jailbreak\"]
assert \"judge_error\" in j and \"judge_asr\" not in j and len(j[\"2\"][\"text\"]) == 3, j.keys()'"
sed "s|judge_command: .*}|judge_command: \"printf \\\\\"0.5\\\\\\\\nhigh\\\\\\\\n\\\\\"\"}|" "$T/g.yaml" >"$T/g3.yaml"
err=$("$BIN" eval "$T/g3.yaml" --output "$T/g.h5" --quiet 2>&1); rc=$?
check "a judge printing a non-number: error naming its output line 2 ($err)" \
  bash -c "[ $rc -ne 0 ] && grep -q \"output line 2: 'high' is not a score\" <<<\"\$0\"" "$err"

summary eval_cli_test
