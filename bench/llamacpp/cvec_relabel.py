#!/usr/bin/env python3
"""bench/llamacpp/cvec_relabel.py IN.gguf OUT.gguf N — the control vector of IN with its one
direction tensor renamed direction.N (metadata kept). The bench writes the neighbours of the
exported layer with it, to show which llama.cpp index reproduces our steering."""
import sys
import numpy as np
import gguf

src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = gguf.GGUFReader(src)
(t,) = r.tensors
w = gguf.GGUFWriter(dst, "controlvector")
w.add_string("controlvector.model_hint", bytes(r.fields["controlvector.model_hint"].parts[-1]).decode())
w.add_int32("controlvector.layer_count", 1)
w.add_tensor(f"direction.{n}", np.asarray(t.data, dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
