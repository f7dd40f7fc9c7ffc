"""The recipe's model (recipes/torch/model.py) against the engine's float64 golden fixtures
(tests/fixtures/engine/*.json, written by scripts/torch_reference.py): for each case, the recipe's
classifier built from the case's config and parameters, run in float64 on the case's batch — head
logits, loss (the recipe's focal_terms or token cross-entropy, as train.py sums them), the gradient of
every trainable, the global norm, then the case's AdamW steps with train.py's clipping — compared
with the fixture's expected values. Prints one JSON object: case -> largest relative errors.

Also "fused_attention": the CUDA branch of the grouped-query attention against the explicit one
(check_fused_attention).

Usage: python3 golden.py FIXTURE.json...   (tests/recipes/recipe-families.test.ts runs it)
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "torch"))

from model import build_model, focal_terms  # noqa: E402


def relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual − expected| / max(|expected|) (so a near-zero element does not dominate)."""
    scale = max(float(expected.abs().max()), 1e-30)
    return float((actual - expected).abs().max()) / scale


def ntp_targets(segment_ids: torch.Tensor, input_ids: torch.Tensor, paper: bool):
    """Tokens whose next token is predicted (FORMAT.md): the same function (packed) or a real token of the row (paper)."""
    rows, cols, targets = [], [], []
    B, L = segment_ids.shape
    for b in range(B):
        for t in range(L - 1):
            s, nxt = int(segment_ids[b, t]), int(segment_ids[b, t + 1])
            if s >= 0 and (nxt >= 0 if paper else nxt == s):
                rows.append(b)
                cols.append(t)
                targets.append(int(input_ids[b, t + 1]))
    return torch.tensor(rows), torch.tensor(cols), torch.tensor(targets)


def check(path: str) -> dict:
    with open(path) as f:
        doc = json.load(f)
    cfg, expected = doc["config"], doc["expected"]
    params = {n: torch.tensor(v["data"], dtype=torch.float64).view(v["shape"]) for n, v in doc["params"].items()}
    cls = doc["objective"] == "cls"
    paper = doc["mode"] == "paper"
    lora = doc["lora"]
    run = {
        "batching": {"mode": doc["mode"]},
        "objective": doc["objective"],
        "seed": 1,
        "trainable": doc["trainable"],
        "lora": None if lora is None else {**lora, "dropout": 0.0},
    }
    model = build_model(cfg, params, run, "f32", False).double()
    names = dict(model.named_parameters())
    if set(names) != set(params):
        raise SystemExit(f"{doc['case']}: model parameters {sorted(set(names) ^ set(params))} differ from the fixture's")
    with torch.no_grad():  # again in float64 (the model keeps f32 copies of what it was built from)
        for n, p in names.items():
            p.copy_(params[n])
    trainable = model.trainable_names()
    if set(trainable) != set(expected["grads"]):
        raise SystemExit(f"{doc['case']}: trainables {sorted(set(trainable) ^ set(expected['grads']))} differ")

    batch = doc["batch"]
    input_ids = torch.tensor(batch["input_ids"])
    segment_ids = torch.tensor(batch["segment_ids"])
    position_ids = torch.tensor(batch["position_ids"])
    functions = batch["functions"]
    if cls:
        rows = torch.tensor([f["pack"] for f in functions])
        cols = torch.tensor([f["last"] for f in functions])
        labels = torch.tensor([f["label"] for f in functions])
        weights = torch.tensor([float(f["weight"]) for f in functions], dtype=torch.float64)
    else:
        rows, cols, targets = ntp_targets(segment_ids, input_ids, paper)
        assert len(rows) == expected["ntp_loss_tokens"]

    def loss_and_logits():
        logits = model(input_ids, position_ids, segment_ids, rows, cols)
        if cls:
            focal = doc["focal"]
            loss = (weights * focal_terms(logits, labels, focal["gamma"], focal["alpha"])).sum() / len(functions)
        else:
            loss = F.cross_entropy(logits, targets, reduction="sum") / len(targets)
        return loss, logits

    o = doc["optimizer"]
    opt = torch.optim.AdamW(
        [names[n] for n in trainable], lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"]
    )
    report = {"loss": 0.0, "logits": 0.0, "grads": 0.0, "grad_norm": 0.0, "steps": 0.0, "params_after": 0.0}
    for step, want in enumerate(expected["steps"]):
        opt.zero_grad()
        loss, logits = loss_and_logits()
        loss.backward()
        norm = math.sqrt(sum(float(names[n].grad.pow(2).sum()) for n in trainable))
        if step == 0:
            report["loss"] = abs(loss.item() - expected["loss"]) / abs(expected["loss"])
            if cls:
                report["logits"] = relative(logits.detach(), torch.tensor(expected["logits"], dtype=torch.float64))
            else:
                V = logits.shape[1]
                full = torch.tensor(expected["ntp_logits_sample"], dtype=torch.float64).view(*input_ids.shape, V)
                report["logits"] = relative(logits.detach(), full[rows, cols])
            report["grads"] = max(
                relative(names[n].grad, torch.tensor(g, dtype=torch.float64).view_as(names[n])) for n, g in expected["grads"].items()
            )
            report["grad_norm"] = abs(norm - expected["grad_norm"]) / expected["grad_norm"]
        gap = max(abs(loss.item() - want["loss"]) / abs(want["loss"]), abs(norm - want["grad_norm"]) / want["grad_norm"])
        report["steps"] = max(report["steps"], gap)
        coef = min(1.0, o["max_grad_norm"] / (norm + 1e-6))  # train.py's clipping
        if coef < 1:
            for n in trainable:
                names[n].grad.mul_(coef)
        if (coef < 1) != want["clipped"]:
            raise SystemExit(f"{doc['case']}: step {step} clipped {coef < 1}, the fixture says {want['clipped']}")
        opt.step()
    report["params_after"] = max(
        relative(names[n].detach(), torch.tensor(v, dtype=torch.float64).view_as(names[n]))
        for n, v in expected["params_after"].items()
    )
    report["trainables"] = len(trainable)
    report["family"] = model.arch.family
    return report


