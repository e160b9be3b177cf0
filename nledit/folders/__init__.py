"""Folders nledit writes: checked before any model work, written atomically, and removed only
when nledit can prove it created them.

The names below are its public surface (what a command may import), resolved lazily.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "check_apart": "preflight",
    "recipe_inputs": "preflight",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
