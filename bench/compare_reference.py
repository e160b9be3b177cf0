"""Compare a run of recipes/reproduce/reference_agnews.yaml with the reference table.

The reference numbers are read from ../shared/REFERENCE_PROTOCOL.md (its "Result" table and
perplexity line); the run's from its results.json. Prints one line per cell with both values,
the difference and whether it is within the tolerance.

    python bench/compare_reference.py runs/reproduce/reference_agnews/results.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "REFERENCE_PROTOCOL.md"
# Reference method -> (nledit method, edit name) in the reproduction recipe.
METHODS = {"NM": ("neuron", "zero"), "ARM": ("range", "zero"), "AD": ("range", "adaptive")}
BASE = {"Acc": "acc", "Conf": "conf", "CAcc": "cacc", "CConf": "cconf"}


def _num(text: str) -> float:
    return float(text.replace("−", "-").replace(",", "").strip())


def reference_table(path: Path = REFERENCE) -> dict[str, float]:
    """Cells of the reference: ``Sports/base/acc``, ``Sports/NM/d_cacc``, ``ppl/ARM/Sports``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head_at = next(i for i, line in enumerate(lines) if line.startswith("| class |"))
    head = [h.strip() for h in lines[head_at].strip("|").split("|")]
    out: dict[str, float] = {}
    for line in lines[head_at + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        concept = cells[0].split(" (")[0]
        for name, value in zip(head[1:], cells[1:]):
            if name in BASE:
                out[f"{concept}/base/{BASE[name]}"] = _num(value)
            else:
                method, metric = name.split(" Δ")
                out[f"{concept}/{method}/d_{BASE[metric]}"] = _num(value)
    ppl = next(line for line in lines if line.startswith("Perplexity (base"))
    head_text, _, body = ppl.partition(":")
    out["ppl/base"] = _num(head_text.split("base ")[1].rstrip(")"))
    order: list[str] = []
    for part in body.rstrip(".").split(";"):
        method, *rest = part.split()
        pairs = " ".join(rest).split("/")
        for i, cell in enumerate(pairs):
            words = cell.split()
            if len(words) == 2:  # "Sports 45,027": the concept is named once, in order
                order.append(words[0])
            out[f"ppl/{method}/{order[i]}"] = _num(words[-1])
    return out


def run_table(results: dict[str, Any]) -> dict[str, float]:
    """The same cells from a results.json (pooled collateral, as the reference defines it)."""
    out: dict[str, float] = {}
    rows = results["erasure"]
    for method, (kind, edit) in METHODS.items():
        for r in rows:
            if r["method"] != kind or r.get("edit") != edit:
                continue
            c = r["concept"]
            for key in ("acc", "conf"):
                out[f"{c}/base/{key}"] = r[f"base_{key}"]
                out[f"{c}/{method}/d_{key}"] = r[f"d_{key}"]
            for key in ("cacc", "cconf"):
                out[f"{c}/base/{key}"] = r[f"base_{key}_pooled"]
                out[f"{c}/{method}/d_{key}"] = r[f"d_{key}_pooled"]
    ppl = results.get("perplexity") or {}
    if "base" in ppl:
        out["ppl/base"] = ppl["base"]
    for method, (kind, edit) in METHODS.items():
        for key, value in ppl.items():
            m = re.fullmatch(rf"{kind}:(.+)@{edit}", key)
            if m:
                out[f"ppl/{method}/{m.group(1)}"] = value
    return out


def compare(ref: dict[str, float], ours: dict[str, float], tol: float = 1e-3) -> list[dict]:
    """Per reference cell: both values, the difference, and whether it is within ``tol``
    (absolute for the table; relative for perplexity, whose values reach 10⁴)."""
    rows = []
    for key, want in ref.items():
        got = ours.get(key)
        diff = None if got is None else got - want
        scale = abs(want) if key.startswith("ppl/") else 1.0
        ok = diff is not None and abs(diff) <= tol * scale
        rows.append({"cell": key, "reference": want, "nledit": got, "diff": diff, "ok": ok})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json of the reproduction run")
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args(argv)
    rows = compare(
        reference_table(args.reference), run_table(json.loads(args.results.read_text())), args.tol
    )
    print("| cell | reference | nledit | difference | within tolerance |")
    print("|---|---|---|---|---|")
    for r in rows:
        got = "missing" if r["nledit"] is None else f"{r['nledit']:.6g}"
        diff = "" if r["diff"] is None else f"{r['diff']:+.2e}"
        ok = "yes" if r["ok"] else "NO"
        print(f"| {r['cell']} | {r['reference']:.6g} | {got} | {diff} | {ok} |")
    bad = [r for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} cells within {args.tol:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
