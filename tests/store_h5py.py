#!/usr/bin/python3
"""tests/store_h5py.py LIB.h5 — read a bipo vector library with h5py (an independent reader).

Asserts the layout of docs/LIBRARY.md itself (exit 1 with "store_h5py: FAIL ..." on the first
violation) and prints a JSON summary of everything in the file on stdout, which
tests/test_store.c compares against the values it wrote. Floats are printed as Python floats
(exact for float32); u64 arrays as hex strings (JSON integers stop at 2^53 in many readers).
"""
import json
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # the test treats 77 as "skipped"
    print(f"store_h5py: SKIP ({e})", file=sys.stderr)
    sys.exit(77)


def fail(msg):
    print(f"store_h5py: FAIL {msg}", file=sys.stderr)
    sys.exit(1)


def need(cond, msg):
    if not cond:
        fail(msg)


def attr_value(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return [attr_value(x) for x in v.tolist()]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def attrs(obj):
    return {k: attr_value(v) for k, v in obj.attrs.items()}


def f32(ds, name, n=None):
    need(isinstance(ds, h5py.Dataset), f"{name} is not a dataset")
    need(ds.dtype == np.float32, f"{name} has dtype {ds.dtype}, expected float32")
    need(ds.ndim == 1, f"{name} is not 1-D")
    if n is not None:
        need(ds.shape[0] == n, f"{name} has {ds.shape[0]} values, expected {n}")
    return [float(x) for x in ds[()]]


def run_arrays(g, path, C):
    out = {
        "vector": f32(g["vector"], path + "/vector", C),
        "loss": f32(g["loss"], path + "/loss"),
        "heldout_pos": f32(g["heldout_loss_pos"], path + "/heldout_loss_pos"),
        "heldout_neg": f32(g["heldout_loss_neg"], path + "/heldout_loss_neg"),
        "epochs": {},
    }
    need(len(out["heldout_pos"]) == len(out["heldout_neg"]), f"{path}: held-out curves differ in length")
    for name, ds in g["epoch_vectors"].items():
        need(name.startswith("epoch_"), f"{path}/epoch_vectors/{name}: bad name")
        out["epochs"][name[len("epoch_"):]] = f32(ds, f"{path}/epoch_vectors/{name}", C)
    return out


def main():
    need(len(sys.argv) == 2, "usage: store_h5py.py LIB.h5")
    with h5py.File(sys.argv[1], "r") as f:
        root = attrs(f)
        need(root.get("format") == "bipo-library", f"root format = {root.get('format')!r}")
        need(root.get("format_version") == 1, f"root format_version = {root.get('format_version')!r}")
        for top in ("models", "checkpoints", "provenance"):
            need(top in f, f"/{top} missing")
        summary = {"root": root, "models": {}, "runs": {}, "newest": {}, "checkpoints": {}, "provenance": {}}
        for mid, mg in f["models"].items():
            ma = attrs(mg)
            for k in ("source", "architecture", "hidden", "layers", "fingerprint", "dtype"):
                need(k in ma, f"/models/{mid} lacks attribute {k}")
            summary["models"][mid] = ma
            C = ma["hidden"]
            for beh, bg in mg["behaviors"].items():
                for lname, lg in bg.items():
                    need(lname.startswith("layer_"), f"unexpected group {mid}/{beh}/{lname}")
                    lpath = f"{mid}/{beh}/{lname}"
                    newest = attrs(lg).get("newest")
                    need(newest in lg["runs"], f"{lpath}: newest {newest!r} is not a run")
                    summary["newest"][lpath] = newest
                    for rname, rg in lg["runs"].items():
                        rpath = f"{lpath}/{rname}"
                        ra = attrs(rg)
                        need(ra.get("status") == "complete", f"{rpath}: status {ra.get('status')!r}")
                        need(rname.startswith(ra["config_hash"][:12]), f"{rpath}: name vs config_hash")
                        for k in ("created", "finished", "vector_norm", "model_fingerprint"):
                            need(k in ra, f"{rpath} lacks attribute {k}")
                        r = run_arrays(rg, rpath, C)
                        norm = float(np.linalg.norm(np.asarray(r["vector"], dtype=np.float64)))
                        need(abs(norm - ra["vector_norm"]) <= 1e-9 * max(1.0, norm), f"{rpath}: vector_norm")
                        r["attrs"] = ra
                        summary["runs"][rpath] = r
        for name, cg in f["checkpoints"].items():
            ca = attrs(cg)
            c = run_arrays(cg, f"checkpoints/{name}", None)
            C = len(c["vector"])
            c["adam_m"] = f32(cg["adam_m"], f"checkpoints/{name}/adam_m", C)
            c["adam_v"] = f32(cg["adam_v"], f"checkpoints/{name}/adam_v", C)
            for k in ("rng", "order"):
                need(cg[k].dtype == np.uint64, f"checkpoints/{name}/{k}: dtype {cg[k].dtype}")
                c[k] = ["%016x" % int(x) for x in cg[k][()]]
            c["attrs"] = ca
            summary["checkpoints"][name] = c
        for name, pg in f["provenance"].items():
            p = {"attrs": attrs(pg)}
            if "config_text" in pg:
                t = pg["config_text"][()]
                p["config_text"] = t.decode() if isinstance(t, bytes) else t
            summary["provenance"][name] = p
    json.dump(summary, sys.stdout)
    print()


main()
