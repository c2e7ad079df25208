#!/usr/bin/env bash
# tests/report_test.sh BIN MAKE_TINY SRC_DIR — `bipo-pipeline report` as a person uses it: a tiny
# library trained and evaluated at two layers with a compose (plus MMLU / TruthfulQA / jailbreak groups added
# with h5py in the layout the eval writes them), the page's structure (one <svg> per plot,
# polylines with one point per loss step / epoch / multiplier, escaped library strings, nothing
# external), bad input (one error line, nothing written), then the page rendered by headless
# Chromium and the screenshot's pixels checked plot by plot (tests/report_png.py).
# Prints "report_test: N passed, M failed"; without Chromium the render is skipped with a
# visible "SKIP" line (scripts/setup installs the Debian chromium package).
set -u
BIN=$1 MAKE_TINY=$2 SRC=$3
export OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/bipo-report-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"
PY=/usr/bin/python3
"$MAKE_TINY" "$T/m" >/dev/null || { echo "report_test: 0 passed, 1 failed"; exit 1; }
D="$SRC/configs/data"
cat >"$T/a.yaml" <<YAML
model: {path: $T/m/tiny.gguf, id: tiny, template: chatml, system_prompt: 'Be <b>kind</b> & "fair"'}
behavior: {name: positive, data: $D/positive_train.csv, test_data: $D/positive_test.csv}
layers: [0, 1]
train: {epochs: 3, batch_size: 4, warmup_steps: 2, lr: 0.01, max_length: 96}
eval:
  multipliers: [-2, -1, 0, 1, 2]
  protocol: text
  max_items: 6
  compose:
    - name: both
      terms: [{behavior: positive, layer: 1, method: bipo, multiplier: 1}, {behavior: positive, layer: 1, method: caa, multiplier: 1}]
YAML
out=$("$BIN" train "$T/a.yaml" --output "$T/a.h5" --quiet 2>&1)
check "train with eval at two layers ($out)" test $? -eq 0
out=$("$BIN" eval "$T/a.yaml" --output "$T/a.h5" --quiet 2>&1) # the compose runs in `eval`
check "eval: the compose ($out)" test $? -eq 0
"$BIN" inspect "$T/a.h5" --json >"$T/a.json"
# MMLU / TruthfulQA / jailbreak results as the eval files them (runs/<run>/eval/<group>/<arm>/...)
check "add mmlu, truthfulqa and jailbreak groups to the layer-1 run" $PY - "$T/a.h5" <<'PY'
import h5py, sys, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    lay = f["models/tiny/behaviors/positive/layer_1"]
    ev = lay["runs"][lay.attrs["newest"].decode()]["eval"]
    m = np.array([-1.0, 0.0, 1.0])
    for arm, base in (("bipo", 0.3), ("caa", 0.4)):
        g = ev.create_group(f"mmlu/{arm}"); g["multipliers"] = m; g["accuracy"] = base + 0.1 * m
        g = ev.create_group(f"truthfulqa/{arm}"); g["multipliers"] = m
        g["mc1"] = base + 0.05 * m; g["mc2"] = base + 0.2 + 0.05 * m
        g = ev.create_group(f"jailbreak/{arm}"); g["multipliers"] = m; g["asr"] = 0.5 + 0.2 * m
    # generations: eval/generate/<multiplier index>, fixed-length strings (as the store writes
    # them) at index 0 and 2, variable-length (other writers) at index 1
    for i, mul in enumerate(m):
        g = ev.create_group(f"generate/{i}"); g.attrs["multiplier"] = mul
        resp = [f"answer {j} at m={mul:g} <i>&</i> \u00e9" for j in range(2)]
        utf8 = h5py.string_dtype("utf-8", 64) if i == 2 else "S64"  # UTF-8 / ASCII charset
        if i == 1:
            g["prompt"] = ["Hi?", "Why <so>?"]; g["response"] = resp
        else:
            g["prompt"] = np.array([b"Hi?", b"Why <so>?"]); g["response"] = np.array([r.encode() for r in resp], dtype=utf8)
PY

# ---- the page -----------------------------------------------------------------------------------
out=$("$BIN" report "$T/a.h5" -o "$T/r.html" 2>&1)
check "report exits 0 ($out)" test $? -eq 0
check "no side file left next to the page" bash -c "! ls '$T' | grep -q 'r.html.tmp'"
check "page structure: plots, point counts, escaping, nothing external" $PY - "$T/r.html" "$T/a.json" <<'PY'
import json, re, sys
page, lib = open(sys.argv[1], encoding="utf-8").read(), json.load(open(sys.argv[2]))
ids = re.findall(r'<svg id="([^"]+)"', page)
want = ["loss-0", "loss-1", "ab-0", "ab-1", "mmlu-accuracy-1", "truthfulqa-mc1-1", "truthfulqa-mc2-1",
        "jailbreak-asr-1", "sweep-0", "compose-0"]
