#!/usr/bin/env python3
"""Writes the PyTorch fixtures of the model-IO tests (tests/fixtures/io/).

Run after `npx tsx scripts/demo-model/package.ts` (scripts/demo-model/README.md), with Debian's python3-torch:

    /usr/bin/python3 scripts/make-io-fixtures.py

- demo/pytorch_model.bin: the demo model's weights (read from public/models/demo/model.safetensors
  without the safetensors package) saved by torch.save as an OrderedDict state dict, with
  lm_head.weight sharing wte's storage, as Hugging Face's tied GPT-BigCode checkpoints do.
- dtypes.bin + dtypes.json: F16, BF16 and F32 tensors, one a view at a non-zero storage offset, and
  their values, to test the unpickler's storage handling.
- evil-os-system.bin: a torch.save-shaped zip whose data.pkl calls os.system (must be refused).
- unknown-opcode.bin: a data.pkl with an opcode that does not exist (0xfe) (must be refused).
- forbidden-newobj.bin: a data.pkl that uses NEWOBJ on an allowed-looking global (must be refused).
"""
import collections
import io
import json
import os
import struct
import zipfile

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "io")
DEMO = os.path.join(ROOT, "public", "models", "demo", "model.safetensors")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = collections.OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(info["shape"])
        out[name] = t.clone()
    return out


def torch_zip(path, pkl_bytes, storages=None):
    """A zip laid out like torch.save's: archive/data.pkl, archive/data/<key>, archive/version."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl_bytes)
        for key, raw in (storages or {}).items():
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")


def main():
    os.makedirs(os.path.join(OUT, "demo"), exist_ok=True)
    sd = read_safetensors(DEMO)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied: same storage
    torch.save(sd, os.path.join(OUT, "demo", "pytorch_model.bin"))

    torch.manual_seed(0)
    big = torch.randn(10, dtype=torch.float32)
    dtypes = collections.OrderedDict(
        [
            ("half", torch.randn(2, 3).to(torch.float16)),
            ("bf16", torch.randn(4).to(torch.bfloat16)),
            ("view", big[3:7].view(2, 2)),  # storage offset 3 into a 10-element storage
            ("scalarish", torch.tensor([1.5], dtype=torch.float32)),
        ]
    )
    torch.save(dtypes, os.path.join(OUT, "dtypes.bin"))
    with open(os.path.join(OUT, "dtypes.json"), "w") as f:
        json.dump(
            {k: {"shape": list(v.shape), "values": v.float().flatten().tolist()} for k, v in dtypes.items()},
            f,
            indent=1,
        )

    # os.system("echo pwned") through GLOBAL + REDUCE.
    evil = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
    torch_zip(os.path.join(OUT, "evil-os-system.bin"), evil)

    # EMPTY_DICT then the non-existent opcode 0xfe.
    torch_zip(os.path.join(OUT, "unknown-opcode.bin"), b"\x80\x02}q\x00\xfe.")

    # NEWOBJ (0x81) of collections.OrderedDict: a real opcode torch.save never emits for a state dict.
    torch_zip(
        os.path.join(OUT, "forbidden-newobj.bin"),
        b"\x80\x02ccollections\nOrderedDict\nq\x00)\x81q\x01.",
    )
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
