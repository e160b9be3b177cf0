"""The patched checkpoint: writing it, the files it may hold, the checks that decide whether a
folder is one, its manifest and model card, and publishing it to the Hub.

The names below are its public surface (what a command may import). They are resolved lazily,
so importing one module of the package does not load the others (the Hub client, torch).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Findings": "integrity",
    "IntegrityError": "integrity",
    "check_export": "integrity",
    "verify": "integrity",
    "RECIPE_FILE": "write",
    "compare_export": "side_by_side",
    "read_prompts": "side_by_side",
    "push": "hub",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
