"""A random Hugging Face checkpoint of a model config, for recipe tests where no tiny checkpoint exists:
model.safetensors with every tensor the recipe's Arch lists for a *ForCausalLM (untied lm_head
included), norms 1 (biases 0), everything else N(0, 0.05); the config is copied beside it.

Usage: python3 family_model.py CONFIG.json OUT_DIR [SEED]
"""

import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "torch"))

from model import Arch, write_safetensors  # noqa: E402

config_path, out = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
with open(config_path) as f:
    cfg = json.load(f)
tensors = {}
for name, shape, kind in Arch(cfg).base_specs(lm_head=True):
    if kind == "norm":
        tensors[name] = torch.ones(shape) if name.endswith(".weight") else torch.zeros(shape)
    else:
        tensors[name] = torch.randn(shape, generator=g) * 0.05
os.makedirs(out, exist_ok=True)
write_safetensors(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
if os.path.abspath(config_path) != os.path.abspath(os.path.join(out, "config.json")):
    shutil.copyfile(config_path, os.path.join(out, "config.json"))
