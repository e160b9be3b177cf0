"""Build recipes/data/mmlu_topics.jsonl: a 5-class question-topic sample from MMLU's test split.

Usage: python scripts/make_mmlu_topics.py ../shared/data/mmlu/test.jsonl [per_class]

Topic = a group of MMLU subjects; text = the question (no choices), cut to its last 400
characters; rows per topic drawn with a fixed seed. Source and license: recipes/data/SOURCES.md.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

TOPICS = {
    "Law": ["professional_law", "international_law", "jurisprudence"],
    "Psychology": ["professional_psychology", "high_school_psychology"],
    "Economics": ["high_school_macroeconomics", "high_school_microeconomics", "econometrics"],
    "Math": ["elementary_mathematics", "high_school_mathematics", "college_mathematics"],
    "Biology": ["high_school_biology", "college_biology", "anatomy"],
}
OUT = Path(__file__).resolve().parent.parent / "recipes" / "data" / "mmlu_topics.jsonl"


def main(source: str, per_class: int = 90) -> None:
    """Write ``per_class`` rows per topic, shuffled, to ``OUT``."""
    rng = random.Random(0)
    by_subject: dict[str, list[str]] = {}
    with open(source, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            by_subject.setdefault(row["subject"], []).append(row["question"].strip())
    rows = []
    for topic, subjects in TOPICS.items():
        pool = sorted({q[-400:] for s in subjects for q in by_subject[s]})
        rows += [{"text": q, "label": topic} for q in rng.sample(pool, per_class)]
    rng.shuffle(rows)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
