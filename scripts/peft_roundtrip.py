#!/usr/bin/python3
"""PEFT adapter round trip: the independent PyTorch reference loads the lab's exported adapter.

Reads the demo model (public/models/demo), the PEFT adapter exported by the lab
(tests/fixtures/peft/adapter/, keys `base_model.model.<module>.lora_A.weight` …, with target "wte" the
embedding's `base_model.model.transformer.wte.lora_embedding_A` / `_B` (no `.weight`, as PEFT saves them),
and `base_model.model.score.weight`) and a packed batch (tests/fixtures/peft/batch.json), and writes the
classification logits the reference computes to tests/fixtures/peft/expected.json.

Run after `npx tsx scripts/make-peft-fixture.ts`: /usr/bin/python3 scripts/peft_roundtrip.py
"""

import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import EMB_A, EMB_B, build_mask, cls_logits, transformer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "peft")
PEFT_PREFIX = "base_model.model."
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    """A minimal safetensors reader (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=DTYPES[info["dtype"]])
        tensors[name] = t.reshape(info["shape"]).to(torch.float64)
    return tensors


def main():
    with open(os.path.join(ROOT, "public", "models", "demo", "config.json")) as f:
        cfg = json.load(f)
    params = read_safetensors(os.path.join(ROOT, "public", "models", "demo", "model.safetensors"))
    with open(os.path.join(FIXTURE, "adapter", "adapter_config.json")) as f:
        adapter_config = json.load(f)
    assert adapter_config["peft_type"] == "LORA" and adapter_config["task_type"] == "SEQ_CLS"
    adapter = read_safetensors(os.path.join(FIXTURE, "adapter", "adapter_model.safetensors"))
    for key, value in adapter.items():
        assert key.startswith(PEFT_PREFIX), key
        params[key[len(PEFT_PREFIX) :]] = value
    targets = adapter_config["target_modules"]
    for layer in range(cfg["n_layer"]):
        for target in targets:
            if target == "wte":
                continue
            for ab in ("lora_A", "lora_B"):
                assert f"transformer.h.{layer}.{target}.{ab}.weight" in params, (layer, target, ab)
    r = adapter_config["r"]
    if "wte" in targets:  # PEFT lora.Embedding: A [r, vocab], B [n_embd, r]; the reference adds it to wte(ids)
        assert params[EMB_A].shape == (r, cfg["vocab_size"]), params[EMB_A].shape
        assert params[EMB_B].shape == (cfg["n_embd"], r), params[EMB_B].shape
    else:
        assert EMB_A not in params and EMB_B not in params, "embedding LoRA tensors without target wte"
    assert "score.weight" in params
    with open(os.path.join(FIXTURE, "batch.json")) as f:
        batch = json.load(f)
    input_ids = torch.tensor(batch["input_ids"])
    position_ids = torch.tensor(batch["position_ids"])
    mask = build_mask(torch.tensor(batch["segment_ids"]), "packed")
    scaling = adapter_config["lora_alpha"] / adapter_config["r"]
    with torch.no_grad():
        hidden = transformer(params, cfg, input_ids, position_ids, mask, scaling)
        logits = cls_logits(params, hidden, batch["functions"])
    out = {"lora_scaling": scaling, "logits": logits.tolist()}
    with open(os.path.join(FIXTURE, "expected.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"logits of {len(batch['functions'])} functions written to tests/fixtures/peft/expected.json")


if __name__ == "__main__":
    main()
