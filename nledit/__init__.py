"""nledit: edit what a language model knows about a concept by gating neuron activation ranges.

The Python API (see docs/api.md)::

    edit = nledit.fit(model, tokenizer, [(text, label), ...], [{"concepts": ["Sports"]}])
    with edit.applied(model):
        ...
    nledit.evaluate(model, tokenizer, edit, held_out)
    nledit.export(model, tokenizer, edit, "out")

The names load on first use, so ``import nledit`` (and the command line) stays light. The
stages live in packages whose names are not those of the API (``nledit.fitting``,
``nledit.evaluation``, ``nledit.checkpoint``, ...), so ``nledit.fit`` is always the function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .api import evaluate, export, fit, generate, load_recipe, run
    from .checkpoint.hub import push
    from .errors import NleditError
    from .evaluation.generation import Decoding
    from .runtime.edit import Edit

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
_HOME = {
    "Decoding": "evaluation.generation",
    "Edit": "runtime.edit",
    "NleditError": "errors",
    "push": "checkpoint.hub",
} | {name: "api" for name in ("evaluate", "export", "fit", "generate", "load_recipe", "run")}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
