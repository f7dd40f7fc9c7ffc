#!/usr/bin/python3
"""Independent PyTorch reference for the VulnLab engine: golden fixtures in tests/fixtures/engine/.

GPT-BigCode (as Hugging Face transformers' GPTBigCodeModel computes it) and the Llama family (Llama, Qwen2,
StarCoder2, as LlamaModel / Qwen2Model / Starcoder2Model compute them; see "Llama family" below) + LoRA +
packed batches + focal / next-token loss + global-norm clipping + AdamW, all in float64, gradients by torch
autograd. It shares no code with the engine; see tests/fixtures/engine/FORMAT.md for the file format and
semantics.

Run: /usr/bin/python3 scripts/torch_reference.py   (Debian's python3-torch; takes a few seconds)
     /usr/bin/python3 scripts/torch_reference.py CASE...   (only those cases; every case has its own seed,
     so the others' files would be written byte for byte as they are)
Self-checks (assertions) run every time before anything is written.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "engine")

EOS_ID = 0  # separator after every function (StarCoder's <|endoftext|> is id 0)
PAD_ID = 60  # right padding (WizardCoder's [PAD] is the last id)
LORA_TARGETS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
# Target "wte": PEFT's lora.Embedding on the token embedding (keys as PEFT saves them, no ".weight").
EMB_A = "transformer.wte.lora_embedding_A"  # [r, vocab_size]
EMB_B = "transformer.wte.lora_embedding_B"  # [n_embd, r]


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


def linear(x, p, name, lora_scaling):
    """y = x·Wᵀ + b (+ (alpha/r)·(x·Aᵀ)·Bᵀ when the module has LoRA weights)."""
    y = x @ p[name + ".weight"].T + p[name + ".bias"]
    if name + ".lora_A.weight" in p:
        y = y + lora_scaling * ((x @ p[name + ".lora_A.weight"].T) @ p[name + ".lora_B.weight"].T)
    return y


def activation(x, kind):
    if kind == "gelu":
        return F.gelu(x)  # exact erf form
    if kind == "gelu_pytorch_tanh":
        return F.gelu(x, approximate="tanh")
    raise ValueError(kind)


def build_mask(segment_ids, mode):
    """Boolean [B, L(query), L(key)] mask, built element by element from the segment ids."""
    B, L = segment_ids.shape
    mask = torch.zeros(B, L, L, dtype=torch.bool)
    for b in range(B):
        for i in range(L):
            si = int(segment_ids[b, i])
            if si < 0:
                continue  # padding query: attends to nothing, its output is zero
            for j in range(i + 1):  # causal: keys at positions <= i
                sj = int(segment_ids[b, j])
                if mode == "packed":
                    mask[b, i, j] = sj == si
                elif mode == "paper":
                    mask[b, i, j] = sj >= 0
                else:
                    raise ValueError(mode)
    return mask


def attention(x, p, prefix, cfg, mask, lora_scaling):
    B, L, D = x.shape
    H = cfg["n_head"]
    hd = D // H
    qkv = linear(x, p, prefix + "attn.c_attn", lora_scaling)
    if cfg["multi_query"]:
        # rows of c_attn: [Q for all heads (D) | one K head (hd) | one V head (hd)]
        q, k, v = qkv.split([D, hd, hd], dim=-1)
        q = q.view(B, L, H, hd).transpose(1, 2)  # [B, H, L, hd]
        k = k.unsqueeze(1)  # [B, 1, L, hd], shared by every head
        v = v.unsqueeze(1)
    else:
        # Hugging Face's layout: output viewed as [..., n_head, 3, hd] -> (q, k, v) per head
        q, k, v = qkv.view(B, L, H, 3, hd).unbind(dim=3)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, hd]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # [B, H, L, L]
    m = mask.unsqueeze(1)  # [B, 1, L, L]
    # rows with no allowed key (padding queries): softmax over anything finite, then zeroed
    has_key = m.any(dim=-1, keepdim=True)
    probs = torch.softmax(scores.masked_fill(~(m | ~has_key), float("-inf")), dim=-1) * m
    out = (probs @ v).transpose(1, 2).reshape(B, L, D)
    return linear(out, p, prefix + "attn.c_proj", lora_scaling)


def layer_norm(x, p, name, eps):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], eps)


def embed(p, input_ids, lora_scaling):
    """wte(ids), plus PEFT lora.Embedding's (alpha/r)·F.embedding(ids, Aᵀ)·Bᵀ when wte has an adapter
    (peft/tuners/lora/layer.py Embedding.forward; no dropout on this branch)."""
    x = p["transformer.wte.weight"][input_ids]
    if EMB_A in p:
        after_a = F.embedding(input_ids, p[EMB_A].T)  # [B, L, r]: column id of A
        x = x + (after_a @ p[EMB_B].T) * lora_scaling
    return x


def transformer(p, cfg, input_ids, position_ids, mask, lora_scaling):
    """GPTBigCodeModel forward: final hidden states after ln_f, [B, L, D]."""
    eps = cfg["layer_norm_epsilon"]
    x = embed(p, input_ids, lora_scaling) + p["transformer.wpe.weight"][position_ids]
    for layer in range(cfg["n_layer"]):
        pre = f"transformer.h.{layer}."
        x = x + attention(layer_norm(x, p, pre + "ln_1", eps), p, pre, cfg, mask, lora_scaling)
        h = linear(layer_norm(x, p, pre + "ln_2", eps), p, pre + "mlp.c_fc", lora_scaling)
        x = x + linear(activation(h, cfg["activation_function"]), p, pre + "mlp.c_proj", lora_scaling)
    return layer_norm(x, p, "transformer.ln_f", eps)


# ----------------------------------------------------------------------------------------------
# Llama family: Llama, Qwen2, StarCoder2 (config["model_type"]; the GPT-BigCode configs have none)
# ----------------------------------------------------------------------------------------------
#
# Written from transformers' modeling_llama.py / modeling_qwen2.py / modeling_starcoder2.py (eager path):
#   x = embed_tokens(ids)                                  (no position embedding table: RoPE in attention)
#   per layer: x = x + o_proj(attn(rope(q_proj(n1(x))), rope(k_proj(n1(x))), v_proj(n1(x))))
#              x = x + mlp(n2(x))                          n1 = input_layernorm, n2 = post_attention_layernorm
#   hidden = model.norm(x)
# - Norms: llama/qwen2 RMSNorm  x·rsqrt(mean(x²) + rms_norm_eps)·weight (LlamaRMSNorm; HF upcasts to float32,
#   here everything is float64); starcoder2 nn.LayerNorm(weight, bias, eps = norm_epsilon).
# - Attention: q [B, H, L, hd], k/v [B, KV, L, hd] (the projections' outputs viewed as [L, heads, hd]),
#   hd = hidden_size / num_attention_heads; RoPE on q and k; k/v repeated (repeat_kv: query head h reads kv
#   head h // (H / KV)); scores · hd^-0.5; softmax; o_proj. Biases: llama q/k/v/o iff attention_bias, qwen2
#   q/k/v always and never o, starcoder2 all four iff use_bias.
# - RoPE (rotate-half convention): inv_freq_i = 1 / rope_theta^(2i/hd), i < hd/2; rope_scaling
#   {"type": "linear", "factor": f} divides inv_freq by f (= positions / f); angle = position_id · inv_freq,
#   cos/sin of cat(angle, angle); x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x[hd/2:], x[:hd/2]).
#   Positions are the batch's position_ids (restarting per function in "packed").
# - MLP: llama/qwen2 down_proj(silu(gate_proj(x)) · up_proj(x)) (biases iff llama's mlp_bias; qwen2 none);
#   starcoder2 c_proj(gelu_tanh(c_fc(x))) (biases iff use_bias).
# - StarCoder2 sliding_window W (every layer): query i may attend key j only if i − j < W, i.e. at most W keys
#   including itself, as transformers' masking_utils.sliding_window_overlay (kv_idx > q_idx − W) on top of the
#   causal mask. (Older releases disagree by one: an eager mask built with tril(diagonal = −W − 1) let
#   i − j ≤ W through, W + 1 keys; the current masking_utils semantics is the one written here.) i − j is the
#   index distance in the pack, which inside one function equals its position distance; the window is ANDed
#   with the packed / paper mask. llama and qwen2 (use_sliding_window false) have no window.
# - Heads: ntp logits = hidden · lm_headᵀ, lm_head.weight when tie_word_embeddings is false, else
#   model.embed_tokens.weight (the base table: an embedding adapter does not reach the tied head, as in PEFT);
#   cls logits = score.weight (bias-free, [2, hidden]) on each function's last code token (the engine's
#   convention, not HF's last-non-pad token).

FAMILY_LORA_TARGETS = {
    "llama": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    "starcoder2": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                   "mlp.c_fc", "mlp.c_proj"],
}
FAMILY_LORA_TARGETS["qwen2"] = FAMILY_LORA_TARGETS["llama"]


def is_family(cfg):
    return "model_type" in cfg


def emb_lora_names(cfg):
    """PEFT lora.Embedding keys of the token embedding: (A [r, vocab], B [hidden, r])."""
    if is_family(cfg):
        return "model.embed_tokens.lora_embedding_A", "model.embed_tokens.lora_embedding_B"
    return EMB_A, EMB_B


def family_has_bias(cfg, module):
    """Whether the Hugging Face module <module> (path inside a block) has a bias."""
    t = cfg["model_type"]
    if t == "starcoder2":
        return cfg["use_bias"]
    if t == "qwen2":
        return module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
    if t == "llama":
        return cfg["attention_bias"] if module.startswith("self_attn.") else cfg["mlp_bias"]
    raise ValueError(t)


def family_modules(cfg):
    """{module path inside a block: (out_features, in_features)} in Hugging Face registration order."""
    D, I = cfg["hidden_size"], cfg["intermediate_size"]
    hd = D // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    shapes = {
        "self_attn.q_proj": (D, D),
        "self_attn.k_proj": (kv, D),
        "self_attn.v_proj": (kv, D),
        "self_attn.o_proj": (D, D),
    }
    if cfg["model_type"] == "starcoder2":
        shapes.update({"mlp.c_fc": (I, D), "mlp.c_proj": (D, I)})
    else:
        shapes.update({"mlp.gate_proj": (I, D), "mlp.up_proj": (I, D), "mlp.down_proj": (D, I)})
    return shapes


def family_linear(x, p, name, lora_scaling):
    """y = x·Wᵀ (+ b when the module has one) (+ (alpha/r)·(x·Aᵀ)·Bᵀ when it has LoRA weights)."""
    y = x @ p[name + ".weight"].T
    if name + ".bias" in p:
        y = y + p[name + ".bias"]
    if name + ".lora_A.weight" in p:
        y = y + lora_scaling * ((x @ p[name + ".lora_A.weight"].T) @ p[name + ".lora_B.weight"].T)
    return y


def family_norm(x, p, name, cfg):
    if cfg["model_type"] == "starcoder2":
        return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], cfg["norm_epsilon"])
    variance = x.pow(2).mean(-1, keepdim=True)  # LlamaRMSNorm / Qwen2RMSNorm
    return p[name + ".weight"] * (x * torch.rsqrt(variance + cfg["rms_norm_eps"]))


def rope_cos_sin(cfg, position_ids):
    """cos, sin [B, L, hd] as LlamaRotaryEmbedding (default or linear rope_scaling)."""
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).to(torch.float64) / hd))
    scaling = cfg.get("rope_scaling")
    if scaling is not None:
        assert scaling["type"] == "linear", scaling
        inv_freq = inv_freq / scaling["factor"]
    freqs = position_ids.to(torch.float64)[..., None] * inv_freq  # [B, L, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x, n_rep):
    """[B, KV, L, hd] -> [B, KV·n_rep, L, hd], kv head j serving query heads j·n_rep .. j·n_rep + n_rep − 1."""
    B, KV, L, hd = x.shape
    return x[:, :, None].expand(B, KV, n_rep, L, hd).reshape(B, KV * n_rep, L, hd)


def window_mask(cfg, L):
    """[L, L] band i − j < sliding_window (None: no window)."""
    W = cfg.get("sliding_window")
    if W is None:
        return torch.ones(L, L, dtype=torch.bool)
    idx = torch.arange(L)
    return (idx[:, None] - idx[None, :]) < W


def family_attention(x, p, prefix, cfg, mask, cos, sin, lora_scaling):
    B, L, D = x.shape
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    q = family_linear(x, p, prefix + "self_attn.q_proj", lora_scaling).view(B, L, H, hd).transpose(1, 2)
    k = family_linear(x, p, prefix + "self_attn.k_proj", lora_scaling).view(B, L, KV, hd).transpose(1, 2)
    v = family_linear(x, p, prefix + "self_attn.v_proj", lora_scaling).view(B, L, KV, hd).transpose(1, 2)
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)  # [B, 1, L, hd]
    q = q * c + rotate_half(q) * s
    k = k * c + rotate_half(k) * s
    k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
    scores = (q @ k.transpose(-1, -2)) * hd**-0.5  # [B, H, L, L]
    m = (mask & window_mask(cfg, L)).unsqueeze(1)  # [B, 1, L, L]
    has_key = m.any(dim=-1, keepdim=True)  # padding queries: no key, output zero (never read)
    probs = torch.softmax(scores.masked_fill(~(m | ~has_key), float("-inf")), dim=-1) * m
    out = (probs @ v).transpose(1, 2).reshape(B, L, H * hd)
    return family_linear(out, p, prefix + "self_attn.o_proj", lora_scaling)


def family_mlp(x, p, prefix, cfg, lora_scaling):
    if cfg["model_type"] == "starcoder2":
        assert cfg["hidden_act"] == "gelu_pytorch_tanh"
        h = F.gelu(family_linear(x, p, prefix + "mlp.c_fc", lora_scaling), approximate="tanh")
        return family_linear(h, p, prefix + "mlp.c_proj", lora_scaling)
    assert cfg["hidden_act"] == "silu"
    gate = F.silu(family_linear(x, p, prefix + "mlp.gate_proj", lora_scaling))
    up = family_linear(x, p, prefix + "mlp.up_proj", lora_scaling)
    return family_linear(gate * up, p, prefix + "mlp.down_proj", lora_scaling)


def family_embed(p, cfg, input_ids, lora_scaling):
    """embed_tokens(ids) (+ PEFT lora.Embedding's (alpha/r)·F.embedding(ids, Aᵀ)·Bᵀ, no dropout)."""
    x = p["model.embed_tokens.weight"][input_ids]
    emb_a, emb_b = emb_lora_names(cfg)
    if emb_a in p:
        x = x + (F.embedding(input_ids, p[emb_a].T) @ p[emb_b].T) * lora_scaling
    return x


def family_decoder(p, cfg, input_ids, position_ids, mask, lora_scaling):
    """LlamaModel / Qwen2Model / Starcoder2Model forward: hidden states after model.norm, [B, L, D]."""
    x = family_embed(p, cfg, input_ids, lora_scaling)
    cos, sin = rope_cos_sin(cfg, position_ids)
    for layer in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{layer}."
        x = x + family_attention(family_norm(x, p, pre + "input_layernorm", cfg), p, pre, cfg, mask, cos, sin, lora_scaling)
        x = x + family_mlp(family_norm(x, p, pre + "post_attention_layernorm", cfg), p, pre, cfg, lora_scaling)
    return family_norm(x, p, "model.norm", cfg)


def forward_hidden(p, cfg, input_ids, position_ids, mask, lora_scaling):
    """Final hidden states [B, L, D] of whichever model the config describes."""
    if is_family(cfg):
        return family_decoder(p, cfg, input_ids, position_ids, mask, lora_scaling)
    return transformer(p, cfg, input_ids, position_ids, mask, lora_scaling)


def hidden_size(cfg):
    return cfg["hidden_size"] if is_family(cfg) else cfg["n_embd"]


def num_layers(cfg):
    return cfg["num_hidden_layers"] if is_family(cfg) else cfg["n_layer"]


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


def cls_logits(p, hidden, functions):
    last = torch.stack([hidden[f["pack"], f["last"]] for f in functions])  # [F, D]
    return last @ p["score.weight"].T  # [F, 2]


def focal_loss(logits, functions, gamma, alpha):
    labels = torch.tensor([f["label"] for f in functions])
    weights = torch.tensor([float(f["weight"]) for f in functions])
    logp_t = torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1)
    p_t = logp_t.exp()
    if alpha is None:
        alpha_t = torch.ones_like(p_t)
    else:
        alpha_t = torch.where(labels == 1, torch.tensor(alpha), torch.tensor(1.0 - alpha))
    fl = -alpha_t * (1.0 - p_t) ** gamma * logp_t
    return (weights * fl).mean()


