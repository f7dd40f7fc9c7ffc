"""GPT-BigCode + LoRA + classification head, as the VulnLab engine computes it, in PyTorch.

Grown from scripts/torch_reference.py (the engine's independent float64 reference): the same
architecture (Hugging Face GPTBigCodeModel: multi-query or multi-head attention, pre-LayerNorm,
learned positions), the same packed attention (block-diagonal, or the paper's causal-over-the-row),
the same LoRA (y += alpha/r · B·A·drop(x)) with the engine's stateless dropout masks, the same LoRA
on the token embedding (target "wte", PEFT's lora.Embedding: x0 = wte[ids] + alpha/r · (A[:, ids])ᵀ·Bᵀ,
no dropout), the same
initialization of new tensors (src/train/init.ts, same generator), the same bias-free score head on
each function's last code token and the same weighted focal loss (src/engine/reference/loss.ts) —
or, for the next-token objective, the tied lm_head (logits = hidden·wteᵀ) and token cross-entropy.

The frozen base can be stored as the lab stores it on the GPU (`weightFormat`): f32, f16, or ggml's
q8_0/q4_0 blocks (32 weights, f16 scale), quantized here bit-exactly as src/engine/quant.ts does and
dequantized one linear at a time inside the matmul (forward and backward), so memory holds int8/int4
weights only. This is the recipe's own quantization, not bitsandbytes: it saves memory, not compute.

Checkpoints are read from Hugging Face safetensors directly (one file or sharded with an index);
adapters are written as PEFT safetensors. No transformers, peft or safetensors packages needed.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from data import Rng, RecipeError

LINEAR_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
LORA_TARGETS = LINEAR_TARGETS + ("wte",)  # "wte": the token embedding (PEFT lora.Embedding)
EMBEDDING_LORA_A = "transformer.wte.lora_embedding_A"  # [r, vocab]; PEFT's key has no ".weight"
EMBEDDING_LORA_B = "transformer.wte.lora_embedding_B"  # [n_embd, r]
PEFT_PREFIX = "base_model.model."
QK = 32  # weights per q8_0 / q4_0 block

# ------------------------------------------------------------------------------------------------
# safetensors (8-byte little-endian header length, JSON header, raw little-endian data)

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Every tensor of one .safetensors file as float32 (BF16/F16 converted exactly)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    out: Dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = data[start:end]
        dtype = entry["dtype"]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in _DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise RecipeError(f"{path}: tensor {name} has dtype {dtype}.", "Use F32, F16 or BF16 checkpoints.")
        out[name] = torch.from_numpy(array.astype(np.float32)).reshape(entry["shape"])
    return out


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """F32 safetensors, laid out as src/io/safetensors.ts writes them (header padded to 8 bytes)."""
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs: List[bytes] = []
    offset = 0
    for name, tensor in tensors.items():
        blob = tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text.encode()) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text.encode())))
        f.write(text.encode())
        for blob in blobs:
            f.write(blob)


def load_checkpoint(model_dir: str) -> Dict[str, torch.Tensor]:
    """A Hugging Face model folder's weights: model.safetensors or the shards of its index."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(n for n in os.listdir(model_dir) if n.endswith(".safetensors")) if os.path.isdir(model_dir) else []
    if not files:
        raise RecipeError(
            f"No safetensors weights in {model_dir}.",
            "The recipe reads safetensors only: convert .bin/GGUF checkpoints, or pass --model DIR.",
        )
    weights: Dict[str, torch.Tensor] = {}
    for name in files:
        weights.update(read_safetensors(os.path.join(model_dir, name)))
    return weights


# ------------------------------------------------------------------------------------------------
# The lab's weight formats (src/engine/quant.ts), bit-exact


