#!/usr/bin/python3
"""bench/results_tables.py LIB.h5 [LIB.h5 ...] — docs/RESULTS.md's tables from vector libraries.

Reads each library with `build/bipo-pipeline inspect --json` (nothing else: what it prints is
what the library holds) and prints Markdown: per behavior and layer the A/B curve of every
method (p_match at each multiplier, range p(max m) - p(min m), log-odds slope, anti-steerable
fraction), the layer sweep (range per layer and method, best layer marked), and the capability
checks (MMLU accuracy, TruthfulQA MC1/MC2, neutral-text mean log-prob) where they were run.
"""
import json
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
        sweep(runs)
        knowledge(runs)
        losses(runs)


if __name__ == "__main__":
    main()
