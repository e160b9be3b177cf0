"""The patched checkpoint: writing it, the files it may hold, the checks that decide whether a
folder is one, its manifest and model card, and publishing it to the Hub.

The names below are its public surface (what a command may import). They are resolved lazily,
so importing one module of the package does not load the others (the Hub client, torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Findings": "integrity",
    "IntegrityError": "integrity",
    "check_export": "integrity",
    "verify": "integrity",
    "RECIPE_FILE": "write",
    "push": "hub",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return list(__all__)
