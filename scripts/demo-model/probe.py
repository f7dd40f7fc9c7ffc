#!/usr/bin/env python3
"""Can a demo-model candidate learn the demo task? A quick PyTorch probe before paying the lab's cost.

    npx tsx scripts/demo-model/tokenize-splits.ts --model MODEL --out SPLITS
    python3 scripts/demo-model/probe.py --model MODEL --splits SPLITS [--readout last|mean]
        [--trainable lora|all] [--lr 3e-3] [--head-lr 3e-2] [--epochs 6] [--functions-per-step 4]
        [--wte --embedding-lr 5e-2]

Finetunes recipes/torch/model.py's GPT-BigCode classifier (the lab's model: LoRA on the four linears,
bias-free score head, focal loss γ 1, block-diagonal attention per function) on the splits and prints
validation and test ROC AUC after every epoch. It is not the lab's run: one function per row, AdamW with
its own learning rate for the score head (`--head-lr`), a cosine schedule with 10 % warmup, no dropout.

`--wte` adds the LoRA on the token embedding (target "wte", PEFT's lora.Embedding), trained at
`--embedding-lr` (the lab's `optimizer.embeddingLr`; the demo preset's recipe).

`--readout mean` scores each function by the mean of its tokens' head logits, which equals the bias-free
head applied to the mean of the final hidden states (mean pooling) instead of the last token's (the paper).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "torch"))
from data import collate, load_splits  # noqa: E402
from metrics import roc_auc  # noqa: E402
from model import EMBEDDING_LORA_A, EMBEDDING_LORA_B, LINEAR_TARGETS, GptBigCodeClassifier, focal_terms, load_checkpoint  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="folder with config.json + model.safetensors")
    ap.add_argument("--splits", required=True, help="folder with splits/{train,validation,test}.jsonl")
    ap.add_argument("--readout", choices=("last", "mean"), default="last")
    ap.add_argument("--trainable", choices=("lora", "all"), default="lora")
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--head-lr", type=float, default=3e-2)
    ap.add_argument("--wte", action="store_true", help="LoRA on the token embedding as well")
    ap.add_argument("--embedding-lr", type=float, default=None, help="its lr (default: --lr)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--functions-per-step", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(os.path.join(args.model, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    run = {
        "objective": "cls",
        "seed": args.seed,
        "trainable": args.trainable,
        "batching": {"mode": "packed"},
        "lora": {"r": args.r, "alpha": args.alpha, "dropout": 0.0, "targets": list(LINEAR_TARGETS) + (["wte"] if args.wte else [])},
    }
    model = GptBigCodeClassifier(cfg, load_checkpoint(args.model), run, "f32", recompute=False)
    splits = load_splits(args.splits)
    head = [model.score.weight]
    embedding_names = (EMBEDDING_LORA_A, EMBEDDING_LORA_B)
    embedding = [p for n, p in model.named_parameters() if n in embedding_names]
    body = [p for n, p in model.named_parameters() if p.requires_grad and n != "score.weight" and n not in embedding_names]
    peaks = [args.lr, args.head_lr] + ([args.embedding_lr or args.lr] if embedding else [])
    groups = [{"params": body}, {"params": head}] + ([{"params": embedding}] if embedding else [])
    opt = torch.optim.AdamW([dict(g, lr=lr) for g, lr in zip(groups, peaks)], weight_decay=0.0)
    separator, pad = int(cfg["eos_token_id"]), int(cfg["pad_token_id"])

    def logits(examples, indices):
        c = collate([[i] for i in indices], list(range(len(indices))), examples, False, separator, pad, 1.0)
        if args.readout == "last":
            return model(c.input_ids, c.position_ids, c.segment_ids, c.fn_row, c.fn_last), c.labels
        lengths = torch.tensor([len(examples[i].tokens) for i in indices])
        rows = torch.repeat_interleave(torch.arange(len(indices)), lengths)
        cols = torch.cat([torch.arange(n) for n in lengths.tolist()])
        per_token = model(c.input_ids, c.position_ids, c.segment_ids, rows, cols)
        summed = torch.zeros(len(indices), 2).index_add_(0, rows, per_token)
        return summed / lengths[:, None], c.labels

    def evaluate(split: str) -> float:
        examples = splits[split]
        model.eval()
        scores = []
        with torch.no_grad():
            for start in range(0, len(examples), 8):
                out, _ = logits(examples, list(range(start, min(start + 8, len(examples)))))
                scores += (out[:, 1] - out[:, 0]).tolist()
        model.train()
        return roc_auc(scores, [e.label for e in examples])

    train = splits["train"]
    steps_per_epoch = math.ceil(len(train) / args.functions_per_step)
    total, warmup, step = args.epochs * steps_per_epoch, max(1, round(0.1 * args.epochs * steps_per_epoch)), 0
    started = time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch)).tolist()
        losses = []
        for start in range(0, len(order), args.functions_per_step):
            scale = step / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
            for group, peak in zip(opt.param_groups, peaks):
                group["lr"] = peak * scale
            out, labels = logits(train, order[start : start + args.functions_per_step])
            loss = focal_terms(out, labels, 1.0, None).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(body + head + embedding, 1.0)
            opt.step()
            losses.append(loss.item())
            step += 1
        print(
            f"epoch {epoch + 1}: train loss {sum(losses) / len(losses):.4f}, validation ROC AUC "
            f"{evaluate('validation'):.3f}, test ROC AUC {evaluate('test'):.3f} ({time.time() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
