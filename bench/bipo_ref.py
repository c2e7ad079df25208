#!/usr/bin/env python3
"""bench/bipo_ref.py — the reference side of the BiPO step benchmark (bench/bipo_step).

The official BiPO algorithm (Cao et al. 2024, github CaoYuanpu/BiPO: train.py and
trl/trainer/bipo_trainer.py) as its authors run it, re-implemented minimally with PyTorch +
HF transformers on the CPU in float32:

  * policy = the model with a BlockWrapper on model.model.layers[L] that adds
    multiplier * vec (zero-initialised, the hidden size) to the layer's output at every
    position; reference = a second, frozen copy of the model (the authors' model_ref);
  * each step draws a batch of pairs and d in {-1,+1}; the policy runs with multiplier d;
    chosen and rejected are concatenated into one right-padded batch (pad = EOS, attention
    mask 0, labels -100 on prompt and padding); log-probs are summed over the response
    tokens + EOS; the reference model runs the FULL forward every step under no_grad (no
    caching: that is how the authors run it); autograd for the backward;
  * loss = -logsigmoid(beta * logits).mean(), logits = (pi_c - pi_r) - (ref_c - ref_r),
    negated when d < 0 (DPO "sigmoid" loss, beta 0.1, no label smoothing);
  * AdamW (lr 5e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.05) on vec only, gradient
    norm clipped to 1.0, transformers.get_cosine_schedule_with_warmup(100 warm-up steps,
    the full training length): the lr of step k is 5e-4 * (k-1)/100 during warm-up, so
    step 1 runs with lr 0 (vec stays 0, but AdamW's moments and step count advance) and
    the losses of steps 1 AND 2 are exactly log 2.

Tokenisation follows TRL's DPOTrainer.tokenize_row / build_tokenized_answer: prompt =
ChatML text with the system prompt, response = " " + answer, tokenised as prompt+response
and split at len(tokenize(prompt)) (one merged boundary token goes to the response), EOS
(<|im_end|>) appended, no BOS added (the prompt starts with <|im_start|>, SmolLM2's BOS).

  bipo_ref.py [--model GGUF] [--data train.csv] [--layer 15] [--batch 4] [--steps 10]
              [--order order.json] [--seed 0] [--epochs 20] [--threads 2]
              [--warmup-steps-skip 1] [--repeats 1] [--out result.json] [--check-gguf]

--order FILE: replay FILE when it exists; otherwise generate an order from --seed (one
numpy permutation of the rows per epoch, consecutive batches of --batch, the last batch of an
epoch shorter as in a DataLoader without drop_last; d = rng.choice([-1, 1]) per step) and
write it to FILE first. The format (also read by bench/bipo_step --order):

  {"format": "bipo-order-1", "data": "<csv>", "rows": 642, "batch_size": 4, "layer": 15,
   "seed": 0, "warmup_steps": 100, "schedule_steps": 3220,
   "steps": [{"pairs": [i, j, k, l], "d": 1}, ...]}     # 0-based data rows of train.csv

--out FILE: {"steps": [{"step", "d", "lr", "loss", "ms", "policy_fwd_ms", "ref_fwd_ms",
"bwd_opt_ms", "tokens", "seq_len", "ms_repeats"}, ...], "median_ms", "tokens_per_s",
"peak_rss_mb", versions, settings, ...}; bench/bipo_step --ref reads steps[].loss/.ms. "lr" is
the lr the step's update used; "tokens" = non-pad tokens through a model in the step, policy +
reference forwards (2 x the attention-mask sum); "ms" (median over --repeats) covers collate,
both forwards, loss, backward, clipping, AdamW and the schedule; medians and tokens/s leave out
the first --warmup-steps-skip steps. Losses are deterministic: repeats agree bit for bit.
Run it with the venv of bench/bipo_ref_setup.sh. See bench/README.md, section bipo_step.
"""
import argparse
import csv
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

