#!/usr/bin/env python3
"""Train a VulnLab recipe on PyTorch, on one process or many (torchrun; DDP or FSDP).

    torchrun --standalone --nproc_per_node 8 trainer/train.py --recipe RECIPE_DIR [--precision bf16]

A recipe is what `npm run vulnlab -- export-recipe` writes: the lab run's config.json, recipe.json
(model config, pack length, separator and pad ids), pre-tokenized splits and the base model (or a
pointer). The model is GPT-BigCode or a Llama-family model (llama, qwen2, starcoder2), as recipe.json's
model config says (model.py `build_model`), loaded from Hugging Face safetensors by parameter name.
The run means what the lab run means: the same packs per step (the lab's batching, ported), the same
loss — weighted focal loss, mean over the step's functions (cls), or next-token cross-entropy on the
paper's prompts with their answer token, mean over the step's predicted tokens (ntp) — the same LoRA
targets (the model's block linears — GPT-BigCode's attn.c_attn, …, the Llama family's
self_attn.q_proj, …, mlp.gate_proj, … — and "wte", the token embedding) and dropout masks, AdamW (with
optimizer.embeddingLr, the embedding's adapter is a second parameter group at that peak lr), clipping,
schedule, evaluation cadence, best-on-validation selection and threshold. A step's packs are sharded over the processes, and over micro-batches with gradient
accumulation, without changing the step: each process scales its loss so that DDP's gradient average
is the lab's mean over the whole step.

Outputs in --out: metrics.json and scores.csv in the lab's format, adapter/ (PEFT: keys
base_model.model.<Hugging Face name>, target_modules as model.py `Arch.peft_target_modules`), losses.json
(one entry per optimizer step; "embedding_lr" too with optimizer.embeddingLr), train.log, checkpoints/
(with --save-every; --resume continues).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data import Collated, Example, RecipeError, collate, load_splits, make_batches  # noqa: E402
from metrics import choose_threshold, roc_auc, summary  # noqa: E402
from model import (  # noqa: E402
    BLOCK_CLASSES,
    DecoderClassifier,
    DropoutContext,
    build_model,
    focal_terms,
    load_checkpoint,
    read_adapter,
    write_adapter,
)

RECIPE_FORMAT = 1


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, help="recipe folder written by `vulnlab export-recipe`")
    p.add_argument("--out", help="output folder (default: RECIPE/out)")
    p.add_argument("--model", help="base model folder (default: the recipe's model/ or its pointer)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default="auto", choices=["auto", "gloo", "nccl"], help="auto: nccl on GPU, gloo on CPU")
    p.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
        help="autocast dtype of the matmuls (fp16 adds loss scaling); trainables and the loss stay fp32",
    )
    p.add_argument(
        "--base-format", default="auto", choices=["auto", "f32", "f16", "q8_0", "q4_0"],
        help="storage of the frozen base (auto: the run's weightFormat; q8_0/q4_0 = int8/int4 blocks)",
    )
    p.add_argument("--fsdp", action="store_true", help="shard parameters over processes (FULL_SHARD; torch >= 2.0)")
    p.add_argument("--micro-batch", type=int, default=0, help="packs per forward per process (0: its whole share)")
    p.add_argument("--eval-batch", type=int, default=0, help="packs per forward when scoring (0: packsPerStep)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: the whole run)")
    p.add_argument(
        "--save-every", type=int, default=None,
        help="checkpoint every N optimizer steps (default: the run's checkpointEvery; 0: never)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints")
    p.add_argument("--init-adapter", help="start from a PEFT adapter folder (e.g. the lab's adapter/)")
    p.add_argument("--eval-only", action="store_true", help="score validation and test only (with --init-adapter)")
    p.add_argument("--no-recompute", action="store_true", help="keep activations even if the run recomputes them")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: torch's default)")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------
# Processes


class Dist:
    """Where this process sits: rank, world size, device; no process group for a plain `python` run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise RecipeError("--device cuda, but torch sees no GPU.", "Use --device cpu or a CUDA build of torch.")
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        self.enabled = "RANK" in os.environ and self.world >= 1
        if self.enabled:
            backend = args.backend if args.backend != "auto" else ("nccl" if use_cuda else "gloo")
            dist.init_process_group(backend)

    def sum(self, values: List[float]) -> List[float]:
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, item: object) -> List[object]:
        if not self.enabled:
            return [item]
        out: List[object] = [None] * self.world
        dist.all_gather_object(out, item)
        return out

    @property
    def main(self) -> bool:
        return self.rank == 0


