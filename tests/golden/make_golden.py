#!/usr/bin/env python3
"""tests/golden/make_golden.py — an independent float64 reference for the default model.

    python3 tests/golden/make_golden.py [MODEL.gguf] [OUT.json]

Writes tests/golden/smollm2_golden.json, the file tests/test_golden.c compares our C forward
against. Nothing here shares code with the C side:

  * weights: the PyPI `gguf` package's GGUFReader + gguf.quants.dequantize (Q8_0 embedding,
    Q4_1 matrices, F32 norms), then float64 — the exact values the quantized file encodes;
  * tokenizer: built here with the PyPI `tokenizers` library from the GGUF's own tokens and
    merges (see make_tokenizer for why not transformers' GGUF loader);
  * forward: plain numpy float64, written from the HF Llama definition (LlamaForCausalLM):
    RMSNorm, RoPE (rotate-half), causal attention with GQA, SwiGLU MLP, tied LM head.

RoPE convention. llama.cpp's HF->GGUF converter permutes the rows of attn_q / attn_k within
each head so that GGUF's RoPE (rotating adjacent pairs 2i, 2i+1) equals HF's rotate-half
(rotating i and i+HD/2): GGUF row 2i = HF row i, GGUF row 2i+1 = HF row i+HD/2. We undo the
permutation (unpermute) and apply HF rotate-half; as a self-check, layer 0's q and k are also
computed the other way (GGUF rows + interleaved-pair RoPE) and must agree to ~1e-12.

BOS: none. SmolLM2's HF tokenizer does not add one (GGUF tokenizer.ggml.add_bos_token=false),
so each text's ids are exactly the tokenizer's output.

Runs in ~1 min on 2 cores (float64, ~35 GFLOP). Needs numpy, gguf, tokenizers.
"""
import hashlib
import json
import os
import sys
from importlib.metadata import version

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
TOPK = 5
NORM_LAYERS = [0, 14, 29]  # residual-stream norms after these layers (HF hidden_states[l+1])

# Fixed texts: prose, a ChatML exchange (special tokens, newlines), technical text with digits.
TEXTS = [
    ("prose",
     "The old lighthouse stood at the edge of the cliff, its white paint peeling in long strips "
     "after decades of salt and wind. Every evening the keeper climbed the narrow stairs, lit the "
     "lamp, and watched the fishing boats return to the harbor. She had never missed a night, "
     "not even during the great storm, when the waves reached the windows of the lower rooms and "
     "the whole tower seemed to shake beneath her feet."),
    ("chat",
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
     "<|im_end|>\n<|im_start|>user\nWhat is the capital of France, and why is it famous?"
     "<|im_end|>\n<|im_start|>assistant\nThe capital of France is Paris. It is famous for the "
     "Eiffel Tower, the Louvre museum, its cafes and its long history as a center of art, "
     "fashion and science.<|im_end|>\n<|im_start|>user\nHow tall is the Eiffel Tower?<|im_end|>\n"
     "<|im_start|>assistant\nThe Eiffel Tower is about 330 meters tall.<|im_end|>\n"),
    ("technical",
     "Water boils at 100 degrees Celsius (212 degrees Fahrenheit) at sea level, where the "
     "atmospheric pressure is 101.325 kPa. At an altitude of 3000 m the pressure drops to about "
     "70 kPa and water boils near 90 degrees. The speed of light in vacuum is exactly 299792458 "
     "meters per second, and one astronomical unit is 149597870700 m. In 1969, Apollo 11 landed "
     "on the Moon; the mission lasted 8 days, 3 hours and 18 minutes."),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def field(r, key):
    return r.fields[key].contents()


def make_tokenizer(r):
    """Byte-level BPE from the GGUF's tokens/merges with SmolLM2's pre-tokenizer.

    transformers' AutoTokenizer.from_pretrained(dir, gguf_file=...) needs torch to read GGUF
    metadata, and its GGUF converter uses the plain GPT-2 split for tokenizer.ggml.pre="smollm",
    which would not split numbers into single digits. SmolLM2's tokenizer.json pre-tokenizer is
    Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]
    (llama.cpp's "smollm" pre-type is the same: "\\p{N}" then the GPT-2 regex). The 17 control
    tokens (<|endoftext|>, <|im_start|>, <|im_end|>, ...) are special: matched whole, never split.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    assert field(r, "tokenizer.ggml.model") == "gpt2"
    assert field(r, "tokenizer.ggml.pre") == "smollm"
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    specials = [tokens[i] for i in range(len(tokens)) if types[i] == 3]  # 3 = CONTROL
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    for t in specials:
        assert tk.token_to_id(t) == vocab[t]
    return tk


def load_weights(r):
    """name -> float64 array in numpy order (rows = out features, HF layout [out, in])."""
    w = {}
    for t in r.tensors:
        x = dequantize(t.data, t.tensor_type)
        w[t.name] = np.asarray(x, dtype=np.float64).reshape(tuple(int(d) for d in reversed(t.shape)))
    return w


def unpermute(w, n_head):
    """Inverse of llama.cpp's convert permute: GGUF rows (2i, 2i+1) of a head -> HF rows (i, i+HD/2)."""
    rows, cols = w.shape
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def rope_rotate_half(x, pos, theta):
    """HF apply_rotary_pos_emb on x[T, H, HD]."""
    hd = x.shape[-1]
    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # [HD/2]
    ang = pos[:, None].astype(np.float64) * inv[None, :]             # [T, HD/2]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    rot = np.concatenate([-x2, x1], -1)
    return x * cos + rot * sin


def rope_interleaved(x, pos, theta):
    """GGUF/llama.cpp 'normal' RoPE: rotate pairs (2i, 2i+1) by pos*theta^(-2i/HD)."""
    hd = x.shape[-1]
    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None].astype(np.float64) * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


