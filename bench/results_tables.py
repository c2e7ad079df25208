#!/usr/bin/python3
"""bench/results_tables.py LIB.h5 [LIB.h5 ...] — docs/RESULTS.md's tables from vector libraries.

Reads each library with `build/bipo-pipeline inspect --json` (nothing else: what it prints is
what the library holds) and prints Markdown: per behavior and layer the A/B curve of every
method (p_match at each multiplier, range p(max m) - p(min m), log-odds slope, anti-steerable
fraction), the layer sweep (range per layer and method, best layer marked), and the capability
checks (MMLU accuracy, TruthfulQA MC1/MC2, neutral-text mean log-prob) where they were run.
"""
import json
import math
import os
import subprocess
import sys

METHODS = ["bipo", "caa", "caa_norm_matched", "prompt"]
BIN = os.environ.get("BIPO_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "bipo-pipeline"))


def runs_of(path):
    out = subprocess.run([BIN, "inspect", path, "--json"], check=True, capture_output=True, text=True)
    return [r for r in json.loads(out.stdout)["runs"] if r.get("newest") and "eval" in r]


def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def ab_rows(runs):
    print("| behavior | layer | method | " + " | ".join(f"m={m:g}" for m in runs[0]["eval"]["ab"]["bipo"]["multipliers"])
          + " | range | slope | anti |")
    print("|---|---:|---|" + "---:|" * (len(runs[0]["eval"]["ab"]["bipo"]["multipliers"]) + 3))
    for r in runs:
        ab = r["eval"]["ab"]
        for k in METHODS:
            if k not in ab:
                continue
            a = ab[k]
            p = a["p_match"]
            print(f"| {r['behavior']} | {r['layer']} | {k} | " + " | ".join(fmt(x) for x in p)
                  + f" | {p[-1] - p[0]:+.2f} | {a.get('logodds_slope', 0):+.2f} | {fmt(a.get('anti_steerable'))} |")


def matching_letters(r):
    """The matching letter of each evaluated held-out item (letter protocol runs), or None."""
    sp = r["eval"].get("split", {})
    bipo = r["eval"]["ab"].get("bipo", {})
    if bipo.get("protocol") not in (1, "letter") or not sp.get("path", "").endswith(".jsonl"):
        return None
    with open(sp["path"]) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    n = len(bipo["item_logodds"]) // len(bipo["multipliers"])
    idx = sorted(int(i) for i in sp["test_indices"])[:n]
    return [lines[i]["answer_matching_behavior"].strip()[1:2] for i in idx]


def letter_balance(runs):
    """A letter-answer vector can raise p_match by preferring one letter: when most held-out
    items' matching answer is (B), "always answer B" looks like steering. Split by the matching
    letter and average the two groups (each group's mean p_match, then their mean)."""
    rows = [(r, matching_letters(r)) for r in runs]
    rows = [(r, ls) for r, ls in rows if ls]
    if not rows:
        return
    mult = rows[0][0]["eval"]["ab"]["bipo"]["multipliers"]
    print("\nLetter-balanced p_match (mean of the matching-(A) and matching-(B) items' means; "
          "A/B = how many items of each)\n")
    print("| behavior | layer | A/B | method | " + " | ".join(f"m={m:g}" for m in mult) +
          " | range | p(A group) −2→+2 | p(B group) −2→+2 |")
    print("|---|---:|---|---|" + "---:|" * (len(mult) + 3))
    for r, ls in rows:
        n = len(ls)
        na = sum(x == "A" for x in ls)
        for k in METHODS:
            a = r["eval"]["ab"].get(k)
            if not a:
                continue
            lo = a["item_logodds"]
            bal, grp = [], []
            for j in range(len(mult)):
                p = [1 / (1 + math.exp(-x)) for x in lo[j * n:(j + 1) * n]]
                ga = [p[i] for i in range(n) if ls[i] == "A"]
                gb = [p[i] for i in range(n) if ls[i] != "A"]
                ma = sum(ga) / len(ga) if ga else None
                mb = sum(gb) / len(gb) if gb else None
                grp.append((ma, mb))
                bal.append((ma + mb) / 2 if ma is not None and mb is not None else (ma if mb is None else mb))
            print(f"| {r['behavior']} | {r['layer']} | {na}/{n - na} | {k} | " + " | ".join(fmt(x) for x in bal) +
                  f" | {bal[-1] - bal[0]:+.2f} | {fmt(grp[0][0])}→{fmt(grp[-1][0])} | {fmt(grp[0][1])}→{fmt(grp[-1][1])} |")


def sweep(runs):
    by = {}
    for r in runs:
        by.setdefault(r["behavior"], []).append(r)
    for b, rs in by.items():
        rs.sort(key=lambda r: r["layer"])
        if len(rs) < 2:
            continue
        print(f"\n**{b}**: range p(+max) − p(−max) per layer (best per method in bold)\n")
        print("| method | " + " | ".join(f"L{r['layer']}" for r in rs) + " |")
        print("|---|" + "---:|" * len(rs))
        for k in METHODS:
            vals = [r["eval"]["ab"][k]["p_match"][-1] - r["eval"]["ab"][k]["p_match"][0] if k in r["eval"]["ab"] else None
                    for r in rs]
            best = max(range(len(vals)), key=lambda i: -9 if vals[i] is None else vals[i])
            cells = [("**%+.2f**" if i == best else "%+.2f") % v if v is not None else "—" for i, v in enumerate(vals)]
            print(f"| {k} | " + " | ".join(cells) + " |")


def knowledge(runs):
    rows = [r for r in runs if any(s in r["eval"] for s in ("mmlu", "truthfulqa", "neutral"))]
    if not rows:
        return
    print("\n| behavior | layer | method | MMLU acc −1/0/+1 | TQA MC1 −1/0/+1 | TQA MC2 −1/0/+1 | neutral log-prob −1/0/+1 |")
    print("|---|---:|---|---|---|---|---|")
    for r in rows:
        e = r["eval"]
        for k in METHODS:
            def three(set_, key):
                a = e.get(set_, {}).get(k)
                return " / ".join(fmt(x) for x in a[key]) if a and key in a else "—"
            print(f"| {r['behavior']} | {r['layer']} | {k} | {three('mmlu', 'accuracy')} | {three('truthfulqa', 'mc1')}"
                  f" | {three('truthfulqa', 'mc2')} | {three('neutral', 'mean_logprob')} |")


def losses(runs):
    print("\n| behavior | layer | steps | final loss | \\|v\\| |")
    print("|---|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['behavior']} | {r['layer']} | {r['steps']} | {fmt(r['final_loss'], 3)} | {fmt(r['vector_norm'])} |")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    for path in sys.argv[1:]:
        runs = sorted(runs_of(path), key=lambda r: (r["behavior"], r["layer"]))
        print(f"\n### {os.path.basename(path)}: {len(runs)} evaluated runs\n")
        if not runs:
            continue
        ab_rows(runs)
        letter_balance(runs)
        sweep(runs)
        knowledge(runs)
        losses(runs)


if __name__ == "__main__":
    main()