def quantize(weight: torch.Tensor, fmt: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(codes, f16 scales) of W [rows, cols] in q8_0 or q4_0; rows zero-padded to whole blocks."""
    rows, cols = weight.shape
    blocks = -(-cols // QK)
    padded = torch.zeros(rows, blocks * QK, dtype=torch.float32)
    padded[:, :cols] = weight.float()
    x = padded.view(rows, blocks, QK)
    if fmt == "q8_0":
        d = x.abs().amax(-1) / 127  # f32 division, as fround(amax / 127)
        inv = torch.where(d != 0, 1 / d, torch.zeros_like(d))
        scaled = (x * inv[..., None]).double()  # f32 product; C roundf (halves away from zero) in f64
        codes = (scaled.sign() * torch.floor(scaled.abs() + 0.5)).to(torch.int8)
        return codes, d.half()
    if fmt == "q4_0":
        at = x.abs().argmax(-1, keepdim=True)  # first maximal magnitude keeps its sign
        d = x.gather(-1, at).squeeze(-1) / -8
        inv = torch.where(d != 0, 1 / d, torch.zeros_like(d))
        q = torch.trunc(x * inv[..., None] + 8.5).clamp(max=15).to(torch.uint8)
        return q[..., :16] | (q[..., 16:] << 4), d.half()
    raise ValueError(fmt)


def dequantize(codes: torch.Tensor, scales: torch.Tensor, fmt: str, cols: int, dtype: torch.dtype) -> torch.Tensor:
    if fmt == "q8_0":
        values = codes.to(dtype)
    else:
        values = torch.cat([codes & 15, codes >> 4], dim=-1).to(dtype) - 8
    w = values * scales.to(dtype)[..., None]
    return w.reshape(codes.shape[0], -1)[:, :cols]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype autocast computes matmuls in on x's device (x's own dtype without autocast)."""
    if x.is_cuda and torch.is_autocast_enabled():
        return torch.get_autocast_gpu_dtype()
    if not x.is_cuda and hasattr(torch, "is_autocast_cpu_enabled") and torch.is_autocast_cpu_enabled():
        return torch.get_autocast_cpu_dtype()
    return x.dtype


class _FrozenMatmul(torch.autograd.Function):
    """x·Wᵀ with W rebuilt from its stored format in forward and again in backward (never kept)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, owner: "BaseLinear") -> torch.Tensor:  # type: ignore[override]
        ctx.owner = owner
        return x @ owner.weight_as(x.dtype).t()

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        return dy @ ctx.owner.weight_as(dy.dtype), None


# ------------------------------------------------------------------------------------------------
# The engine's stateless LoRA dropout (src/engine/kernels/lora.ts, shaders/dropout.wgsl)


def _mul32(h: torch.Tensor, c: int) -> torch.Tensor:
    """(h · c) mod 2³² for int64 tensors holding u32 values, without overflowing int64."""
    return (h * (c & 0xFFFF) + (((h * (c >> 16)) & 0xFFFF) << 16)) & 0xFFFFFFFF


def _mix32(h: torch.Tensor) -> torch.Tensor:
    h = h ^ (h >> 16)
    h = _mul32(h, 0x7FEB352D)
    h = h ^ (h >> 15)
    h = _mul32(h, 0x846CA68B)
    return h ^ (h >> 16)


def _mix32_int(x: int) -> int:
    return int(_mix32(torch.tensor([x & 0xFFFFFFFF], dtype=torch.long))[0])


def dropout_key(seed: int, site: int, step: int) -> int:
    k = _mix32_int(step + 0x9E3779B9)
    j = _mix32_int((site ^ k) + 0x85EBCA6B)
    return _mix32_int((seed ^ j) + 0xC2B2AE35)


def dropout_keep(index: torch.Tensor, key: int, p: float) -> torch.Tensor:
    """Keep mask of flat element indices: mix32(mix32(i ^ key) + key) >= round(p · 2³²)."""
    threshold = min(0xFFFFFFFF, round(p * 2**32))
    h = _mix32(((index & 0xFFFFFFFF) ^ key))
    return _mix32((h + key) & 0xFFFFFFFF) >= threshold


# ------------------------------------------------------------------------------------------------
# Model


class BaseLinear(nn.Module):
    """A block linear y = x·Wᵀ + b (+ LoRA). W trainable (trainable "all") or frozen in a lab format."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, fmt: str, trainable: bool) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.fmt = "f32" if trainable else fmt
        if self.fmt in ("f32", "f16"):
            dtype = torch.float16 if self.fmt == "f16" else torch.float32
            self.weight = nn.Parameter(weight.to(dtype), requires_grad=trainable)
        else:
            codes, scales = quantize(weight, self.fmt)
            self.register_buffer("codes", codes)
            self.register_buffer("scales", scales)
        self.bias = nn.Parameter(bias.clone(), requires_grad=trainable)
        self.lora: Optional[Dict[str, object]] = None

    def weight_as(self, dtype: torch.dtype) -> torch.Tensor:
        if self.fmt in ("f32", "f16"):
            return self.weight.to(dtype)
        return dequantize(self.codes, self.scales, self.fmt, self.in_features, dtype)

    def add_lora(self, r: int, alpha: float, dropout: float, site: int, a: torch.Tensor, b: torch.Tensor) -> None:
        self.lora_A = nn.Linear(self.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, self.out_features, bias=False)
        with torch.no_grad():
            self.lora_A.weight.copy_(a)
            self.lora_B.weight.copy_(b)
        self.lora = {"scaling": alpha / r, "dropout": dropout, "site": site}

    def forward(self, x: torch.Tensor, drop: Optional["DropoutContext"]) -> torch.Tensor:
        if self.fmt == "f32":  # trainable or frozen: autograd, autocast and FSDP handle it as it is
            y = F.linear(x, self.weight, self.bias)
        else:  # f16/q8_0/q4_0: rebuilt per matmul, so no f32 copy of W outlives the forward
            dtype = compute_dtype(x)
            y = _FrozenMatmul.apply(x.to(dtype), self) + self.bias.to(dtype)
        if self.lora is None:
            return y
        xd = x
        p = float(self.lora["dropout"])
        if drop is not None and p > 0:
            keep = drop.keep(int(self.lora["site"]), x.shape, p)
            xd = torch.where(keep, x * (1 / (1 - p)), torch.zeros((), dtype=x.dtype, device=x.device))
        return y + float(self.lora["scaling"]) * self.lora_B(self.lora_A(xd))


class DropoutContext:
    """The lab's dropout masks for one training step: element (global row, t, k) of a LoRA input."""

    def __init__(self, seed: int, step: int, pack_length: int, global_rows: torch.Tensor) -> None:
        self.seed, self.step, self.pack_length = seed, step, pack_length
        self.global_rows = global_rows

    def keep(self, site: int, shape: torch.Size, p: float) -> torch.Tensor:
        B, T, C = shape
        rows = self.global_rows.to(torch.long)[:, None, None]
        t = torch.arange(T, device=rows.device)[None, :, None]
        k = torch.arange(C, device=rows.device)[None, None, :]
        index = (rows * self.pack_length + t) * C + k  # flat index into the lab's [packs · L, C]
        return dropout_keep(index, dropout_key(self.seed, site, self.step), p)


class Block(nn.Module):
    def __init__(self, cfg: dict, layer: int) -> None:
        super().__init__()
        self.cfg, self.layer = cfg, layer
        D = cfg["n_embd"]
        self.ln_1 = nn.LayerNorm(D, eps=cfg["layer_norm_epsilon"])
        self.ln_2 = nn.LayerNorm(D, eps=cfg["layer_norm_epsilon"])
        self.attn = nn.Module()
        self.mlp = nn.Module()

    def linears(self) -> Dict[str, BaseLinear]:
        return {
            "attn.c_attn": self.attn.c_attn,
            "attn.c_proj": self.attn.c_proj,
            "mlp.c_fc": self.mlp.c_fc,
            "mlp.c_proj": self.mlp.c_proj,
        }

    def forward(self, x: torch.Tensor, mask: torch.Tensor, drop: Optional[DropoutContext]) -> torch.Tensor:
        cfg = self.cfg
        B, T, D = x.shape
        H = cfg["n_head"]
        hd = D // H
        qkv = self.attn.c_attn(self.ln_1(x), drop)
        if cfg["multi_query"]:
            q, k, v = qkv.split([D, hd, hd], dim=-1)  # [Q of every head | one K | one V]
            q = q.view(B, T, H, hd).transpose(1, 2)
            k, v = k[:, None], v[:, None]
        else:
            q, k, v = (t.transpose(1, 2) for t in qkv.view(B, T, H, 3, hd).unbind(dim=3))
        if x.is_cuda and hasattr(F, "scaled_dot_product_attention"):  # fused kernels (torch >= 2.0)
            out = F.scaled_dot_product_attention(q, k.expand(-1, H, -1, -1), v.expand(-1, H, -1, -1), mask[:, None])
        elif cfg["multi_query"]:  # every head against the one K/V: [B, H·T, hd] GEMMs, no broadcast copies
            q = q.reshape(B, H * T, hd) * (1 / math.sqrt(hd))  # scaled before the product: T× fewer multiplies
            scores = torch.bmm(q, k[:, 0].transpose(1, 2)).view(B, H, T, T).float()
            probs = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1).to(v.dtype)
            out = torch.bmm(probs.view(B, H * T, T), v[:, 0]).view(B, H, T, hd)
        else:
            scores = (q @ k.transpose(-1, -2)).float() * (1 / math.sqrt(hd))
            probs = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1).to(v.dtype)
            out = probs @ v
        out = out.transpose(1, 2).reshape(B, T, D)
        x = x + self.attn.c_proj(out, drop)
        h = self.mlp.c_fc(self.ln_2(x), drop)
        approximate = "tanh" if cfg["activation_function"] == "gelu_pytorch_tanh" else "none"
        return x + self.mlp.c_proj(F.gelu(h, approximate=approximate), drop)


