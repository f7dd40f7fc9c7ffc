#!/usr/bin/python3
"""Golden fixtures for the evaluation metrics, computed by scikit-learn: tests/fixtures/metrics/*.json.

Run: /usr/bin/python3 scripts/sklearn_metrics.py   (Debian's python3-sklearn + python3-numpy; < 1 s)
Format and conventions: tests/fixtures/metrics/FORMAT.md. Predicted positive iff score >= threshold.
"""

import json
import os
import warnings

import numpy as np
import sklearn
from sklearn.metrics import (
    auc,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "metrics")


def floats(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64)]


def sigmoid_scores(rng, labels, separation, decimals):
    """Scores in (0, 1): sigmoid of a normal shifted by +separation for positives, rounded."""
    z = rng.normal(size=len(labels)) + separation * (labels - 0.5)
    return np.round(1.0 / (1.0 + np.exp(-z)), decimals)


def at_threshold(scores, labels, threshold):
    pred = (scores >= threshold).astype(int)
    cm = confusion_matrix(labels, pred, labels=[0, 1])
    return {
        "threshold": float(threshold),
        "predicted_positive": int(pred.sum()),
        "precision": float(precision_score(labels, pred, zero_division=0)),
        "recall": float(recall_score(labels, pred, zero_division=0)),
        "f1": float(f1_score(labels, pred, zero_division=0)),
        "confusion_matrix": cm.tolist(),  # [[tn, fp], [fn, tp]]
    }


def f1_max_threshold(scores, labels):
    """The threshold among the distinct scores that maximises F1; ties -> the highest such threshold."""
    best_t, best_f1 = None, -1.0
    for t in sorted(set(scores.tolist()), reverse=True):
        f1 = f1_score(labels, (scores >= t).astype(int), zero_division=0)
        if f1 > best_f1:  # strict: keeps the highest threshold on ties
            best_t, best_f1 = t, f1
    # cross-check with the precision-recall curve (thresholds increasing, one per distinct score)
    p, r, th = precision_recall_curve(labels, scores)
    f1s = np.where(p[:-1] + r[:-1] > 0, 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-300), 0.0)
    best = np.flatnonzero(np.isclose(f1s, f1s.max(), rtol=0, atol=1e-15))
    assert np.isclose(f1s.max(), best_f1, rtol=0, atol=1e-12) and th[best[-1]] == best_t
    return float(best_t), float(best_f1)


def curves(scores, labels):
    fpr, tpr, thr = roc_curve(labels, scores)  # drop_intermediate=True (default)
    fpr_f, tpr_f, thr_f = roc_curve(labels, scores, drop_intermediate=False)
    precision, recall, pr_thr = precision_recall_curve(labels, scores)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "pr_auc_trapezoid": float(auc(recall, precision)),
        "roc_curve": {"fpr": floats(fpr_f), "tpr": floats(tpr_f), "thresholds": floats(thr_f)},
        "roc_curve_dropped": {"fpr": floats(fpr), "tpr": floats(tpr), "thresholds": floats(thr)},
        "precision_recall_curve": {
            "precision": floats(precision),
            "recall": floats(recall),
            "thresholds": floats(pr_thr),
        },
    }


def make_set(name, description, labels, scores, val_labels, val_scores, cwe=None):
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    val_labels, val_scores = np.asarray(val_labels, dtype=int), np.asarray(val_scores, dtype=np.float64)
    expected = curves(scores, labels)
    t_val, f1_val = f1_max_threshold(val_scores, val_labels)
    t_self, f1_self = f1_max_threshold(scores, labels)
    expected["validation_f1_max"] = {"threshold": t_val, "f1_on_validation": f1_val}
    expected["self_f1_max"] = {"threshold": t_self, "f1": f1_self}
    expected["at_threshold"] = {
        "0.5": at_threshold(scores, labels, 0.5),
        "validation_f1_max": at_threshold(scores, labels, t_val),
        "above_max": at_threshold(scores, labels, float(scores.max()) + 0.25),  # nothing predicted positive
    }
    doc = {
        "name": name,
        "description": description,
        "sklearn_version": sklearn.__version__,
        "labels": labels.tolist(),
        "scores": floats(scores),
    }
    if cwe is not None:
        doc["cwe"] = list(cwe)
        groups = {}
        for g in sorted(set(cwe)):
            idx = np.array([c == g for c in cwe])
            n_pos = int(labels[idx].sum())
            both = 0 < n_pos < int(idx.sum())
            groups[g] = {
                "n": int(idx.sum()),
                "positives": n_pos,
                "roc_auc": float(roc_auc_score(labels[idx], scores[idx])) if both else None,
            }
        defined = [v["roc_auc"] for v in groups.values() if v["roc_auc"] is not None]
        expected["per_cwe"] = groups
        expected["per_cwe_macro_roc_auc"] = float(np.mean(defined))
    doc["validation"] = {"labels": val_labels.tolist(), "scores": floats(val_scores)}
    doc["expected"] = expected
    return doc


