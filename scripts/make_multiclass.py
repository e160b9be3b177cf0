"""Build the balanced multi-class samples recipes/data/trec_coarse.jsonl and banking5.jsonl.

Usage:
  python scripts/make_multiclass.py trec PATH/train_5500.label [per_class]
  python scripts/make_multiclass.py banking PATH/banking_data/train.csv PATH/test.csv [per_class]

Each row is {"text": ..., "label": <int>}; the label ids index the class order below, which the
recipes repeat as data.label_names. Texts are deduplicated and sorted before a seeded draw, so a
source file always gives the same sample. Sources and licenses: recipes/data/SOURCES.md.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "recipes" / "data"

# TREC coarse answer types (ABBR, 86 questions, is left out) -> label name
TREC = {
    "DESC": "Description",
    "ENTY": "Entity",
    "HUM": "Person",
    "LOC": "Location",
    "NUM": "Number",
}
# Banking77 intents -> label name: five intents on unrelated topics
BANKING = {
    "card_arrival": "Delivery",
    "exchange_rate": "Exchange",
    "passcode_forgotten": "Password",
    "terminate_account": "Closing",
    "age_limit": "Age",
}


def read_trec(path: str) -> list[tuple[str, str]]:
    """(text, coarse class) pairs of a TREC ``COARSE:fine question`` file (Latin-1)."""
    pairs = []
    for line in Path(path).read_text("latin-1").splitlines():
        if line.strip():
            tag, text = line.split(" ", 1)
            pairs.append((text.strip(), tag.split(":", 1)[0]))
    return pairs


def read_banking(*paths: str) -> list[tuple[str, str]]:
    """(text, intent) pairs of Banking77 CSV files with the header ``text,category``."""
    pairs = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            pairs += [(r["text"].strip(), r["category"]) for r in csv.DictReader(f)]
    return pairs


def sample(pairs: list[tuple[str, str]], classes: list[str], per_class: int) -> list[dict]:
    """``per_class`` distinct texts per class (seed 0), shuffled, labelled by class index.

    A text that occurs under two classes is dropped: its label is ambiguous."""
    owners: dict[str, set[str]] = {}
    for text, cls in pairs:
        owners.setdefault(text, set()).add(cls)
    rng = random.Random(0)
    rows = []
    for i, cls in enumerate(classes):
        pool = sorted(t for t, c in owners.items() if c == {cls})
        if len(pool) < per_class:
            raise SystemExit(f"{cls}: {len(pool)} distinct texts, {per_class} asked")
        rows += [{"text": t, "label": i} for t in rng.sample(pool, per_class)]
    rng.shuffle(rows)
    return rows


def write(rows: list[dict], name: str) -> None:
    """Write ``rows`` as JSON lines to recipes/data/<name>.jsonl."""
    out = DATA / f"{name}.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"wrote {len(rows)} rows to {out}")


def main(argv: list[str]) -> None:
    """Dispatch on the data set name; see the module docstring."""
    if argv[:1] == ["trec"] and len(argv) in (2, 3):
        per_class = int(argv[2]) if len(argv) == 3 else 150
        write(sample(read_trec(argv[1]), list(TREC), per_class), "trec_coarse")
    elif argv[:1] == ["banking"] and len(argv) in (3, 4):
        per_class = int(argv[3]) if len(argv) == 4 else 140
        write(sample(read_banking(argv[1], argv[2]), list(BANKING), per_class), "banking5")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
