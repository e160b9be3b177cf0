"""The model card's ``model-index``: what was measured on an exported checkpoint, as
huggingface_hub ``EvalResult`` entries (the edit's effect first, then the measured values)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from huggingface_hub import EvalResult

WIKITEXT = ("Salesforce/wikitext", "WikiText-2 (raw)", "wikitext-2-raw-v1")
MMLU = ("cais/mmlu", "MMLU", "all")


def eval_results(
    metrics: Mapping[str, Any], method: str, datasets: Sequence[str] = ()
) -> list[EvalResult]:
    """The model-index of a checkpoint edited by ``method`` from its ``metrics``: the edit's
    effect first (Δ target, Δ collateral, ΔPPL against the unedited model), then the values
    measured on this checkpoint; baselines stay in the card's body."""
    m = metrics
    effect: list[EvalResult] = []
    values: list[EvalResult] = []
    ds = datasets[0] if datasets else "nledit-concepts"
    for row in m.get("erasure") or []:
        if row.get("method", method) != method:
            continue
        dataset = str(row.get("dataset") or ds)
        where = (dataset, dataset, None)
        concept = row.get("concept")
        for key, delta_name, name in (
            ("acc", f"ΔAcc on {concept} (target)", f"Acc on {concept}"),
            (
                "cacc",
                f"ΔCAcc on classes other than {concept} (collateral)",
                f"CAcc, other than {concept}",
            ),
        ):
            v, b = first_number(row, key), first_number(row, f"base_{key}")
            if v is not None and b is not None:
                delta_name += _caveat(row, f"d_{key}")
                effect.append(
                    _result("text-classification", where, "delta", {"delta": v - b}, delta_name)
                )
            if v is not None:
                values.append(_result("text-classification", where, key, row, name))
    ppl_block = m.get("perplexity") or {}
    ppl, base_ppl = first_number(ppl_block, method), first_number(ppl_block, "base")
    if ppl is not None:
        src = ppl_block.get("dataset")  # optional: the text perplexity was measured on
        ppl_ds = (src, src, None) if isinstance(src, str) else WIKITEXT
        if base_ppl is not None:
            effect.append(
                _result("text-generation", ppl_ds, "delta", {"delta": ppl - base_ppl}, "ΔPPL")
            )
        values.append(_result("text-generation", ppl_ds, "perplexity", {"perplexity": ppl}))
    edited = (m.get("lm_eval") or {}).get("edited") or {}
    acc = first_number(edited.get("mmlu") or {}, "acc", "acc,none")
    if acc is not None:
        values.append(_result("text-generation", MMLU, "accuracy", {"accuracy": acc}, "MMLU acc"))
    wppl = first_number(edited.get("wikitext") or {}, "word_perplexity", "word_perplexity,none")
    if wppl is not None:
        row = {"perplexity": wppl}
        values.append(_result("text-generation", WIKITEXT, "perplexity", row, "word perplexity"))
    return effect + values


def _caveat(row: Mapping[str, Any], key: str) -> str:
    """What a delta's metric name must carry to be read honestly: its 95 % interval, when
    stored, and that no claim is made when the base model cannot do the task or the target."""
    ci = (row.get("ci") or {}).get(key)
    out = (
        f" [95 %: {ci[0]:+.3f}, {ci[1]:+.3f}]"
        if isinstance(ci, list | tuple) and len(ci) == 2
        else ""
    )
    return out + (
        " (base cannot do this: no erasure claim)" if row.get("assessable") is False else ""
    )


def _result(
    task: str,
    dataset: tuple[str, str, str | None],
    key: str,
    values: Mapping[str, Any],
    metric_name: str | None = None,
) -> EvalResult:
    dtype, dname, config = dataset
    metric = {"acc": "accuracy", "cacc": "accuracy", "delta": "delta"}.get(key, key)
    return EvalResult(
        task_type=task,
        dataset_type=dtype,
        dataset_name=dname,
        dataset_config=config,
        metric_type=metric,
        metric_value=float(values[key]),
        metric_name=metric_name,
    )


def first_number(d: Mapping[str, Any], *keys: str) -> float | None:
    """First finite number under ``keys`` (numpy scalars included), else None."""
    for key in keys:
        v = d.get(key)
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None
