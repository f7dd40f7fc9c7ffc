#!/usr/bin/env python3
"""Pretrains the demo model (GPT-BigCode, next-token prediction) on the JDK corpus with PyTorch.

    python3 scripts/demo-model/pretrain.py [--corpus .cache/demo-model] [--out .cache/demo-model/run]
        [--layers 4 --width 128 --heads 4] [--steps 3000] [--minutes 30] [--seed 20240607]

The model is recipes/torch/model.py's GPT-BigCode (one Python GPT-BigCode for the recipe and this script),
trained in full (trainable "all") with the tied lm_head, as the lab's next-token objective computes it.

- Data: `train.bin` / `heldout.bin` from scripts/demo-model/train-tokenizer.ts (uint16 ids, documents
  separated by <|endoftext|>). A step takes `--batch` windows of `--seq` tokens at offsets drawn from a
  generator seeded by (seed, step); inside a window each document is its own segment with positions
  restarting at 0 and a block-diagonal mask — the way the lab packs functions for finetuning.
- Deterministic for a seed, and resumable: `checkpoint.pt` (weights, AdamW state, step, log) is written
  atomically every `--save-minutes` and when the time box (`--minutes`) or `--steps` ends; running the
  same command again continues from it. The schedule (warmup, cosine to 10 %) spans `--steps`.
- Held-out perplexity (fixed windows of heldout.bin) is logged every `--eval-every` steps and at the end.
- Each invocation writes `model.safetensors` + `config.json` (Hugging Face GPT-BigCode layout, the base
  tensors the lab loads) and `log.json` (steps, tokens seen, losses, held-out perplexity) into `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "torch"))
from model import GptBigCodeClassifier, write_safetensors  # noqa: E402

EOT_ID = 0


def model_config(args: argparse.Namespace, vocab_size: int) -> dict:
    return {
        "model_type": "gpt_bigcode",
        "architectures": ["GPTBigCodeForCausalLM"],
        "vocab_size": vocab_size,
        "n_embd": args.width,
        "n_layer": args.layers,
        "n_head": args.heads,
        "n_inner": 4 * args.width,
        "n_positions": args.positions,
        "multi_query": True,
        "activation_function": "gelu_pytorch_tanh",
        "layer_norm_epsilon": 1e-5,
        "bos_token_id": EOT_ID,
        "eos_token_id": EOT_ID,
        "pad_token_id": vocab_size - 1,
    }


def initial_weights(cfg: dict, seed: int) -> dict:
    """GPT-2's initialization: N(0, 0.02), residual projections scaled by 1/√(2·layers), zero biases."""
    g = torch.Generator().manual_seed(seed)
    D, inner, L = cfg["n_embd"], cfg["n_inner"], cfg["n_layer"]
    hd = D // cfg["n_head"]

    def normal(*shape: int, std: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    w = {
        "transformer.wte.weight": normal(cfg["vocab_size"], D),
        "transformer.wpe.weight": normal(cfg["n_positions"], D, std=0.01),
        "transformer.ln_f.weight": torch.ones(D),
        "transformer.ln_f.bias": torch.zeros(D),
    }
    residual = 0.02 / math.sqrt(2 * L)
    for i in range(L):
        p = f"transformer.h.{i}."
        w[p + "ln_1.weight"], w[p + "ln_1.bias"] = torch.ones(D), torch.zeros(D)
        w[p + "ln_2.weight"], w[p + "ln_2.bias"] = torch.ones(D), torch.zeros(D)
        w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = normal(D + 2 * hd, D), torch.zeros(D + 2 * hd)
        w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = normal(D, D, std=residual), torch.zeros(D)
        w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = normal(inner, D), torch.zeros(inner)
        w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = normal(D, inner, std=residual), torch.zeros(D)
    return w


def windows(tokens: np.ndarray, offsets: np.ndarray, seq: int):
    """Input ids, positions and segment ids of windows [offset, offset + seq + 1) (the +1 is the target)."""
    ids = np.stack([tokens[o : o + seq + 1] for o in offsets]).astype(np.int64)
    # a document's <|endoftext|> closes its segment; the next token starts a new one at position 0
    starts = np.zeros_like(ids)
    starts[:, 1:] = ids[:, :-1] == EOT_ID
    segments = np.cumsum(starts, axis=1)
    index = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    first = np.where(starts.astype(bool), index, 0)
    first[:, 0] = 0
    positions = index - np.maximum.accumulate(first, axis=1)
    return torch.from_numpy(ids), torch.from_numpy(positions), torch.from_numpy(segments)


def lm_loss(model: GptBigCodeClassifier, ids, positions, segments) -> torch.Tensor:
    """Mean next-token cross-entropy inside each document (no target across a document boundary)."""
    inputs, targets = ids[:, :-1], ids[:, 1:]
    B, T = inputs.shape
    rows = torch.arange(B).repeat_interleave(T)
    cols = torch.arange(T).repeat(B)
    logits = model(inputs, positions[:, :-1], segments[:, :-1], rows, cols)
    same = (segments[:, 1:] == segments[:, :-1]).reshape(-1)
    losses = F.cross_entropy(logits, targets.reshape(-1), reduction="none")
    return (losses * same).sum() / same.sum().clamp(min=1)


@torch.no_grad()
def heldout_perplexity(model: GptBigCodeClassifier, tokens: np.ndarray, seq: int, count: int) -> float:
    model.eval()
    offsets = np.linspace(0, len(tokens) - seq - 2, count).astype(np.int64)
    total = 0.0
    for chunk in np.array_split(offsets, max(1, count // 8)):
        total += float(lm_loss(model, *windows(tokens, chunk, seq))) * len(chunk)
    model.train()
    return math.exp(total / count)


def lr_at(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save(path: str, state: dict) -> None:
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def export(model: GptBigCodeClassifier, cfg: dict, out: str, source: str) -> None:
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("transformer."):
            tensors[name] = tensor
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, {"format": "pt", "source": source})
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=".cache/demo-model")
    ap.add_argument("--out", default=None, help="checkpoint and export folder (default: CORPUS/run)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--positions", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=512, help="window length in tokens")
    ap.add_argument("--batch", type=int, default=16, help="windows per step")
    ap.add_argument("--steps", type=int, default=3000, help="schedule length (training stops there)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--minutes", type=float, default=30, help="time box of this invocation")
    ap.add_argument("--save-minutes", type=float, default=5)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-windows", type=int, default=64)
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    args = ap.parse_args()
    out = args.out or os.path.join(args.corpus, "run")
    os.makedirs(out, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    deadline = time.time() + args.minutes * 60

    with open(os.path.join(args.corpus, "tokens.json")) as f:
        vocab_size = json.load(f)["vocabSize"]
    train = np.fromfile(os.path.join(args.corpus, "train.bin"), dtype=np.uint16)
    heldout = np.fromfile(os.path.join(args.corpus, "heldout.bin"), dtype=np.uint16)
    cfg = model_config(args, vocab_size)
    torch.manual_seed(args.seed)
    run = {"batching": {"mode": "packed"}, "objective": "ntp", "seed": args.seed, "trainable": "all"}
    model = GptBigCodeClassifier(cfg, initial_weights(cfg, args.seed), run, "f32", recompute=False)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wpe" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    ckpt_path = os.path.join(out, "checkpoint.pt")
    step, log = 0, {"config": cfg, "args": vars(args), "train": [], "heldout": []}
    if os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, weights_only=False)
        if state["config"] != cfg:
            raise SystemExit(f"{ckpt_path} holds another model shape: delete it or pass the same flags.")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, log = state["step"], state["log"]
        print(f"resumed at step {step}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters ({cfg['n_layer']} layers, width {cfg['n_embd']}), vocab {vocab_size}", flush=True)

    def checkpoint() -> None:
        log["args"] = vars(args)
        save(ckpt_path, {"config": cfg, "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "log": log})

    last_save, started, tokens_per_step = time.time(), time.time(), args.batch * args.seq
    model.train()
    while step < args.steps and time.time() < deadline:
        if step % args.eval_every == 0 and (not log["heldout"] or log["heldout"][-1]["step"] != step):
            ppl = heldout_perplexity(model, heldout, args.seq, args.eval_windows)
            log["heldout"].append({"step": step, "perplexity": ppl})
            print(f"step {step}: held-out perplexity {ppl:.2f}", flush=True)
        rng = np.random.default_rng([args.seed, step])
        offsets = rng.integers(0, len(train) - args.seq - 1, size=args.batch)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        loss = lm_loss(model, *windows(train, offsets, args.seq))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        log["train"].append({"step": step, "loss": float(loss)})
        if step % 25 == 0:
            rate = 25 * tokens_per_step / max(1e-9, time.time() - started)
            started = time.time()
            print(f"step {step}: loss {float(loss):.4f} lr {lr_at(step - 1, args):.2e} ({rate:.0f} tokens/s)", flush=True)
        if time.time() - last_save > args.save_minutes * 60:
            checkpoint()
            last_save = time.time()

    ppl = heldout_perplexity(model, heldout, args.seq, args.eval_windows)
    if not log["heldout"] or log["heldout"][-1]["step"] != step:
        log["heldout"].append({"step": step, "perplexity": ppl})
    log["tokens_seen"] = step * tokens_per_step
    log["parameters"] = n_params
    print(f"step {step}: held-out perplexity {ppl:.2f}; {log['tokens_seen']} tokens seen", flush=True)
    checkpoint()
    export(model, cfg, out, f"scripts/demo-model/pretrain.py seed {args.seed} step {step}")
    with open(os.path.join(out, "log.json"), "w") as f:
        json.dump({k: v for k, v in log.items() if k != "train"} | {"final_loss": log["train"][-1]["loss"] if log["train"] else None}, f, indent=2)


if __name__ == "__main__":
    main()