def ntp_targets(input_ids, segment_ids, mode):
    """(pack, t) pairs whose next token is predicted, and the targets input_ids[pack, t+1]."""
    B, L = input_ids.shape
    rows, cols, targets = [], [], []
    for b in range(B):
        for t in range(L - 1):
            s, s_next = int(segment_ids[b, t]), int(segment_ids[b, t + 1])
            ok = (s >= 0 and s_next == s) if mode == "packed" else (s >= 0 and s_next >= 0)
            if ok:
                rows.append(b)
                cols.append(t)
                targets.append(int(input_ids[b, t + 1]))
    return torch.tensor(rows), torch.tensor(cols), torch.tensor(targets)


def ntp_logits(p, cfg, hidden):
    if not is_family(cfg):
        return hidden @ p["transformer.wte.weight"].T  # lm_head tied to wte, [B, L, V]
    if cfg["tie_word_embeddings"]:
        return hidden @ p["model.embed_tokens.weight"].T  # the base table (an embedding adapter is not applied)
    return hidden @ p["lm_head.weight"].T


def compute(p, case, batch):
    """Forward + loss. Returns (loss, outputs dict)."""
    cfg = case["config"]
    mask = build_mask(batch["segment_ids"], case["mode"])
    scaling = case["lora"]["alpha"] / case["lora"]["r"] if case["lora"] else 0.0
    hidden = forward_hidden(p, cfg, batch["input_ids"], batch["position_ids"], mask, scaling)
    out = {"hidden": hidden}
    if case["objective"] == "cls":
        logits = cls_logits(p, hidden, batch["functions"])
        out["logits"] = logits
        loss = focal_loss(logits, batch["functions"], case["focal"]["gamma"], case["focal"]["alpha"])
    else:
        logits = ntp_logits(p, cfg, hidden)
        out["ntp_logits"] = logits
        rows, cols, targets = ntp_targets(batch["input_ids"], batch["segment_ids"], case["mode"])
        loss = F.cross_entropy(logits[rows, cols], targets)
    return loss, out


