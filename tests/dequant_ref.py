#!/usr/bin/env python3
"""tests/dequant_ref.py — independent reference dequantizer for tests/test_formats.c.

Uses the PyPI `gguf` package (llama.cpp's own Python implementation of the ggml block
formats), installed by scripts/setup. Two modes:

  dequant_ref.py raw DIR TYPE...        DIR/TYPE.bin (raw blocks) -> DIR/TYPE.f32
  dequant_ref.py gguf MODEL DIR NAME... tensor NAME of MODEL     -> DIR/NAME.f32 (+ DIR/NAME.type)
  dequant_ref.py quant DIR TYPE...      DIR/TYPE.in (f32) -> DIR/TYPE.q (gguf's reference quantizer)
  dequant_ref.py permute IN OUT N_HEAD ROWS COLS   convert_hf_to_gguf.py's q/k row permutation
  dequant_ref.py meta FILE OUT          OUT: n_tensors, n_kv, n_tokens, hex of first/last token

Outputs are little-endian float32, flat, in the tensor's memory order. Exit 77 when the
package is missing so the C test can report a skip instead of a failure.
"""
import sys

try:
    import numpy as np
    import gguf
    from gguf import quants
except ImportError as e:  # pragma: no cover - environment problem, not a test failure
    print(f"dequant_ref.py: {e} (run scripts/setup)", file=sys.stderr)
    sys.exit(77)


def dequant(raw: np.ndarray, type_name: str) -> np.ndarray:
    qt = gguf.GGMLQuantizationType[type_name]
    if qt == gguf.GGMLQuantizationType.F32:
        return raw.view(np.float32)
    if qt == gguf.GGMLQuantizationType.F16:
        return raw.view(np.float16).astype(np.float32)
    return quants.dequantize(raw, qt).astype(np.float32).reshape(-1)


def main() -> int:
    mode = sys.argv[1]
    if mode == "check":  # is the reference available? (exit 0, or 77 above)
        return 0
    if mode == "raw":
        out_dir = sys.argv[2]
        for t in sys.argv[3:]:
            raw = np.fromfile(f"{out_dir}/{t}.bin", dtype=np.uint8)
            dequant(raw, t).tofile(f"{out_dir}/{t}.f32")
        return 0
    if mode == "quant":
        out_dir = sys.argv[2]
        for t in sys.argv[3:]:
            x = np.fromfile(f"{out_dir}/{t}.in", dtype=np.float32)
            quants.quantize(x, gguf.GGMLQuantizationType[t]).tofile(f"{out_dir}/{t}.q")
        return 0
    if mode == "permute":  # LlamaModel.permute in llama.cpp's convert_hf_to_gguf.py
        n_head, rows, cols = (int(v) for v in sys.argv[4:7])
        w = np.fromfile(sys.argv[2], dtype=np.float32).reshape(rows, cols)
        w = w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)
        w.tofile(sys.argv[3])
        return 0
    if mode == "meta":
        r = gguf.GGUFReader(sys.argv[2])
        n_kv = sum(1 for k in r.fields if not k.startswith("GGUF."))
        tok = r.fields.get("tokenizer.ggml.tokens")
        with open(sys.argv[3], "w") as f:
            f.write(f"{len(r.tensors)}\n{n_kv}\n")
            if tok is None:
                f.write("0\n-\n-\n")
            else:
                first, last = (bytes(tok.parts[tok.data[i]]).hex() or "-" for i in (0, -1))
                f.write(f"{len(tok.data)}\n{first}\n{last}\n")
        return 0
    if mode == "gguf":
        model, out_dir, names = sys.argv[2], sys.argv[3], sys.argv[4:]
        reader = gguf.GGUFReader(model)
        by_name = {t.name: t for t in reader.tensors}
        for n in names:
            t = by_name[n]
            raw = np.asarray(t.data).reshape(-1).view(np.uint8)
            dequant(raw, t.tensor_type.name).tofile(f"{out_dir}/{n}.f32")
            with open(f"{out_dir}/{n}.type", "w") as f:
                f.write(t.tensor_type.name)
        return 0
    print(f"dequant_ref.py: unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
