"""The saliency registry: every way of ranking neurons, and what it needs.

Recipe validation (``edits.N.saliency``, ``tune.space.saliency``) and the shared preparation
(whether to keep activation samples) read this table; ``saliency.py`` holds one scoring
function per entry (``tests/test_registry.py`` checks both name the same methods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SaliencyMethod:
    """One saliency method and what it needs."""

    name: str
    needs_samples: bool  # reads the reservoir of activation samples, not only statistics
    needs_ranges: bool  # reads every neuron's range bounds (the edit's range shape)
    tunable: bool  # ``tune.space.saliency`` may list it
    doc: str


SALIENCIES: dict[str, SaliencyMethod] = {
    m.name: m
    for m in (
        SaliencyMethod("max", False, False, True, "mean |h_j| over the concept's examples"),
        SaliencyMethod("probeless", False, False, True, "class-mean differences"),
        SaliencyMethod("probe", True, False, True, "|weights| of an elastic-net probe"),
        SaliencyMethod("random", False, False, True, "a seeded random ranking"),
        SaliencyMethod("selective", False, True, True, "mass inside the range, or AUROC"),
    )
}


def names(*, tunable: bool = False) -> tuple[str, ...]:
    """Saliency method names, optionally only those the tuner may search."""
    return tuple(m.name for m in SALIENCIES.values() if m.tunable or not tunable)


ROUNDING = {"round": round, "floor": math.floor, "ceil": math.ceil}


def top_count(p: float, d: int, rounding: str = "round", k: int | None = None) -> int:
    """How many of ``d`` neurons a top-``p`` selection keeps: ``rounding(p·d)`` (``round``,
    ``floor`` or ``ceil``), at least one and at most ``d``; ``k`` overrides ``p``.

    The one rule for the fit, the sweep, the tuner and the analysis report. ``floor`` and
    ``ceil`` first snap p·d to 9 decimals so 0.3·10 counts as 3, not 2."""
    if k is not None:
        return max(1, min(d, k))
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if rounding not in ROUNDING:
        raise ValueError(f"top_rounding must be one of {', '.join(ROUNDING)}, got {rounding!r}")
    exact = p * d if rounding == "round" else round(p * d, 9)
    return max(1, min(d, int(ROUNDING[rounding](exact))))