# ----------------------------------------------------------------------------------------------
# Tiny random model and batch
# ----------------------------------------------------------------------------------------------


def make_family_params(case, gen):
    """Random Llama-family parameters, rounded to 4 decimals (exact inputs, about half the JSON of full
    float64 digits); Hugging Face state_dict order: embed_tokens, per layer self_attn.{q,k,v,o}_proj, mlp,
    input_layernorm, post_attention_layernorm, then model.norm, lm_head (ntp, untied), score (cls), LoRA."""
    cfg = case["config"]
    D, V = cfg["hidden_size"], cfg["vocab_size"]
    layer_norm = cfg["model_type"] == "starcoder2"

    def randn(*shape, std=0.2, mean=0.0):
        return torch.round((mean + std * torch.randn(*shape, generator=gen)) * 1e4) / 1e4

    def norm(name):
        p[name + ".weight"] = randn(D, std=0.1, mean=1.0)
        if layer_norm:
            p[name + ".bias"] = randn(D, std=0.1)

    shapes = family_modules(cfg)
    p = {"model.embed_tokens.weight": randn(V, D)}
    for layer in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{layer}."
        for module, shape in shapes.items():
            p[pre + module + ".weight"] = randn(*shape)
            if family_has_bias(cfg, module):
                p[pre + module + ".bias"] = randn(shape[0], std=0.1)
        norm(pre + "input_layernorm")
        norm(pre + "post_attention_layernorm")
    norm("model.norm")
    if case["objective"] == "ntp" and not cfg["tie_word_embeddings"]:
        p["lm_head.weight"] = randn(V, D)
    if case["objective"] == "cls":
        p["score.weight"] = randn(2, D)
    if case["lora"]:
        r = case["lora"]["r"]
        for layer in range(cfg["num_hidden_layers"]):
            for module in case["lora"]["targets"]:
                if module == "wte":
                    continue
                name = f"model.layers.{layer}.{module}"
                out_f, in_f = shapes[module]
                p[name + ".lora_A.weight"] = randn(r, in_f)
                p[name + ".lora_B.weight"] = randn(out_f, r)  # random, not zero
        if "wte" in case["lora"]["targets"]:
            emb_a, emb_b = emb_lora_names(cfg)
            p[emb_a] = randn(r, V)
            p[emb_b] = randn(D, r)
    return p


