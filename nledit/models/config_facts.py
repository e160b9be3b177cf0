"""What nledit reads from a base model's config: its task, and whether it names its own code.

A base model's own code is never run. transformers, asked not to trust remote code, loads its
own class for the config's ``model_type`` and ignores the repository's ``auto_map``. That is
the safe choice, but the architecture may then differ from what the repository's authors wrote,
so it is not silent."""

from __future__ import annotations

import warnings
from typing import Any

# Bounds no real model's shape comes near: a value past them is a damaged or hand-made file
# (and building that many layers on the meta device would not end).
SHAPE_LIMITS = {"layers": 100_000, "hidden size": 1 << 20}


def shape_problem(kind: str, field: str, value: object) -> str | None:
    """Why ``value``, read as the model's ``kind`` (a key of ``SHAPE_LIMITS``) from ``field``,
    is not a shape nledit can use (None when it is, or when it is absent)."""
    if value is None:
        return None
    limit = SHAPE_LIMITS[kind]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        return f"{field} is {value!r}; the {kind} must be a whole number from 1 to {limit:,}"
    return None


class IgnoredCodeWarning(UserWarning):
    """The base model's own code (its ``auto_map``) was not run."""


def warn_ignored_code(config: Any, origin: str) -> None:
    """Warn when ``config`` (a base model's) carries an ``auto_map`` that will not be run."""
    auto_map = getattr(config, "auto_map", None)
    if auto_map:
        names = ", ".join(sorted(auto_map))
        warnings.warn(
            f"model.id: {origin!r} names its own code ({names} in auto_map); nledit never runs "
            f"a base model's code and loads transformers' class for model_type "
            f"{getattr(config, 'model_type', None)!r} instead: check that it is the same model",
            IgnoredCodeWarning,
            stacklevel=3,
        )


def detect_task(config: Any, requested: str) -> str:
    """The recipe's ``model.task``, or for ``auto`` the one the config's architectures name."""
    if requested != "auto":
        return requested
    archs = getattr(config, "architectures", None) or []
    if any("SequenceClassification" in a for a in archs):
        return "sequence-classification"
    return "causal-lm"
