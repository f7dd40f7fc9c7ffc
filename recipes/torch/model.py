"""The VulnLab engine's models + LoRA + classification head, as the engine computes them, in PyTorch.

Two architectures, chosen by config.json's model_type (`build_model`; `Arch` reads the config):
GPT-BigCode (StarCoder, WizardCoder: Hugging Face GPTBigCodeModel, multi-query or multi-head
attention, pre-LayerNorm, learned positions) and the Llama family (llama, qwen2, starcoder2:
LlamaModel / Qwen2Model / Starcoder2Model, RMSNorm or StarCoder2's LayerNorm, separate q/k/v
projections with the family's biases, rotary positions (rotate-half, theta, linear scaling),
grouped-query attention, StarCoder2's sliding window, SwiGLU or StarCoder2's GELU MLP, tied or
untied lm_head), with Hugging Face's parameter names in both.

Grown from scripts/torch_reference.py (the engine's independent float64 reference) and checked
against its fixtures (tests/recipes/golden.py): the same packed attention (block-diagonal with
positions restarting per function, or the paper's causal-over-the-row), the same LoRA
(y += alpha/r · B·A·drop(x)) with the engine's stateless dropout masks, the same LoRA on the token
embedding (target "wte", PEFT's lora.Embedding: x0 = E[ids] + alpha/r · (A[:, ids])ᵀ·Bᵀ, no
dropout), the same initialization of new tensors (src/train/init.ts, same generator), the same
bias-free score head on each function's last code token and the same weighted focal loss
(src/engine/reference/loss.ts) — or, for the next-token objective, the lm_head (tied: the base token
table) and token cross-entropy.

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
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from data import Rng, RecipeError

LINEAR_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # GPT-BigCode's block linears
LORA_TARGETS = LINEAR_TARGETS + ("wte",)  # "wte": the token embedding (PEFT lora.Embedding)
EMBEDDING_LORA_A = "transformer.wte.lora_embedding_A"  # [r, vocab]; PEFT's key has no ".weight"
EMBEDDING_LORA_B = "transformer.wte.lora_embedding_B"  # [n_embd, r]
FAMILIES = ("llama", "qwen2", "starcoder2")  # the Llama family (config.json model_type)
FAMILY_ATTENTION_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
SWIGLU_TARGETS = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # llama, qwen2
STARCODER2_MLP_TARGETS = ("mlp.c_fc", "mlp.c_proj")
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
# Architectures (src/engine/model/decoder.ts describeDecoder, llama-family.ts resolveLlamaFamily)


class Arch:
    """The model a config.json describes, by Hugging Face names: GPT-BigCode (model_type absent or
    "gpt_bigcode") or the Llama family (model_type "llama", "qwen2", "starcoder2"), each field read
    with the engine's defaults.

    family, vocab, width, layers, max_positions; block(layer): "transformer.h.0" / "model.layers.0";
    targets: the block linears LoRA can adapt, in the order they run (target k of layer l is LoRA
    dropout site l·len(targets) + k, as the engine numbers them); linears[target] = (out, in, bias);
    embedding: the token table's module, lora_a / lora_b its adapter's PEFT keys; lm_head: the
    next-token head's weight (the token table when tied). Attention: n_head, kv_heads, head_dim;
    norm "layernorm" | "rmsnorm" with eps; mlp "swiglu" | "gelu" | "gelu_pytorch_tanh"; rope
    (theta, linear scaling factor) or None; window: keys per query, itself included, or None.
    """

    def __init__(self, cfg: dict) -> None:
        model_type = cfg.get("model_type") or "gpt_bigcode"
        if model_type in FAMILIES:
            self._family(cfg, model_type)
        elif model_type == "gpt_bigcode":
            self._gpt_bigcode(cfg)
        else:
            raise RecipeError(
                f"model_type {model_type!r} is not supported.",
                f"The recipe trains gpt_bigcode and the Llama family ({', '.join(FAMILIES)}).",
            )

    def _gpt_bigcode(self, cfg: dict) -> None:
        self.family = "gpt_bigcode"
        D = cfg["n_embd"]
        self.vocab, self.width, self.layers = cfg["vocab_size"], D, cfg["n_layer"]
        self.max_positions = cfg["n_positions"]
        self.n_head = cfg["n_head"]
        self.head_dim = D // self.n_head
        self.multi_query = bool(cfg["multi_query"])
        self.kv_heads = 1 if self.multi_query else self.n_head
        self.inner = cfg.get("n_inner") or 4 * D
        self.norm, self.eps = "layernorm", cfg["layer_norm_epsilon"]
        self.mlp = cfg["activation_function"]
        self.rope: Optional[Tuple[float, float]] = None
        self.window: Optional[int] = None
        self.tied = True
        self.prefix, self.embedding, self.lm_head = "transformer.h", "transformer.wte", "transformer.wte.weight"
        self.targets: Tuple[str, ...] = LINEAR_TARGETS
        qkv = D + 2 * self.head_dim if self.multi_query else 3 * D
        self.linears = {
            "attn.c_attn": (qkv, D, True),
            "attn.c_proj": (D, D, True),
            "mlp.c_fc": (self.inner, D, True),
            "mlp.c_proj": (D, self.inner, True),
        }

    def _family(self, cfg: dict, family: str) -> None:
        errors: List[str] = []

        def positive_int(name: str) -> int:
            value = cfg.get(name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                errors.append(f"{name} must be a positive integer (got {value!r})")
                return 1
            return value

        self.family = family
        starcoder2 = family == "starcoder2"
        self.vocab, D = positive_int("vocab_size"), positive_int("hidden_size")
        self.width, self.inner = D, positive_int("intermediate_size")
        self.layers, self.n_head = positive_int("num_hidden_layers"), positive_int("num_attention_heads")
        self.max_positions = positive_int("max_position_embeddings")
        kv = cfg.get("num_key_value_heads")
        self.kv_heads = self.n_head if kv is None else kv
        if not (isinstance(self.kv_heads, int) and self.kv_heads > 0 and self.n_head % self.kv_heads == 0):
            errors.append(f"num_key_value_heads ({kv}) must divide num_attention_heads ({self.n_head})")
            self.kv_heads = self.n_head
        head_dim = cfg.get("head_dim")
        if head_dim is None:  # hidden_size / num_attention_heads
            head_dim = D // self.n_head if D % self.n_head == 0 else 0
        if not (isinstance(head_dim, int) and head_dim > 0 and head_dim % 2 == 0):
            errors.append(f"head_dim ({cfg.get('head_dim', D / self.n_head)}) must be an even positive integer")
            head_dim = 2
        self.head_dim = head_dim
        eps = cfg.get("norm_epsilon" if starcoder2 else "rms_norm_eps")
        self.norm = "layernorm" if starcoder2 else "rmsnorm"
        self.eps = (1e-5 if starcoder2 else 1e-6) if eps is None else eps
        act = cfg.get("hidden_act")
        acts = ("gelu", "gelu_pytorch_tanh") if starcoder2 else ("silu",)
        if act not in acts:
            errors.append(f"hidden_act must be {' or '.join(acts)} for {family} (got {act!r})")
        self.mlp = act if starcoder2 else "swiglu"
        theta = cfg.get("rope_theta")
        theta = 10000.0 if theta is None else float(theta)
        factor = 1.0
        scaling = cfg.get("rope_scaling")
        if scaling:
            kind = scaling.get("rope_type") or scaling.get("type")
            if kind != "linear":
                errors.append(f"rope_scaling type {kind!r} is not supported (only linear)")
            elif not (isinstance(scaling.get("factor"), (int, float)) and scaling["factor"] >= 1):
                errors.append(f"rope_scaling.factor must be a number >= 1 (got {scaling.get('factor')!r})")
            else:
                factor = float(scaling["factor"])
        self.rope = (theta, factor)
        # StarCoder2 always (sliding_window null: none); Qwen2 only with use_sliding_window (every layer).
        self.window = cfg.get("sliding_window") if starcoder2 or cfg.get("use_sliding_window") is True else None
        if self.window is not None and not (isinstance(self.window, int) and self.window > 0):
            errors.append(f"sliding_window must be a positive integer or null (got {self.window!r})")
        if errors:
            raise RecipeError(f"Invalid {family} config: {'; '.join(errors)}.", "Check the model's config.json.")
        biases = starcoder2 and cfg.get("use_bias") is not False
        qkv_bias = family == "qwen2" or biases or cfg.get("attention_bias") is True
        out_bias = biases or (family == "llama" and cfg.get("attention_bias") is True)
        mlp_bias = biases or (family == "llama" and cfg.get("mlp_bias") is True)
        tied = cfg.get("tie_word_embeddings")  # HF defaults: llama and qwen2 untied, starcoder2 tied
        self.tied = starcoder2 if tied is None else bool(tied)
        self.prefix, self.embedding = "model.layers", "model.embed_tokens"
        self.lm_head = "model.embed_tokens.weight" if self.tied else "lm_head.weight"
        self.targets = FAMILY_ATTENTION_TARGETS + (STARCODER2_MLP_TARGETS if starcoder2 else SWIGLU_TARGETS)
        q, kv_rows, I = self.n_head * self.head_dim, self.kv_heads * self.head_dim, self.inner
        self.linears = {
            "self_attn.q_proj": (q, D, qkv_bias),
            "self_attn.k_proj": (kv_rows, D, qkv_bias),
            "self_attn.v_proj": (kv_rows, D, qkv_bias),
            "self_attn.o_proj": (D, q, out_bias),
        }
        if starcoder2:
            self.linears.update({"mlp.c_fc": (I, D, mlp_bias), "mlp.c_proj": (D, I, mlp_bias)})
        else:
            self.linears.update({"mlp.gate_proj": (I, D, mlp_bias), "mlp.up_proj": (I, D, mlp_bias), "mlp.down_proj": (D, I, mlp_bias)})

    def block(self, layer: int) -> str:
        return f"{self.prefix}.{layer}"

    @property
    def lora_a(self) -> str:
        return self.embedding + ".lora_embedding_A"  # [r, vocab]; PEFT's key has no ".weight"

    @property
    def lora_b(self) -> str:
        return self.embedding + ".lora_embedding_B"  # [width, r]

    def lora_targets(self) -> Tuple[str, ...]:
        return self.targets + ("wte",)

    def base_specs(self, lm_head: bool) -> List[Tuple[str, Tuple[int, ...], str]]:
        """(name, shape, kind) of every base tensor in checkpoint order, kind "embedding", "norm",
        "weight" (a block linear's), "bias" or "head"; the untied next-token head when `lm_head`
        (a *ForCausalLM checkpoint has it, a *ForSequenceClassification one has `score` instead)."""
        D = self.width
        specs: List[Tuple[str, Tuple[int, ...], str]] = [(self.embedding + ".weight", (self.vocab, D), "embedding")]
        if self.family == "gpt_bigcode":
            specs.append(("transformer.wpe.weight", (self.max_positions, D), "embedding"))

        def norm(name: str) -> List[Tuple[str, Tuple[int, ...], str]]:
            names = [name + ".weight"] + ([name + ".bias"] if self.norm == "layernorm" else [])
            return [(n, (D,), "norm") for n in names]

        def linear(prefix: str, target: str) -> List[Tuple[str, Tuple[int, ...], str]]:
            out, inp, bias = self.linears[target]
            name = f"{prefix}.{target}"
            return [(name + ".weight", (out, inp), "weight")] + ([(name + ".bias", (out,), "bias")] if bias else [])

        for layer in range(self.layers):
            pre = self.block(layer)
            if self.family == "gpt_bigcode":  # GPTBigCodeBlock: ln_1, attn, ln_2, mlp
                specs += norm(pre + ".ln_1") + linear(pre, "attn.c_attn") + linear(pre, "attn.c_proj")
                specs += norm(pre + ".ln_2") + linear(pre, "mlp.c_fc") + linear(pre, "mlp.c_proj")
            else:  # LlamaDecoderLayer & co.: self_attn, mlp, input_layernorm, post_attention_layernorm
                for target in self.targets:
                    specs += linear(pre, target)
                specs += norm(pre + ".input_layernorm") + norm(pre + ".post_attention_layernorm")
        specs += norm("transformer.ln_f" if self.family == "gpt_bigcode" else "model.norm")
        if lm_head and not self.tied:
            specs.append((self.lm_head, (self.vocab, D), "head"))
        return specs

    def peft_target_modules(self, targets: Sequence[str]) -> List[str]:
        """adapter_config.json's target_modules. GPT-BigCode: the run's targets as the lab writes them
        (src/train/export.ts; PEFT matches "attn.c_attn" as a name suffix). The Llama family: PEFT's
        usual leaf names ("q_proj", …, "c_fc"), and "embed_tokens" for "wte", which a Llama model has no
        module of."""
        if self.family == "gpt_bigcode":
            return list(targets)
        return ["embed_tokens" if t == "wte" else t.rsplit(".", 1)[-1] for t in targets]


def _at_least_f32(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types (softmax, norms), float64 stays float64 (the float64 golden checks)."""
    return torch.promote_types(dtype, torch.float32)


# ------------------------------------------------------------------------------------------------
# Model


class BaseLinear(nn.Module):
    """A block linear y = x·Wᵀ (+ b) (+ LoRA). W trainable (trainable "all") or frozen in a lab format."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], fmt: str, trainable: bool) -> None:
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
        if bias is None:
            self.register_parameter("bias", None)
        else:
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
            y = _FrozenMatmul.apply(x.to(dtype), self)
            if self.bias is not None:
                y = y + self.bias.to(dtype)
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
    """GPTBigCodeBlock: ln_1, attn (c_attn, c_proj), ln_2, mlp (c_fc, c_proj)."""

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
            scores = torch.bmm(q, k[:, 0].transpose(1, 2)).view(B, H, T, T)
            scores = scores.to(_at_least_f32(scores.dtype))
            probs = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1).to(v.dtype)
            out = torch.bmm(probs.view(B, H * T, T), v[:, 0]).view(B, H, T, hd)
        else:
            scores = q @ k.transpose(-1, -2)
            scores = scores.to(_at_least_f32(scores.dtype)) * (1 / math.sqrt(hd))
            probs = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1).to(v.dtype)
            out = probs @ v
        out = out.transpose(1, 2).reshape(B, T, D)
        x = x + self.attn.c_proj(out, drop)
        h = self.mlp.c_fc(self.ln_2(x), drop)
        approximate = "tanh" if cfg["activation_function"] == "gelu_pytorch_tanh" else "none"
        return x + self.mlp.c_proj(F.gelu(h, approximate=approximate), drop)


class RMSNorm(nn.Module):
    """LlamaRMSNorm: weight · x · rsqrt(mean(x²) + eps), in float32 at least (as Hugging Face)."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(_at_least_f32(x.dtype))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_tables(position_ids: torch.Tensor, head_dim: int, rope: Tuple[float, float], dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [B, 1, T, head_dim] of LlamaRotaryEmbedding (rotate-half; linear scaling s): angle_i =
    position · inv_freq_i, inv_freq_i = 1 / (s·θ^(2i/d)) computed in float64 and rounded once to
    `dtype`, the product in `dtype` (src/engine/kernels/rope.ts: as Hugging Face, in float32)."""
    theta, scaling = rope
    exponent = torch.arange(0, head_dim, 2, dtype=torch.float64, device=position_ids.device) / head_dim
    inv_freq = (1.0 / (scaling * theta**exponent)).to(dtype)
    angle = position_ids.to(dtype)[..., None] * inv_freq  # [B, T, d/2]
    angle = torch.cat((angle, angle), dim=-1)[:, None]
    return angle.cos(), angle.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x[d/2:], x[:d/2]) (HF apply_rotary_pos_emb)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def grouped_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, fused: Optional[bool] = None
) -> torch.Tensor:
    """softmax(q·kᵀ/√d + mask)·v for q [B, H, T, d], k/v [B, KV, T, d], mask [B, T, T] (True: attend):
    query head h reads kv head h // (H/KV) (HF repeat_kv). Returns [B, H, T, d]. `fused`:
    F.scaled_dot_product_attention (default: on CUDA with torch >= 2.0), else explicit GEMMs."""
    B, H, T, d = q.shape
    KV = k.shape[1]
    n = H // KV
    if fused is None:
        fused = q.is_cuda and hasattr(F, "scaled_dot_product_attention")
    if fused:
        if n > 1:
            k = k[:, :, None].expand(B, KV, n, T, d).reshape(B, H, T, d)
            v = v[:, :, None].expand(B, KV, n, T, d).reshape(B, H, T, d)
        return F.scaled_dot_product_attention(q, k, v, mask[:, None])
    # The n query heads of a group as one [n·T, d] block against their kv head: no repeated K/V.
    qg = q.reshape(B, KV, n * T, d) * (1 / math.sqrt(d))
    scores = torch.matmul(qg, k.transpose(-1, -2)).view(B, KV, n, T, T)
    scores = scores.to(_at_least_f32(scores.dtype)).masked_fill(~mask[:, None, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.matmul(probs.view(B, KV, n * T, T), v).view(B, H, T, d)


class FamilyBlock(nn.Module):
    """LlamaDecoderLayer / Qwen2DecoderLayer / Starcoder2DecoderLayer: self_attn (q/k/v/o_proj, RoPE,
    grouped-query attention, StarCoder2's sliding window in the mask), mlp (SwiGLU gate/up/down_proj
    or StarCoder2's c_fc/c_proj), input_layernorm, post_attention_layernorm (RMSNorm or LayerNorm)."""

    def __init__(self, arch: "Arch", layer: int) -> None:
        super().__init__()
        self.arch, self.layer = arch, layer
        self.self_attn = nn.Module()
        self.mlp = nn.Module()
        norm = (lambda: nn.LayerNorm(arch.width, eps=arch.eps)) if arch.norm == "layernorm" else (lambda: RMSNorm(arch.width, arch.eps))
        self.input_layernorm = norm()
        self.post_attention_layernorm = norm()

    def linears(self) -> Dict[str, BaseLinear]:
        return {t: getattr(getattr(self, t.split(".")[0]), t.split(".")[1]) for t in self.arch.targets}

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, drop: Optional[DropoutContext]
    ) -> torch.Tensor:
        a = self.arch
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.self_attn.q_proj(h, drop).view(B, T, a.n_head, a.head_dim).transpose(1, 2)
        k = self.self_attn.k_proj(h, drop).view(B, T, a.kv_heads, a.head_dim).transpose(1, 2)
        v = self.self_attn.v_proj(h, drop).view(B, T, a.kv_heads, a.head_dim).transpose(1, 2)
        out = grouped_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, mask)
        x = x + self.self_attn.o_proj(out.transpose(1, 2).reshape(B, T, a.n_head * a.head_dim), drop)
        h = self.post_attention_layernorm(x)
        mlp = self.mlp
        if a.mlp == "swiglu":
            y = mlp.down_proj(F.silu(mlp.gate_proj(h, drop)) * mlp.up_proj(h, drop), drop)
        else:
            approximate = "tanh" if a.mlp == "gelu_pytorch_tanh" else "none"
            y = mlp.c_proj(F.gelu(mlp.c_fc(h, drop), approximate=approximate), drop)
        return x + y