def make_params(case, gen):
    if is_family(case["config"]):
        return make_family_params(case, gen)
    cfg = case["config"]
    D, V, I = cfg["n_embd"], cfg["vocab_size"], cfg["n_inner"]
    hd = D // cfg["n_head"]
    attn_out = D + 2 * hd if cfg["multi_query"] else 3 * D

    def randn(*shape, std=0.2, mean=0.0):
        return mean + std * torch.randn(*shape, generator=gen)

    p = {"transformer.wte.weight": randn(V, D), "transformer.wpe.weight": randn(cfg["n_positions"], D)}
    shapes = {"attn.c_attn": (attn_out, D), "attn.c_proj": (D, D), "mlp.c_fc": (I, D), "mlp.c_proj": (D, I)}
    for layer in range(cfg["n_layer"]):
        pre = f"transformer.h.{layer}."
        p[pre + "ln_1.weight"] = randn(D, std=0.1, mean=1.0)
        p[pre + "ln_1.bias"] = randn(D, std=0.1)
        for module in ["attn.c_attn", "attn.c_proj"]:
            p[pre + module + ".weight"] = randn(*shapes[module])
            p[pre + module + ".bias"] = randn(shapes[module][0], std=0.1)
        p[pre + "ln_2.weight"] = randn(D, std=0.1, mean=1.0)
        p[pre + "ln_2.bias"] = randn(D, std=0.1)
        for module in ["mlp.c_fc", "mlp.c_proj"]:
            p[pre + module + ".weight"] = randn(*shapes[module])
            p[pre + module + ".bias"] = randn(shapes[module][0], std=0.1)
    p["transformer.ln_f.weight"] = randn(D, std=0.1, mean=1.0)
    p["transformer.ln_f.bias"] = randn(D, std=0.1)
    if case["objective"] == "cls":
        p["score.weight"] = randn(2, D)
    if case["lora"]:
        r = case["lora"]["r"]
        for layer in range(cfg["n_layer"]):
            for module in case["lora"]["targets"]:
                if module == "wte":
                    continue
                name = f"transformer.h.{layer}.{module}"
                out_f, in_f = shapes[module]
                p[name + ".lora_A.weight"] = randn(r, in_f)
                p[name + ".lora_B.weight"] = randn(out_f, r)  # random, not zero
        if "wte" in case["lora"]["targets"]:  # PEFT inits A = 0, B ~ N(0, 1); both random here
            p[EMB_A] = randn(r, V)
            p[EMB_B] = randn(D, r)
    return p


# Code-token lengths (without the EOS) of the functions of each pack, and (label, weight) per function.
# Pack 0: 5 + 1 + 8 + 6 code tokens + 4 EOS = 24 = L: a length-1 function, the last EOS at the pack end.
# Pack 1: 1 + 9 + 4 code tokens + 3 EOS = 17: a length-1 function first, then 7 padding tokens.
PACK_LEN = 24
PACKS = [[5, 1, 8, 6], [1, 9, 4]]
LABELS = [(1, 3.0), (0, 1.0), (1, 1.0), (0, 3.0), (1, 1.0), (0, 1.0), (1, 3.0)]


def make_batch(mode, gen, vocab_size):
    input_ids, segment_ids, position_ids, functions = [], [], [], []
    labels = iter(LABELS)
    for b, lengths in enumerate(PACKS):
        ids, seg, pos = [], [], []
        for s, n in enumerate(lengths):
            code = torch.randint(1, vocab_size - 1, (n,), generator=gen).tolist()  # never EOS or PAD
            ids += code + [EOS_ID]
            seg += [s] * (n + 1)  # the EOS separator belongs to its function's segment
            pos += list(range(n + 1))
            label, weight = next(labels)
            functions.append({"pack": b, "last": len(ids) - 2, "label": label, "weight": weight})
        n_pad = PACK_LEN - len(ids)
        assert n_pad >= 0
        ids += [PAD_ID] * n_pad
        seg += [-1] * n_pad
        pos += [0] * n_pad
        if mode == "paper":
            pos = list(range(PACK_LEN))
        input_ids.append(ids)
        segment_ids.append(seg)
        position_ids.append(pos)
    return {
        "input_ids": torch.tensor(input_ids),
        "segment_ids": torch.tensor(segment_ids),
        "position_ids": torch.tensor(position_ids),
        "functions": functions,
    }


