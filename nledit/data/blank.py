"""Which texts hold nothing to read: whitespace, format and control characters only.

A text of zero-width spaces, byte order marks, direction marks or combining marks with no
base renders as nothing, yet ``str.strip`` keeps it. Every reader of user text (data rows,
demonstrations, prompts, label words and names) refuses such a text through :func:`blank`.
"""

from __future__ import annotations

import unicodedata

# Unicode's invisible categories: control, format, surrogate, private use, unassigned,
# separators, and marks (which only decorate a base character).
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"}
# Letters and symbols that render as blank (Hangul fillers, the braille blank) and the
# variation selectors (Mn already) are treated as invisible too.
_BLANK_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u17b4", "\u17b5"}


def invisible(ch: str) -> bool:
    """Whether the character ``ch`` renders as nothing (or only as space)."""
    return ch.isspace() or ch in _BLANK_LETTERS or unicodedata.category(ch) in _INVISIBLE


def blank(text: str) -> bool:
    """Whether ``text`` holds no visible character (empty, whitespace, zero-width, ...)."""
    return all(invisible(ch) for ch in text)


def not_text(text: str) -> str | None:
    """Why ``text`` is not text: a NUL character (what makes a file binary, whether raw or
    escaped as ``\\u0000``) or a lone surrogate that no UTF-8 file can hold; None when it is
    text. (Other control characters occur in real corpora and are kept.)"""
    for i, ch in enumerate(text):
        code = ord(ch)
        if code == 0:
            return f"NUL character at character {i}; this is not text"
        if 0xD800 <= code <= 0xDFFF:
            return f"lone surrogate U+{code:04X} at character {i} (not valid Unicode text)"
    return None