def check_fused_attention() -> float:
    """grouped_attention's fused branch (CUDA, torch >= 2.0: K/V heads repeated for
    F.scaled_dot_product_attention) against its explicit one, with a plain-math stand-in for
    scaled_dot_product_attention where torch lacks it (Debian's 1.13): grouped-query, multi-query
    and multi-head shapes, a packed mask with a window and a padding row. Largest relative error."""
    from model import attention_mask, grouped_attention

    def sdpa(q, k, v, mask):  # boolean attn_mask: True = attend; scale 1/√d
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v

    had = hasattr(F, "scaled_dot_product_attention")
    original = getattr(F, "scaled_dot_product_attention", None)
    if not had:
        F.scaled_dot_product_attention = sdpa
    try:
        g = torch.Generator().manual_seed(5)
        segments = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 2, -1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
        mask = attention_mask(segments, False, 4)
        worst = 0.0
        for H, KV in [(4, 2), (4, 1), (4, 4), (6, 3)]:
            q = torch.randn(2, H, 10, 8, generator=g, dtype=torch.float64)
            k = torch.randn(2, KV, 10, 8, generator=g, dtype=torch.float64)
            v = torch.randn(2, KV, 10, 8, generator=g, dtype=torch.float64)
            worst = max(worst, relative(grouped_attention(q, k, v, mask, fused=True), grouped_attention(q, k, v, mask, fused=False)))
        return worst
    finally:
        if not had:
            del F.scaled_dot_product_attention
        elif original is not None:
            F.scaled_dot_product_attention = original


if __name__ == "__main__":
    torch.set_num_threads(1)
    report = {os.path.basename(p)[: -len(".json")]: check(p) for p in sys.argv[1:]}
    report["fused_attention"] = check_fused_attention()
    print(json.dumps(report, indent=1))
