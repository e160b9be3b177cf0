"""Split a labelled JSON Lines sample into training and test files, per class, seeded.

    python scripts/split_sample.py recipes/data/dbpedia5.jsonl 60

writes ``dbpedia5_train.jsonl`` and ``dbpedia5_test.jsonl`` beside it: ``test_per_class`` rows
of every label go to the test file, the rest to the training file, each in the input's order.
The fine-tuned recipes train on the first and fit and evaluate their edit on the second.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path


def split(path: Path, test_per_class: int, seed: int = 0) -> tuple[Path, Path]:
    """Write the two files beside ``path``; returns (train, test)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    by_label: dict[int, list[int]] = {}
    for i, ln in enumerate(lines):
        by_label.setdefault(json.loads(ln)["label"], []).append(i)
    rng = random.Random(seed)
    test: set[int] = set()
    for label in sorted(by_label):
        rows = by_label[label]
        if len(rows) <= test_per_class:
            raise SystemExit(f"{path}: label {label} has only {len(rows)} rows")
        test |= set(rng.sample(rows, test_per_class))
    out_train = path.with_name(path.stem + "_train.jsonl")
    out_test = path.with_name(path.stem + "_test.jsonl")
    out_train.write_text("".join(ln + "\n" for i, ln in enumerate(lines) if i not in test))
    out_test.write_text("".join(ln + "\n" for i, ln in enumerate(lines) if i in test))
    return out_train, out_test


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(*split(Path(sys.argv[1]), int(sys.argv[2])))