# ----------------------------------------------------------------------------------------------
# Training: autograd + clip_grad_norm_ + AdamW
# ----------------------------------------------------------------------------------------------


def trainable_names(case, p):
    if case["trainable"] == "all":
        return list(p)
    return [n for n in p if ".lora_" in n or n == "score.weight"]


def train(case, params, batch):
    p = {n: t.clone() for n, t in params.items()}
    names = trainable_names(case, p)
    for n in names:
        p[n].requires_grad_(True)
    o = case["optimizer"]
    opt = torch.optim.AdamW(
        [p[n] for n in names], lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"]
    )
    steps, first = [], None
    for step in range(o["steps"]):
        opt.zero_grad()
        loss, out = compute(p, case, batch)
        loss.backward()
        for n in names:
            assert p[n].grad is not None and p[n].grad.abs().max() > 0, f"no gradient for {n}"
        grads = {n: p[n].grad.detach().clone() for n in names}
        norm = torch.nn.utils.clip_grad_norm_([p[n] for n in names], o["max_grad_norm"])
        # the norm clip_grad_norm_ returns is the plain global L2 norm of the gradients
        assert torch.allclose(norm, torch.sqrt(sum((g**2).sum() for g in grads.values())), rtol=1e-12)
        if step == 0:
            first = {"loss": loss.item(), "out": {k: v.detach() for k, v in out.items()}, "grads": grads}
            first["grad_norm"] = norm.item()
        # keep clear of the clipping threshold so a float32 engine takes the same branch
        assert abs(norm.item() - o["max_grad_norm"]) > 1e-2 * o["max_grad_norm"], "grad norm too close to max"
        steps.append({"loss": loss.item(), "grad_norm": norm.item(), "clipped": norm.item() > o["max_grad_norm"]})
        opt.step()
    return first, steps, {n: p[n].detach().clone() for n in names}


# ----------------------------------------------------------------------------------------------
# Self-checks
# ----------------------------------------------------------------------------------------------


def close(a, b, tol=1e-12):
    return torch.allclose(a, b, rtol=tol, atol=tol)


def check_packing(case, p, batch):
    """Packed mode isolates functions; paper mode does not; both agree with unpacked forwards."""
    cfg = case["config"]
    scaling = case["lora"]["alpha"] / case["lora"]["r"] if case["lora"] else 0.0
    fns = batch["functions"]
    head = {"score.weight": torch.randn(2, hidden_size(cfg), generator=torch.Generator().manual_seed(7))}
    q = {**p, **head}

    def logits_of(b, mode):
        mask = build_mask(b["segment_ids"], mode)
        return cls_logits(q, forward_hidden(q, cfg, b["input_ids"], b["position_ids"], mask, scaling), fns)

    # How far back (in pack indices) a function's last token can read through all layers in "paper" mode:
    # everything before it, or n_layers·(W − 1) with a sliding window W.
    window = cfg.get("sliding_window")
    reach = None if window is None else num_layers(cfg) * (window - 1)

    def read_range(f):
        return range(0 if reach is None else max(0, f["last"] - reach), f["last"] + 1)

    # the same tokens with each mode's position ids (positions restart per function / run over the pack)
    packed_pos = torch.zeros_like(batch["segment_ids"])
    for b in range(len(PACKS)):
        for t in range(1, PACK_LEN):
            same = int(batch["segment_ids"][b, t]) >= 0 and batch["segment_ids"][b, t] == batch["segment_ids"][b, t - 1]
            packed_pos[b, t] = packed_pos[b, t - 1] + 1 if same else 0
    batch = dict(batch, position_ids=packed_pos)
    packed = logits_of(batch, "packed")
    paper_batch = dict(batch, position_ids=torch.arange(PACK_LEN).repeat(len(PACKS), 1))
    paper = logits_of(paper_batch, "paper")
    for i, f in enumerate(fns):
        # The first function of a pack sees the same tokens at the same positions in both modes; with RoPE
        # (relative positions) so does any function whose last token reads no other function's token.
        seg = batch["segment_ids"][f["pack"]]
        alone = all(seg[t] == seg[f["last"]] for t in read_range(f))
        first = i == 0 or fns[i - 1]["pack"] != f["pack"]
        assert alone == first or is_family(cfg), "absolute positions: only the first function can match"
        assert close(packed[i], paper[i]) == alone, f"paper vs packed, function {i}"

    # change the code tokens of function 2 (pack 0): only its own logits move in packed mode
    changed = dict(batch, input_ids=batch["input_ids"].clone())
    seg = batch["segment_ids"][0]
    idx = [t for t in range(PACK_LEN) if int(seg[t]) == 2 and t <= fns[2]["last"]]
    changed["input_ids"][0, idx] = batch["input_ids"][0, idx] % (cfg["vocab_size"] - 2) + 1  # 1..59 -> another
    assert (changed["input_ids"][0, idx] != batch["input_ids"][0, idx]).all()
    packed2 = logits_of(changed, "packed")
    for i in range(len(fns)):
        assert close(packed[i], packed2[i]) == (i != 2), f"packed isolation, function {i}"
    paper2 = logits_of(dict(changed, position_ids=paper_batch["position_ids"]), "paper")
    for i, f in enumerate(fns):
        # paper mode: a function sees the change iff a changed token is within its reach (causal, window)
        sees = f["pack"] == 0 and any(t in idx for t in read_range(f))
        assert close(paper[i], paper2[i]) != sees, f"paper mode reach, function {i}"

    # packed == each function (with its EOS) run alone as its own unpadded sequence
    mask_p = build_mask(batch["segment_ids"], "packed")
    hid = forward_hidden(p, cfg, batch["input_ids"], batch["position_ids"], mask_p, scaling)
    for b in range(len(PACKS)):
        for s in range(len(PACKS[b])):
            t = (batch["segment_ids"][b] == s).nonzero().squeeze(1)
            ids = batch["input_ids"][b, t][None]
            n = ids.shape[1]
            alone = forward_hidden(p, cfg, ids, torch.arange(n)[None], torch.tril(torch.ones(1, n, n, dtype=torch.bool)), scaling)
            assert close(alone[0], hid[b, t]), f"packed vs alone, pack {b} function {s}"
    # paper == the pack's non-padding prefix run as one plain causal sequence
    mask_q = build_mask(batch["segment_ids"], "paper")
    hid = forward_hidden(p, cfg, batch["input_ids"], paper_batch["position_ids"], mask_q, scaling)
    for b in range(len(PACKS)):
        n = int((batch["segment_ids"][b] >= 0).sum())
        alone = forward_hidden(
            p, cfg, batch["input_ids"][b, :n][None], torch.arange(n)[None], torch.tril(torch.ones(1, n, n, dtype=torch.bool)), scaling
        )
        assert close(alone[0], hid[b, :n]), f"paper vs plain causal, pack {b}"


