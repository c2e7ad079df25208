"""tests/python_reader.py LIB.h5 INSPECT.json [HF_MODEL_DIR] — the docs/PYTHON.md example, run in
CI: read a bipo-pipeline vector library with h5py and numpy only (list models / behaviors /
layers / runs, read a run's vector, loss and eval curves) and check every value against
`bipo-pipeline inspect LIB.h5 --json`; then, when PyTorch (and transformers) are installed,
apply the vector to the HF model with a forward hook and check that the hooked layer's output
moved by exactly m * v. Prints "python_reader: N passed, M failed"; non-zero exit on failure."""
import json
import sys

import h5py
import numpy as np

from pycheck import Checks  # tests/pycheck.py


# ---- reading (the docs/PYTHON.md example) ----------------------------------------------------
def list_runs(f):
    """Every run of the library: (model, behavior, layer, run, is_newest)."""
    out = []
    for model, mg in f["models"].items():
        for behavior, bg in mg["behaviors"].items():
            for lname, lg in bg.items():  # "layer_<L>"
                newest = lg.attrs["newest"].decode()
                for run in lg["runs"]:
                    out.append((model, behavior, int(lname[len("layer_"):]), run, run == newest))
    return out


def read_run(f, model, behavior, layer, run=None):
    """A run's vector, loss curve, attributes and A/B curves (run=None: the layer's newest)."""
    lg = f[f"models/{model}/behaviors/{behavior}/layer_{layer}"]
    r = lg["runs"][run or lg.attrs["newest"].decode()]
    out = {
        "vector": r["vector"][()],            # float32 [C]
        "loss": r["loss"][()],                # float32 [steps]
        "heldout_pos": r["heldout_loss_pos"][()],
        "attrs": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in r.attrs.items()},
        "ab": {},
    }
    if "eval/ab" in r:                        # per method: multipliers [k], p_match [k]
        for method, g in r["eval/ab"].items():
            out["ab"][method] = {"multipliers": g["multipliers"][()], "p_match": g["p_match"][()],
                                 "logodds_slope": float(g.attrs["logodds_slope"])}
    return out


# ---- applying it to an HF model (PyTorch) ------------------------------------------------------
def add_steering(model, layer, vector, multiplier):
    """Adds multiplier * vector to the output of decoder layer `layer`, as bipo-pipeline does
    (our layer L is HF hidden_states[L + 1]). Returns the hook handle (.remove() to undo)."""
    import torch
    v = torch.as_tensor(vector, dtype=model.dtype) * multiplier

    def hook(module, inputs, output):
        if isinstance(output, tuple):         # older transformers: (hidden, attn, cache)
            return (output[0] + v,) + tuple(output[1:])
        return output + v
    return model.model.layers[layer].register_forward_hook(hook)


def torch_check(hf_dir, layer, vector, check):
    try:
        import torch
    except ImportError:
        print("SKIP torch: not installed")
        return
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        print("SKIP torch: transformers not installed")
        return
    model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, 9, 11, 17]])
    with torch.no_grad():
        base = model(ids, output_hidden_states=True).hidden_states[layer + 1]
        h = add_steering(model, layer, vector, 2.0)
        steered = model(ids, output_hidden_states=True).hidden_states[layer + 1]
        h.remove()
        again = model(ids, output_hidden_states=True).hidden_states[layer + 1]
    diff = (steered - base).numpy()
    check(np.allclose(diff, 2.0 * vector[None, None, :], atol=1e-5), "hooked layer output moved by 2 v")
    check(torch.equal(again, base), "removing the hook restores the model")


def main():
    lib, inspect_json = sys.argv[1], sys.argv[2]
    ref = json.load(open(inspect_json))["runs"]
    check = Checks("python_reader")

    with h5py.File(lib, "r") as f:
        runs = list_runs(f)
        want = [(r["model"], r["behavior"], r["layer"], r["run"], r["newest"]) for r in ref]
        check(sorted(runs) == sorted(want), f"runs {runs} != inspect {want}")
        for r in ref:
            d = read_run(f, r["model"], r["behavior"], r["layer"], r["run"])
            v, loss = d["vector"], d["loss"]
            check(v.dtype == np.float32 and len(v) == r["hidden"], f"vector [{len(v)}] {v.dtype}")
            check(len(loss) == r["steps"] and float(loss[-1]) == r["final_loss"], "loss curve")
            check(abs(np.linalg.norm(v.astype(np.float64)) - r["vector_norm"]) <= 1e-6 * r["vector_norm"],
                  "|vector|")
            check(d["attrs"]["status"] == r["status"] and d["attrs"]["created"] == r["created"], "attrs")
            ev = r.get("eval", {}).get("ab", {})
            check(set(d["ab"]) == set(ev), f"methods {set(d['ab'])} != {set(ev)}")
            for method, a in d["ab"].items():  # float64 in the file and in the JSON: exact
                check(list(a["multipliers"]) == ev[method]["multipliers"] and
                      list(a["p_match"]) == ev[method]["p_match"] and
                      a["logodds_slope"] == ev[method]["logodds_slope"], f"{method} curve")
            if r["newest"]:  # run=None reads the newest: the same vector
                check(np.array_equal(read_run(f, r["model"], r["behavior"], r["layer"])["vector"], v), "newest")
        if len(sys.argv) > 3:
            m, b, layer, run, _ = runs[0]
            torch_check(sys.argv[3], layer, read_run(f, m, b, layer, run)["vector"], check)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
