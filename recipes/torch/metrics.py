"""The lab's evaluation (src/train/metrics.ts, evaluate.ts) ported: the same numbers from the same scores.

ROC AUC by mid-ranks, average precision and the trapezoidal PR area as scikit-learn computes them,
the F1-maximising threshold chosen on validation and applied unchanged to test, percentile-bootstrap
95% intervals drawn with the lab's generator (same resamples), per-CWE ROC AUC. `summary` gives the
object the CLI writes into metrics.json (src/cli/train.ts `metricsSummary`).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence

from data import Rng


def _counts(scores: Sequence[float], labels: Sequence[int]):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    tps, fps, thresholds = [], [], []
    tp = fp = 0
    for k, i in enumerate(order):
        if labels[i] == 1:
            tp += 1
        else:
            fp += 1
        if k == len(order) - 1 or scores[order[k + 1]] != scores[i]:  # tied scores enter together
            tps.append(tp)
            fps.append(fp)
            thresholds.append(scores[i])
    return tps, fps, thresholds


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    n = len(scores)
    positives = sum(1 for l in labels if l == 1)
    negatives = n - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = sorted(range(n), key=lambda i: scores[i])
    rank_sum = 0.0
    start = 0
    while start < n:
        end = start
        while end + 1 < n and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        mid = (start + end) / 2 + 1
        rank_sum += sum(mid for k in range(start, end + 1) if labels[order[k]] == 1)
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def pr_curve(scores: Sequence[float], labels: Sequence[int]):
    tps, fps, _ = _counts(scores, labels)
    positives = tps[-1] if tps else 0
    precision = [tp / (tp + fp) if tp + fp else 0 for tp, fp in zip(tps, fps)]
    recall = [tp / positives if positives else 1 for tp in tps]
    return list(reversed(recall)) + [0], list(reversed(precision)) + [1]


def average_precision(scores: Sequence[float], labels: Sequence[int]) -> float:
    recall, precision = pr_curve(scores, labels)
    return sum((recall[i] - recall[i + 1]) * precision[i] for i in range(len(recall) - 1))


def trapezoid(x: Sequence[float], y: Sequence[float]) -> float:
    return abs(sum((x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2 for i in range(1, len(x))))


def at_threshold(scores: Sequence[float], labels: Sequence[int], threshold: float) -> dict:
    tp = fp = fn = tn = 0
    for s, l in zip(scores, labels):
        predicted = s >= threshold
        if l == 1:
            tp, fn = (tp + 1, fn) if predicted else (tp, fn + 1)
        elif predicted:
            fp += 1
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0
    recall = tp / (tp + fn) if tp + fn else 0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0
    return {"threshold": threshold, "precision": precision, "recall": recall, "f1": f1, "confusion": [[tn, fp], [fn, tp]]}


def best_f1_threshold(scores: Sequence[float], labels: Sequence[int]) -> dict:
    tps, fps, thresholds = _counts(scores, labels)
    positives = tps[-1] if tps else 0
    best, best_f1 = -1, -1.0
    for i in range(len(tps)):
        f1 = 2 * tps[i] / (tps[i] + fps[i] + positives) if positives else 0
        if f1 > best_f1:
            best_f1, best = f1, i
    return at_threshold(scores, labels, thresholds[best] if best >= 0 else 0.5)


def choose_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The F1-maximising threshold on validation (0.5 without positives)."""
    if 1 not in labels:
        return 0.5
    return best_f1_threshold(scores, labels)["threshold"]


def bootstrap(scores: Sequence[float], labels: Sequence[int], metric: Callable, samples: int = 1000, seed: int = 1):
    rng = Rng(seed)
    n = len(scores)
    values: List[float] = []
    for _ in range(samples):
        pick = [rng.int(n) for _ in range(n)]
        value = metric([scores[j] for j in pick], [labels[j] for j in pick])
        if math.isfinite(value):
            values.append(value)
    if not values:
        return [None, None]
    values.sort()

    def q(p: float) -> float:
        return values[min(len(values) - 1, max(0, _round_half_up(p * (len(values) - 1))))]

    return [q(0.025), q(0.975)]


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)  # JavaScript Math.round


def _finite(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


def summary(
    scores: Sequence[float], labels: Sequence[int], cwes: Sequence[Optional[str]], threshold: float, seed: int
) -> dict:
    """One split's metrics in the lab's metrics.json shape (valid/test objects)."""
    positives = sum(1 for l in labels if l == 1)
    decided = at_threshold(scores, labels, threshold)
    recall, precision = pr_curve(scores, labels)
    groups: Dict[str, List[int]] = {}
    for i, c in enumerate(cwes):
        groups.setdefault(c or "unknown", []).append(i)
    per_cwe = {
        g: _finite(roc_auc([scores[i] for i in idx], [labels[i] for i in idx])) for g, idx in sorted(groups.items())
    }

    def ap(s: Sequence[float], l: Sequence[int]) -> float:
        return average_precision(s, l) if 1 in l else math.nan

    return {
        "n": len(scores),
        "positives": positives,
        "roc_auc": _finite(roc_auc(scores, labels)),
        "pr_auc": average_precision(scores, labels) if positives else None,
        "pr_auc_trapezoid": trapezoid(recall, precision) if positives else None,
        "f1": decided["f1"],
        "precision": decided["precision"],
        "recall": decided["recall"],
        "threshold": threshold,
        "confusion_matrix": decided["confusion"],
        "f1_threshold_tuned_on_this_set": best_f1_threshold(scores, labels)["f1"],
        "intervals_95": {
            "roc_auc": bootstrap(scores, labels, roc_auc, seed=seed),
            "pr_auc": bootstrap(scores, labels, ap, seed=seed),
            "f1": bootstrap(scores, labels, lambda s, l: at_threshold(s, l, threshold)["f1"], seed=seed),
        },
        "per_cwe_roc_auc": per_cwe,
    }