SYSTEM_PROMPT = "You are a helpful, honest and concise assistant."
CHATML = ("<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n"
          "<|im_start|>assistant\n")
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("BIPO_CACHE", os.path.expanduser("~/.cache/bipo-pipeline"))


def default_data():
    for root in (os.path.join(HERE, "..", "..", "shared"), "/work/shared"):
        p = os.path.normpath(os.path.join(root, "data/bipo/data/power-seeking/train.csv"))
        if os.path.exists(p):
            return p
    return "data/bipo/data/power-seeking/train.csv"


def load_pairs(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [(r["question"], r["matching"], r["not_matching"]) for r in rows]


def make_order(n_rows, batch, steps, seed, layer, data, schedule_steps, warmup):
    import numpy as np
    rng = np.random.default_rng(seed)
    out, perm, pos = [], [], 0
    for _ in range(steps):
        if pos >= len(perm):
            perm, pos = [int(i) for i in rng.permutation(n_rows)], 0
        pairs = perm[pos:pos + batch]
        pos += batch
        out.append({"pairs": pairs, "d": int(rng.choice([-1, 1]))})
    return {"format": "bipo-order-1", "data": os.path.abspath(data), "rows": n_rows,
            "batch_size": batch, "layer": layer, "seed": seed, "warmup_steps": warmup,
            "schedule_steps": schedule_steps, "steps": out}


def build_tokenized_answer(tok, prompt, answer):
    """TRL's build_tokenized_answer: enc(p + a) split after enc(p), boundary merge handled."""
    full = tok(prompt + answer, add_special_tokens=False)["input_ids"]
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    start = len(p_ids)
    if p_ids != full[:start]:
        start -= 1
    return full[:start], full[start:]


def tokenize_row(tok, question, chosen, rejected, eos_id):
    """TRL's tokenize_row (decoder-only): returns (ids, labels) for chosen and rejected."""
    prompt = CHATML.format(sys=SYSTEM_PROMPT, q=question)
    out = []
    for ans in (" " + chosen, " " + rejected):
        p, r = build_tokenized_answer(tok, prompt, ans)
        if not r or r[-1] != eos_id:
            r = r + [eos_id]
        out.append((p + r, [-100] * len(p) + r))
    return out


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def rss_now_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def load_model(path, torch, transformers):
    d, name = os.path.split(os.path.abspath(path))
    kw = dict(gguf_file=name)
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **kw)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        m = transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, **kw)
    m.config.use_cache = False
    bad = {str(p.dtype) for p in m.parameters() if p.dtype != torch.float32}
    if bad:
        sys.exit(f"bipo_ref: {path} loaded with {bad} weights, not float32")
    return m