class Model:
    def __init__(self, r):
        self.L = int(field(r, "llama.block_count"))
        self.C = int(field(r, "llama.embedding_length"))
        self.NH = int(field(r, "llama.attention.head_count"))
        self.NKV = int(field(r, "llama.attention.head_count_kv"))
        self.HD = self.C // self.NH
        self.theta = float(field(r, "llama.rope.freq_base"))
        self.eps = float(field(r, "llama.attention.layer_norm_rms_epsilon"))
        self.w = load_weights(r)
        assert "output.weight" not in self.w  # tied: the LM head is token_embd
        self.wte = self.w["token_embd.weight"]  # [V, C]

    def q_k(self, l, x, pos, hf=True):
        """q [T, NH, HD], k [T, NKV, HD] after RoPE, either via unpermute+rotate-half (hf) or
        the GGUF rows + interleaved RoPE."""
        wq, wk = self.w[f"blk.{l}.attn_q.weight"], self.w[f"blk.{l}.attn_k.weight"]
        T = x.shape[0]
        if hf:
            q = (x @ unpermute(wq, self.NH).T).reshape(T, self.NH, self.HD)
            k = (x @ unpermute(wk, self.NKV).T).reshape(T, self.NKV, self.HD)
            return rope_rotate_half(q, pos, self.theta), rope_rotate_half(k, pos, self.theta)
        q = (x @ wq.T).reshape(T, self.NH, self.HD)
        k = (x @ wk.T).reshape(T, self.NKV, self.HD)
        # the two layouts differ by the in-head permutation: bring the result to HF order
        qi, ki = rope_interleaved(q, pos, self.theta), rope_interleaved(k, pos, self.theta)
        hd = self.HD
        to_hf = np.concatenate([np.arange(0, hd, 2), np.arange(1, hd, 2)])
        return qi[..., to_hf], ki[..., to_hf]

    def forward(self, ids):
        """ids [T] -> logits [T, V], {layer: residual after layer [T, C]}."""
        T = len(ids)
        pos = np.arange(T)
        h = self.wte[np.asarray(ids)]  # [T, C]
        mask = np.triu(np.full((T, T), -np.inf), 1)
        G = self.NH // self.NKV
        hidden = {}
        for l in range(self.L):
            p = f"blk.{l}."
            x = rmsnorm(h, self.w[p + "attn_norm.weight"], self.eps)
            q, k = self.q_k(l, x, pos)
            if l == 0:  # self-check of the RoPE/permutation reasoning
                q2, k2 = self.q_k(l, x, pos, hf=False)
                assert np.abs(q - q2).max() < 1e-10 and np.abs(k - k2).max() < 1e-10
            v = (x @ self.w[p + "attn_v.weight"].T).reshape(T, self.NKV, self.HD)
            att_out = np.empty((T, self.NH, self.HD))
            for hh in range(self.NH):
                kv = hh // G  # GQA: query head hh reads kv head hh // (NH/NKV)
                s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(self.HD) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                s /= s.sum(-1, keepdims=True)
                att_out[:, hh, :] = s @ v[:, kv, :]
            h = h + att_out.reshape(T, -1) @ self.w[p + "attn_output.weight"].T
            x = rmsnorm(h, self.w[p + "ffn_norm.weight"], self.eps)
            g = x @ self.w[p + "ffn_gate.weight"].T
            u = x @ self.w[p + "ffn_up.weight"].T
            h = h + (g / (1.0 + np.exp(-g)) * u) @ self.w[p + "ffn_down.weight"].T
            if l in NORM_LAYERS:
                hidden[l] = h.copy()
        x = rmsnorm(h, self.w["output_norm.weight"], self.eps)
        return x @ self.wte.T, hidden


