#!/usr/bin/env python3
"""tests/test_export.py — the exported files through other people's readers.

  test_export.py BIPO_PIPELINE TEST_EXPORT

TEST_EXPORT --make-lib writes a small library; BIPO_PIPELINE export writes each format; the raw
f32 export is the reference (test_export.c checks it against the stored vector bit for bit):
  gguf         gguf.GGUFReader (PyPI `gguf`, what llama.cpp's Python tools use)
  safetensors  safetensors.safe_open (PyPI `safetensors`) and a plain json parse of the header
  pt           zipfile (CRC check) + a torch-free unpickler that resolves exactly the globals
               torch.load(weights_only=True) allows; torch.load itself when torch is importable
Prints "test_export_py: N passed, M failed"; exit 1 on any failure.
"""
import json, os, pickle, struct, subprocess, sys, tempfile, zipfile
import numpy as np

BIN, MAKE = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def export(lib, out, *args):
    r = subprocess.run([BIN, "export", lib, "-o", out, *args], capture_output=True, text=True)
    check(r.returncode == 0, f"export {' '.join(args)}: {r.stderr.strip()}")


class TorchFree(pickle.Unpickler):
    """Unpickles torch.save's data.pkl without torch: a tensor becomes a numpy array."""

    def __init__(self, f, zf, prefix):
        super().__init__(f)
        self.zf, self.prefix = zf, prefix

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            def rebuild(storage, offset, size, stride, requires_grad, hooks):
                assert stride == tuple(int(np.prod(size[i + 1:])) for i in range(len(size)))
                return storage[offset:offset + int(np.prod(size))].reshape(size)
            return rebuild
        if (module, name) == ("torch", "FloatStorage"):
            return np.float32
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (weights_only)")

    def persistent_load(self, pid):
        kind, dtype, key, location, numel = pid
        assert kind == "storage" and location == "cpu"
        raw = self.zf.read(f"{self.prefix}/data/{key}")
        assert len(raw) == numel * 4
        return np.frombuffer(raw, dtype="<f4")


def main():
    tmp = tempfile.mkdtemp(prefix="bipo-test-export-py.")
    subprocess.run([MAKE, "--make-lib", tmp], check=True)
    lib = f"{tmp}/lib.h5"
    sel = ["--behavior", "power-seeking", "--layer", "2"]
    export(lib, f"{tmp}/v.f32", *sel)
    ref = np.fromfile(f"{tmp}/v.f32", dtype="<f4")
    check(ref.size == 64, "the f32 reference has 64 floats")

    # gguf
    import gguf
    export(lib, f"{tmp}/v.gguf", *sel, "--format", "gguf")
    rd = gguf.GGUFReader(f"{tmp}/v.gguf")
    def field(k):
        f = rd.fields[k]
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else int(v[0])
    check(field("general.architecture") == "controlvector", "gguf general.architecture")
    check(field("controlvector.model_hint") == "llama", "gguf model_hint")
    check(field("controlvector.layer_count") == 1, "gguf layer_count")
    check(field("bipo.layer") == 2 and field("bipo.method") == "bipo", "gguf bipo.layer/method")
    check([t.name for t in rd.tensors] == ["direction.2"], "gguf: the one tensor is direction.2")
    t = rd.tensors[0]
    check(t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [64], "gguf F32 [64]")
    check(np.array_equal(np.asarray(t.data, dtype="<f4"), ref), "gguf data == the vector")
    check(t.data_offset % 32 == 0, "gguf data offset 32-aligned")

    # safetensors
    export(lib, f"{tmp}/v.safetensors", *sel, "--format", "safetensors")
    raw = open(f"{tmp}/v.safetensors", "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    check(set(hdr) == {"__metadata__", "layers.2"}, f"safetensors keys {sorted(hdr)}")
    md = hdr["__metadata__"]
    check(md["model"] == "tiny-llama" and md["behavior"] == "power-seeking" and md["layer"] == "2"
          and md["method"] == "bipo" and md["run"] == "cccccccccccc", f"safetensors metadata {md}")
    try:
        from safetensors import safe_open
        with safe_open(f"{tmp}/v.safetensors", framework="numpy") as f:
            check(f.metadata() == md, "safetensors: safe_open metadata")
            check(np.array_equal(f.get_tensor("layers.2"), ref), "safetensors: safe_open tensor")
    except ImportError:
        print("test_export_py: safetensors package missing (scripts/setup installs it): "
              "header checked with json only")
        check(np.array_equal(np.frombuffer(raw[8 + n:], "<f4"), ref), "safetensors data")

    # pt: lm-eval's steer_config
    export(lib, f"{tmp}/v.pt", *sel, "--format", "pt", "--multiplier", "4")
    with zipfile.ZipFile(f"{tmp}/v.pt") as zf:
        check(zf.testzip() is None, "pt: every zip CRC is right")
        names = zf.namelist()
        check(names == ["archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/version"],
              f"pt records {names}")
        cfg = TorchFree(zf.open("archive/data.pkl"), zf, "archive").load()
    check(list(cfg) == ["layers.2"], f"pt hookpoints {list(cfg)}")
    e = cfg.get("layers.2", {})
    check(e.get("action") == "add" and e.get("steering_coefficient") == 4.0 and e.get("bias", 1) is None,
          f"pt entry {e}")
    check(np.array_equal(e.get("steering_vector"), ref), "pt steering_vector == the vector")
    try:
        import torch
    except ImportError:
        torch = None
        print("test_export_py: torch not importable: torch.load not run (the torch-free "
              "unpickler above resolves the same globals)")
    if torch is not None:
        c2 = torch.load(f"{tmp}/v.pt", weights_only=True)
        v = c2["layers.2"]["steering_vector"]
        check(v.dtype == torch.float32 and np.array_equal(v.numpy(), ref), "torch.load: the vector")

    # --all: the names
    export(lib, f"{tmp}/all", "--all", "--format", "safetensors")
    want = {"tiny-llama__power-seeking__L0__bipo.safetensors", "tiny-llama__power-seeking__L2__bipo.safetensors",
            "tiny-llama__wealth-seeking__L3__bipo.safetensors"}
    check(set(os.listdir(f"{tmp}/all")) == want, f"--all names {sorted(os.listdir(f'{tmp}/all'))}")

    if failed == 0:
        subprocess.run(["rm", "-rf", tmp])
    print(f"test_export_py: {passed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(main())
