#!/usr/bin/env python3
"""Builds the demo model's pretraining corpus from the JDK's own class-library sources.

    python3 scripts/demo-model/build-corpus.py [--src /usr/lib/jvm/openjdk-17/src.zip] [--out .cache/demo-model]

Source: Debian's `openjdk-17-source` (`src.zip`, GPL-2.0 with the Classpath Exception). Every `.java` file
becomes one document:
- the leading licence comment is dropped (the same ~25 lines in every file: the model would spend its
  capacity learning them; the licence is recorded in the model card instead);
- exact duplicates (after normalizing line endings and trailing spaces) are kept once;
- files over 200 KB (generated tables) are left out;
- about 1 % of the documents, chosen by a hash of their path, form the held-out slice for perplexity.

Writes `train.jsonl` and `heldout.jsonl` ({"path", "text"} per line, sorted by path: deterministic) and
`corpus.json` (counts, bytes, the source's size and SHA-256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import zipfile

DEFAULT_SRC = "/usr/lib/jvm/openjdk-17/src.zip"
MAX_BYTES = 200_000
HELDOUT_PERCENT = 1
LICENCE = re.compile(r"\A\s*/\*.*?\*/\s*", re.S)


def strip_licence(text: str) -> str:
    """Drops a leading block comment that is a licence or copyright notice (not a Javadoc)."""
    m = LICENCE.match(text)
    if m and not m.group(0).lstrip().startswith("/**") and re.search(r"copyright|license|licence", m.group(0), re.I):
        return text[m.end() :]
    return text


def normalize(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def heldout(path: str) -> bool:
    return int(hashlib.sha256(path.encode()).hexdigest(), 16) % 100 < HELDOUT_PERCENT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=DEFAULT_SRC, help="the JDK's src.zip (Debian: openjdk-17-source)")
    ap.add_argument("--out", default=".cache/demo-model", help="output folder")
    args = ap.parse_args()
    if not os.path.exists(args.src):
        raise SystemExit(f"{args.src} not found: apt-get install openjdk-17-source (or pass --src).")
    os.makedirs(args.out, exist_ok=True)

    seen: set[str] = set()
    splits: dict[str, list[dict]] = {"train": [], "heldout": []}
    skipped = {"duplicate": 0, "too_large": 0, "not_utf8": 0}
    with zipfile.ZipFile(args.src) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            if not info.filename.endswith(".java") or info.is_dir():
                continue
            if info.file_size > MAX_BYTES:
                skipped["too_large"] += 1
                continue
            try:
                text = z.read(info).decode("utf-8")
            except UnicodeDecodeError:
                skipped["not_utf8"] += 1
                continue
            text = normalize(strip_licence(text))
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen:
                skipped["duplicate"] += 1
                continue
            seen.add(digest)
            split = "heldout" if heldout(info.filename) else "train"
            splits[split].append({"path": info.filename, "text": text})

    summary: dict[str, object] = {"source": os.path.realpath(args.src), "skipped": skipped}
    with open(args.src, "rb") as f:
        summary["source_sha256"] = hashlib.sha256(f.read()).hexdigest()
    for split, docs in splits.items():
        with open(os.path.join(args.out, f"{split}.jsonl"), "w") as f:
            for doc in docs:
                f.write(json.dumps(doc) + "\n")
        summary[split] = {"documents": len(docs), "bytes": sum(len(d["text"].encode()) for d in docs)}
    with open(os.path.join(args.out, "corpus.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