def attention_mask(segment_ids: torch.Tensor, paper: bool) -> torch.Tensor:
    """[B, T, T] keys each query may see: earlier tokens of its function (packed) or of its row (paper)."""
    T = segment_ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
    key_real = (segment_ids >= 0)[:, None, :]
    allowed = causal[None] & key_real
    if not paper:
        allowed = allowed & (segment_ids[:, :, None] == segment_ids[:, None, :])
    return allowed | torch.eye(T, dtype=torch.bool, device=segment_ids.device)[None]  # padding sees itself


class GptBigCodeClassifier(nn.Module):
    """GPTBigCode transformer + LoRA + score head; parameter names are Hugging Face's."""

    def __init__(self, cfg: dict, weights: Dict[str, torch.Tensor], run: dict, base_format: str, recompute: bool) -> None:
        super().__init__()
        self.cfg = dict(cfg)
        self.cfg.setdefault("n_inner", None)
        self.cfg["n_inner"] = self.cfg["n_inner"] or 4 * cfg["n_embd"]
        self.paper = run["batching"]["mode"] == "paper"
        self.cls = run["objective"] == "cls"
        self.recompute = recompute
        self.seed = int(run["seed"])
        self.embedding_scaling: Optional[float] = None  # set when "wte" has an adapter
        full = run["trainable"] == "all"
        D = cfg["n_embd"]

        def base(name: str) -> torch.Tensor:
            if name not in weights:
                raise RecipeError(f"The checkpoint has no tensor {name}.", "Use a GPT-BigCode checkpoint.")
            return weights[name]

        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(cfg["vocab_size"], D)
        self.transformer.wpe = nn.Embedding(cfg["n_positions"], D)
        self.transformer.h = nn.ModuleList()
        for layer in range(cfg["n_layer"]):
            block = Block(self.cfg, layer)
            for target in LINEAR_TARGETS:
                owner, attr = target.split(".")
                prefix = f"transformer.h.{layer}.{target}"
                linear = BaseLinear(base(prefix + ".weight"), base(prefix + ".bias"), base_format, full)
                setattr(getattr(block, owner), attr, linear)
            self.transformer.h.append(block)
        self.transformer.ln_f = nn.LayerNorm(D, eps=cfg["layer_norm_epsilon"])
        if self.cls:
            self.score = nn.Linear(D, 2, bias=False)
        with torch.no_grad():
            for name, tensor in self.named_parameters():
                if name in weights:
                    tensor.copy_(weights[name])
        for name, p in self.named_parameters():
            if not full:
                p.requires_grad_(False)
        init = initial_trainables(self.cfg, run)
        if self.cls:
            if "score.weight" not in weights:  # a classifier checkpoint keeps its head
                with torch.no_grad():
                    self.score.weight.copy_(init["score.weight"])
            self.score.weight.requires_grad_(True)
        if not full:  # the lab trains LoRA only with trainable "lora" (run.ts)
            lora = run["lora"]
            for layer, block in enumerate(self.transformer.h):
                for index, target in enumerate(LINEAR_TARGETS):
                    if target not in lora["targets"]:
                        continue
                    prefix = f"transformer.h.{layer}.{target}"
                    block.linears()[target].add_lora(
                        lora["r"], lora["alpha"], lora["dropout"], layer * len(LINEAR_TARGETS) + index,
                        init[prefix + ".lora_A.weight"], init[prefix + ".lora_B.weight"],
                    )
            if "wte" in lora["targets"]:  # PEFT lora.Embedding: parameters on the embedding module itself
                wte = self.transformer.wte
                wte.lora_embedding_A = nn.Parameter(init[EMBEDDING_LORA_A].clone())
                wte.lora_embedding_B = nn.Parameter(init[EMBEDDING_LORA_B].clone())
                self.embedding_scaling = lora["alpha"] / lora["r"]

    def trainable_names(self) -> List[str]:
        """In the lab's order (trainableSpecs): the block linears' LoRA, the embedding's, the score head."""
        names = [n for n, p in self.named_parameters() if p.requires_grad]
        embedding = [n for n in names if n in (EMBEDDING_LORA_A, EMBEDDING_LORA_B)]
        if not embedding:
            return names
        rest = [n for n in names if n not in embedding]
        head = [n for n in rest if n == "score.weight"]
        return [n for n in rest if n != "score.weight"] + embedding + head

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """wte[ids], plus alpha/r · (A[:, ids])ᵀ·Bᵀ with an embedding adapter (no dropout on it)."""
        x = self.transformer.wte(input_ids)
        if self.embedding_scaling is None:
            return x
        wte = self.transformer.wte
        after_a = F.embedding(input_ids, wte.lora_embedding_A.t())  # [B, T, r]
        return x + (after_a @ wte.lora_embedding_B.t()) * self.embedding_scaling

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        drop: Optional[DropoutContext] = None,
        vocab: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Head logits (float32) at tokens (rows[i], cols[i]) after ln_f: the score head's [n, 2] (cls),
        or the tied lm_head's [n, V] (ntp; only the `vocab` columns when given)."""
        mask = attention_mask(segment_ids, self.paper)
        x = self.embed(input_ids) + self.transformer.wpe(position_ids)
        for block in self.transformer.h:
            if self.recompute and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, mask, drop, use_reentrant=False)
            else:
                x = block(x, mask, drop)
        picked = self.transformer.ln_f(x)[rows, cols]
        if self.cls:
            return self.score(picked).float()
        wte = self.transformer.wte.weight
        return F.linear(picked, wte if vocab is None else wte[vocab]).float()


