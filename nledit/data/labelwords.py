"""The token that scores each label: the first token of its label word, checked to mean
something.

A label is scored by the probability of its word's first token. That token must exist, be
known to the tokenizer, be visible text (a word starting with two spaces would be scored by a
bare space token, the same for every such label) and not a special token, and differ from
every other label's, or the scores cannot tell the labels apart.
"""

from __future__ import annotations

from typing import Any

from ..errors import NleditError
from .blank import blank


class LabelWordError(NleditError, ValueError):
    """A label word whose first token cannot score its label."""


def label_tokens(tokenizer: Any, words: list[str], field: str = "prompt.label_words") -> list[int]:
    """The first token id of each of ``words``; a word whose first token is missing, unknown,
    only whitespace, special, or shared with another word is a :class:`LabelWordError`
    naming ``field`` and the word."""
    first: list[int] = []
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for i, word in enumerate(words):
        ids = tokenizer.encode(word, add_special_tokens=False)
        if not ids:
            raise LabelWordError(f"{field}.{i}: {word!r} encodes to no token")
        token = int(ids[0])
        if token == tokenizer.unk_token_id:
            raise LabelWordError(
                f"{field}: {word!r} is unknown to the tokenizer (its first token is the "
                f"unknown-word token; {field}.{i})"
            )
        piece = tokenizer.decode([token])
        if blank(piece) or token in special:
            kind = "a special token" if token in special else "only whitespace"
            raise LabelWordError(
                f"{field}.{i}: the first token of {word!r} is {piece!r}, {kind}: it would "
                "score the label, not the word; write the word with at most one leading space"
            )
        first.append(token)
    shared = [w for w, t in zip(words, first) if first.count(t) > 1]
    if shared:
        raise LabelWordError(
            f"{field}: {shared} share a first token; choose words that start differently"
        )
    return first
