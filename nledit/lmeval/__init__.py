"""lm-evaluation-harness on exported checkpoints: nledit's offline tasks, the runs and the
cached base results, and the figures recorded in the export.

The names below are its public surface (what a command may import), resolved lazily.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "evaluate_export": "on_export",
    "merge_into_checkpoint": "record",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
