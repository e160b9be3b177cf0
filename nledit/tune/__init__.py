"""The tuner behind `nledit tune`: trials, their cheap cache, the study, the pick, the report
and the job that runs them (``job.py``).

The names below are its public surface, resolved lazily (the job loads torch and Optuna).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "TuneOutput": "job",
    "run_tune": "job",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
