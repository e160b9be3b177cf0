"""A model's context length, and the rule that nledit never feeds a model past it.

A prompt longer than the positions a model has is an error naming the setting to change,
never a silent truncation or a crash deep inside the model: ``ConceptModel.batches`` checks
every prompt it builds, ``generate`` every prompt plus the tokens it will add.
"""

from __future__ import annotations

from typing import Any

from ..errors import NleditError

_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


class ContextError(NleditError, ValueError):
    """A prompt that does not fit the model's context."""


def context_length(model: Any) -> int | None:
    """The most positions ``model`` takes (from its config), or None when it does not say."""
    config = getattr(model, "config", None)
    config = getattr(config, "get_text_config", lambda: config)() if config is not None else None
    for name in _FIELDS:
        value = getattr(config, name, None)
        if type(value) is int and value > 0:
            return value
    return None


def check_fits(model: Any, n_tokens: int, what: str, advice: str) -> None:
    """``n_tokens`` (of ``what``) must fit the context of ``model``; ``advice`` says what to
    change."""
    limit = context_length(model)
    if limit is not None and n_tokens > limit:
        raise ContextError(
            f"{what} is {n_tokens} tokens, past the model's context length of {limit}; {advice}"
        )
