"""General text for perplexity and the `mean` operator: load it, cut it into token windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import PerplexityError
from .files import not_a_file, read_text

LINE_STEPS = {
    "space_lines_to_empty": lambda line: "" if line == " " else line,
    "strip_lines": str.strip,
}


def preprocess(text: str, steps: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with each step applied to every line (lines split and re-joined on "\n")."""
    if not steps:
        return text
    lines = text.split("\n")
    for step in steps:
        lines = [LINE_STEPS[step](line) for line in lines]
    return "\n".join(lines)


def load_text(
    source: str, field: str = "eval.perplexity_source", steps: list[str] | tuple[str, ...] = ()
) -> str:
    """A local text file, or a Hub data set id (``name[:config]``) whose ``text`` is joined;
    errors name the recipe ``field`` the source came from; ``steps`` (``preprocess``) are
    applied to its lines."""
    return preprocess(_load(source, field), steps)


def _load(source: str, field: str) -> str:
    path = Path(source).expanduser()
    if path.is_file():
        return read_text(path, field, PerplexityError)
    if path.suffix or source.startswith((".", "/", "~")):
        raise PerplexityError(f"{field}: {not_a_file(path)}")
    import datasets

    name, _, config = source.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split="test")
    except Exception as err:
        raise PerplexityError(f"{field}: cannot load {source!r}: {err}") from err
    return "\n".join(ds["text"])


def windows(
    tokenizer: Any,
    text: str,
    size: int,
    count: int,
    field: str = "eval.perplexity_source",
    count_field: str | None = None,
) -> torch.Tensor:
    """The first ``count`` non-overlapping windows of ``size`` tokens: (count, size). With
    ``count_field`` (the setting ``count`` came from) a text holding fewer windows is an
    error naming it; without, up to ``count`` windows are taken."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = min(count, len(ids) // size)
    if n == 0:
        raise PerplexityError(
            f"{field}: text has {len(ids)} tokens, fewer than one window of {size}"
        )
    if count_field is not None and n < count:
        raise PerplexityError(
            f"{count_field}: {count} windows of {size} tokens asked, but the text of {field} "
            f"holds {n} ({len(ids)} tokens); ask for at most {n}"
        )
    return torch.tensor(ids[: n * size]).view(n, size)


def check_source(tokenizer: Any, source: str, size: int, field: str) -> None:
    """Fail now, not after the fit, when ``source`` holds less than one window of text."""
    windows(tokenizer, load_text(source, field), size, 1, field)
