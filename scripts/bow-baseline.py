#!/usr/bin/env python3
"""Bag-of-tokens baseline for the demo dataset (python3 + scikit-learn + numpy; Debian: python3-sklearn).

    python3 scripts/bow-baseline.py [public/demo/java-vulns.jsonl]

Lexes each method into Java tokens (identifiers/keywords, numbers, string literals, single punctuation
characters), keeps only which tokens occur (CountVectorizer, binary=True), fits a LogisticRegression
on the train split and reports test ROC AUC overall and per CWE family (each family's test rows scored
by the one global model), with per-family counts. A second model on 1-3-grams of the same tokens shows
how much local token order adds. Prints a Markdown table (used in public/demo/README.md).
"""

import json
import sys
from collections import defaultdict

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

# the lexer of tests/data/demo.test.ts: identifiers, numbers, string literals, any other character
TOKEN = r'[A-Za-z_$][\w$]*|\d+|"(?:[^"\\]|\\.)*"|\S'
SPLITS = ("train", "validation", "test")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def fit_scores(rows, ngram_range):
    vec = CountVectorizer(
        token_pattern=TOKEN, lowercase=False, binary=True, ngram_range=ngram_range
    )
    train = [r for r in rows if r["split"] == "train"]
    x_train = vec.fit_transform([r["code"] for r in train])
    y_train = np.array([r["target"] for r in train])
    model = LogisticRegression(max_iter=5000, C=1.0)
    model.fit(x_train, y_train)
    return model.predict_proba(vec.transform([r["code"] for r in rows]))[:, 1]


def auc(rows, scores, keep):
    idx = [i for i, r in enumerate(rows) if keep(r)]
    y = [rows[i]["target"] for i in idx]
    if len(set(y)) < 2:
        return float("nan")
    return roc_auc_score(y, [scores[i] for i in idx])


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "public/demo/java-vulns.jsonl"
    rows = load(path)
    uni = fit_scores(rows, (1, 1))
    ngram = fit_scores(rows, (1, 3))
    length = [len(r["code"]) for r in rows]

    def is_test(r):
        return r["split"] == "test"

    families = sorted({r["cwe"] for r in rows}, key=lambda c: int(c.split("-")[1]))
    counts = defaultdict(lambda: defaultdict(int))
    for r in rows:
        c = counts[r["cwe"]]
        c["methods"] += 1
        c["vulnerable" if r["target"] == 1 else "fixed"] += 1
        c[r["split"]] += 1

    print(
        "| family | methods | vulnerable | fixed | train | validation | test "
        "| BoW test AUC | 1-3-gram test AUC |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fam in families:
        c = counts[fam]

        def keep(r, fam=fam):
            return is_test(r) and r["cwe"] == fam

        print(
            f"| {fam} | {c['methods']} | {c['vulnerable']} | {c['fixed']} | {c['train']} "
            f"| {c['validation']} | {c['test']} | {auc(rows, uni, keep):.3f} "
            f"| {auc(rows, ngram, keep):.3f} |"
        )
    total = defaultdict(int)
    for c in counts.values():
        for k, v in c.items():
            total[k] += v
    print(
        f"| **all** | {total['methods']} | {total['vulnerable']} | {total['fixed']} "
        f"| {total['train']} | {total['validation']} | {total['test']} "
        f"| **{auc(rows, uni, is_test):.3f}** | **{auc(rows, ngram, is_test):.3f}** |"
    )
    print()
    print(f"Method length alone (characters) as a score: test ROC AUC {auc(rows, length, is_test):.3f}.")


if __name__ == "__main__":
    main()