def attention_mask(segment_ids: torch.Tensor, paper: bool, window: Optional[int] = None) -> torch.Tensor:
    """[B, T, T] keys each query may see: earlier tokens of its function (packed) or of its row (paper);
    with a sliding window W only keys j > i − W (at most W keys, itself included)."""
    T = segment_ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
    if window is not None and window < T:
        causal = causal & torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).triu(1 - window)
    key_real = (segment_ids >= 0)[:, None, :]
    allowed = causal[None] & key_real
    if not paper:
        allowed = allowed & (segment_ids[:, :, None] == segment_ids[:, None, :])
    return allowed | torch.eye(T, dtype=torch.bool, device=segment_ids.device)[None]  # padding sees itself


class DecoderClassifier(nn.Module):
    """What every architecture shares: its Arch, base weights from a checkpoint (block linears in the
    lab's weight format), LoRA on the run's targets (dropout sites as the engine numbers them), the
    embedding's adapter, the bias-free score head (cls) or the next-token head (ntp), and the
    trainables in the lab's order. Subclasses build the modules and the forward."""

    def __init__(self, cfg: dict, run: dict, recompute: bool) -> None:
        super().__init__()
        self.arch = Arch(cfg)
        self.paper = run["batching"]["mode"] == "paper"
        self.cls = run["objective"] == "cls"
        self.recompute = recompute
        self.seed = int(run["seed"])
        self.full = run["trainable"] == "all"
        self.embedding_scaling: Optional[float] = None  # set when "wte" has an adapter

    def _base(self, weights: Dict[str, torch.Tensor], name: str, shape: Tuple[int, ...]) -> torch.Tensor:
        if name not in weights:
            raise RecipeError(f"The checkpoint has no tensor {name}.", f"Use a {self.arch.family} checkpoint of this config.")
        tensor = weights[name]
        if tuple(tensor.shape) != tuple(shape):
            raise RecipeError(
                f"The checkpoint's {name} is {list(tensor.shape)}, the config says {list(shape)}.",
                "Use the checkpoint's own config.json.",
            )
        return tensor

    def _linear(self, weights: Dict[str, torch.Tensor], layer: int, target: str, fmt: str) -> BaseLinear:
        out, inp, has_bias = self.arch.linears[target]
        prefix = f"{self.arch.block(layer)}.{target}"
        bias = self._base(weights, prefix + ".bias", (out,)) if has_bias else None
        return BaseLinear(self._base(weights, prefix + ".weight", (out, inp)), bias, fmt, self.full)

    def blocks(self) -> nn.ModuleList:
        raise NotImplementedError

    def _finish(self, weights: Dict[str, torch.Tensor], run: dict) -> None:
        """After the base modules exist: the score head, the remaining base weights, LoRA."""
        a = self.arch
        if self.cls:
            self.score = nn.Linear(a.width, 2, bias=False)
        with torch.no_grad():
            for name, tensor in self.named_parameters():
                if name != "score.weight":
                    tensor.copy_(self._base(weights, name, tuple(tensor.shape)))
                elif name in weights:  # a classifier checkpoint keeps its head
                    tensor.copy_(self._base(weights, name, tuple(tensor.shape)))
        for p in self.parameters():
            p.requires_grad_(self.full)
        init = initial_trainables(self.cfg, run)
        if self.cls:
            if "score.weight" not in weights:
                with torch.no_grad():
                    self.score.weight.copy_(init["score.weight"])
            self.score.weight.requires_grad_(True)
        if self.full:  # the lab trains LoRA only with trainable "lora" (run.ts)
            return
        lora = run["lora"]
        unknown = [t for t in lora["targets"] if t not in a.lora_targets()]
        if unknown:
            raise RecipeError(
                f"LoRA target(s) {', '.join(unknown)} do not exist in {a.family}.",
                f"Its targets: {', '.join(a.lora_targets())}.",
            )
        for layer, block in enumerate(self.blocks()):
            for index, target in enumerate(a.targets):
                if target not in lora["targets"]:
                    continue
                prefix = f"{a.block(layer)}.{target}"
                block.linears()[target].add_lora(
                    lora["r"], lora["alpha"], lora["dropout"], layer * len(a.targets) + index,
                    init[prefix + ".lora_A.weight"], init[prefix + ".lora_B.weight"],
                )
        if "wte" in lora["targets"]:  # PEFT lora.Embedding: parameters on the embedding module itself
            table = self.get_submodule(a.embedding)
            table.lora_embedding_A = nn.Parameter(init[a.lora_a].clone())
            table.lora_embedding_B = nn.Parameter(init[a.lora_b].clone())
            self.embedding_scaling = lora["alpha"] / lora["r"]

    def trainable_names(self) -> List[str]:
        """In the lab's order (trainableSpecs): the block linears' LoRA, the embedding's, the score head."""
        names = [n for n, p in self.named_parameters() if p.requires_grad]
        embedding = [n for n in names if n in (self.arch.lora_a, self.arch.lora_b)]
        if not embedding:
            return names
        rest = [n for n in names if n not in embedding]
        head = [n for n in rest if n == "score.weight"]
        return [n for n in rest if n != "score.weight"] + embedding + head

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """table[ids], plus alpha/r · (A[:, ids])ᵀ·Bᵀ with an embedding adapter (no dropout on it)."""
        table = self.get_submodule(self.arch.embedding)
        x = table(input_ids)
        if self.embedding_scaling is None:
            return x
        after_a = F.embedding(input_ids, table.lora_embedding_A.t())  # [B, T, r]
        return x + (after_a @ table.lora_embedding_B.t()) * self.embedding_scaling

    def run_blocks(self, x: torch.Tensor, *args) -> torch.Tensor:
        for block in self.blocks():
            if self.recompute and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, *args, use_reentrant=False)
            else:
                x = block(x, *args)
        return x

    def head(self, hidden: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, vocab: Optional[torch.Tensor]) -> torch.Tensor:
        """Logits (float32, or float64 in a float64 model) at tokens (rows[i], cols[i]) of the final hidden
        states: the score head's [n, 2] (cls), or the next-token head's [n, V] (only `vocab`'s columns
        when given); a tied head is the base token table (an embedding adapter does not reach it, as in PEFT)."""
        picked = hidden[rows, cols]
        if self.cls:
            logits = self.score(picked)
        else:
            weight = self.get_parameter(self.arch.lm_head)
            logits = F.linear(picked, weight if vocab is None else weight[vocab])
        return logits.to(_at_least_f32(logits.dtype))


