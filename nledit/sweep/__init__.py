"""The sweep behind `nledit sweep`: its points (``points.py``: values, gates, one condition per
distinct gate), the job (``job.py``), its table (``result.py``), files and figure.

The names below are its public surface, resolved lazily (the job loads torch, the figure
matplotlib).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "SweepResult": "result",
    "run_sweep": "job",
    "sweep": "job",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
