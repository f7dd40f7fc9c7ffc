#!/usr/bin/python3
"""Independent PyTorch reference for the VulnLab engine: golden fixtures in tests/fixtures/engine/.

GPT-BigCode (as Hugging Face transformers' GPTBigCodeModel computes it) + LoRA + packed batches +
focal / next-token loss + global-norm clipping + AdamW, all in float64, gradients by torch autograd.
It shares no code with the engine; see tests/fixtures/engine/FORMAT.md for the file format and semantics.

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


def ntp_logits(p, hidden):
    return hidden @ p["transformer.wte.weight"].T  # lm_head tied to wte, [B, L, V]


def compute(p, case, batch):
    """Forward + loss. Returns (loss, outputs dict)."""
    cfg = case["config"]
    mask = build_mask(batch["segment_ids"], case["mode"])
    scaling = case["lora"]["alpha"] / case["lora"]["r"] if case["lora"] else 0.0
    hidden = transformer(p, cfg, batch["input_ids"], batch["position_ids"], mask, scaling)
    out = {"hidden": hidden}
    if case["objective"] == "cls":
        logits = cls_logits(p, hidden, batch["functions"])
        out["logits"] = logits
        loss = focal_loss(logits, batch["functions"], case["focal"]["gamma"], case["focal"]["alpha"])
    else:
        logits = ntp_logits(p, hidden)
        out["ntp_logits"] = logits
        rows, cols, targets = ntp_targets(batch["input_ids"], batch["segment_ids"], case["mode"])
        loss = F.cross_entropy(logits[rows, cols], targets)
    return loss, out


# ----------------------------------------------------------------------------------------------
# Tiny random model and batch
# ----------------------------------------------------------------------------------------------


def make_params(case, gen):
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
    head = {"score.weight": torch.randn(2, cfg["n_embd"], generator=torch.Generator().manual_seed(7))}
    q = {**p, **head}

    def logits_of(b, mode):
        mask = build_mask(b["segment_ids"], mode)
        return cls_logits(q, transformer(q, cfg, b["input_ids"], b["position_ids"], mask, scaling), fns)

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
    first_in_pack = [i == 0 or fns[i - 1]["pack"] != f["pack"] for i, f in enumerate(fns)]
    for i, first in enumerate(first_in_pack):
        # the first function of a pack sees the same tokens at the same positions in both modes
        assert close(packed[i], paper[i]) == first, f"paper vs packed, function {i}"

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
    assert not close(paper[3], paper2[3]), "paper mode: a later function must see the change"
    assert close(paper[0], paper2[0]) and close(paper[1], paper2[1]), "paper mode: causal"

    # packed == each function (with its EOS) run alone as its own unpadded sequence
    mask_p = build_mask(batch["segment_ids"], "packed")
    hid = transformer(p, cfg, batch["input_ids"], batch["position_ids"], mask_p, scaling)
    for b in range(len(PACKS)):
        for s in range(len(PACKS[b])):
            t = (batch["segment_ids"][b] == s).nonzero().squeeze(1)
            ids = batch["input_ids"][b, t][None]
            n = ids.shape[1]
            alone = transformer(p, cfg, ids, torch.arange(n)[None], torch.tril(torch.ones(1, n, n, dtype=torch.bool)), scaling)
            assert close(alone[0], hid[b, t]), f"packed vs alone, pack {b} function {s}"
    # paper == the pack's non-padding prefix run as one plain causal sequence
    mask_q = build_mask(batch["segment_ids"], "paper")
    hid = transformer(p, cfg, batch["input_ids"], paper_batch["position_ids"], mask_q, scaling)
    for b in range(len(PACKS)):
        n = int((batch["segment_ids"][b] >= 0).sum())
        alone = transformer(
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
    merged = {n: t for n, t in p.items() if n not in (EMB_A, EMB_B)}
    scaling = case["lora"]["alpha"] / case["lora"]["r"]
    merged["transformer.wte.weight"] = p["transformer.wte.weight"] + scaling * (p[EMB_B] @ p[EMB_A]).T
    _, out = compute(p, case, batch)
    _, out_merged = compute(merged, case, batch)
    assert close(out["hidden"], out_merged["hidden"], 1e-10), "embedding LoRA != merged wte"
    q = {n: t.clone() for n, t in p.items()}
    q[EMB_A].requires_grad_(True)
    compute(q, case, batch)[0].backward()
    used = set(batch["input_ids"].reshape(-1).tolist())
    moved = {v for v in range(q[EMB_A].shape[1]) if q[EMB_A].grad[:, v].abs().max() > 0}
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
    check_packing(case, params, batch)
    if case["config"]["multi_query"]:
        check_mqa_equals_mha(case, params, batch)
    fd_name = "transformer.h.0.attn.c_attn.lora_A.weight" if case["lora"] else "transformer.h.0.attn.c_attn.weight"
    check_finite_difference(case, params, batch, fd_name, 5)
    if EMB_A in params:
        check_embedding_lora(case, params, batch)
        token = int(batch["input_ids"][0, 3])  # a column of A the batch uses: its gradient is non-zero
        check_finite_difference(case, params, batch, EMB_A, params[EMB_A].shape[1] + token)  # A[1, token]
        check_finite_difference(case, params, batch, EMB_B, 5)

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
