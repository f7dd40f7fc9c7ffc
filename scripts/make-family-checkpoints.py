#!/usr/bin/python3
"""Tiny Llama-family checkpoints in Hugging Face's layout, for the model-IO, train and CLI tests.

For each family (llama, qwen2, starcoder2) it writes tests/fixtures/families/<family>/:

- config.json            Hugging Face's config (LlamaForCausalLM / Qwen2ForCausalLM / Starcoder2ForCausalLM
                         fields as transformers writes them), 2 layers, width 64, 4 query / 2 key-value heads.
- model.safetensors      the *ForCausalLM state dict under Hugging Face's names, in the dtype the family's
                         releases use: llama and qwen2 BF16, starcoder2 F32 and sharded as starcoder2-3b
                         (model-0000N-of-00002.safetensors + model.safetensors.index.json).
                         llama: untied (lm_head.weight stored); qwen2, starcoder2: tied (no lm_head.weight).
- tokenizer.json + tokenizer_config.json
                         a small BPE trained here on the demo dataset's Java (public/demo/java-vulns.jsonl)
                         plus the paper's next-token prompt, with no tokenizer library: llama a SentencePiece-
                         style BPE (▁ metaspace, byte fallback <0xNN>, <unk>/<s>/</s>, as Llama 2's
                         tokenizer.json), qwen2 and starcoder2 byte-level BPEs with their pre-tokenizers and
                         special tokens (<|endoftext|>, FIM tokens…).
- <family>-q8_0.gguf     the same weights as llama.cpp's convert_hf_to_gguf.py + Q8_0 would write them: archs
                         llama / qwen2 / starcoder2, its tensor names (token_embd, blk.N.attn_q…, output_norm,
                         output), 2-D weights Q8_0 (gguf-py's rounding), 1-D tensors F32, the architecture's
                         metadata and the tokenizer's; for llama the rows of attn_q / attn_k are PERMUTED as
                         the converter does (LlamaModel.permute: each head's rotary halves interleaved).

Deterministic: fixed seeds, no dictionary-order dependence. Run with Debian's python3-torch:

    /usr/bin/python3 scripts/make-family-checkpoints.py

Self-checks (assertions) run before anything is written: the permutation round-trips, Q8_0 dequantizes
within half a step, every merge's parts and result are in the vocabulary.
"""

import collections
import json
import os
import re
import shutil
import struct

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "families")
DATA = os.path.join(ROOT, "public", "demo", "java-vulns.jsonl")

# The paper's next-token prompt (src/train/prepare.ts NTP_PROMPT): its words must be tokens, and
# " YES" / " NO" must start with different tokens.
PROMPT_TEXTS = ["Question: ", "\n\nAnswer: YES", "\n\nAnswer: NO"]
PROMPT_WEIGHT = 300
# Llama's vocabulary is mostly byte tokens (256 of 512), leaving ~160 merges: the prompt weighs more there
# so that "▁YES" / "▁NO" become pieces (as in Llama 2's own vocabulary).
LLAMA_PROMPT_WEIGHT = 3000

# ----------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------


def corpus():
    texts = []
    with open(DATA, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                texts.append(json.loads(line)["code"])
    return texts


def train_bpe(word_counts, n_merges):
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: the smallest pair)."""
    words = {tuple(w): c for w, c in word_counts.items() if len(w) > 0}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b))
        merged = a + b
        nxt = collections.Counter()
        for w, c in words.items():
            if len(w) < 2 or a not in w:
                nxt[w] += c
                continue
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nxt[tuple(out)] += c
        words = nxt
    return merges


def bytes_to_unicode():
    """GPT-2's byte → printable character table (byte-level BPE symbols)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHARS = bytes_to_unicode()

# Qwen2's pre-tokenizer regex (tokenizer.json) and a Python `re` rendering of it for training
# (\p{L} ≈ [^\W\d_], \p{N} ≈ \d: the same on the corpus' ASCII Java).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_RE = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# GPT-2's (ByteLevel use_regex), after StarCoder2's Digits(individual_digits) split.
GPT2_RE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