class GptBigCodeClassifier(DecoderClassifier):
    """GPTBigCode transformer + LoRA + score head; parameter names are Hugging Face's."""

    def __init__(self, cfg: dict, weights: Dict[str, torch.Tensor], run: dict, base_format: str, recompute: bool) -> None:
        super().__init__(cfg, run, recompute)
        self.cfg = dict(cfg)
        self.cfg.setdefault("n_inner", None)
        self.cfg["n_inner"] = self.cfg["n_inner"] or 4 * cfg["n_embd"]
        a = self.arch
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(a.vocab, a.width)
        self.transformer.wpe = nn.Embedding(a.max_positions, a.width)
        self.transformer.h = nn.ModuleList()
        for layer in range(a.layers):
            block = Block(self.cfg, layer)
            for target in a.targets:
                owner, attr = target.split(".")
                setattr(getattr(block, owner), attr, self._linear(weights, layer, target, base_format))
            self.transformer.h.append(block)
        self.transformer.ln_f = nn.LayerNorm(a.width, eps=a.eps)
        self._finish(weights, run)

    def blocks(self) -> nn.ModuleList:
        return self.transformer.h

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
        """Head logits at tokens (rows[i], cols[i]) after ln_f (see `head`): the tied lm_head is wte."""
        mask = attention_mask(segment_ids, self.paper)
        x = self.embed(input_ids) + self.transformer.wpe(position_ids)
        return self.head(self.transformer.ln_f(self.run_blocks(x, mask, drop)), rows, cols, vocab)