# ------------------------------------------------------------------------------------------------
# The schedule (src/train/schedule.ts)


def learning_rate(schedule: dict, peak: float, step: int, total: int) -> float:
    warmup = _js_round(schedule["warmupRatio"] * total)
    if step < warmup:
        return peak * step / max(1, warmup)
    if schedule["kind"] == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    if schedule["kind"] == "linear":
        return peak * max(0.0, 1 - progress)
    return peak * max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))


def _js_round(x: float) -> int:
    return math.floor(x + 0.5)


# ------------------------------------------------------------------------------------------------
# Run


class Trainer:
    def __init__(self, args: argparse.Namespace, d: Dist) -> None:
        self.args, self.d = args, d
        self.recipe_dir = os.path.abspath(args.recipe)
        self.out = os.path.abspath(args.out or os.path.join(self.recipe_dir, "out"))
        self.run = _read_json(os.path.join(self.recipe_dir, "config.json"))
        self.recipe = _read_json(os.path.join(self.recipe_dir, "recipe.json"))
        if self.recipe.get("format") != RECIPE_FORMAT:
            raise RecipeError(
                f"Recipe format {self.recipe.get('format')} is not {RECIPE_FORMAT}.",
                "Export the run again with this version of VulnLab.",
            )
        self.cls = self.run["objective"] == "cls"
        self.L = int(self.recipe["packLength"])
        self.splits = load_splits(self.recipe_dir)
        self.train_examples = self.splits["train"]
        self.score_columns: Optional[torch.Tensor] = None
        if not self.cls:
            answers = self.recipe.get("answers")
            if not answers:
                raise RecipeError("This next-token recipe names no answer tokens.", "Export the run again.")
            # Training appends the answer to each prompt; scoring reads the " NO" and " YES" logits.
            self.train_examples = [
                Example(e.tokens + [answers["yes"] if e.label == 1 else answers["no"]], e.label, e.weight, e.cwe, e.example_index)
                for e in self.splits["train"]
            ]
            self.score_columns = torch.tensor([answers["no"], answers["yes"]])
        self.log_lines: List[str] = []
        self.model_dir = args.model or os.path.join(self.recipe_dir, self.recipe["model"]["path"])
        self.save_every = args.save_every if args.save_every is not None else int(self.run.get("checkpointEvery", 0))
        self.base_format = args.base_format if args.base_format != "auto" else self.run["weightFormat"]
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
        if args.precision == "fp16" and d.device.type != "cuda":
            raise RecipeError("--precision fp16 needs a GPU.", "Use fp32 (or bf16) on CPU.")
        self.model = self._build_model()
        self.names = self.model.trainable_names()
        self.wrapped = self._wrap(self.model)
        o = self.run["optimizer"]
        self.embedding_lr = o.get("embeddingLr")  # peak lr of the embedding's adapter (None: lr)
        self.optimizer = torch.optim.AdamW(
            self._param_groups(),
            lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], weight_decay=o["weightDecay"],
        )
        self.scaler = self._scaler()

    # -- setup --------------------------------------------------------------------------------

    def _build_model(self) -> DecoderClassifier:
        weights = load_checkpoint(self.model_dir)
        cfg = self.recipe["model"]["config"]
        recompute = bool(self.run["recompute"]) and not self.args.no_recompute
        model = build_model(cfg, weights, self.run, self.base_format, recompute)
        if self.args.init_adapter:
            config, tensors = read_adapter(self.args.init_adapter)
            lora = self.run["lora"]
            if (config.get("r"), config.get("lora_alpha")) != (lora["r"], lora["alpha"]):
                raise RecipeError(
                    f"The adapter has r={config.get('r')}, alpha={config.get('lora_alpha')}; the run r={lora['r']}, alpha={lora['alpha']}.",
                    "Use the adapter of this run, or export a recipe with the adapter's LoRA settings.",
                )
            params = dict(model.named_parameters())
            missing = [n for n in model.trainable_names() if n not in tensors]
            if missing:
                raise RecipeError(f"The adapter lacks {missing[0]} (and {len(missing) - 1} more).", "Pick this run's adapter.")
            with torch.no_grad():
                for name in model.trainable_names():
                    params[name].copy_(tensors[name].view_as(params[name]))
        return model.to(self.d.device)

    def _param_groups(self) -> List[dict]:
        """One AdamW group; with optimizer.embeddingLr, the embedding's adapter (LoRA target wte) in a
        second one, at embeddingLr × the schedule's factor (the same weight decay)."""
        trainable = [(n, p) for n, p in self.wrapped.named_parameters() if p.requires_grad]
        embedding = (self.model.arch.lora_a, self.model.arch.lora_b)
        # DDP/FSDP prefix the names ("module.", "_fsdp_wrapped_module."): match the ending.
        is_embedding = [any(n == e or n.endswith("." + e) for e in embedding) for n, _ in trainable]
        if self.embedding_lr is None or not any(is_embedding):
            return [{"params": [p for _, p in trainable]}]
        return [
            {"params": [p for (_, p), e in zip(trainable, is_embedding) if not e], "peak": "lr"},
            {"params": [p for (_, p), e in zip(trainable, is_embedding) if e], "peak": "embeddingLr"},
        ]

    def _wrap(self, model: DecoderClassifier) -> torch.nn.Module:
        if not self.d.enabled:
            if self.args.fsdp:
                raise RecipeError("--fsdp shards over processes.", "Start the trainer with torchrun (launch.sh).")
            return model
        if self.args.fsdp:
            try:
                from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, ShardingStrategy
                from torch.distributed.fsdp.wrap import ModuleWrapPolicy
            except ImportError as error:
                raise RecipeError(f"FSDP is not available in torch {torch.__version__} ({error}).", "Use torch >= 2.0, or DDP.")
            if self.d.device.type != "cuda":
                raise RecipeError("--fsdp needs GPUs.", "Drop --fsdp on CPU (DDP replicates the model instead).")
            # use_orig_params lets frozen base weights and trainable LoRA share a wrapped block.
            return FSDP(
                model,
                sharding_strategy=ShardingStrategy.FULL_SHARD,
                auto_wrap_policy=ModuleWrapPolicy(set(BLOCK_CLASSES)),
                device_id=self.d.device,
                use_orig_params=True,
            )
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.d.device.index] if self.d.device.type == "cuda" else None
        # Buffers are the frozen quantized base, identical everywhere: nothing to broadcast.
        return DDP(model, device_ids=ids, broadcast_buffers=False)

    def _scaler(self):
        if self.args.precision != "fp16":
            return None
        if self.args.fsdp:
            from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

            return ShardedGradScaler()
        return torch.cuda.amp.GradScaler()

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.d.device.type, dtype=self.amp_dtype)

    def log(self, line: str) -> None:
        self.log_lines.append(line)
        if self.d.main:
            print(line, flush=True)

    # -- batches ------------------------------------------------------------------------------

    def batches(self, examples: Sequence[Example], epoch: int, shuffle: bool) -> List[List[List[int]]]:
        b = self.run["batching"]
        mode = "packed" if b["mode"] == "padded" and not shuffle else b["mode"]  # as run.ts batchesFor
        return make_batches(
            examples, mode, self.L, int(self.run["seed"]), epoch, shuffle, b["maxFunctionsPerPack"], b["packsPerStep"]
        )

    def to_device(self, c: Collated) -> Collated:
        for field in (
            "input_ids", "position_ids", "segment_ids", "global_rows", "fn_row", "fn_last", "labels", "weights",
            "target_rows", "target_cols", "targets",
        ):
            setattr(c, field, getattr(c, field).to(self.d.device))
        return c

    def collate(self, rows: Sequence[Sequence[int]], global_rows: Sequence[int], examples: Sequence[Example]) -> Collated:
        return self.to_device(
            collate(
                rows, global_rows, examples, self.run["batching"]["mode"] == "paper",
                int(self.recipe["separatorId"]), int(self.recipe["padId"]), float(self.run["loss"]["positiveWeight"]),
            )
        )

    def forward(self, c: Collated, drop: Optional[DropoutContext], training: bool) -> torch.Tensor:
        """Logits where the loss or the score is read: each function's last token (cls, and scoring)
        or every token with a next-token target (ntp training); scoring ntp reads [" NO", " YES"]."""
        rows, cols = (c.target_rows, c.target_cols) if training and not self.cls else (c.fn_row, c.fn_last)
        if rows.numel() == 0:  # nothing to read here: one token's logits keep every trainable in the graph
            rows, cols = c.fn_row.new_zeros(1), c.fn_row.new_zeros(1)
        vocab = None if training or self.score_columns is None else self.score_columns.to(self.d.device)
        with self.autocast():
            return self.wrapped(c.input_ids, c.position_ids, c.segment_ids, rows, cols, drop, vocab)

    # -- one optimizer step -------------------------------------------------------------------

    def loss_terms(self, batch: List[List[int]]) -> int:
        """What the lab's step loss is a mean over: its functions (cls) or its next-token targets (ntp)."""
        if self.cls:
            return sum(len(row) for row in batch)
        lengths = [[len(self.train_examples[i].tokens) for i in row] for row in batch]
        if self.run["batching"]["mode"] == "paper":  # every real token but the row's last
            return sum(sum(n + 1 for n in row) - 1 for row in lengths)
        return sum(sum(row) for row in lengths)  # each token up to its function's separator

    def train_step(
        self, batch: List[List[int]], step: int, lr: float, embedding_lr: Optional[float] = None
    ) -> Tuple[float, float, bool]:
        """The lab's step over `batch`: loss = Σ terms / (terms in the step); DDP averages the grads.
        `embedding_lr`: this step's lr of the embedding's adapter group (optimizer.embeddingLr)."""
        train = self.train_examples
        mine = list(range(self.d.rank, len(batch), self.d.world))  # this process's rows of the step
        size = self.args.micro_batch or max(1, len(mine))
        chunks = [mine[i : i + size] for i in range(0, len(mine), size)] or [[]]
        total_terms = self.loss_terms(batch)
        loss_cfg = self.run["loss"]
        gamma = 0.0 if loss_cfg["kind"] == "ce" else float(loss_cfg["gamma"])
        local_sum = 0.0
        self.wrapped.train()
        for k, chunk in enumerate(chunks):
            last_chunk = k == len(chunks) - 1
            sync = contextlib.nullcontext() if last_chunk or not self.d.enabled else self.wrapped.no_sync()
            with sync:
                c = self.collate([batch[r] for r in chunk], chunk, train)
                drop = DropoutContext(int(self.run["seed"]), step, self.L, c.global_rows)
                logits = self.forward(c, drop, training=True)
                if c.fn_row.numel() == 0:
                    weighted = logits.sum() * 0.0
                elif self.cls:
                    weighted = (c.weights * focal_terms(logits, c.labels, gamma, loss_cfg["alpha"])).sum()
                else:
                    weighted = torch.nn.functional.cross_entropy(logits, c.targets, reduction="sum")
                loss = weighted * (self.d.world / total_terms)
                (self.scaler.scale(loss) if self.scaler else loss).backward()
                local_sum += float(weighted.detach())
        step_loss = self.d.sum([local_sum])[0] / total_terms
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.wrapped.parameters() if p.requires_grad]
        norm = self._grad_norm(params)
        finite = math.isfinite(norm) and math.isfinite(step_loss)
        max_norm = float(self.run["optimizer"]["maxGradNorm"])
        if finite and max_norm > 0:  # torch's clip_grad_norm_ coefficient, as the lab's optimizer
            coef = min(1.0, max_norm / (norm + 1e-6))
            if coef < 1:
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(coef)
        for group in self.optimizer.param_groups:
            group["lr"] = embedding_lr if group.get("peak") == "embeddingLr" and embedding_lr is not None else lr
        if self.scaler:
            self.scaler.step(self.optimizer)  # skips non-finite steps itself
            self.scaler.update()
        elif finite:  # the lab skips the update of a non-finite step too
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_loss, norm, finite

    def _grad_norm(self, params: List[torch.nn.Parameter]) -> float:
        if self.args.fsdp:
            return float(self.wrapped.clip_grad_norm_(float("inf")))  # sharded grads: FSDP reduces the norm
        squares = [p.grad.detach().float().pow(2).sum() for p in params if p.grad is not None]
        return math.sqrt(float(torch.stack(squares).sum())) if squares else 0.0

    # -- scoring ------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, examples: Sequence[Example]) -> List[Tuple[int, float]]:
        """(example_index, p(vulnerable)) in the lab's order; rows sharded over the processes."""
        rows = [row for batch in self.batches(examples, 0, False) for row in batch]
        size = self.args.eval_batch or int(self.run["batching"]["packsPerStep"])
        mine = list(range(self.d.rank, len(rows), self.d.world))
        per_process = -(-len(rows) // self.d.world)
        rounds = -(-per_process // size)
        self.wrapped.eval()
        results: List[Tuple[int, int, int, float]] = []
        for k in range(rounds):  # the same number of forwards everywhere (FSDP gathers per forward)
            chunk = mine[k * size : (k + 1) * size]
            c = self.collate([rows[r] for r in chunk] if chunk else [rows[0]], chunk or [0], examples)
            logits = self.forward(c, None, training=False).double()
            if not chunk:
                continue
            p = torch.sigmoid(logits[:, 1] - logits[:, 0]).tolist()
            position = 0
            for r in chunk:
                for j in range(len(rows[r])):
                    results.append((r, j, c.example_index[position], p[position]))
                    position += 1
        gathered = [item for part in self.d.gather(results) for item in part]  # type: ignore[union-attr]
        gathered.sort(key=lambda item: (item[0], item[1]))
        return [(index, p) for _, _, index, p in gathered]

    def trainables(self) -> Dict[str, torch.Tensor]:
        if self.args.fsdp:
            from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel as FSDP, StateDictType

            with FSDP.state_dict_type(self.wrapped, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True)):
                state = self.wrapped.state_dict()
        else:
            state = self.model.state_dict()
        return {n: state[n].detach().to("cpu", torch.float32).clone() for n in self.names}

    def load_trainables(self, values: Dict[str, torch.Tensor]) -> None:
        if self.args.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            with FSDP.summon_full_params(self.wrapped, writeback=True):
                self._copy_into(self.model, values)
        else:
            self._copy_into(self.model, values)

    @staticmethod
    def _copy_into(model: torch.nn.Module, values: Dict[str, torch.Tensor]) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in values.items():
                params[name].copy_(value.view_as(params[name]))

    # -- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self, state: dict) -> None:
        optimizer = self.optimizer.state_dict()
        if self.args.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            optimizer = FSDP.full_optim_state_dict(self.wrapped, self.optimizer)
        trainables = self.trainables()
        if not self.d.main:
            return
        folder = os.path.join(self.out, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"step-{state['step']:08d}.pt")
        payload = {**state, "trainables": trainables, "optimizer": optimizer}
        if self.scaler:
            payload["scaler"] = self.scaler.state_dict()
        torch.save(payload, path + ".tmp")
        os.replace(path + ".tmp", path)  # a checkpoint is complete or absent
        for old in sorted(glob.glob(os.path.join(folder, "step-*.pt")))[:-2]:
            os.remove(old)

    def resume_from_checkpoint(self) -> dict:
        paths = sorted(glob.glob(os.path.join(self.out, "checkpoints", "step-*.pt")))
        if not paths:
            raise RecipeError(f"--resume: no checkpoint in {self.out}/checkpoints.", "Train with --save-every N first.")
        payload = torch.load(paths[-1], map_location="cpu")
        self.load_trainables(payload["trainables"])
        optimizer = payload["optimizer"]
        if self.args.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            optimizer = FSDP.shard_full_optim_state_dict(optimizer, self.wrapped)
        self.optimizer.load_state_dict(optimizer)
        if self.scaler and "scaler" in payload:
            self.scaler.load_state_dict(payload["scaler"])
        self.log(f"resumed from {paths[-1]} at step {payload['step']}")
        return payload

    # -- the run ------------------------------------------------------------------------------

    def evaluate_validation(self, state: dict, epoch: int) -> None:
        validation = self.splits["validation"]
        scored = dict(self.score(validation))
        scores = [scored[e.example_index] for e in validation]
        labels = [e.label for e in validation]
        threshold = choose_threshold(scores, labels)
        auc = roc_auc(scores, labels)
        auc = auc if math.isfinite(auc) else -math.inf
        self.log(f"eval validation at step {state['step']}: ROC AUC {auc:.4f} (threshold {threshold:.3f})")
        if state.get("best") is None or auc > state["best"]["auc"]:
            state["best"] = {"step": state["step"], "auc": auc, "trainables": self.trainables()}

    def fit(self) -> dict:
        run = self.run
        train = self.train_examples
        for split in ("train", "validation"):
            if len({e.label for e in self.splits[split]}) < 2:
                raise RecipeError(f"The {split} split has one class only: ROC AUC is undefined.", "Export a run with both classes.")
        first = self.batches(train, 0, True)
        steps_per_epoch = len(first)
        epochs = int(run["epochs"])
        total = steps_per_epoch * epochs
        state = {"step": 0, "epoch": 0, "batch": 0, "best": None, "losses": [], "train_seconds": 0.0, "tokens": 0, "functions": 0}
        if self.args.resume:
            payload = self.resume_from_checkpoint()
            state.update({k: payload[k] for k in state})
        self.log(
            f"training: {len(train)} functions, {steps_per_epoch} steps/epoch, {total} steps, "
            f"{self.d.world} process(es) on {self.d.device.type}, {self.args.precision}, base {self.base_format}"
        )
        eval_every = int(run["evalEvery"])
        stopped = False
        for epoch in range(state["epoch"], epochs):
            batches = first if epoch == 0 else self.batches(train, epoch, True)
            for index in range(state["batch"] if epoch == state["epoch"] else 0, len(batches)):
                if self.args.max_steps and state["step"] >= self.args.max_steps:
                    stopped = True  # as the lab's stop(): no end-of-epoch evaluation
                    break
                batch = batches[index]
                lr = learning_rate(run["schedule"], run["optimizer"]["lr"], state["step"], total)
                embedding_lr = None  # the same schedule, peaking at optimizer.embeddingLr
                if self.embedding_lr is not None:
                    embedding_lr = learning_rate(run["schedule"], self.embedding_lr, state["step"], total)
                started = time.perf_counter()
                loss, norm, finite = self.train_step(batch, state["step"], lr, embedding_lr)
                seconds = time.perf_counter() - started
                state["step"] += 1
                state["epoch"], state["batch"] = epoch, index + 1
                state["train_seconds"] += seconds
                real = sum(len(train[i].tokens) + 1 for row in batch for i in row)
                state["tokens"] += real
                state["functions"] += sum(len(row) for row in batch)
                entry = {"step": state["step"], "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": norm}
                if embedding_lr is not None:
                    entry["embedding_lr"] = embedding_lr
                state["losses"].append(entry)
                self.log(
                    f"step {state['step']}/{total} epoch {epoch + 1} loss {loss:.6f} lr {lr:.2e} |g| {norm:.4f} "
                    f"{real / max(seconds, 1e-9):.0f} tok/s" + ("" if finite else " (non-finite: update skipped)")
                )
                if eval_every > 0 and state["step"] % eval_every == 0:
                    self.evaluate_validation(state, epoch)
                if self.save_every and state["step"] % self.save_every == 0:
                    self.save_checkpoint({k: v for k, v in state.items()})
            if stopped:
                break
            state["epoch"], state["batch"] = epoch + 1, 0
            if eval_every == 0:
                self.evaluate_validation(state, epoch)
        if state["best"] is None or (eval_every > 0 and state["step"] % eval_every != 0):
            self.evaluate_validation(state, epochs - 1)
        return state

    def finish(self, state: dict) -> None:
        best = state["best"]
        if best is not None:
            self.load_trainables(best["trainables"])
        scored = {}
        for split in ("validation", "test"):
            scored[split] = dict(self.score(self.splits[split]))
        v = self.splits["validation"]
        threshold = choose_threshold([scored["validation"][e.example_index] for e in v], [e.label for e in v])
        trainables = self.trainables()
        if not self.d.main:
            return
        seed = int(self.run["seed"])
        splits = {}
        for split in ("validation", "test"):
            ex = self.splits[split]
            splits[split] = summary(
                [scored[split][e.example_index] for e in ex], [e.label for e in ex], [e.cwe for e in ex], threshold, seed
            )
        seconds = state["train_seconds"]
        metrics = {
            "model": self.recipe["model"]["name"],
            "steps": state["step"],
            "best_step": best["step"] if best else 0,
            "valid": splits["validation"],
            "test": splits["test"],
            "throughput": {
                "tokens_per_s": state["tokens"] / seconds if seconds else 0,
                "examples_per_s": state["functions"] / seconds if seconds else 0,
                "train_seconds": seconds,
            },
            "changes": [],
            "runtime": {
                "engine": "torch",
                "torch": torch.__version__,
                "processes": self.d.world,
                "device": self.d.device.type,
                "precision": self.args.precision,
                "base_format": self.base_format,
                "parallel": "fsdp" if self.args.fsdp else ("ddp" if self.d.enabled else "none"),
            },
        }
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.out, "metrics.json"), "w") as f:
            f.write(json.dumps(_json_safe(metrics), indent=2) + "\n")
        with open(os.path.join(self.out, "losses.json"), "w") as f:
            f.write(json.dumps(state["losses"], indent=1) + "\n")
        with open(os.path.join(self.out, "scores.csv"), "w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(["split", "example_index", "label", "score", "cwe"])
            for split in ("validation", "test"):
                for e in self.splits[split]:
                    out.writerow([split, e.example_index, e.label, repr(scored[split][e.example_index]), e.cwe or ""])
        write_adapter(os.path.join(self.out, "adapter"), trainables, self.run, self.recipe["model"]["name"], self.model.arch)
        detector = {  # the lab's vulnlab_detector.json (src/train/export.ts DetectorSettings)
            "threshold": threshold,
            "packLength": self.L,
            "batching": self.run["batching"]["mode"],
            "truncation": self.run["truncation"],
            "normalize": self.run["normalize"],
            "baseModel": self.recipe["model"]["name"],
            "validation": {"rocAuc": splits["validation"]["roc_auc"], "n": splits["validation"]["n"]},
        }
        with open(os.path.join(self.out, "adapter", "vulnlab_detector.json"), "w") as f:
            f.write(json.dumps(_json_safe(detector), indent=2) + "\n")
        test = splits["test"]
        self.log(
            f"test: ROC AUC {_fmt(test['roc_auc'])}, PR AUC {_fmt(test['pr_auc'])}, F1 {test['f1']:.3f} "
            f"at the validation threshold {threshold:.3f}; outputs in {self.out}"
        )
        with open(os.path.join(self.out, "train.log"), "w") as f:
            f.write("\n".join(self.log_lines) + "\n")


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise RecipeError(
            f"Cannot read {path}: {error}",
            "--recipe needs a folder written by `npm run vulnlab -- export-recipe`.",
        )


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        d = Dist(args)
        trainer = Trainer(args, d)
        if args.eval_only:
            state = {"step": 0, "best": None, "losses": [], "train_seconds": 0.0, "tokens": 0, "functions": 0}
        else:
            state = trainer.fit()
        trainer.finish(state)
    except RecipeError as error:
        print(f"vulnlab recipe: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