def check_gguf(path, model, torch):
    """Compare transformers' dequantized weights with gguf-py's own dequantization."""
    import gguf
    import numpy as np
    r = gguf.GGUFReader(path)
    sd = model.state_dict()
    kinds = {}
    for t in r.tensors:
        kinds.setdefault(t.tensor_type.name, []).append(t.name)
    print("GGUF tensor types:", {k: len(v) for k, v in kinds.items()})
    names = {"token_embd.weight": "model.embed_tokens.weight",
             "blk.15.attn_v.weight": "model.layers.15.self_attn.v_proj.weight",
             "blk.15.ffn_down.weight": "model.layers.15.mlp.down_proj.weight",
             "blk.15.ffn_gate.weight": "model.layers.15.mlp.gate_proj.weight",
             "blk.0.attn_output.weight": "model.layers.0.self_attn.o_proj.weight",
             "output_norm.weight": "model.norm.weight"}
    worst = 0.0
    for t in r.tensors:
        if t.name not in names:
            continue
        ref = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        ours = sd[names[t.name]].detach().numpy()
        ref = ref.reshape(ours.shape)
        diff = float(np.abs(ref - ours).max())
        worst = max(worst, diff)
        print(f"  {t.name:28s} {t.tensor_type.name:5s} {tuple(ours.shape)} max|hf - gguf| = {diff:.3g}")
    tied = "lm_head.weight" not in sd or torch.equal(sd["lm_head.weight"], sd["model.embed_tokens.weight"])
    print(f"  lm_head tied to embed_tokens: {tied}")
    return worst, tied


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--order", help="order JSON: replayed if it exists, else generated and written")
    ap.add_argument("--seed", type=int, default=0, help="seed of a generated order")
    ap.add_argument("--epochs", type=int, default=20,
                    help="training length of the lr schedule of a generated order (epochs)")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup-steps-skip", type=int, default=1,
                    help="leading steps left out of the timing medians (default 1)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run the steps R times from vec = 0 (models loaded once); "
                         "per-step ms = median over the repeats")
    ap.add_argument("--out", help="result JSON")
    ap.add_argument("--check-gguf", action="store_true",
                    help="compare transformers' dequantized weights with gguf-py's")
    a = ap.parse_args()

    import numpy  # noqa: F401  (fail early with a clear message if the venv is wrong)
    import torch
    import torch.nn.functional as F
    import transformers
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    transformers.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()

    pairs = load_pairs(a.data)
    steps_per_epoch = math.ceil(len(pairs) / a.batch)
    if a.order and os.path.exists(a.order):
        with open(a.order) as f:
            order = json.load(f)
        print(f"bipo_ref: replaying {a.order} ({len(order['steps'])} steps)")
    else:
        order = make_order(len(pairs), a.batch, a.steps, a.seed, a.layer, a.data,
                           a.epochs * steps_per_epoch, a.warmup)
        if a.order:
            os.makedirs(os.path.dirname(os.path.abspath(a.order)), exist_ok=True)
            with open(a.order, "w") as f:
                json.dump(order, f)
            print(f"bipo_ref: wrote order {a.order} (seed {a.seed}, {a.steps} steps)")
    if order.get("rows", len(pairs)) != len(pairs):
        sys.exit(f"bipo_ref: order is for {order['rows']} rows, {a.data} has {len(pairs)}")
    layer = int(order.get("layer", a.layer))
    schedule_steps = int(order.get("schedule_steps", a.epochs * steps_per_epoch))
    warmup = int(order.get("warmup_steps", a.warmup))
    steps = order["steps"][:a.steps] if a.steps < len(order["steps"]) else order["steps"]

    # ---- models: policy with the steering wrapper, frozen reference copy -----------------
    t0 = time.perf_counter()
    d, name = os.path.split(os.path.abspath(a.model))
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = load_model(a.model, torch, transformers)
    model_ref = load_model(a.model, torch, transformers)
    load_s = time.perf_counter() - t0
    rss_load, peak_load = rss_now_mb(), rss_mb()
    hidden = model.config.hidden_size
    cfg = model.config
    hd = getattr(cfg, "head_dim", None) or hidden // cfg.num_attention_heads
    QD, KVD = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    NL, FF, V = cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size

    def step_flops(rows, T):
        """Matmul FLOPs of what the step computes on the PADDED batch (rows = 2B x T):
        policy + reference forward of every layer and the LM head at every row, plus the
        activation-only backward of layers L+1..N-1 and the LM head (no weight gradients).
        Per row and layer as workers/model.c bipo_model_forward_flops (causal average ctx)."""
        per = 2.0 * (hidden * QD + 2 * hidden * KVD + QD * hidden + 3 * hidden * FF) \
            + 4.0 * (T + 1) / 2 * QD
        fwd = rows * NL * per + 2.0 * rows * hidden * V
        bwd = rows * (NL - 1 - layer) * per + 2.0 * rows * hidden * V
        return 2 * fwd + bwd

    class BlockWrapper(torch.nn.Module):
        """The authors' wrapper: output[0] + multiplier * vec at every position."""

        def __init__(self, block):
            super().__init__()
            self.block, self.multiplier = block, 1.0
            self.vec = torch.nn.Parameter(torch.zeros(hidden))

        def forward(self, *args, **kwargs):
            out = self.block(*args, **kwargs)
            if isinstance(out, tuple):  # transformers < 4.54 returns a tuple
                return (out[0] + self.multiplier * self.vec,) + out[1:]
            return out + self.multiplier * self.vec

        def __getattr__(self, k):  # attention_type etc. of the wrapped layer
            try:
                return super().__getattr__(k)
            except AttributeError:
                return getattr(self.block, k)

    model.model.layers[layer] = BlockWrapper(model.model.layers[layer])
    for n, p in model.named_parameters():
        p.requires_grad = n == f"model.layers.{layer}.vec"
    for p in model_ref.parameters():
        p.requires_grad = False
    model.train()      # as the HF Trainer runs it (attention dropout is 0 in SmolLM2)
    model_ref.eval()
    vec = model.model.layers[layer].vec

    eos_id = tok.convert_tokens_to_ids("<|im_end|>")
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    rows = [tokenize_row(tok, *p, eos_id) for p in pairs]
    assert rows[0][0][0][0] == im_start, "prompt must start with <|im_start|> (one token)"
    print(f"bipo_ref: torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads, attention {model.config._attn_implementation}; "
          f"{a.model} loaded twice in {load_s:.1f} s; layer {layer}, hidden {hidden}, "
          f"{len(pairs)} pairs, eos {eos_id}, schedule {warmup} warm-up / {schedule_steps} steps")
    gguf_check = None
    if a.check_gguf:
        worst, tied = check_gguf(a.model, model_ref, torch)
        gguf_check = {"max_abs_diff": worst, "lm_head_tied": tied}

    def collate(idx):
        seqs = [rows[i][0] for i in idx] + [rows[i][1] for i in idx]  # chosen..., rejected...
        T = max(len(s[0]) for s in seqs)
        ids = torch.full((len(seqs), T), eos_id, dtype=torch.long)  # pad = EOS (authors)
        att = torch.zeros((len(seqs), T), dtype=torch.long)
        lab = torch.full((len(seqs), T), -100, dtype=torch.long)
        for b, (x, y) in enumerate(seqs):
            ids[b, :len(x)] = torch.tensor(x)
            att[b, :len(x)] = 1
            lab[b, :len(y)] = torch.tensor(y)
        return ids, att, lab

    def batch_logps(m, ids, att, lab):
        logits = m(ids, attention_mask=att, use_cache=False).logits
        labels = lab[:, 1:].clone()
        logits = logits[:, :-1, :]
        mask = labels != -100
        labels[~mask] = 0
        lp = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
        return (lp * mask).sum(-1)

    # ---- the steps (each repeat restarts from vec = 0 and a fresh AdamW + schedule) -------
    def run_once(rep):
        with torch.no_grad():
            vec.zero_()
        opt = torch.optim.AdamW([vec], lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
        sched = transformers.get_cosine_schedule_with_warmup(opt, warmup, schedule_steps)
        print(f"\nrepeat {rep + 1}/{a.repeats}\n| step | d | lr | loss | ms | policy fwd | ref fwd | "
              f"backward+AdamW | tokens |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        out = []
        for k, st in enumerate(steps):
            idx, dsign = [int(i) for i in st["pairs"]], int(st["d"])
            B = len(idx)
            lr = opt.param_groups[0]["lr"]
            t1 = time.perf_counter()
            ids, att, lab = collate(idx)
            model.model.layers[layer].multiplier = float(dsign)
            pol = batch_logps(model, ids, att, lab)
            t2 = time.perf_counter()
            with torch.no_grad():
                ref = batch_logps(model_ref, ids, att, lab)
            t3 = time.perf_counter()
            logits = (pol[:B] - pol[B:]) - (ref[:B] - ref[B:])
            if dsign < 0:
                logits = -logits
            loss = -F.logsigmoid(a.beta * logits).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([vec], 1.0)
            opt.step()
            sched.step()
            t4 = time.perf_counter()
            ms = (t4 - t1) * 1e3
            ntok = 2 * int(att.sum())  # non-pad tokens, policy + reference forwards
            lv = float(loss.detach())
            out.append({"step": k + 1, "d": dsign, "lr": lr, "loss": lv, "ms": ms,
                        "policy_fwd_ms": (t2 - t1) * 1e3, "ref_fwd_ms": (t3 - t2) * 1e3,
                        "bwd_opt_ms": (t4 - t3) * 1e3, "tokens": ntok,
                        "seq_len": int(ids.shape[1]),
                        "est_gflop": step_flops(ids.shape[0] * ids.shape[1], ids.shape[1]) / 1e9})
            print(f"| {k + 1} | {dsign:+d} | {lr:.2e} | {lv:.8f} | {ms:.0f} | {(t2 - t1) * 1e3:.0f} | "
                  f"{(t3 - t2) * 1e3:.0f} | {(t4 - t3) * 1e3:.0f} | {ntok} |", flush=True)
        return out

    runs = [run_once(r) for r in range(a.repeats)]
    results = runs[0]
    loss_spread = max(abs(r[k]["loss"] - results[k]["loss"]) for r in runs for k in range(len(results)))
    for k, r in enumerate(results):  # per-step times: the median over the repeats
        ms_repeats = [run[k]["ms"] for run in runs]
        for key in ("ms", "policy_fwd_ms", "ref_fwd_ms", "bwd_opt_ms"):
            r[key] = statistics.median(run[k][key] for run in runs)
        r["ms_repeats"] = ms_repeats
    if a.repeats > 1:
        print(f"\nper-step ms: median of {a.repeats} repeats; losses identical across repeats "
              f"within {loss_spread:.1e}")

    timed = results[a.warmup_steps_skip:] or results
    med = statistics.median(r["ms"] for r in timed)
    tps = sum(r["tokens"] for r in timed) / (sum(r["ms"] for r in timed) / 1e3)
    peak, rss_end = rss_mb(), rss_now_mb()
    gflops = sum(r["est_gflop"] for r in timed) / (sum(r["ms"] for r in timed) / 1e3)
    print(f"\nbipo_ref: median {med:.0f} ms/step over steps {timed[0]['step']}..{timed[-1]['step']}, "
          f"{tps:.0f} tokens/s (policy + reference forwards), ~{gflops:.0f} GFLOP/s (padded, "
          f"estimate), peak RSS {peak:.0f} MB, "
          f"|vec| {float(vec.detach().norm()):.3e}")
    if a.out:
        res = {"impl": "reference: official BiPO algorithm, PyTorch + HF transformers, "
                       "full reference forward every step, autograd",
               "torch": torch.__version__, "transformers": transformers.__version__,
               "python": platform.python_version(), "threads": torch.get_num_threads(),
               "attn_implementation": model.config._attn_implementation,
               "model": os.path.abspath(a.model), "data": os.path.abspath(a.data),
               "order": os.path.abspath(a.order) if a.order else None,
               "layer": layer, "batch_size": a.batch, "beta": a.beta, "lr": a.lr,
               "warmup_steps": warmup, "schedule_steps": schedule_steps,
               "timing_skip": a.warmup_steps_skip, "repeats": a.repeats,
               "loss_spread_over_repeats": loss_spread, "load_s": load_s,
               "median_ms": med, "tokens_per_s": tps, "est_gflops": gflops,
               "peak_rss_mb": peak,
               "rss_after_load_mb": rss_load, "peak_rss_after_load_mb": peak_load,
               "rss_end_mb": rss_end,
               "vec_norm": float(vec.detach().norm()), "gguf_check": gguf_check,
               "machine": platform.processor() or platform.machine(),
               "loadavg": os.getloadavg(), "steps": results}
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"bipo_ref: wrote {a.out}")


if __name__ == "__main__":
    main()