class LlamaFamilyClassifier(DecoderClassifier):
    """LlamaModel / Qwen2Model / Starcoder2Model + LoRA + score head (cls) or lm_head (ntp), parameter
    names Hugging Face's (model.embed_tokens, model.layers.{i}.self_attn.q_proj, …, model.norm, lm_head).
    Packed rows: RoPE positions restart per function (position_ids) and the mask is block-diagonal."""

    def __init__(self, cfg: dict, weights: Dict[str, torch.Tensor], run: dict, base_format: str, recompute: bool) -> None:
        super().__init__(cfg, run, recompute)
        self.cfg = dict(cfg)
        a = self.arch
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(a.vocab, a.width)
        self.model.layers = nn.ModuleList()
        for layer in range(a.layers):
            block = FamilyBlock(a, layer)
            for target in a.targets:
                owner, attr = target.split(".")
                setattr(getattr(block, owner), attr, self._linear(weights, layer, target, base_format))
            self.model.layers.append(block)
        self.model.norm = nn.LayerNorm(a.width, eps=a.eps) if a.norm == "layernorm" else RMSNorm(a.width, a.eps)
        if not self.cls and not a.tied:
            self.lm_head = nn.Linear(a.width, a.vocab, bias=False)
        self._finish(weights, run)

    def blocks(self) -> nn.ModuleList:
        return self.model.layers

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
        """Head logits at tokens (rows[i], cols[i]) after model.norm (see `head`)."""
        a = self.arch
        mask = attention_mask(segment_ids, self.paper, a.window)
        cos, sin = rope_tables(position_ids, a.head_dim, a.rope, self.model.norm.weight.dtype)
        x = self.run_blocks(self.embed(input_ids), mask, cos, sin, drop)
        return self.head(self.model.norm(x), rows, cols, vocab)


