"""Build the balanced multi-class samples in recipes/data/ (one per data set below).

Usage:
  python scripts/make_multiclass.py trec PATH/train_5500.label [per_class]
  python scripts/make_multiclass.py banking PATH/banking_data/train.csv PATH/test.csv [per_class]
  python scripts/make_multiclass.py emotion PATH/train.txt [per_class]
  python scripts/make_multiclass.py dbpedia PATH/meta.txt PATH/test.csv PATH/val.csv [per_class]
  python scripts/make_multiclass.py clinc PATH/data_full.json [per_class]

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
# CARER emotion labels (the Hub's dair-ai/emotion order) -> label name
EMOTION = {
    "sadness": "Sadness",
    "joy": "Joy",
    "love": "Love",
    "anger": "Anger",
    "fear": "Fear",
    "surprise": "Surprise",
}
# DBpedia ontology classes: five of the fourteen, on unrelated topics
DBPEDIA = {
    "Athlete": "Athlete",
    "OfficeHolder": "OfficeHolder",
    "Village": "Village",
    "Animal": "Animal",
    "Film": "Film",
}
DBPEDIA_WORDS = 60  # a text is cut to its first words: abstracts run to a few hundred
# CLINC150 intents -> label name: five requests about restaurants, one shared vocabulary
CLINC = {
    "restaurant_reservation": "Booking",
    "cancel_reservation": "Cancel",
    "restaurant_reviews": "Reviews",
    "restaurant_suggestion": "Suggestion",
    "how_busy": "Wait",
}


def read_trec(*paths: str) -> list[tuple[str, str]]:
    """(text, coarse class) pairs of TREC ``COARSE:fine question`` files (Latin-1)."""
    pairs = []
    for path in paths:
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


def read_emotion(*paths: str) -> list[tuple[str, str]]:
    """(text, emotion) pairs of CARER ``text;emotion`` files."""
    pairs = []
    for path in paths:
        for line in Path(path).read_text("utf-8").splitlines():
            if line.strip():
                text, label = line.rsplit(";", 1)
                pairs.append((text.strip(), label.strip()))
    return pairs


def read_dbpedia(classes: str, *paths: str) -> list[tuple[str, str]]:
    """(text, class name) pairs of DBpedia CSV files whose first column is a class id and last
    column the abstract, cut to its first ``DBPEDIA_WORDS`` words.

    ``classes`` numbers the classes: ``id: Name`` lines, or one name a line (ids from 1)."""
    names = {}
    for i, line in enumerate(Path(classes).read_text("utf-8").splitlines(), 1):
        if line.strip():
            key, _, name = line.rpartition(":")
            names[key.strip() or str(i)] = name.strip()
    pairs = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                words = row[-1].split()[:DBPEDIA_WORDS]
                pairs.append((" ".join(words), names[row[0].strip()]))
    return pairs


def read_clinc(path: str) -> list[tuple[str, str]]:
    """(text, intent) pairs of the in-scope train, val and test lists of a CLINC150 JSON file."""
    data = json.loads(Path(path).read_text("utf-8"))
    return [
        (text.strip(), intent) for split in ("train", "val", "test") for text, intent in data[split]
    ]


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


# name: (reader, class map, output file under recipes/data, default rows per class)
SETS = {
    "trec": (read_trec, TREC, "trec_coarse", 150),
    "banking": (read_banking, BANKING, "banking5", 140),
    "emotion": (read_emotion, EMOTION, "emotion6", 150),
    "dbpedia": (read_dbpedia, DBPEDIA, "dbpedia5", 150),
    "clinc": (read_clinc, CLINC, "clinc_dining", 140),
}


def main(argv: list[str]) -> None:
    """Dispatch on the data set name; see the module docstring."""
    if len(argv) < 2 or argv[0] not in SETS:
        raise SystemExit(__doc__)
    reader, classes, out, per_class = SETS[argv[0]]
    paths = argv[1:]
    if len(paths) > 1 and paths[-1].isdigit():
        per_class = int(paths.pop())
    write(sample(reader(*paths), list(classes), per_class), out)


if __name__ == "__main__":
    main(sys.argv[1:])
