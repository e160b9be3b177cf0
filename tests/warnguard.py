"""Fail a test when nledit's own call triggers a FutureWarning or DeprecationWarning.

A library deprecating an argument warns with ``stacklevel`` pointing at its caller; through
``torch.nn.Module.__call__`` that caller is torch's call plumbing, so a module filter alone
misses it. The guard walks out from the frame the warning is attributed to, past torch's
module-call frames, and fails when the first remaining frame is inside ``nledit/``. Warnings a
third-party library raises about its own internals are attributed to that library and pass.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1] / "nledit"
PLUMBING = ("torch/nn/modules/module.py", "torch/utils/_contextlib.py", "contextlib.py")
DEPRECATIONS = (FutureWarning, DeprecationWarning)


class DeprecatedCall(AssertionError):
    """nledit called an API in a way its library has deprecated."""


def _frames(start: FrameType | None) -> Iterator[FrameType]:
    while start is not None:
        yield start
        start = start.f_back


def owner(frame: FrameType | None) -> FrameType | None:
    """The first frame from ``frame`` outward that is not torch's module-call plumbing."""
    for f in _frames(frame):
        name = f.f_code.co_filename.replace("\\", "/")
        if not name.endswith(PLUMBING):
            return f
    return None


def from_nledit(frame: FrameType | None) -> bool:
    """Whether the warning attributed to ``frame`` comes from a call in nledit's code."""
    f = owner(frame)
    return f is not None and Path(f.f_code.co_filename).resolve().is_relative_to(PACKAGE)


def guarded_warn(original: Any) -> Any:
    """``warnings.warn`` that raises ``DeprecatedCall`` for nledit's deprecated calls."""

    def warn(message: Any, category: Any = None, stacklevel: int = 1, **kw: Any) -> None:
        cat = category or (type(message) if isinstance(message, Warning) else UserWarning)
        if isinstance(cat, type) and issubclass(cat, DEPRECATIONS):
            try:
                frame: FrameType | None = sys._getframe(stacklevel)
            except ValueError:
                frame = None
            if from_nledit(frame):
                raise DeprecatedCall(f"{cat.__name__} from nledit's call: {message}")
        original(message, category, stacklevel + 1, **kw)

    return warn


def install() -> Any:
    """Replace ``warnings.warn``; returns the original to restore."""
    original = warnings.warn
    warnings.warn = guarded_warn(original)
    return original
