#!/usr/bin/env python3
"""bench/llamacpp/dequantize_gguf.py IN.gguf OUT.gguf — rewrite a GGUF with every tensor as F32.

The reference for bench/forward: our forward runs f32 math on weights dequantized once at load,
so the fair llama.cpp comparison is llama.cpp on the same f32 weights (not its quantized
kernels). Every metadata key/value is copied as is (tokenizer included); every tensor keeps its
name, its GGUF shape and its row order (attn_q/attn_k stay in the converter's permuted layout,
which is what llama.cpp expects); only the data becomes F32 via gguf.quants.dequantize.
general.file_type is set to 0 (ALL_F32) so tools report the right type.
Needs the PyPI package `gguf` (and numpy).
"""
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, GGMLQuantizationType
from gguf.quants import dequantize


def copy_field(w, field):
    """Copy one metadata key/value (scalars, strings and arrays) from a reader field."""
    name = field.name
    vtype = field.types[0]
    if name.startswith("GGUF.") or name == "general.architecture":
        return  # the writer emits these itself
    if name == "general.file_type":
        w.add_uint32(name, 0)  # LLAMA_FTYPE_ALL_F32
        return
    val = field.contents()
    if vtype == GGUFValueType.ARRAY:
        # keep the element type (token_type is INT32, tokens/merges STRING) instead of letting
        # the writer infer it from Python values
        w.add_key_value(name, list(val), vtype, sub_type=field.types[-1])
        return
    w.add_key_value(name, val, vtype)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dequantize_gguf.py IN.gguf OUT.gguf")
    src, dst = sys.argv[1], sys.argv[2]
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    for field in r.fields.values():
        copy_field(w, field)
    for t in r.tensors:
        # t.data is the raw block array; dequantize returns float32 in numpy order
        # (rows first), i.e. shape reversed from GGUF's ne[] order, which is what
        # add_tensor expects for F32 data.
        x = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        x = x.reshape(tuple(int(d) for d in reversed(t.shape)))
        w.add_tensor(t.name, x, raw_dtype=GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(dst)


if __name__ == "__main__":
    main()
