#!/usr/bin/env python3
"""Time the lab's LoRA training step in PyTorch: the PyTorch peer of `bench/train-step.bench.ts
--shapes wizardcoder` (scripts/gpu-bench.sh runs both on the same machine).

    npx tsx bench/train-step.bench.ts --workloads [--quick] > workloads.json
    python3 recipes/torch/bench_step.py --workloads workloads.json [--out result.json]

For each workload (a model config — GPT-BigCode, or the Llama family's with its model_type: llama,
qwen2, starcoder2 —, LoRA r/alpha/targets, one pack of `packLength` tokens holding functions of the
given lengths, padding after them): the recipe's own model (model.py `build_model`: the classifier of
that config, the frozen base stored as the workload's weightFormat, q4_0 by default and
dequantized inside each matmul; activation recomputation as the workload says), random weights of
that config, the weighted focal loss on each function's last code token (focal_terms), backward,
gradient clipping and AdamW — the step of train.py `Trainer.train_step` on one pack. Each precision
(default: fp32 with TF32 off, then bf16 autocast) starts from the same trainables with a fresh AdamW
(so their first losses compare), runs one untimed step, then timed steps until
--max-steps or until they have taken --budget seconds (at least one; none when the untimed step
alone took longer, which is then the figure); the median gives tokens/s (pack length, padding
included). On CUDA, torch.cuda.max_memory_allocated over those steps (model
included) is the memory figure; without CUDA it runs on the CPU and says device "cpu" (no memory
figure there).

Prints one JSON object in bench/run.ts's result layout (name "train-step-torch"; rows per workload and
precision), so scripts/bench-table.ts puts it beside the WebGPU rows; --out also writes it to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Iterator, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 2**20
PRECISIONS = {"fp32": "fp32 (TF32 off)", "bf16": "bf16 autocast"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", required=True, help="JSON list of workloads (bench/train-step.bench.ts --workloads)")
    p.add_argument("--only", help="run only the workloads whose label contains this text")
    p.add_argument("--precision", default="fp32,bf16", help="comma list of fp32 (TF32 off) and bf16 (autocast)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda when available")
    p.add_argument(
        "--base-format", default="auto", choices=["auto", "f32", "f16", "q8_0", "q4_0"],
        help="storage of the frozen base (auto: the workload's weightFormat)",
    )
    p.add_argument("--max-steps", type=int, default=5, help="most timed steps per workload and precision")
    p.add_argument("--budget", type=float, default=15.0, help="stop timing once the timed steps took this many seconds")
    p.add_argument("--quick", action="store_true", help="mark the result as a quick run (the local stand-in)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", help="also write the JSON result to this file")
    return p.parse_args(argv)


class RandomBase(Mapping):
    """The base checkpoint of a config (model.py `Arch.base_specs`: GPT-BigCode or the Llama family,
    no head) as a mapping that draws each tensor when asked (never all at once): norms 1 / 0, biases
    0, everything else N(0, 0.02), on the current default device."""

    def __init__(self, arch, torch_module) -> None:
        self.specs = {name: (list(shape), kind) for name, shape, kind in arch.base_specs(lm_head=False)}
        self.torch = torch_module

    def __getitem__(self, name: str):
        torch = self.torch
        shape, kind = self.specs[name]
        if kind == "norm":
            return torch.ones(shape) if name.endswith(".weight") else torch.zeros(shape)
        if kind == "bias":
            return torch.zeros(shape)
        return torch.randn(shape) * 0.02

    def __contains__(self, name: object) -> bool:  # Mapping's would draw the tensor to find out
        return name in self.specs

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


def random_trainables(torch_module, recipe_model):
    """Stands in for model.initial_trainables (its pure-Python generator takes minutes at 3B shapes):
    LoRA A ~ U(±1/√in), B ~ N(0, 0.01) (non-zero, so every gradient is); the embedding's adapter
    A ~ N(0, 0.01), B ~ N(0, 1); score ~ N(0, 0.02)."""

    def initial_trainables(cfg: dict, run: dict):
        torch = torch_module
        arch = recipe_model.Arch(cfg)
        r, targets = run["lora"]["r"], run["lora"]["targets"]
        out = {}
        for layer in range(arch.layers):
            for target in arch.targets:
                if target not in targets:
                    continue
                rows_out, cols, _ = arch.linears[target]
                prefix = f"{arch.block(layer)}.{target}"
                out[prefix + ".lora_A.weight"] = (torch.rand(r, cols) * 2 - 1) / math.sqrt(cols)
                out[prefix + ".lora_B.weight"] = torch.randn(rows_out, r) * 0.01
        if "wte" in targets:
            out[arch.lora_a] = torch.randn(r, arch.vocab) * 0.01
            out[arch.lora_b] = torch.randn(arch.width, r)
        out["score.weight"] = torch.randn(2, arch.width) * 0.02
        return out

    return initial_trainables


def pack_tensors(w: dict, torch_module, device):
    """The workload's one pack: random code tokens, each function ended by EOS, padding after
    (segment −1), as bench/train-step.bench.ts `workloadBatch` lays it out."""
    torch = torch_module
    cfg = w["config"]
    L = w["packLength"]
    eos = cfg.get("eos_token_id") or 0
    eos = eos[0] if isinstance(eos, list) else eos  # Llama-family configs may list several
    pad = cfg.get("pad_token_id")
    pad = eos if pad is None else pad
    g = torch.Generator().manual_seed(int(w.get("seed", 1)))
    ids = torch.full((1, L), pad, dtype=torch.long)
    seg = torch.full((1, L), -1, dtype=torch.long)
    pos = torch.zeros((1, L), dtype=torch.long)
    last, labels, weights = [], [], []
    t = 0
    for s, n in enumerate(w["lengths"]):
        ids[0, t : t + n - 1] = torch.randint(1, cfg["vocab_size"] - 1, (n - 1,), generator=g)
        ids[0, t + n - 1] = eos
        seg[0, t : t + n] = s
        pos[0, t : t + n] = torch.arange(n)
        last.append(t + n - 2)
        labels.append(s % 2)
        weights.append(3.0 if s % 2 else 1.0)
        t += n
    if t > L:
        raise ValueError(f"{w['label']}: the functions overflow the pack")
    n_fn = len(last)
    as_device = lambda x: x.to(device)  # noqa: E731
    return {
        "input_ids": as_device(ids),
        "position_ids": as_device(pos),
        "segment_ids": as_device(seg),
        "rows": as_device(torch.zeros(n_fn, dtype=torch.long)),
        "cols": as_device(torch.tensor(last, dtype=torch.long)),
        "labels": as_device(torch.tensor(labels, dtype=torch.long)),
        "weights": as_device(torch.tensor(weights, dtype=torch.float32)),
    }


def machine(torch_module) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "runtime": f"python {platform.python_version()}, torch {torch_module.__version__}",
        "commit": commit,
    }


def run_workload(w: dict, args: argparse.Namespace, torch_module, device, precisions: List[str]) -> List[dict]:
    torch = torch_module
    import model as recipe_model  # recipes/torch/model.py

    cfg = dict(w["config"])
    lora = w["lora"]
    fmt = w.get("weightFormat", "q4_0") if args.base_format == "auto" else args.base_format
    run = {
        "batching": {"mode": "packed"},
        "objective": "cls",
        "seed": int(w.get("seed", 1)),
        "trainable": "lora",
        "lora": {"r": lora["r"], "alpha": lora["alpha"], "dropout": lora.get("dropout", 0), "targets": lora["targets"]},
    }
    started = time.perf_counter()
    torch.manual_seed(int(w.get("seed", 1)))
    # Built where it runs (torch >= 2.0: the default-device context), so the base is drawn and
    # quantized on the GPU; older torch builds on the CPU and moves it.
    place = device if hasattr(torch.device, "__enter__") else contextlib.nullcontext()
    original = recipe_model.initial_trainables
    recipe_model.initial_trainables = random_trainables(torch, recipe_model)
    try:
        with place:
            base = RandomBase(recipe_model.Arch(cfg), torch)
            net = recipe_model.build_model(cfg, base, run, fmt, bool(w["recompute"]))
    finally:
        recipe_model.initial_trainables = original
    net = net.to(device)
    net.train()
    batch = pack_tensors(w, torch, device)
    params = [p for p in net.parameters() if p.requires_grad]
    initial = [p.detach().clone() for p in params]  # each precision starts from the same trainables
    o = w["optimizer"]
    gamma, alpha = float(w["focal"]["gamma"]), float(w["focal"]["alpha"])
    n_fn = batch["rows"].numel()
    setup_s = time.perf_counter() - started
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rows = []
    for precision in precisions:
        autocast = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16)
            if precision == "bf16"
            else contextlib.nullcontext()
        )

        with torch.no_grad():
            for p, value in zip(params, initial):
                p.copy_(value)
        optimizer = torch.optim.AdamW(
            params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"]
        )

        def step() -> float:
            with autocast:
                logits = net(batch["input_ids"], batch["position_ids"], batch["segment_ids"], batch["rows"], batch["cols"], None)
            weighted = (batch["weights"] * recipe_model.focal_terms(logits, batch["labels"], gamma, alpha)).sum()
            loss = weighted / n_fn
            loss.backward()
            # train.py's clipping coefficient min(1, max_norm / (norm + 1e-6)) is clip_grad_norm_'s
            torch.nn.utils.clip_grad_norm_(params, float(o["max_grad_norm"]))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return float(loss)  # read back, as the lab's step reads its loss

        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        first_loss = step()
        sync()
        first_s = time.perf_counter() - t
        times: List[float] = []
        last_loss = first_loss
        # a first step longer than the budget is the figure itself, as in bench/train-step.bench.ts
        while first_s < args.budget and len(times) < args.max_steps and (not times or sum(times) < args.budget):
            t = time.perf_counter()
            last_loss = step()
            sync()
            times.append(time.perf_counter() - t)
        ms = (statistics.median(times) if times else first_s) * 1000
        rows.append({
            "workload": w["label"],
            "precision": PRECISIONS[precision],
            "device": torch.cuda.get_device_name(device) if cuda else "cpu",
            "base": fmt,
            "tokens/s": w["packLength"] / ms * 1000,
            "ms/step": ms,
            "timed steps": len(times),
            "first step s": first_s,
            "setup s": setup_s,
            "max allocated MiB": torch.cuda.max_memory_allocated(device) / MiB if cuda else "n/a (cpu)",
            "loss step 1": f"{first_loss:.6f}",
            "loss last": f"{last_loss:.6f}",
        })
        del optimizer
    del net, batch, params, initial
    if cuda:
        torch.cuda.empty_cache()
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    with open(args.workloads) as f:
        workloads = json.load(f)
    if args.only:
        workloads = [w for w in workloads if args.only in w["label"]]
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions or not workloads:
        print(f"bench_step: nothing to run (precisions {precisions}, {len(workloads)} workloads)", file=sys.stderr)
        return 2

    import torch

    sys.path.insert(0, HERE)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_step: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
    # fp32 means fp32: no TF32 tensor-core matmuls (bf16 is the separate, autocast row)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    rows: List[dict] = []
    for w in workloads:
        try:
            rows.extend(run_workload(w, args, torch, device, precisions))
        except Exception as error:  # one workload that does not fit must not cost the others their rows
            print(f"bench_step: {w['label']}: {error!r}", file=sys.stderr)
            rows.append({"workload": w["label"], "device": device.type, "error": repr(error)[:500]})
            if device.type == "cuda":
                torch.cuda.empty_cache()

    cuda = device.type == "cuda"
    result = {
        "name": "train-step-torch",
        "description": "the same LoRA training step in PyTorch (recipes/torch/bench_step.py: model.py, focal loss, clip, AdamW)",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
        "quick": bool(args.quick),
        "machine": machine(torch),
        "adapter": {
            "vendor": "pytorch",
            "architecture": device.type,
            "device": torch.cuda.get_device_name(device) if cuda else "cpu",
            "description": f"torch {torch.__version__}" + (f", CUDA {torch.version.cuda}" if cuda else ""),
        },
        "device": device.type,
        "rows": rows,
        "summary": {
            "steps": f"one untimed step, then up to {args.max_steps} timed steps while they take < {args.budget} s (at least one); median; 'timed steps' 0: the first step took longer and is the figure",
            "tokens": "tokens/s = pack length (padding included) / median ms per step",
            "precisions": [PRECISIONS[p] for p in precisions],
            "memory": "torch.cuda.max_memory_allocated over each precision's steps, model included" if cuda else "n/a on the CPU",
            "attention": "F.scaled_dot_product_attention with the packed mask" if cuda and hasattr(torch.nn.functional, "scaled_dot_product_attention") else "model.py's explicit attention (multi-query / grouped-query as one GEMM per K/V head)",
            "weights": "random (base N(0, 0.02) stored as the row's base format; LoRA A ~ U(±1/√in), B ~ N(0, 0.01))",
            "workloads": [{k: w[k] for k in ("label", "preset", "config", "packLength", "lengths", "lora", "recompute")} for w in workloads],
        },
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
