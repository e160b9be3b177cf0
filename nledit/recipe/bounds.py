"""The bounds of an edit's numeric fields, read from ``EditSpec`` for the intervals the tuner
and the sweep take (so no bound is stated twice)."""

from __future__ import annotations

from .sections import EditSpec


def edit_bound_problem(name: str, value: float) -> str | None:
    """What is wrong with ``value`` for ``EditSpec.<name>`` by that field's own bounds (the
    sweep and tuner intervals read them here), e.g. ``must lie in (0, 1]``; None: inside."""
    lo = hi = None
    lo_open = hi_open = False
    for m in EditSpec.model_fields[name].metadata:
        for attr, is_lo, is_open in (("gt", 1, 1), ("ge", 1, 0), ("lt", 0, 1), ("le", 0, 0)):
            bound = getattr(m, attr, None)
            if bound is None:
                continue
            if is_lo:
                lo, lo_open = bound, bool(is_open)
            else:
                hi, hi_open = bound, bool(is_open)
    above = lo is None or (value > lo if lo_open else value >= lo)
    below = hi is None or (value < hi if hi_open else value <= hi)
    if above and below:
        return None
    left = "(-inf" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
    right = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
    return f"must lie in {left}, {right}"
