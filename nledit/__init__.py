"""nledit: edit what a language model knows about a concept by gating neuron activation ranges.

The Python API (see docs/api.md)::

    edit = nledit.fit(model, tokenizer, [(text, label), ...], [{"concepts": ["Sports"]}])
    with edit.applied(model):
        ...
    nledit.evaluate(model, tokenizer, edit, held_out)
    nledit.export(model, tokenizer, edit, "out")

The names load on first use, so ``import nledit`` (and the command line) stays light.
``nledit.fit``, ``nledit.evaluate`` and ``nledit.export`` are always these functions; the
modules of the same names stay importable (``from nledit.export import ...``,
``importlib.import_module("nledit.export")``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .api import evaluate, export, fit, generate, load_recipe, run
    from .edit import Edit
    from .errors import NleditError
    from .generate import Decoding
    from .hub import push

__all__ = [
    "Decoding",
    "Edit",
    "NleditError",
    "__version__",
    "evaluate",
    "export",
    "fit",
    "generate",
    "load_recipe",
    "push",
    "run",
]
_HOME = {"Decoding": "generate", "Edit": "edit", "NleditError": "errors", "push": "hub"} | {
    name: "api" for name in ("evaluate", "export", "fit", "generate", "load_recipe", "run")
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """Keeps the API names for the API: importing the submodule ``nledit.fit`` would otherwise
    bind the package attribute ``fit`` to that module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