def initial_trainables(cfg: dict, run: dict) -> Dict[str, torch.Tensor]:
    """src/train/init.ts with its generator: LoRA A ~ U(±1/√in), B = 0; the embedding's adapter
    A = 0, B ~ N(0, 1) (PEFT's lora.Embedding); score ~ N(0, 0.02). Drawn in the lab's order."""
    rng = Rng(int(run["seed"]) ^ 0x5EED1E55)
    D, inner = cfg["n_embd"], cfg["n_inner"] or 4 * cfg["n_embd"]
    hd = D // cfg["n_head"]
    shapes = {
        "attn.c_attn": (D + 2 * hd if cfg["multi_query"] else 3 * D, D),
        "attn.c_proj": (D, D),
        "mlp.c_fc": (inner, D),
        "mlp.c_proj": (D, inner),
    }
    out: Dict[str, torch.Tensor] = {}
    if run["trainable"] == "lora":
        r = run["lora"]["r"]
        for layer in range(cfg["n_layer"]):
            for target in LINEAR_TARGETS:
                if target not in run["lora"]["targets"]:
                    continue
                rows_out, cols = shapes[target]
                bound = 1 / math.sqrt(cols)
                a = [(rng.next() * 2 - 1) * bound for _ in range(r * cols)]
                prefix = f"transformer.h.{layer}.{target}"
                out[prefix + ".lora_A.weight"] = torch.tensor(a, dtype=torch.float64).float().view(r, cols)
                out[prefix + ".lora_B.weight"] = torch.zeros(rows_out, r)
        if "wte" in run["lora"]["targets"]:
            out[EMBEDDING_LORA_A] = torch.zeros(r, cfg["vocab_size"])
            b = [rng.normal() for _ in range(D * r)]
            out[EMBEDDING_LORA_B] = torch.tensor(b, dtype=torch.float64).float().view(D, r)
    values = [0.02 * rng.normal() for _ in range(2 * D)]
    out["score.weight"] = torch.tensor(values, dtype=torch.float64).float().view(2, D)
    return out