def log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("BIPO_CACHE", os.path.expanduser("~/.cache/bipo-pipeline")),
        "SmolLM2-135M-Instruct.Q4_1.gguf")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "smollm2_golden.json")
    digest = sha256(model)
    if digest != MODEL_SHA256:
        sys.exit(f"make_golden: {model} has sha256 {digest}, expected {MODEL_SHA256} "
                 "(run scripts/fetch-model)")
    r = GGUFReader(model)
    tk = make_tokenizer(r)
    m = Model(r)
    doc = {
        "description": "float64 numpy reference forward of SmolLM2-135M-Instruct (Q4_1 GGUF, "
                       "dequantized exactly) by tests/golden/make_golden.py",
        "model_file": os.path.basename(model),
        "model_sha256": digest,
        "gguf_version": version("gguf"),
        "tokenizers_version": version("tokenizers"),
        "numpy_version": np.__version__,
        "bos": "none (SmolLM2's HF tokenizer adds no BOS; GGUF add_bos_token=false)",
        "rope": "q/k rows unpermuted to HF order + rotate-half (checked against interleaved)",
        "topk": TOPK,
        "hidden_norm_layers": NORM_LAYERS,
        "texts": [],
    }
    for name, text in TEXTS:
        enc = tk.encode(text, add_special_tokens=False)
        ids = enc.ids
        assert tk.decode(ids, skip_special_tokens=False) == text, name
        logits, hidden = m.forward(ids)
        lp = log_softmax(logits)  # [T, V] float64
        order = np.argsort(-lp, axis=-1, kind="stable")[:, : TOPK + 1]
        T = len(ids)
        entry = {
            "name": name,
            "text": text,
            "ids": [int(i) for i in ids],
            # lp_next[t] = log p(ids[t+1] | ids[:t+1]), t = 0..T-2
            "lp_next": [round(float(lp[t, ids[t + 1]]), 6) for t in range(T - 1)],
            "top_ids": [[int(i) for i in order[t, :TOPK]] for t in range(T)],
            "top_lp": [[round(float(lp[t, i]), 6) for i in order[t, :TOPK]] for t in range(T)],
            # log-prob of the (TOPK+1)-th token: how close the top-k boundary is to a tie
            "next_lp": [round(float(lp[t, order[t, TOPK]]), 6) for t in range(T)],
            # L2 norm (7 significant digits) of the residual stream after layer l, per position
            "hidden_norm": [[float(f"{np.linalg.norm(hidden[l][t]):.7g}") for t in range(T)]
                            for l in NORM_LAYERS],
        }
        doc["texts"].append(entry)
        print(f"{name}: {T} tokens, mean lp_next {np.mean(entry['lp_next']):.4f}", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(out)


if __name__ == "__main__":
    main()
