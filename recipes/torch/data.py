"""The recipe's data: pre-tokenized splits and the lab's batching, ported line for line.

`make_batches` reproduces src/data/batching.ts (`makeBatches`) exactly — the same seeded generator
(src/engine/random.ts `Rng`), the same first-fit packing and the same shuffles — so epoch e of a
recipe sees the same packs, in the same order, as epoch e of the lab run it was exported from.
`collate` turns rows of a batch into tensors with the lab's semantics: every function followed by
one EOS separator (the next-token objective's functions are the paper's prompts, with their answer
token in training); `packed`/`padded`: positions restart at 0 per function and attention stays inside
the function (block-diagonal causal); `paper`: positions run over the row and attention spans it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

U32 = 0xFFFFFFFF
SPLITS = ("train", "validation", "test")
DEFAULT_MAX_FUNCTIONS_PER_PACK = 200


def imul(a: int, b: int) -> int:
    """JavaScript's Math.imul as an unsigned 32-bit result."""
    return (a * b) & U32


class Rng:
    """src/engine/random.ts `Rng`: SplitMix32-style mixing of a 32-bit counter (same sequence)."""

    def __init__(self, state: int) -> None:
        self.state = state & U32

    def next_u32(self) -> int:
        self.state = (self.state + 0x9E3779B9) & U32
        z = self.state
        z = imul(z ^ (z >> 16), 0x85EBCA6B)
        z = imul(z ^ (z >> 13), 0xC2B2AE35)
        return (z ^ (z >> 16)) & U32

    def next(self) -> float:
        return self.next_u32() / 4294967296

    def normal(self) -> float:
        u = 1 - self.next()
        return math.sqrt(-2 * math.log(u)) * math.cos(2 * math.pi * self.next())

    def int(self, n: int) -> int:
        return math.floor(self.next() * n)

    def shuffle(self, items: list) -> list:
        for i in range(len(items) - 1, 0, -1):
            j = self.int(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


def epoch_rng(seed: int, epoch: int) -> Rng:
    return Rng((seed ^ imul(epoch + 1, 0x9E3779B1)) & U32)


@dataclass
class Example:
    tokens: List[int]
    label: int
    weight: float
    cwe: Optional[str]
    example_index: int


class RecipeError(Exception):
    """Bad recipe input: the message says what, `hint` what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message}\n  -> {hint}")
        self.hint = hint


def read_split(path: str) -> List[Example]:
    """One JSONL split written by `vulnlab export-recipe` (tokens, label, weight, cwe, example_index)."""
    examples: List[Example] = []
    if not os.path.exists(path):
        raise RecipeError(f"{path} is missing.", "Export the run again with `npm run vulnlab -- export-recipe`.")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                tokens = [int(t) for t in row["tokens"]]
                label = int(row["label"])
                weight = float(row.get("weight", 1.0))
                index = int(row["example_index"])
            except (ValueError, KeyError, TypeError) as error:
                raise RecipeError(f"{path}:{number}: {error!r}", "Each line needs tokens, label, weight and example_index.")
            if label not in (0, 1) or not tokens or not weight > 0:
                raise RecipeError(f"{path}:{number}: bad label, weight or empty tokens.", "Labels are 0/1, weights > 0.")
            examples.append(Example(tokens, label, weight, row.get("cwe"), index))
    return examples


def first_fit(sizes: Sequence[int], order: Sequence[int], capacity: int, max_items: float = math.inf) -> List[List[int]]:
    """batching.ts `firstFit`: leftmost bin with room (a max segment tree over remaining capacity)."""
    n = len(order)
    if n == 0:
        return []
    size = 1
    while size < n:
        size *= 2
    tree = [-1.0] * (2 * size)
    for i in range(n):
        tree[size + i] = capacity
    for i in range(size - 1, 0, -1):
        tree[i] = max(tree[2 * i], tree[2 * i + 1])
    bins: List[List[int]] = []
    remaining: List[int] = []
    for item in order:
        need = sizes[item]
        if need > capacity:
            raise ValueError(f"item {item} of size {need} exceeds the capacity {capacity}")
        node = 1
        while node < size:
            node = 2 * node if tree[2 * node] >= need else 2 * node + 1
        b = node - size
        if b == len(bins):
            bins.append([])
            remaining.append(capacity)
        bins[b].append(item)
        remaining[b] -= need
        tree[node] = -1 if len(bins[b]) >= max_items else remaining[b]
        node >>= 1
        while node >= 1:
            tree[node] = max(tree[2 * node], tree[2 * node + 1])
            node >>= 1
    return bins


def make_batches(
    examples: Sequence[Example],
    mode: str,
    pack_length: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    max_functions_per_pack: int,
    rows_per_batch: int,
) -> List[List[List[int]]]:
    """Batches as lists of rows, each row the indices (into `examples`) of its functions, in order."""
    sizes = []
    for i, e in enumerate(examples):
        if len(e.tokens) + 1 > pack_length:
            raise RecipeError(
                f"Example {e.example_index} has {len(e.tokens)} tokens; with its separator it exceeds {pack_length}.",
                "The recipe's splits were tokenized for a longer pack; export the run again.",
            )
        sizes.append(len(e.tokens) + 1)
    rng = epoch_rng(seed, epoch)
    order = list(range(len(examples)))
    if shuffle:
        rng.shuffle(order)
    if mode in ("packed", "paper"):
        visit = sorted(order, key=lambda i: -sizes[i]) if mode == "packed" else order  # stable, as JS sort
        rows = first_fit(sizes, visit, pack_length, max_functions_per_pack)
        if mode == "packed" and shuffle:
            for row in rows:
                rng.shuffle(row)
            rng.shuffle(rows)
    elif mode == "padded":
        rows = [[i] for i in order]
    else:
        raise RecipeError(f'Unknown batching mode "{mode}".', "Use packed, padded or paper.")
    return [rows[i : i + rows_per_batch] for i in range(0, len(rows), rows_per_batch)]


@dataclass
class Collated:
    """A micro-batch: [B, T] tensors (T = longest used row, trailing padding trimmed) and its functions."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segment_ids: torch.Tensor
    #: Row of each row within the step's whole batch (keys the lab's dropout masks).
    global_rows: torch.Tensor
    #: Per function: row within this micro-batch, index of its last code token, label, loss weight.
    fn_row: torch.Tensor
    fn_last: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    #: Next-token targets (reference `ntpTargets`): token (target_rows[i], target_cols[i]) predicts targets[i].
    target_rows: torch.Tensor
    target_cols: torch.Tensor
    targets: torch.Tensor
    example_index: List[int]
    real_tokens: int


def collate(
    rows: Sequence[Sequence[int]],
    global_rows: Sequence[int],
    examples: Sequence[Example],
    paper: bool,
    separator_id: int,
    pad_id: int,
    positive_weight: float,
) -> Collated:
    """batching.ts `materialize` + run.ts `toPacked` for some rows of a batch (weights × positiveWeight)."""
    used = [sum(len(examples[i].tokens) + 1 for i in row) for row in rows]
    width = max(used) if used else 1
    B = max(1, len(rows))
    ids = torch.full((B, width), pad_id, dtype=torch.long)
    seg = torch.full((B, width), -1, dtype=torch.long)
    pos = torch.zeros((B, width), dtype=torch.long)
    fn_row: List[int] = []
    fn_last: List[int] = []
    labels: List[int] = []
    weights: List[float] = []
    index: List[int] = []
    for r, row in enumerate(rows):
        t = 0
        for s, i in enumerate(row):
            e = examples[i]
            n = len(e.tokens)
            ids[r, t : t + n] = torch.tensor(e.tokens, dtype=torch.long)
            ids[r, t + n] = separator_id
            seg[r, t : t + n + 1] = s
            pos[r, t : t + n + 1] = torch.arange(t, t + n + 1) if paper else torch.arange(n + 1)
            fn_row.append(r)
            fn_last.append(t + n - 1)
            labels.append(e.label)
            weights.append(e.weight * (positive_weight if e.label == 1 else 1.0))
            index.append(e.example_index)
            t += n + 1
        if paper:
            pos[r, t:] = torch.arange(t, width)
    # A token predicts the next one of its function (packed), or of its row (paper); never padding.
    follows = (seg[:, :-1] >= 0) & (seg[:, 1:] >= 0)
    if not paper:
        follows &= seg[:, :-1] == seg[:, 1:]
    target_rows, target_cols = follows.nonzero(as_tuple=True)
    return Collated(
        input_ids=ids,
        position_ids=pos,
        segment_ids=seg,
        global_rows=torch.tensor(list(global_rows) or [0], dtype=torch.long),
        fn_row=torch.tensor(fn_row, dtype=torch.long),
        fn_last=torch.tensor(fn_last, dtype=torch.long),
        labels=torch.tensor(labels, dtype=torch.long),
        weights=torch.tensor(weights, dtype=torch.float32),
        target_rows=target_rows,
        target_cols=target_cols,
        targets=ids[target_rows, target_cols + 1],
        example_index=index,
        real_tokens=sum(used),
    )


def load_splits(recipe_dir: str) -> Dict[str, List[Example]]:
    return {split: read_split(os.path.join(recipe_dir, "splits", f"{split}.jsonl")) for split in SPLITS}