BLOCK_CLASSES = (Block, FamilyBlock)  # what FSDP wraps


def build_model(cfg: dict, weights: Dict[str, torch.Tensor], run: dict, base_format: str, recompute: bool) -> DecoderClassifier:
    """The classifier a config.json describes (model_type: GPT-BigCode or the Llama family)."""
    cls = LlamaFamilyClassifier if cfg.get("model_type") in FAMILIES else GptBigCodeClassifier
    return cls(cfg, weights, run, base_format, recompute)


def initial_trainables(cfg: dict, run: dict) -> Dict[str, torch.Tensor]:
    """src/train/init.ts with its generator: LoRA A ~ U(±1/√in), B = 0; the embedding's adapter
    A = 0, B ~ N(0, 1) (PEFT's lora.Embedding); score ~ N(0, 0.02). Drawn in the lab's order
    (loraParamSpecs: layer by layer, each block's linears in the order they run)."""
    arch = Arch(cfg)
    rng = Rng(int(run["seed"]) ^ 0x5EED1E55)
    D = arch.width
    out: Dict[str, torch.Tensor] = {}
    if run["trainable"] == "lora":
        r = run["lora"]["r"]
        for layer in range(arch.layers):
            for target in arch.targets:
                if target not in run["lora"]["targets"]:
                    continue
                rows_out, cols, _ = arch.linears[target]
                bound = 1 / math.sqrt(cols)
                a = [(rng.next() * 2 - 1) * bound for _ in range(r * cols)]
                prefix = f"{arch.block(layer)}.{target}"
                out[prefix + ".lora_A.weight"] = torch.tensor(a, dtype=torch.float64).float().view(r, cols)
                out[prefix + ".lora_B.weight"] = torch.zeros(rows_out, r)
        if "wte" in run["lora"]["targets"]:
            out[arch.lora_a] = torch.zeros(r, arch.vocab)
            b = [rng.normal() for _ in range(D * r)]
            out[arch.lora_b] = torch.tensor(b, dtype=torch.float64).float().view(D, r)
    values = [0.02 * rng.normal() for _ in range(2 * D)]
    out["score.weight"] = torch.tensor(values, dtype=torch.float64).float().view(2, D)
    return out