def byte_level_words(texts, family):
    counts = collections.Counter()

    def add(text, weight=1):
        if family == "qwen2":
            pieces = QWEN2_RE.findall(text)
        else:
            pieces = [p for part in re.split(r"(\d)", text) if part for p in GPT2_RE.findall(part)]
        for p in pieces:
            counts["".join(BYTE_CHARS[b] for b in p.encode("utf-8"))] += weight

    for t in texts:
        add(t)
    for t in PROMPT_TEXTS:
        add(t, PROMPT_WEIGHT)
    return counts


def special(id_, content):
    return {
        "id": id_,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def byte_level_tokenizer(texts, family, size):
    """qwen2: specials after the BPE vocabulary (Qwen2's <|endoftext|> = 151643); starcoder2: first (0…)."""
    if family == "qwen2":
        specials = [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|fim_prefix|>",
            "<|fim_middle|>",
            "<|fim_suffix|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        ]
    else:
        specials = [
            "<|endoftext|>",
            "<fim_prefix>",
            "<fim_middle>",
            "<fim_suffix>",
            "<fim_pad>",
            "<repo_name>",
            "<file_sep>",
            "<issue_start>",
            "<issue_comment>",
            "<issue_closed>",
        ]
    n_merges = size - len(specials) - 256
    merges = train_bpe({tuple(w): c for w, c in byte_level_words(texts, family).items()}, n_merges)
    pieces = [BYTE_CHARS[b] for b in range(256)]
    seen = set(pieces)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            pieces.append(a + b)
    vocab = {}
    added = []
    if family == "starcoder2":
        for s in specials:
            added.append(special(len(vocab), s))
            vocab[s] = len(vocab)
    for p in pieces:
        vocab[p] = len(vocab)
    if family == "qwen2":
        for s in specials:
            added.append(special(len(vocab), s))
            vocab[s] = len(vocab)
    for a, b in merges:
        assert a in vocab and b in vocab and a + b in vocab, (a, b)
    if family == "qwen2":
        normalizer = {"type": "NFC"}
        pre = {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        }
    else:
        normalizer = None
        pre = {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        }
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "" if family == "qwen2" else None,
            "end_of_word_suffix": "" if family == "qwen2" else None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
    decoder = {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added}
    if family == "qwen2":
        config = {
            "add_prefix_space": False,
            "added_tokens_decoder": decoder,
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": None,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|endoftext|>",
            "errors": "replace",
            "model_max_length": 1024,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        }
    else:
        config = {
            "add_prefix_space": False,
            "added_tokens_decoder": decoder,
            "additional_special_tokens": specials,
            "bos_token": "<|endoftext|>",
            "clean_up_tokenization_spaces": True,
            "eos_token": "<|endoftext|>",
            "model_max_length": 1000000000000000019884624838656,
            "tokenizer_class": "GPT2Tokenizer",
            "unk_token": "<|endoftext|>",
            "vocab_size": len(vocab),
        }
    ids = {s: vocab[s] for s in specials}
    return tokenizer, config, vocab, merges, ids


SPM_SPACE = "▁"
SPM_BYTES = [f"<0x{b:02X}>" for b in range(256)]


def llama_tokenizer(texts, size):
    """Llama 2's tokenizer.json layout: Prepend("▁") + Replace(" ", "▁") normalizer, no pre-tokenizer,
    BPE with byte fallback (<0xNN> for any character outside the vocabulary, e.g. newlines and tabs)."""
    chars = collections.Counter()
    for t in texts:
        chars.update(t.replace(" ", SPM_SPACE))
    alphabet = sorted(c for c, n in chars.items() if n >= 3 and c not in "\n\r\t" and c.isprintable())
    if SPM_SPACE not in alphabet:
        alphabet.append(SPM_SPACE)
    alpha = set(alphabet)
    counts = collections.Counter()

    def add(text, weight=1):
        norm = SPM_SPACE + text.replace(" ", SPM_SPACE)
        # Runs of vocabulary characters; SentencePiece pieces never hold ▁ after another character.
        for run in re.split("[^" + re.escape("".join(alphabet)) + "]+", norm):
            for w in re.findall(SPM_SPACE + "*[^" + SPM_SPACE + "]+|" + SPM_SPACE + "+", run):
                counts[tuple(w)] += weight

    for t in texts:
        add(t)
    for t in PROMPT_TEXTS:
        add(t, LLAMA_PROMPT_WEIGHT)
    specials = ["<unk>", "<s>", "</s>"]
    n_merges = size - len(specials) - 256 - len(alphabet)
    merges = train_bpe(counts, n_merges + 40)
    vocab = {}
    for s in specials + SPM_BYTES + alphabet:
        vocab[s] = len(vocab)
    kept = []
    for a, b in merges:
        if len(vocab) >= size:
            break
        kept.append((a, b))
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    merges = kept
    for a, b in merges:
        assert a in vocab and b in vocab and a + b in vocab, (a, b)
    added = [special(i, s) for i, s in enumerate(specials)]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": SPM_SPACE},
                {"type": "Replace", "pattern": {"String": " "}, "content": SPM_SPACE},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": SPM_SPACE}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": True,
        "model_max_length": 512,
        "pad_token": None,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    return tokenizer, config, vocab, merges, {"<unk>": 0, "<s>": 1, "</s>": 2}


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def make_config(family, vocab_size, ids):
    common = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "initializer_range": 0.02,
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    if family == "llama":
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "head_dim": 16,
            "hidden_act": "silu",
            "intermediate_size": 96,
            "max_position_embeddings": 512,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {"factor": 2.0, "type": "linear"},
            "rope_theta": 10000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            **common,
        }
    if family == "qwen2":
        return {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "attention_dropout": 0.0,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|endoftext|>"],
            "hidden_act": "silu",
            "intermediate_size": 128,
            "max_position_embeddings": 1024,
            "max_window_layers": 2,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000.0,
            "sliding_window": 1024,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "use_sliding_window": False,
            **common,
        }
    return {
        "architectures": ["Starcoder2ForCausalLM"],
        "model_type": "starcoder2",
        "attention_dropout": 0.1,
        "bos_token_id": ids["<|endoftext|>"],
        "embedding_dropout": 0.1,
        "eos_token_id": ids["<|endoftext|>"],
        "hidden_act": "gelu_pytorch_tanh",
        "intermediate_size": 128,
        "max_position_embeddings": 512,
        "mlp_type": "default",
        "norm_epsilon": 1e-05,
        "norm_type": "layer_norm",
        "residual_dropout": 0.1,
        "rope_theta": 999999.4420358813,
        "sliding_window": 16,
        "torch_dtype": "float32",
        "use_bias": True,
        **common,
    }


def make_weights(family, config, seed):
    """A *ForCausalLM state dict (Hugging Face names, in its order), scaled so the logits are O(1)."""
    g = torch.Generator().manual_seed(seed)
    D = config["hidden_size"]
    V = config["vocab_size"]
    H = config["num_attention_heads"]
    KV = config["num_key_value_heads"]
    hd = D // H
    inner = config["intermediate_size"]
    sd = collections.OrderedDict()

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std

    def linear(name, out, inp, bias):
        sd[f"{name}.weight"] = randn(out, inp, std=1.0 / inp**0.5)
        if bias:
            sd[f"{name}.bias"] = randn(out, std=0.1)

    def norm(name, bias):
        sd[f"{name}.weight"] = 1.0 + randn(D, std=0.1)
        if bias:
            sd[f"{name}.bias"] = randn(D, std=0.1)

    sc2 = family == "starcoder2"
    sd["model.embed_tokens.weight"] = randn(V, D, std=0.5)
    for l in range(config["num_hidden_layers"]):
        p = f"model.layers.{l}"
        norm(f"{p}.input_layernorm", sc2)
        qkv_bias = family == "qwen2" or sc2
        linear(f"{p}.self_attn.q_proj", H * hd, D, qkv_bias)
        linear(f"{p}.self_attn.k_proj", KV * hd, D, qkv_bias)
        linear(f"{p}.self_attn.v_proj", KV * hd, D, qkv_bias)
        linear(f"{p}.self_attn.o_proj", D, H * hd, sc2)
        norm(f"{p}.post_attention_layernorm", sc2)
        if sc2:
            linear(f"{p}.mlp.c_fc", inner, D, True)
            linear(f"{p}.mlp.c_proj", D, inner, True)
        else:
            linear(f"{p}.mlp.gate_proj", inner, D, False)
            linear(f"{p}.mlp.up_proj", inner, D, False)
            linear(f"{p}.mlp.down_proj", D, inner, False)
    norm("model.norm", sc2)
    if not config.get("tie_word_embeddings", sc2):
        sd["lm_head.weight"] = randn(V, D, std=2.0 / D**0.5)
    if config["torch_dtype"] == "bfloat16":
        sd = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in sd.items())
    return sd


ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def tensor_bytes(t):
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().tobytes()
    return t.contiguous().numpy().tobytes()