def focal_terms(logits: torch.Tensor, labels: torch.Tensor, gamma: float, alpha: Optional[float]) -> torch.Tensor:
    """Per-function focal loss −α_t (1 − p_t)^γ log p_t (src/engine/reference/loss.ts), in float32."""
    log_pt = torch.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
    if alpha is None:
        alpha_t = torch.ones_like(log_pt)
    else:
        alpha_t = torch.where(labels == 1, torch.full_like(log_pt, alpha), torch.full_like(log_pt, 1 - alpha))
    modulator = torch.ones_like(log_pt) if gamma == 0 else (-torch.expm1(log_pt)).clamp(min=0) ** gamma
    return -alpha_t * modulator * log_pt


def read_adapter(adapter_dir: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """A PEFT adapter folder (the lab's export or peft's): its config and tensors by engine name."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    if config.get("peft_type") != "LORA":
        raise RecipeError(f"{adapter_dir} is not a LoRA adapter.", "Pick a PEFT LoRA adapter folder.")
    tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    named: Dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if not key.startswith(PEFT_PREFIX):
            raise RecipeError(f"Unexpected tensor {key} in the adapter.", f'PEFT keys start with "{PEFT_PREFIX}".')
        name = key[len(PEFT_PREFIX) :].replace(".default.", ".").replace("score.modules_to_save.", "score.")
        if name.endswith(".default"):  # lora_embedding_A/B of a ParameterDict, as peft holds them in memory
            name = name[: -len(".default")]
        named[name] = value
    return config, named


def write_adapter(adapter_dir: str, trainables: Dict[str, torch.Tensor], run: dict, base_model: str) -> None:
    """adapter_config.json + adapter_model.safetensors exactly as src/train/export.ts writes them."""
    os.makedirs(adapter_dir, exist_ok=True)
    ntp = run["objective"] == "ntp"
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM" if ntp else "SEQ_CLS",
        "base_model_name_or_path": base_model,
        "r": run["lora"]["r"],
        "lora_alpha": run["lora"]["alpha"],
        "lora_dropout": run["lora"]["dropout"],
        "target_modules": run["lora"]["targets"],
        "modules_to_save": None if ntp else ["score"],
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")
    tensors = {PEFT_PREFIX + name: value for name, value in trainables.items()}
    write_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"), tensors, {"format": "pt"})


def parameter_bytes(module: nn.Module) -> Iterable[int]:
    for t in list(module.parameters()) + list(module.buffers()):
        yield t.numel() * t.element_size()