def check_mqa_equals_mha(case, p, batch):
    """Multi-query == multi-head with the single K/V head copied into every head (HF's MHA layout)."""
    cfg = case["config"]
    D, H = cfg["n_embd"], cfg["n_head"]
    hd = D // H

    def to_mha(t):  # rows [Q(D) | K(hd) | V(hd)] -> per head [q_h | K | V]
        q, k, v = t[:D], t[D : D + hd], t[D + hd :]
        return torch.cat([torch.cat([q[h * hd : (h + 1) * hd], k, v]) for h in range(H)])

    mha = dict(p)
    for layer in range(cfg["n_layer"]):
        name = f"transformer.h.{layer}.attn.c_attn"
        for suffix in [".weight", ".bias", ".lora_B.weight"]:
            if name + suffix in p:
                mha[name + suffix] = to_mha(p[name + suffix])
        assert mha[name + ".weight"].shape == (3 * D, D)
    case_mha = dict(case, config=dict(cfg, multi_query=False))
    _, out_mqa = compute(p, case, batch)
    _, out_mha = compute(mha, case_mha, batch)
    assert close(out_mqa["hidden"], out_mha["hidden"]), "MQA != MHA with replicated K/V"


def check_gqa_equals_mha(case, p, batch):
    """Grouped-query attention == plain multi-head attention (num_key_value_heads = num_attention_heads, no
    repeat) with each kv head's k/v rows (weight, bias, LoRA B) copied to the query heads it serves."""
    cfg = case["config"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // H
    assert H % KV == 0 and KV < H

    def to_mha(t):  # rows [KV·hd(, ...)] -> [H·hd(, ...)], kv head j repeated for query heads j·n .. j·n + n − 1
        return t.view(KV, 1, hd, *t.shape[1:]).expand(KV, H // KV, hd, *t.shape[1:]).reshape(H * hd, *t.shape[1:])

    mha = dict(p)
    for layer in range(cfg["num_hidden_layers"]):
        for module in ["self_attn.k_proj", "self_attn.v_proj"]:
            name = f"model.layers.{layer}.{module}"
            for suffix in [".weight", ".bias", ".lora_B.weight"]:
                if name + suffix in p:
                    mha[name + suffix] = to_mha(p[name + suffix])
            assert mha[name + ".weight"].shape == (H * hd, cfg["hidden_size"])
    case_mha = dict(case, config=dict(cfg, num_key_value_heads=H))
    _, out_gqa = compute(p, case, batch)
    _, out_mha = compute(mha, case_mha, batch)
    assert close(out_gqa["hidden"], out_mha["hidden"]), "GQA != MHA with repeated K/V heads"


def check_rope_relative(case, p, batch):
    """RoPE is relative: one function run alone at positions 0..n−1 or 7..n+6 gives the same hidden states
    (with linear rope_scaling too); a different relative layout (positions reversed) does not."""
    cfg = case["config"]
    scaling = case["lora"]["alpha"] / case["lora"]["r"] if case["lora"] else 0.0
    t = (batch["segment_ids"][0] == 2).nonzero().squeeze(1)
    ids = batch["input_ids"][0, t][None]
    n = ids.shape[1]
    causal = torch.tril(torch.ones(1, n, n, dtype=torch.bool))
    base = forward_hidden(p, cfg, ids, torch.arange(n)[None], causal, scaling)
    shifted = forward_hidden(p, cfg, ids, torch.arange(n)[None] + 7, causal, scaling)
    assert close(base, shifted, 1e-10), "RoPE: a constant position shift must not change anything"
    other = forward_hidden(p, cfg, ids, torch.arange(n).flip(0)[None], causal, scaling)
    assert not close(base, other, 1e-6), "RoPE: positions must matter"


def check_sliding_window(case, p, batch):
    """A window >= the pack length is no window; the case's window changes the outputs; and the mask lets a
    query of a plain causal sequence attend to exactly min(i + 1, W) keys, itself included."""
    cfg = case["config"]
    W = cfg["sliding_window"]
    assert W is not None and W < max(max(n for n in pack) + 1 for pack in PACKS), "window shorter than a function"
    _, out = compute(p, case, batch)
    for none_like in [PACK_LEN, PACK_LEN + 5]:
        _, wide = compute(p, dict(case, config=dict(cfg, sliding_window=none_like)), batch)
        _, none = compute(p, dict(case, config=dict(cfg, sliding_window=None)), batch)
        assert close(wide["hidden"], none["hidden"], 0.0), "window >= pack length != no window"
    assert not close(out["hidden"], none["hidden"], 1e-6), "the window must matter in this case"
    keys = (torch.tril(torch.ones(PACK_LEN, PACK_LEN, dtype=torch.bool)) & window_mask(cfg, PACK_LEN)).sum(-1)
    assert keys.tolist() == [min(i + 1, W) for i in range(PACK_LEN)]


def check_finite_difference(case, p, batch, name, index):
    q = {n: t.clone() for n, t in p.items()}
    q[name].requires_grad_(True)
    loss, _ = compute(q, case, batch)
    loss.backward()
    g = q[name].grad.view(-1)[index].item()
    h = 1e-6

    def loss_at(delta):
        r = dict(p)
        r[name] = p[name].clone()
        r[name].view(-1)[index] += delta
        return compute(r, case, batch)[0].item()

    fd = (loss_at(h) - loss_at(-h)) / (2 * h)
    assert abs(fd - g) <= 1e-6 * max(1.0, abs(g)), f"finite difference {fd} vs autograd {g} for {name}"
    assert abs(g) > 1e-6


def check_embedding_lora(case, p, batch):
    """The embedding adapter merged (PEFT's Embedding.get_delta_weight: wte' = wte + (alpha/r)·(B·A)ᵀ)
    gives the same forward as the adapter; only columns of A that the batch's ids pick get a gradient
    (not all of them: an EOS or padding token that no read position sees gets none)."""
    emb_a, emb_b = emb_lora_names(case["config"])
    table = "model.embed_tokens.weight" if is_family(case["config"]) else "transformer.wte.weight"
    merged = {n: t for n, t in p.items() if n not in (emb_a, emb_b)}
    scaling = case["lora"]["alpha"] / case["lora"]["r"]
    merged[table] = p[table] + scaling * (p[emb_b] @ p[emb_a]).T  # (a tied lm_head would move too: hidden only)
    _, out = compute(p, case, batch)
    _, out_merged = compute(merged, case, batch)
    assert close(out["hidden"], out_merged["hidden"], 1e-10), "embedding LoRA != merged wte"
    q = {n: t.clone() for n, t in p.items()}
    q[emb_a].requires_grad_(True)
    compute(q, case, batch)[0].backward()
    used = set(batch["input_ids"].reshape(-1).tolist())
    moved = {v for v in range(q[emb_a].shape[1]) if q[emb_a].grad[:, v].abs().max() > 0}
    assert moved <= used and len(moved) > len(used) // 2, "A's gradient reaches the batch's columns only"


def check_focal():
    """gamma 0, alpha null is weighted cross-entropy; alpha/gamma agree with a direct formula."""
    gen = torch.Generator().manual_seed(3)
    fns = [dict(f) for f in make_batch("packed", gen, 61)["functions"]]
    logits = torch.randn(len(fns), 2, generator=gen)
    labels = torch.tensor([f["label"] for f in fns])
    w = torch.tensor([f["weight"] for f in fns])
    ce = (w * F.cross_entropy(logits, labels, reduction="none")).mean()
    assert close(focal_loss(logits, fns, 0.0, None), ce)
    p1 = torch.softmax(logits, -1)[:, 1]
    direct = []
    for i, f in enumerate(fns):
        pt = p1[i] if f["label"] == 1 else 1 - p1[i]
        at = 0.25 if f["label"] == 1 else 0.75
        direct.append(f["weight"] * -at * (1 - pt) ** 2 * torch.log(pt))
    assert close(focal_loss(logits, fns, 2.0, 0.25), torch.stack(direct).mean())


# ----------------------------------------------------------------------------------------------
# Cases and output
# ----------------------------------------------------------------------------------------------


def base_case(name, seed, mode, objective, multi_query, act, trainable="lora", gamma=1.0, alpha=None, max_norm=1.0):
    return {
        "case": name,
        "seed": seed,
        "config": {
            "vocab_size": 61,
            "n_embd": 32,
            "n_layer": 2,
            "n_head": 4,
            "n_inner": 80,
            "n_positions": 48,
            "multi_query": multi_query,
            "activation_function": act,
            "layer_norm_epsilon": 1e-5,
        },
        "lora": None if trainable == "all" else {"r": 4, "alpha": 8, "targets": LORA_TARGETS, "dropout": 0},
        "trainable": trainable,
        "objective": objective,
        "focal": {"gamma": gamma, "alpha": alpha},
        "mode": mode,
        "optimizer": {
            "lr": 1e-3,
            "betas": [0.9, 0.999],
            "eps": 1e-8,
            "weight_decay": 0.05,
            "max_grad_norm": max_norm,
            "steps": 3,
        },
    }


def family_case(name, seed, model_type, mode, objective, config, lora=None, gamma=1.0, alpha=None, max_norm=1.0):
    """A Llama-family case: config = the family's Hugging Face config.json fields (tiny sizes); lora = None
    (full finetuning) or {"r", "alpha", "targets"}."""
    if model_type == "starcoder2":
        act, norm, bias = "gelu_pytorch_tanh", {"norm_epsilon": 1e-5}, {"use_bias": True}
        extra = {"sliding_window": None, "tie_word_embeddings": True}
    elif model_type == "qwen2":
        act, norm, bias = "silu", {"rms_norm_eps": 1e-6}, {}
        extra = {"use_sliding_window": False, "tie_word_embeddings": False}
    else:
        act, norm, bias = "silu", {"rms_norm_eps": 1e-6}, {"attention_bias": False, "mlp_bias": False}
        extra = {"tie_word_embeddings": False}
    cfg = {
        "model_type": model_type,
        "vocab_size": 61,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_act": act,
        "max_position_embeddings": 48,
        **norm,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        **bias,
        **extra,
    }
    for k, v in config.items():
        assert k in cfg, k
        cfg[k] = v
    case = base_case(name, seed, mode, objective, False, "gelu", "all" if lora is None else "lora", gamma, alpha, max_norm)
    case["config"] = cfg
    case["lora"] = None if lora is None else {**lora, "dropout": 0}
    return case


LLAMA_ALL = FAMILY_LORA_TARGETS["llama"]

CASES = [
    base_case("packed_cls_mqa_gelu", 101, "packed", "cls", True, "gelu", gamma=1.0),
    base_case("paper_cls_mha_tanh", 202, "paper", "cls", False, "gelu_pytorch_tanh", gamma=2.0, alpha=0.25),
    base_case("packed_ntp_mqa_tanh", 303, "packed", "ntp", True, "gelu_pytorch_tanh", max_norm=2.2),
    base_case("paper_ntp_mqa_gelu", 404, "paper", "ntp", True, "gelu", max_norm=5.0),
    base_case("packed_cls_full", 505, "packed", "cls", True, "gelu", trainable="all", gamma=0.0),
    dict(
        base_case("packed_cls_wte_mqa_gelu", 606, "packed", "cls", True, "gelu", gamma=1.0),
        lora={"r": 4, "alpha": 8, "targets": ["attn.c_attn", "mlp.c_fc", "wte"], "dropout": 0},
    ),
    # Llama family (see "Llama family" above and FORMAT.md): every family in both modes and both objectives
    family_case(
        "llama_packed_cls_gqa", 707, "llama", "packed", "cls", {"intermediate_size": 64},
        lora={"r": 4, "alpha": 8, "targets": LLAMA_ALL}, gamma=2.0, alpha=0.25,
    ),
    family_case(
        "llama_paper_ntp_full", 808, "llama", "paper", "ntp",
        {"intermediate_size": 48, "rope_scaling": {"type": "linear", "factor": 2.0}, "attention_bias": True,
         "mlp_bias": True, "tie_word_embeddings": False},
        max_norm=5.0,
    ),
    family_case(
        "qwen2_packed_ntp_tied", 909, "qwen2", "packed", "ntp",
        {"intermediate_size": 56, "rope_theta": 1000000.0, "tie_word_embeddings": True},
        lora={"r": 4, "alpha": 16, "targets": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj", "wte"]},
        max_norm=2.0,
    ),
    family_case("qwen2_paper_cls_full", 1010, "qwen2", "paper", "cls", {"intermediate_size": 48}, gamma=0.0),
    family_case(
        "starcoder2_packed_cls_window", 1111, "starcoder2", "packed", "cls",
        {"intermediate_size": 80, "sliding_window": 4, "rope_theta": 100000.0},
        lora={"r": 2, "alpha": 3, "targets": FAMILY_LORA_TARGETS["starcoder2"]}, gamma=1.0,
    ),
    family_case(
        "starcoder2_paper_ntp_full", 1212, "starcoder2", "paper", "ntp",
        {"intermediate_size": 48, "sliding_window": 6, "tie_word_embeddings": True}, max_norm=3.12,
    ),
]


def flat(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def to_json(obj, indent=0):
    """JSON with nesting indented but every list of numbers on one line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {to_json(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(f"{pad}  {to_json(v, indent + 1)}" for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False)


def run_case(case):
    gen = torch.Generator().manual_seed(case["seed"])
    params = make_params(case, gen)
    batch = make_batch(case["mode"], gen, case["config"]["vocab_size"])

    # self-checks on this case's model and batch
    cfg = case["config"]
    check_packing(case, params, batch)
    if is_family(cfg):
        check_gqa_equals_mha(case, params, batch)
        check_rope_relative(case, params, batch)
        if cfg.get("sliding_window") is not None:
            check_sliding_window(case, params, batch)
        module = "model.layers.0.self_attn.q_proj"
        fd_names = [module + (".lora_A.weight" if case["lora"] else ".weight")]
        if case["lora"]:
            fd_names.append("model.layers.1.self_attn.o_proj.lora_B.weight")  # through RoPE, GQA and the MLP
        else:
            fd_names += ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.post_attention_layernorm.weight"]
            fd_names.append("model.embed_tokens.weight")  # embedding (+ tied lm_head when ntp and tied)
        for name in fd_names:
            assert name in params, name
            index = int(batch["input_ids"][0, 3]) * hidden_size(cfg) + 5 if name == "model.embed_tokens.weight" else 5
            check_finite_difference(case, params, batch, name, index)
    elif cfg["multi_query"]:
        check_mqa_equals_mha(case, params, batch)
    if not is_family(cfg):
        fd_name = "transformer.h.0.attn.c_attn.lora_A.weight" if case["lora"] else "transformer.h.0.attn.c_attn.weight"
        check_finite_difference(case, params, batch, fd_name, 5)
    emb_a, emb_b = emb_lora_names(cfg)
    if emb_a in params:
        check_embedding_lora(case, params, batch)
        token = int(batch["input_ids"][0, 3])  # a column of A the batch uses: its gradient is non-zero
        check_finite_difference(case, params, batch, emb_a, params[emb_a].shape[1] + token)  # A[1, token]
        check_finite_difference(case, params, batch, emb_b, 5)

    first, steps, after = train(case, params, batch)
    expected = {"loss": first["loss"]}
    if case["objective"] == "cls":
        expected["logits"] = first["out"]["logits"].tolist()
    else:
        expected["ntp_logits_sample"] = flat(first["out"]["ntp_logits"])
        rows, cols, _ = ntp_targets(batch["input_ids"], batch["segment_ids"], case["mode"])
        expected["ntp_loss_tokens"] = len(rows)
    expected["last_hidden_state"] = flat(first["out"]["hidden"])
    expected["grads"] = {n: flat(g) for n, g in first["grads"].items()}
    expected["grad_norm"] = first["grad_norm"]
    expected["steps"] = steps
    expected["params_after"] = {n: flat(t) for n, t in after.items()}

    doc = {k: v for k, v in case.items() if k != "seed"}
    doc["params"] = {n: {"shape": list(t.shape), "data": flat(t)} for n, t in params.items()}
    doc["batch"] = {
        "input_ids": batch["input_ids"].tolist(),
        "segment_ids": batch["segment_ids"].tolist(),
        "position_ids": batch["position_ids"].tolist(),
        "functions": batch["functions"],
        "eos_id": EOS_ID,
        "pad_id": PAD_ID,
    }
    doc["expected"] = expected
    return doc, steps


def check_roundtrip(path):
    """The file alone reproduces its loss and gradients (flattening, shapes, batch all as written)."""
    with open(path) as f:
        doc = json.load(f)
    p = {n: torch.tensor(v["data"]).view(v["shape"]) for n, v in doc["params"].items()}
    for n in doc["expected"]["grads"]:
        p[n].requires_grad_(True)
    batch = {k: torch.tensor(doc["batch"][k]) for k in ["input_ids", "segment_ids", "position_ids"]}
    batch["functions"] = doc["batch"]["functions"]
    loss, _ = compute(p, doc, batch)
    loss.backward()
    assert loss.item() == doc["expected"]["loss"]
    for n, g in doc["expected"]["grads"].items():
        assert p[n].grad.view(-1).tolist() == g, n


def main(only):
    unknown = set(only) - {c["case"] for c in CASES}
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))}")
    check_focal()
    os.makedirs(OUT_DIR, exist_ok=True)
    for case in CASES:
        if only and case["case"] not in only:
            continue
        doc, steps = run_case(case)
        path = os.path.join(OUT_DIR, case["case"] + ".json")
        with open(path, "w") as f:
            f.write(to_json(doc) + "\n")
        check_roundtrip(path)
        summary = ", ".join(f"loss {s['loss']:.6f} norm {s['grad_norm']:.4f}" for s in steps)
        print(f"{case['case']}: {os.path.getsize(path) / 1e6:.2f} MB; {summary}")


if __name__ == "__main__":
    main(sys.argv[1:])