def focal_terms(logits: torch.Tensor, labels: torch.Tensor, gamma: float, alpha: Optional[float]) -> torch.Tensor:
    """Per-function focal loss −α_t (1 − p_t)^γ log p_t (src/engine/reference/loss.ts), in float32
    (float64 for float64 logits)."""
    log_pt = torch.log_softmax(logits.to(_at_least_f32(logits.dtype)), dim=-1).gather(1, labels[:, None]).squeeze(1)
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


def write_adapter(
    adapter_dir: str, trainables: Dict[str, torch.Tensor], run: dict, base_model: str, arch: Optional[Arch] = None
) -> None:
    """adapter_config.json + adapter_model.safetensors as src/train/export.ts writes them: keys
    base_model.model.<Hugging Face name> (transformer.h.0.attn.c_attn.lora_A.weight,
    model.layers.0.self_attn.q_proj.lora_A.weight, …); target_modules per `arch`
    (Arch.peft_target_modules; GPT-BigCode's when None)."""
    os.makedirs(adapter_dir, exist_ok=True)
    ntp = run["objective"] == "ntp"
    targets = run["lora"]["targets"]
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM" if ntp else "SEQ_CLS",
        "base_model_name_or_path": base_model,
        "r": run["lora"]["r"],
        "lora_alpha": run["lora"]["alpha"],
        "lora_dropout": run["lora"]["dropout"],
        "target_modules": arch.peft_target_modules(targets) if arch is not None else list(targets),
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