def sanity_checks(doc):
    e = doc["expected"]
    labels, scores = np.array(doc["labels"]), np.array(doc["scores"])
    # ROC AUC == probability a random positive outranks a random negative (ties count 1/2)
    pos, neg = scores[labels == 1], scores[labels == 0]
    mw = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert abs(mw - e["roc_auc"]) < 1e-12, doc["name"]
    # trapezoid over the full ROC curve gives the same AUC
    assert abs(auc(e["roc_curve"]["fpr"], e["roc_curve"]["tpr"]) - e["roc_auc"]) < 1e-12
    # AP == sum over distinct thresholds of (R_n - R_{n+1}) * P_n
    p, r = np.array(e["precision_recall_curve"]["precision"]), np.array(e["precision_recall_curve"]["recall"])
    assert abs(-np.sum(np.diff(r) * p[:-1]) - e["average_precision"]) < 1e-12
    # each PR point is the precision/recall of "score >= threshold"
    for i, t in enumerate(e["precision_recall_curve"]["thresholds"]):
        m = at_threshold(scores, labels, t)
        assert abs(m["precision"] - p[i]) < 1e-12 and abs(m["recall"] - r[i]) < 1e-12


def build_sets():
    sets = []

    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.4).astype(int)
    yv = (rng.random(150) < 0.4).astype(int)
    sets.append(
        make_set(
            "random_n200",
            "200 scores rounded to 4 decimals (a few natural ties), 40% positives, moderate separation",
            y, sigmoid_scores(rng, y, 1.5, 4), yv, sigmoid_scores(rng, yv, 1.5, 4),
        )
    )

    rng = np.random.default_rng(2)
    y = (rng.random(120) < 0.5).astype(int)
    yv = (rng.random(80) < 0.5).astype(int)
    sets.append(
        make_set(
            "heavy_ties",
            "120 scores rounded to 1 decimal: at most 11 distinct values, many tied positives and negatives",
            y, sigmoid_scores(rng, y, 1.2, 1), yv, sigmoid_scores(rng, yv, 1.2, 1),
        )
    )

    y = [0, 1, 0, 1, 1, 0, 0, 1, 0, 0]
    sets.append(
        make_set(
            "all_equal",
            "every score 0.5 (ROC AUC 0.5, one-point curves); at threshold 0.5 everything is positive",
            y, [0.5] * len(y), [1, 0, 0, 1], [0.5] * 4,
        )
    )

    rng = np.random.default_rng(3)
    y = np.zeros(700, dtype=int)
    y[rng.choice(700, 20, replace=False)] = 1  # 20 : 680 = 1 : 34
    yv = np.zeros(350, dtype=int)
    yv[rng.choice(350, 10, replace=False)] = 1
    s = np.round(1.0 / (1.0 + np.exp(-(rng.normal(size=700) - 3.0 + 2.2 * y))), 4)
    sv = np.round(1.0 / (1.0 + np.exp(-(rng.normal(size=350) - 3.0 + 2.2 * yv))), 4)
    sets.append(
        make_set(
            "imbalanced_1_34",
            "700 functions, 20 positives (1:34), mostly low scores: few predictions at 0.5",
            y, s, yv, sv,
        )
    )

    sets.append(
        make_set(
            "tiny_n3",
            "three functions, one negative ranked between the two positives",
            [1, 0, 1], [0.9, 0.6, 0.3], [0, 1, 1], [0.2, 0.8, 0.4],
        )
    )

    rng = np.random.default_rng(4)
    cwes = ["CWE-22", "CWE-79", "CWE-89", "CWE-502", "CWE-611"]
    cwe = [cwes[i] for i in rng.integers(0, 4, 90)] + ["CWE-611"] * 6  # CWE-611: negatives only
    y = (rng.random(96) < 0.35).astype(int)
    y[-6:] = 0
    sep = np.array([{"CWE-22": 2.5, "CWE-79": 1.0, "CWE-89": 0.0, "CWE-502": -1.0, "CWE-611": 1.0}[c] for c in cwe])
    s = np.round(1.0 / (1.0 + np.exp(-(rng.normal(size=96) + sep * (y - 0.5)))), 3)
    yv = (rng.random(60) < 0.35).astype(int)
    sv = sigmoid_scores(rng, yv, 1.0, 3)
    sets.append(
        make_set(
            "per_cwe",
            "96 functions with a CWE each; groups separate differently (CWE-502 inverted); CWE-611 has no "
            "positive so its AUC is null",
            y, s, yv, sv, cwe=cwe,
        )
    )
    return sets


def main():
    warnings.simplefilter("error")  # no silent sklearn warnings (e.g. ill-defined precision)
    os.makedirs(OUT_DIR, exist_ok=True)
    for doc in build_sets():
        sanity_checks(doc)
        path = os.path.join(OUT_DIR, doc["name"] + ".json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
            f.write("\n")
        e = doc["expected"]
        print(
            f"{doc['name']}: n={len(doc['labels'])} auc={e['roc_auc']:.4f} ap={e['average_precision']:.4f} "
            f"t_val={e['validation_f1_max']['threshold']} f1@0.5={e['at_threshold']['0.5']['f1']:.4f}"
        )


if __name__ == "__main__":
    main()
