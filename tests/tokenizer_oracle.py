#!/usr/bin/python3
"""tests/tokenizer_oracle.py — independent references for the C tokenizer tests.

  tokenizer_oracle.py spm DATA_DIR OUT_DIR
      Reads the Llama-2 SentencePiece model (DATA_DIR/llama2-tokenizer/tokenizer.model) with
      the distribution's sentencepiece package and writes:
        OUT_DIR/llama2-vocab.gguf     vocab-only GGUF (tokens, scores, token types, ids)
        OUT_DIR/llama2-hf/tokenizer.json (+ tokenizer_config.json)  HF fast-tokenizer file
                                      (merges derived from the pieces as HF's converter does)
        OUT_DIR/spm-cases.txt         one case per line: hex(input bytes) TAB ids (no BOS)
      The inputs are a few thousand strings from DATA_DIR (BiPO questions/answers, TruthfulQA,
      AdvBench, persona statements) plus edge cases (empty, whitespace runs, emoji, CJK,
      invalid UTF-8, NUL, digits, <0x..> literals, special-token texts).

  tokenizer_oracle.py hf-from-gguf GGUF OUT_DIR
      Writes OUT_DIR/tokenizer.json + tokenizer_config.json for a byte-level GGUF vocab
      (SmolLM2 style: Digits + ByteLevel pre-tokenizer), for the GGUF vs HF loader parity test.

Exit status 77 when sentencepiece is not installed (the test is then skipped).
"""
import csv
import glob
import json
import os
import random
import struct
import sys

# ---- corpus ----------------------------------------------------------------------------------


def corpus(data, n_max=3000):
    rng = random.Random(1234)
    texts = []
    for f in sorted(glob.glob(os.path.join(data, "bipo/data/*/*.csv"))):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for k in ("question", "matching", "not_matching"):
                    if row.get(k):
                        texts.append(row[k])
                        if k != "question":
                            texts.append(" " + row[k])  # BiPO responses carry a leading space
    for f in sorted(glob.glob(os.path.join(data, "truthfulqa/*.csv"))):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                texts.extend(x for x in row if x)
    for f in sorted(glob.glob(os.path.join(data, "advbench/*.csv"))):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                texts.extend(x for x in row if x)
    for f in sorted(glob.glob(os.path.join(data, "anthropic-evals/persona/*.jsonl")))[:40]:
        with open(f, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= 30:
                    break
                o = json.loads(line)
                texts.append(o["statement"])
                texts.append(o["question"])
    rng.shuffle(texts)
    out = [t.encode("utf-8") for t in texts[:n_max]]
    return out


def edge_cases():
    s = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \t \n ", "          x",
        "Hello world", " Hello world", "Hello  world", "a  b   c    d",
        "🦙", "🚀 (normal) 😶\u200d🌫️ ✅", "👍🏽👩‍👩‍👧‍👦", "我想在apple工作1314151天～",
        "こんにちは世界", "안녕하세요", "нещо на Български", "Cửa Việt", "ἀρχή", "مرحبا بالعالم",
        "0", "12", "123", "3.14159", "1,000,000", "2024-01-01", "٣٤٥", "Ⅻ", "½",
        "<0x41>", "<0x0A>", "<s>", "</s>", "<unk>", "[INST]", "<<SYS>>\n", "[/INST]",
        "\u00a0nbsp", "\u3000ideographic", "\u2028sep", "zero\u200bwidth", "\ufeffbom",
        "tab\there", "x" * 300, " " * 50, "ab" * 200, "!!!!!!", "...", "'s 't 're",
        "I've 'told he's there, 'RE you sure? 'M not", "€$£¥", "\U0010FFFF", "\U0001F600" * 5,
    ]
    b = [x.encode("utf-8") for x in s]
    b += [b"a\x00b", b"\x00", b"\x00\x00 \x00", b"a\xffb", b"\xe2\x82", b"\xe2\x82a", b"\xc0\x80",
          b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80\x80\x80", b"caf\xe9", b"\xff\xfe\xfd",
          b"ok \xf0\x9f\x98 broken emoji", b"\xc3"]
    return b


# ---- GGUF writing / reading (just what the tests need) ---------------------------------------

T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR = 4, 5, 6, 7, 8, 9


