"""Repeats under several seeds (``eval.seeds``): each seed redraws the data (fitting, evaluation
and shot examples), refits and re-evaluates; the spread across seeds is summarised as the mean
and the sample standard deviation of every delta, of ΔPPL and of the base model's competence.

Seed i of N is the recipe's ``seed`` + i, so seed 0 of a run is the single-seed run itself
(its table, gates and export are unchanged) and the others are the next integers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..recipe import Recipe
from .rows import ppl_key

# The values summarised per erasure row (each ``ConceptRow.to_dict`` key that exists).
ROW_KEYS = ("d_acc", "d_conf", "d_cacc", "d_cconf", "cacc_broken", "cacc_fixed")


def seed_list(recipe: Recipe) -> list[int]:
    """The seeds a recipe runs under: its ``seed``, then the next ``eval.seeds`` − 1 integers."""
    return [recipe.seed + i for i in range(recipe.eval.seeds)]


def with_seed(recipe: Recipe, seed: int) -> Recipe:
    """``recipe`` under another seed (everything the seed draws follows it)."""
    return recipe.updated(seed=seed)


def mean_sd(values: Iterable[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (n − 1; 0 for a single value) and count of the values
    that are numbers (NaN is left out)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(vals)
    if not n:
        return {"mean": math.nan, "sd": math.nan, "n": 0}
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "n": n}


def _ppl_delta(doc: dict[str, Any], row: dict[str, Any]) -> float:
    """A row's ΔPPL in one seed's result (NaN without perplexity)."""
    ppl = doc.get("perplexity") or {}
    key = ppl_key(row, doc["erasure"])
    return ppl[key] - ppl["base"] if key in ppl and "base" in ppl else math.nan


def summarise(seeds: list[int], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sd across seeds of each row's deltas and ΔPPL and of the base's competence.

    ``runs`` are the seeds' evaluation results (``EvalResult.to_dict``) in ``seeds`` order."""
    found: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run in runs:  # each row with the seed's result it belongs to
        for r in run.get("erasure", []):
            found.setdefault(ppl_key(r, run["erasure"]), []).append((r, run))
    rows = []
    for pairs in found.values():
        first = pairs[0][0]
        out: dict[str, Any] = {"method": first["method"], "concept": first["concept"]}
        out["edit"] = first.get("edit", "")
        for k in ROW_KEYS:
            out[k] = mean_sd(r[k] for r, _ in pairs if k in r)
        if any(run.get("perplexity") for _, run in pairs):
            out["d_ppl"] = mean_sd(_ppl_delta(run, r) for r, run in pairs)
        out["seeds"] = len(pairs)
        out["assessable"] = sum(bool(r.get("assessable", True)) for r, _ in pairs)
        rows.append(out)
    comps = [run.get("competence") or {} for run in runs]
    competent = [c for c in comps if c]
    return {
        "seeds": list(seeds),
        "rows": rows,
        "balanced_acc": mean_sd(c["balanced_acc"] for c in competent),
        "competent_seeds": sum(bool(c.get("competent")) for c in competent),
    }


def text(summary: dict[str, Any]) -> str:
    """The across-seed table, as Markdown: mean ± sd of each delta per row."""
    if not summary or not summary.get("rows"):
        return ""
    n = len(summary["seeds"])
    bal = summary["balanced_acc"]
    head = ["concept", "method", "ΔAcc", "ΔConf", "ΔCAcc", "ΔCConf", "broken", "ΔPPL"]
    lines = [
        f"Across {n} seeds ({', '.join(map(str, summary['seeds']))}; each redraws the data, "
        "refits and re-evaluates): mean ± sd (sample standard deviation). Base balanced "
        f"accuracy {_pm(bal, signed=False)}; the base could do the task under "
        f"{summary['competent_seeds']} of {n} seeds.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in summary["rows"]:
        keys = ("d_acc", "d_conf", "d_cacc", "d_cconf", "cacc_broken")
        cells = [r["concept"], r["method"], *(_pm(r[k]) for k in keys)]
        cells.append(_pm(r["d_ppl"], 2) if "d_ppl" in r else "")
        if r["assessable"] < r["seeds"]:
            unable = r["seeds"] - r["assessable"]
            cells[1] += f" (the base cannot do this under {unable} of {r['seeds']} seeds)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pm(v: dict[str, Any], digits: int = 3, signed: bool = True) -> str:
    """``mean ± sd`` of a ``mean_sd`` value ("n/a" without numbers)."""
    if not v or not v.get("n"):
        return "n/a"
    return f"{v['mean']:{'+' if signed else ''}.{digits}f} ± {v['sd']:.{digits}f}"
