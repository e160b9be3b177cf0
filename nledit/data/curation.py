"""Curation: keep, per class, the first ``n`` candidates the base model classifies correctly.

Candidates are classified in their given order, at most ``budget`` per class; a class keeping
fewer than ``min`` is not evaluable: it is reported, and dropped from the edits' targets (its
kept examples still count as "other concepts" in evaluation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError
from ..recipe import Curation, Recipe
from .concept import ConceptModel
from .dataset import Examples

log = logging.getLogger("nledit")


@dataclass
class ClassCount:
    """What curation did for one class."""

    name: str
    tried: int
    correct: int
    kept: int
    evaluable: bool


@torch.no_grad()
def predictions(
    cm: ConceptModel, texts: list[str], batch_size: int, prefix: Any | None = None
) -> torch.Tensor:
    """The base model's predicted label per text (``prefix``: the head's cache, if computed)."""
    preds = []
    for b in cm.batches(texts, batch_size, prefix):
        out = cm.model(**b.inputs)
        preds.append(cm.predict(cm.label_probs(cm.read_logits(out, b))).cpu())
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def curate(
    cm: ConceptModel, ex: Examples, spec: Curation, batch_size: int
) -> tuple[Examples, list[ClassCount]]:
    """Per class, the first ``spec.n`` correctly classified of (at most ``spec.budget``)
    candidates in order; classified a batch at a time, stopping once ``n`` are correct."""
    kept = Examples([], [])
    counts = []
    prefix = cm.prefix_cache() if cm.use_prefix_cache else None
    for c, name in enumerate(cm.label_names):
        cands = ex.of(c)[: spec.budget]
        keep: list[str] = []
        tried = 0
        for start in range(0, len(cands), batch_size):
            chunk = cands[start : start + batch_size]
            hits = (predictions(cm, chunk, batch_size, prefix) == c).tolist()
            for text, hit in zip(chunk, hits):
                if len(keep) == spec.n:
                    break
                tried += 1
                if hit:
                    keep.append(text)
            if len(keep) == spec.n:
                break
        kept.texts += keep
        kept.labels += [c] * len(keep)
        counts.append(ClassCount(name, tried, len(keep), len(keep), len(keep) >= spec.min))
    return kept, counts


def apply(cm: ConceptModel, data: object, recipe: Recipe) -> dict[str, list[ClassCount]]:
    """Curate ``data.fit`` and ``data.eval`` in place as the recipe's data section says."""
    spec = recipe.data
    report: dict[str, list[ClassCount]] = {}
    for split, cur in (("fit", spec.fit_curate), ("eval", spec.eval_curate)):
        if cur is None:
            continue
        kept, counts = curate(cm, getattr(data, split), cur, recipe.batch_size)
        setattr(data, split, kept)
        report[split] = counts
        for k in counts:
            if not k.evaluable:
                log.warning(
                    "curation: %s keeps %d %s example(s) (%d tried), fewer than the minimum "
                    "%d: not evaluable",
                    k.name,
                    k.kept,
                    split,
                    k.tried,
                    cur.min,
                )
    return report


def not_evaluable(report: dict[str, list[ClassCount]]) -> list[str]:
    """Classes short of the minimum in any curated split."""
    return sorted({k.name for counts in report.values() for k in counts if not k.evaluable})


def targets_only(recipe: Recipe, dropped: list[str]) -> Recipe:
    """A copy of ``recipe`` whose edits target only evaluable concepts."""
    if not dropped:
        return recipe
    out = recipe.model_copy(deep=True)
    for i, edit in enumerate(out.edits):
        edit.concepts = [c for c in edit.concepts if c not in dropped]
        if not edit.concepts:
            raise DataError(
                f"edits.{i}.concepts: every concept is not evaluable after curation "
                f"({', '.join(dropped)})"
            )
    return out
