"""What an interval says about a bound: the one rule every verdict nledit prints is decided by.

A claim "the value is at most / at least / within ``bound``" is

- ``HOLDS`` when it holds over the whole 95 % interval,
- ``FAILS`` when it fails over the whole interval,
- ``UNDECIDED`` when the interval straddles the bound (or was not measured): such a figure is
  reported as undecided, never as met.

Whether the base model can do the task at all is ``competence.assessable``; a verdict on an
edit of a concept the base cannot do is ``NOT_ASSESSABLE`` (``base_gate``).
"""

from __future__ import annotations

import math
from typing import Any

from .competence import assessable

HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
NOT_ASSESSABLE = "not assessable"
# Accuracies are stored as float32 fractions (10/20 reads 0.4999999851): compare with a tolerance
# far below one example's share but above float32 rounding.
EPS = 1e-6


def span(row: dict[str, Any], key: str) -> tuple[float, float]:
    """The row's stored 95 % interval of ``key`` (``ci``), or the point twice when none was
    stored (NaN twice when neither is)."""
    ci = (row.get("ci") or {}).get(key)
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return float(ci[0]), float(ci[1])
    v = row.get(key)
    v = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
    return v, v


def _undefined(lo: float, hi: float) -> bool:
    return math.isnan(lo) or math.isnan(hi)


def at_most(lo: float, hi: float, bound: float) -> str:
    """``value <= bound`` over the interval [lo, hi] (module docstring)."""
    if _undefined(lo, hi):
        return UNDECIDED
    if hi <= bound + EPS:
        return HOLDS
    return FAILS if lo > bound + EPS else UNDECIDED


def at_least(lo: float, hi: float, bound: float) -> str:
    """``value >= bound`` over the interval [lo, hi] (module docstring)."""
    return at_most(-hi, -lo, -bound)


def below(lo: float, hi: float, bound: float = 0.0) -> str:
    """``value < bound`` strictly over the interval: a change that must be shown, such as a
    drop (an interval reaching the bound does not show it)."""
    if _undefined(lo, hi):
        return UNDECIDED
    if hi < bound - EPS:
        return HOLDS
    return FAILS if lo >= bound - EPS else UNDECIDED


def within(lo: float, hi: float, bound: float) -> str:
    """``|value| <= bound`` over the interval [lo, hi] (module docstring)."""
    if _undefined(lo, hi):
        return UNDECIDED
    if max(abs(lo), abs(hi)) <= bound + EPS:
        return HOLDS
    return FAILS if lo > bound + EPS or hi < -bound - EPS else UNDECIDED


def combine(outcomes: list[str]) -> str:
    """All claims together: fails when one fails, holds when all hold, else undecided."""
    if FAILS in outcomes:
        return FAILS
    return HOLDS if all(o == HOLDS for o in outcomes) else UNDECIDED


def base_gate(row: dict[str, Any], comp: dict[str, Any] | None = None) -> str | None:
    """``NOT_ASSESSABLE`` with the reason when the base model cannot do the task or the row's
    concept (from ``comp``, the base's ``competence``, or the row's own ``assessable`` flag);
    None when a claim may rest on this base."""
    concept = str(row.get("concept", ""))
    if comp and not assessable(comp, concept):
        target = comp.get("targets", {}).get(concept, {})
        why = comp.get("task_why", "") if comp.get("task") == "cannot" else target.get("why", "")
        return f"{NOT_ASSESSABLE}: the base model cannot do this ({why})"
    if row.get("assessable") is False:
        return f"{NOT_ASSESSABLE}: the base model cannot do this (see competence)"
    return None
