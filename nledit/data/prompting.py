"""How texts are shaped before they enter a prompt: whitespace and demonstration length."""

from __future__ import annotations

from ..recipe import PromptSpec


def clean(text: str, prompt: PromptSpec) -> str:
    """``text`` with runs of whitespace collapsed to one space when the prompt asks for it."""
    return " ".join(text.split()) if prompt.normalize_whitespace else text


def demo_text(text: str, prompt: PromptSpec) -> str:
    """A demonstration as the prompt shows it: cleaned, then cut to ``shot_words`` words
    (a cut text's words are joined by single spaces)."""
    text = clean(text, prompt)
    if prompt.shot_words is not None:
        words = text.split()
        if len(words) > prompt.shot_words:
            text = " ".join(words[: prompt.shot_words])
    return text


def common_prefix(*seqs: list[int]) -> int:
    """Length of the longest prefix all ``seqs`` share."""
    n = 0
    for items in zip(*seqs):
        if any(x != items[0] for x in items[1:]):
            break
        n += 1
    return n