def gguf_str(s):
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_write(path, kvs):
    out = [b"GGUF", struct.pack("<IQQ", 3, 0, len(kvs))]
    for k, (t, v) in kvs:
        out.append(gguf_str(k) + struct.pack("<I", t))
        if t == T_STR:
            out.append(gguf_str(v))
        elif t == T_U32:
            out.append(struct.pack("<I", v))
        elif t == T_BOOL:
            out.append(struct.pack("<B", 1 if v else 0))
        elif t == T_ARR:
            et, items = v
            out.append(struct.pack("<IQ", et, len(items)))
            if et == T_STR:
                out.extend(gguf_str(x) for x in items)
            elif et == T_F32:
                out.append(struct.pack("<%df" % len(items), *items))
            elif et == T_I32:
                out.append(struct.pack("<%di" % len(items), *items))
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def gguf_read_kv(path):
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as f:
        def rd(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))

        def rs():
            (n,) = rd("Q")
            return f.read(n).decode("utf-8", "surrogateescape")

        def rv(t):
            if t == T_STR:
                return rs()
            if t == T_ARR:
                at, n = rd("IQ")
                if at != T_STR:
                    return list(rd("%d%s" % (n, sizes[at])))
                return [rv(at) for _ in range(n)]
            return rd(sizes[t])[0]

        assert f.read(4) == b"GGUF"
        _, _, nkv = rd("IQQ")
        kv = {}
        for _ in range(nkv):
            k = rs()
            (t,) = rd("I")
            kv[k] = rv(t)
        return kv


# ---- modes -------------------------------------------------------------------------------------


def mode_spm(data, out):
    try:
        import sentencepiece as spm
    except ImportError:
        print("tokenizer_oracle: python3 sentencepiece is not installed", file=sys.stderr)
        sys.exit(77)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(data, "llama2-tokenizer/tokenizer.model"))
    V = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(V)]
    scores = [sp.get_score(i) for i in range(V)]
    types = []
    for i in range(V):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    os.makedirs(out, exist_ok=True)
    gguf_write(os.path.join(out, "llama2-vocab.gguf"), [
        ("general.architecture", (T_STR, "llama")),
        ("tokenizer.ggml.model", (T_STR, "llama")),
        ("tokenizer.ggml.tokens", (T_ARR, (T_STR, pieces))),
        ("tokenizer.ggml.scores", (T_ARR, (T_F32, scores))),
        ("tokenizer.ggml.token_type", (T_ARR, (T_I32, types))),
        ("tokenizer.ggml.bos_token_id", (T_U32, sp.bos_id())),
        ("tokenizer.ggml.eos_token_id", (T_U32, sp.eos_id())),
        ("tokenizer.ggml.unknown_token_id", (T_U32, sp.unk_id())),
        ("tokenizer.ggml.add_bos_token", (T_BOOL, True)),
        ("tokenizer.ggml.add_eos_token", (T_BOOL, False)),
    ])
    # HF tokenizer.json: merges as HF's SentencePieceExtractor builds them — every split of a
    # normal piece into two vocabulary pieces, ordered by the merged piece's score.
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = []
    for i, p in enumerate(pieces):
        if types[i] != 1 or len(p) < 2:
            continue
        for k in range(1, len(p)):
            a, b = p[:k], p[k:]
            if a in vocab and b in vocab:
                merges.append((-scores[i], vocab[a], vocab[b], a, b))
    merges.sort()
    added = [{"id": i, "content": pieces[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for i in range(V) if types[i] in (2, 3)]
    tj = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "vocab": vocab, "merges": ["%s %s" % (m[3], m[4]) for m in merges]},
    }
    hf = os.path.join(out, "llama2-hf")
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(hf, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(tj, fh, ensure_ascii=False)
    with open(os.path.join(hf, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                   "eos_token": "</s>", "unk_token": "<unk>"}, fh)
    cases = edge_cases() + corpus(data)
    with open(os.path.join(out, "spm-cases.txt"), "w") as fh:
        for b in cases:
            ids = sp.encode(b)
            fh.write("%s\t%s\n" % (b.hex(), " ".join(map(str, ids))))
    print("tokenizer_oracle: %d cases, %d merges" % (len(cases), len(merges)))


def mode_hf_from_gguf(gguf, out):
    kv = gguf_read_kv(gguf)
    tokens = kv["tokenizer.ggml.tokens"]
    types = kv.get("tokenizer.ggml.token_type", [1] * len(tokens))
    vocab = {t: i for i, t in enumerate(tokens) if types[i] in (1, 6)}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": types[i] == 3} for i, t in enumerate(tokens) if types[i] in (3, 4)]
    for a in added:
        vocab[a["content"]] = a["id"]
    tj = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": kv["tokenizer.ggml.merges"]},
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(tj, fh, ensure_ascii=False)
    cfg = {"add_bos_token": bool(kv.get("tokenizer.ggml.add_bos_token", False)),
           "bos_token": tokens[kv["tokenizer.ggml.bos_token_id"]],
           "eos_token": tokens[kv["tokenizer.ggml.eos_token_id"]]}
    if "tokenizer.chat_template" in kv:
        cfg["chat_template"] = kv["tokenizer.chat_template"]
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump(cfg, fh, ensure_ascii=False)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("spm", "hf-from-gguf"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "spm":
        mode_spm(sys.argv[2], sys.argv[3])
    else:
        mode_hf_from_gguf(sys.argv[2], sys.argv[3])