def safetensors_bytes(tensors):
    """safetensors as the Rust writer lays it out: header keys sorted, data in the same order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# ----------------------------------------------------------------------------------------------
# GGUF (llama.cpp)
# ----------------------------------------------------------------------------------------------


def llama_permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py LlamaModel.permute: each head's rotary halves interleaved."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def quantize_q8_0(x):
    """gguf-py quants.py Q8_0: per 32 values d = max|x| / 127 (f16), q = round-half-away(x / d)."""
    blocks = x.astype(np.float32).reshape(-1, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / 127
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d == 0, 0, np.sign(blocks / d) * np.floor(np.abs(blocks / d) + 0.5))
    out = np.empty((blocks.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8)
    out[:, 2:] = q.astype(np.int8).view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(b, n):
    a = np.frombuffer(b, dtype=np.uint8).reshape(-1, 34)
    d = a[:, :2].copy().view(np.float16).astype(np.float32)
    q = a[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(n)


GGUF_TYPES = {"u32": 4, "i32": 5, "f32": 6, "bool": 7, "string": 8, "array": 9}
GGML_F32, GGML_Q8_0 = 0, 8


def gguf_bytes(metadata, tensors, alignment=32):
    """GGUF v3: metadata (key, type, value) and tensors (name, HF shape, ggml type, bytes)."""
    out = bytearray()

    def s(text):
        b = text.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def scalar(kind, v):
        if kind == "u32":
            return struct.pack("<I", v)
        if kind == "i32":
            return struct.pack("<i", v)
        if kind == "f32":
            return struct.pack("<f", v)
        if kind == "bool":
            return struct.pack("<B", 1 if v else 0)
        return s(v)

    out += b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", len(tensors)) + struct.pack("<Q", len(metadata))
    for key, (kind, value) in metadata.items():
        out += s(key)
        if kind.endswith("[]"):
            inner = kind[:-2]
            out += struct.pack("<I", GGUF_TYPES["array"]) + struct.pack("<I", GGUF_TYPES[inner])
            out += struct.pack("<Q", len(value))
            for v in value:
                out += scalar(inner, v)
        else:
            out += struct.pack("<I", GGUF_TYPES[kind]) + scalar(kind, value)
    pad = lambda n: (n + alignment - 1) // alignment * alignment
    offset = 0
    offsets = []
    for name, shape, ggml_type, data in tensors:
        out += s(name) + struct.pack("<I", len(shape))
        for dim in reversed(shape):
            out += struct.pack("<Q", dim)
        out += struct.pack("<I", ggml_type) + struct.pack("<Q", offset)
        offsets.append(offset)
        offset = pad(offset + len(data))
    out += b"\0" * (pad(len(out)) - len(out))
    start = len(out)
    out += b"\0" * offset
    for (_name, _shape, _type, data), o in zip(tensors, offsets):
        out[start + o : start + o + len(data)] = data
    return bytes(out)


GGUF_BLOCK = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
}
GGUF_GLOBAL = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


def gguf_name(hf):
    for k, v in GGUF_GLOBAL.items():
        if hf.startswith(k + "."):
            return v + hf[len(k) :]
    m = re.match(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)$", hf)
    assert m, hf
    return f"blk.{m.group(1)}.{GGUF_BLOCK[m.group(2)]}.{m.group(3)}"


def make_gguf(family, config, sd, vocab, merges, ids):
    H = config["num_attention_heads"]
    KV = config["num_key_value_heads"]
    tensors = []
    for name, t in sd.items():
        x = t.float()
        if family == "llama" and re.search(r"self_attn\.q_proj\.(weight|bias)$", name):
            x = llama_permute(x, H, H)
        elif family == "llama" and re.search(r"self_attn\.k_proj\.(weight|bias)$", name):
            x = llama_permute(x, H, KV)
        a = x.numpy()
        if a.ndim == 2 and a.shape[1] % 32 == 0:
            tensors.append((gguf_name(name), list(a.shape), GGML_Q8_0, quantize_q8_0(a)))
        else:
            tensors.append((gguf_name(name), list(a.shape), GGML_F32, a.astype(np.float32).tobytes()))
    arch = family
    D = config["hidden_size"]
    md = collections.OrderedDict()
    md["general.architecture"] = ("string", arch)
    md["general.name"] = ("string", f"vulnlab-tiny-{family}")
    md["general.file_type"] = ("u32", 7)  # MOSTLY_Q8_0
    md["general.quantization_version"] = ("u32", 2)
    md[f"{arch}.vocab_size"] = ("u32", config["vocab_size"])
    md[f"{arch}.context_length"] = ("u32", config["max_position_embeddings"])
    md[f"{arch}.embedding_length"] = ("u32", D)
    md[f"{arch}.block_count"] = ("u32", config["num_hidden_layers"])
    md[f"{arch}.feed_forward_length"] = ("u32", config["intermediate_size"])
    md[f"{arch}.attention.head_count"] = ("u32", H)
    md[f"{arch}.attention.head_count_kv"] = ("u32", KV)
    md[f"{arch}.rope.freq_base"] = ("f32", config["rope_theta"])
    if family == "starcoder2":
        md[f"{arch}.attention.layer_norm_epsilon"] = ("f32", config["norm_epsilon"])
        md[f"{arch}.attention.sliding_window"] = ("u32", config["sliding_window"])
    else:
        md[f"{arch}.attention.layer_norm_rms_epsilon"] = ("f32", config["rms_norm_eps"])
    if family == "llama":
        md[f"{arch}.rope.dimension_count"] = ("u32", D // H)
        md[f"{arch}.rope.scaling.type"] = ("string", config["rope_scaling"]["type"])
        md[f"{arch}.rope.scaling.factor"] = ("f32", config["rope_scaling"]["factor"])
    # The tokenizer as llama.cpp stores it, padded to vocab_size with [PAD<i>] tokens.
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in by_id]
    specials = set(ids)
    types = []
    for t in tokens:
        if t in specials:
            types.append(2 if t == "<unk>" else 3)  # UNKNOWN, CONTROL
        elif family == "llama" and re.fullmatch(r"<0x[0-9A-F]{2}>", t):
            types.append(6)  # BYTE
        else:
            types.append(1)  # NORMAL
    for i in range(len(tokens), config["vocab_size"]):
        tokens.append(f"[PAD{i}]")
        types.append(4)  # USER_DEFINED
    md["tokenizer.ggml.model"] = ("string", "llama" if family == "llama" else "gpt2")
    if family != "llama":
        md["tokenizer.ggml.pre"] = ("string", "qwen2" if family == "qwen2" else "starcoder")
    md["tokenizer.ggml.tokens"] = ("string[]", tokens)
    if family == "llama":
        md["tokenizer.ggml.scores"] = ("f32[]", [0.0 if i < 259 else -float(i - 259) for i in range(len(tokens))])
    md["tokenizer.ggml.token_type"] = ("i32[]", types)
    if family != "llama":
        md["tokenizer.ggml.merges"] = ("string[]", [f"{a} {b}" for a, b in merges])
    md["tokenizer.ggml.bos_token_id"] = ("u32", config["bos_token_id"])
    md["tokenizer.ggml.eos_token_id"] = ("u32", config["eos_token_id"])
    if family == "llama":
        md["tokenizer.ggml.unknown_token_id"] = ("u32", 0)
    if family == "qwen2":
        md["tokenizer.ggml.padding_token_id"] = ("u32", ids["<|endoftext|>"])
    return gguf_bytes(md, tensors)


# ----------------------------------------------------------------------------------------------


FAMILIES = {
    # family: (tokenizer size, config vocab_size (None: the tokenizer's), seed)
    "llama": (512, None, 1701),
    "qwen2": (470, 512, 1702),  # Qwen pads the embedding beyond the tokenizer, as Qwen2.5 does
    "starcoder2": (480, None, 1703),
}


def self_checks():
    w = torch.arange(8 * 3, dtype=torch.float32).reshape(8, 3)
    assert torch.equal(llama_unpermute(llama_permute(w, 2, 2), 2), w)
    # Head 0 of 2 (hd 4): HF rows [0 1 | 2 3] → interleaved [0 2 1 3].
    assert llama_permute(w, 2, 2)[:4, 0].tolist() == [0.0, 6.0, 3.0, 9.0]
    x = np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32)
    y = dequantize_q8_0(quantize_q8_0(x), x.size).reshape(x.shape)
    step = np.abs(x.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs((y - x).reshape(-1, 32)) <= step * 0.5 + 1e-3 * step)


def main():
    self_checks()
    texts = corpus()
    for family, (size, padded, seed) in FAMILIES.items():
        if family == "llama":
            tok, tok_config, vocab, merges, ids = llama_tokenizer(texts, size)
        else:
            tok, tok_config, vocab, merges, ids = byte_level_tokenizer(texts, family, size)
        assert len(vocab) == size, (family, len(vocab))
        config = make_config(family, padded or len(vocab), ids)
        sd = make_weights(family, config, seed)
        out = os.path.join(OUT, family)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)

        def write(name, data):
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(os.path.join(out, name), mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
                f.write(data)

        dump = lambda o: json.dumps(o, indent=2, ensure_ascii=False) + "\n"
        write("config.json", dump(config))
        write("tokenizer.json", json.dumps(tok, ensure_ascii=False) + "\n")
        write("tokenizer_config.json", dump(tok_config))
        if family == "starcoder2":
            # Sharded as starcoder2-3b: an index naming each tensor's shard.
            names = list(sd)
            cut = names.index("model.layers.1.input_layernorm.weight")
            shards = [names[:cut], names[cut:]]
            weight_map = {}
            total = 0
            for i, part in enumerate(shards):
                file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                write(file, safetensors_bytes({n: sd[n] for n in part}))
                for n in part:
                    weight_map[n] = file
                    total += sd[n].numel() * sd[n].element_size()
            write(
                "model.safetensors.index.json",
                dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}),
            )
        else:
            write("model.safetensors", safetensors_bytes(sd))
        write(f"{family}-q8_0.gguf", make_gguf(family, config, sd, vocab, merges, ids))
        sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
        print(family, {f: f"{s / 1024:.0f} KiB" for f, s in sizes.items()})


if __name__ == "__main__":
    main()
