"""Prints, as JSON, what tests/recipes/recipe.test.ts compares with the lab's TypeScript:
the recipe trainer's batches (data.py) for several modes/epochs, and sha256 digests of its q8_0/q4_0
quantization (model.py) of the base's block linears and of an odd-shaped tensor, in ggml's byte layout.

Usage: python3 probe.py RECIPE_DIR
"""

import hashlib
import json
import os
import sys

import numpy as np
import torch

recipe = sys.argv[1]
sys.path.insert(0, os.path.join(recipe, "trainer"))

from data import load_splits, make_batches  # noqa: E402
from model import load_checkpoint, quantize  # noqa: E402


def rows_as_indices(batches, examples):
    return [[[examples[i].example_index for i in row] for row in batch] for batch in batches]


def ggml_bytes(weight: torch.Tensor, fmt: str) -> bytes:
    codes, scales = quantize(weight, fmt)
    scale_bytes = scales.numpy().astype("<f2").view(np.uint8).reshape(*scales.shape, 2)
    return np.concatenate([scale_bytes, codes.numpy().view(np.uint8)], axis=-1).tobytes()


with open(os.path.join(recipe, "config.json")) as f:
    run = json.load(f)
with open(os.path.join(recipe, "recipe.json")) as f:
    L = json.load(f)["packLength"]
seed, packs = run["seed"], run["batching"]["packsPerStep"]
splits = load_splits(recipe)
train, validation = splits["train"], splits["validation"]
batches = {}
for mode in ("packed", "paper", "padded"):
    for epoch in (0, 1):
        batches[f"{mode}/{epoch}"] = rows_as_indices(make_batches(train, mode, L, seed, epoch, True, 200, packs), train)
batches["packed/0/max2"] = rows_as_indices(make_batches(train, "packed", L, seed, 0, True, 2, packs), train)
batches["paper/eval"] = rows_as_indices(make_batches(validation, "paper", L, seed, 0, False, 200, packs), validation)

weights = load_checkpoint(os.path.join(recipe, "model"))
odd = torch.tensor([((i * 7) % 23 - 11) / 3 for i in range(5 * 45)], dtype=torch.float64).float().view(5, 45)
tensors = {"odd": odd}
for target in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
    tensors[f"transformer.h.0.{target}.weight"] = weights[f"transformer.h.0.{target}.weight"]
quant = {
    f"{name}/{fmt}": hashlib.sha256(ggml_bytes(t, fmt)).hexdigest()
    for name, t in tensors.items()
    for fmt in ("q8_0", "q4_0")
}
print(json.dumps({"batches": batches, "quant": quant}))