assert sorted(ids) == sorted(want), ids
svg = dict(zip(ids, re.findall(r'<svg id="[^"]+".*?</svg>', page, re.S)))
def points(body):  # {series name: number of polyline points}
    return {n: len(p.split()) for n, p in re.findall(r'<polyline class="series" data-name="([^"]+)".*?points="([^"]*)"', body)}
for i, r in enumerate(lib["runs"]):
    pts = points(svg[f"loss-{i}"])
    assert pts == {"loss": r["steps"], "heldout +1": 3, "heldout -1": 3}, (i, pts, r["steps"])
    assert points(svg[f"ab-{i}"]) == {k: 5 for k in r["eval"]["ab"]}, points(svg[f"ab-{i}"])
    # the bipo curve's y pixels follow p_match: the highest p at the smallest y
    ys = [float(p.split(",")[1]) for p in re.search(r'data-name="bipo".*?points="([^"]*)"', svg[f"ab-{i}"]).group(1).split()]
    pm = r["eval"]["ab"]["bipo"]["p_match"]
    assert sorted(range(5), key=lambda k: ys[k]) == sorted(range(5), key=lambda k: -pm[k]), (ys, pm)
assert points(svg["sweep-0"]) == {k: 2 for k in lib["runs"][0]["eval"]["ab"]}
assert points(svg["compose-0"]) == {"both": len(lib["eval"]["compose"]["both"]["ab"]["both"]["p_match"])} == {"both": 5}
bars = re.findall(r'<rect class="bar"[^>]*><title>([^<]*)</title>', svg["truthfulqa-mc2-1"])
assert len(bars) == 6 and bars[0] == "bipo: 0.45" and bars[5] == "caa: 0.65", bars  # 3 m x 2 arms
for r in lib["runs"]:
    for key in ("model", "behavior", "run"): assert r[key] in page, key
    assert f'<td>{r["created"]}</td>' in page
assert page.count("Be &lt;b&gt;kind&lt;/b&gt; &amp; &quot;fair&quot;") == 2 and "<b>kind" not in page
assert not re.search(r'<script|<link|<img|src=|url\(|@import', page), "external or active content"
assert set(re.findall(r'https?://[^"\s]*', page)) == {"http://www.w3.org/2000/svg"}
gen = re.search(r'<table id="gen-1".*?</table>', page, re.S).group(0)   # the layer-1 run only
assert "gen-0" not in page
assert re.findall(r"<th>([^<]*)</th>", gen) == ["prompt", "m = -1", "m = 0", "m = 1"], gen
rows = re.findall(r"<tr><td><pre>(.*?)</pre></td>(.*?)</tr>", gen)
assert [p for p, _ in rows] == ["Hi?", "Why &lt;so&gt;?"], rows
for j, (_, cells) in enumerate(rows):
    want = [f"answer {j} at m={m} &lt;i&gt;&amp;&lt;/i&gt; \u00e9" for m in ("-1", "0", "1")]
    assert re.findall(r"<pre>(.*?)</pre>", cells) == want, (cells, want)
PY
expect_fail() { # expect_fail WHAT PATTERN CMD... : exit 1, one stderr line matching, no page
  local what=$1 pat=$2; shift 2
  local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  if [ $rc -ne 1 ]; then bad "$what: exit $rc"; return; fi
  if ! grep -qE -- "$pat" <<<"$err" || [ "$(grep -c . <<<"$err")" -ne 1 ]; then bad "$what: message '$err'"; return; fi
  if ls "$T" | grep -q '^x.html'; then bad "$what: a page was written"; return; fi
  ok
}
expect_fail "missing library" "report: .*nope.h5" "$BIN" report "$T/nope.h5" -o "$T/x.html"
expect_fail "not a library" "report: .*a.yaml" "$BIN" report "$T/a.yaml" -o "$T/x.html"
head -c 3000 "$T/a.h5" >"$T/cut.h5"
expect_fail "truncated library" "report: .*cut.h5" "$BIN" report "$T/cut.h5" -o "$T/x.html"
expect_fail "unwritable output directory" "report: .*nodir" "$BIN" report "$T/a.h5" -o "$T/nodir/x.html"
"$BIN" report "$T/a.h5" >/dev/null 2>&1
check "no -o: usage error (exit 2)" test $? -eq 2

# ---- rendered by a browser ------------------------------------------------------------------------
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROME" ]; then
  echo "SKIP render: no chromium (scripts/setup installs the Debian package 'chromium')"
else
  timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --screenshot="$T/r.png" --window-size=1200,3000 "file://$T/r.html" >"$T/chrome.log" 2>&1
  check "chromium wrote a screenshot ($(tail -n 1 "$T/chrome.log"))" test -s "$T/r.png"
  check "screenshot: 1200x3000, every plot's area at its size with its series drawn" \
    $PY "$SRC/tests/report_png.py" "$T/r.html" "$T/r.png" 1200 3000
  [ -n "${BIPO_REPORT_KEEP:-}" ] && cp "$T/r.html" "$T/r.png" "$BIPO_REPORT_KEEP/"
fi
summary report_test
