"""LEACE next to range and neuron masking: run recipes/leace/*.yaml, store what they measure and
render the section of docs/REPRODUCTION.md (through bench/reproduce.py, which includes it).

    .venv/bin/python bench/reproduce_leace.py recipes/leace/smollm2_agnews.yaml [more ...]
    .venv/bin/python bench/reproduce_leace.py --all
    .venv/bin/python bench/reproduce_leace.py --render

Each recipe is fitted and evaluated (erasure table, perplexity, and the linear concept probe of
``eval.probe``); its results are kept as JSON under docs/reproduction/leace/ so the document can
be rendered again without rerunning. A hand-written reading of the measured tables, if present,
follows them (docs/reproduction/leace/reading.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reproduce

from nledit.evaluation.probing import probe_markdown
from nledit.evaluation.results import ppl_table

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "docs" / "reproduction" / "leace"
READING = STORE / "reading.md"


def _probe_means(rows: list[dict]) -> str:
    """Per method: the probe's mean accuracy on the target concept, on the others, on all."""
    lines = [
        "| method | probe Acc | base | probe CAcc | base | probe all | base |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]

        def mean(key: str, sel: list[dict] = sel) -> float:
            return sum(r[key] for r in sel) / len(sel)

        lines.append(
            f"| {method} | {mean('acc'):.3f} | {mean('base_acc'):.3f} | "
            f"{mean('cacc'):.3f} | {mean('base_cacc'):.3f} | "
            f"{mean('all'):.3f} | {mean('base_all'):.3f} |"
        )
    return "\n".join(lines)


def leace_sections() -> list[str]:
    """The LEACE comparison, one subsection per stored recipe, then the reading."""
    docs = [json.loads(p.read_text()) for p in sorted(STORE.glob("*.json"))]
    if not docs:
        return []
    parts = [
        "## LEACE next to range and neuron masking",
        "",
        "`leace` = LEACE (Belrose et al. 2023), the closed-form affine eraser that removes every",
        "linearly decodable trace of the concept with the least change to the hidden state; it",
        "is fitted in the same statistics pass as the ranges, on the read-token activations of",
        "the edited layer, one eraser per target concept (z = indicator of the concept), and",
        "applied to the whole hidden state at every position. The probe columns are the accuracy",
        "of a logistic-regression probe trained on base activations of the fitting examples, read",
        "on held-out examples after each method (Acc: the concept's examples; CAcc: the others').",
        "",
    ]
    for doc in docs:
        res = reproduce._result(doc)
        probe = doc["result"].get("probe", [])
        parts += reproduce.result_section(doc, res, "###")
        if res.perplexity:
            parts += ["Perplexity (WikiText-2 raw, fixed windows):", "", ppl_table(res.perplexity)]
            parts += [""]
        if probe:
            parts += ["Linear concept probe, mean over concepts:", "", _probe_means(probe), ""]
            parts += ["Per concept:", "", probe_markdown(probe), ""]
    if READING.is_file():
        parts += [READING.read_text().strip(), ""]
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("recipes", nargs="*", type=Path)
    ap.add_argument("--all", action="store_true", help="every recipe in recipes/leace/")
    ap.add_argument("--render", action="store_true", help="only rewrite the document")
    args = ap.parse_args()
    STORE.mkdir(parents=True, exist_ok=True)
    paths = sorted((ROOT / "recipes" / "leace").glob("*.yaml")) if args.all else args.recipes
    if not args.render:
        for path in paths:
            path = path.resolve()
            doc = reproduce.run_one(path)
            doc["command"] = f".venv/bin/python bench/reproduce_leace.py {path.relative_to(ROOT)}"
            (STORE / f"{path.stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
            print(f"stored {path.stem}: {doc['seconds'] / 60:.1f} min")
    reproduce.DOC.write_text(reproduce.render())
    print(f"wrote {reproduce.DOC}")


if __name__ == "__main__":
    main()
