"""Token-level concepts (App. K): a class is the NEXT token in running text.

``data.token_classes`` maps each class to its words, e.g. ``{he: [he], she: [she], they: [they]}``.
The text is cut into units (a run of word characters, or one punctuation mark). Every unit equal
to a class word (case-sensitive) is a target; the example is the bounded context right before
it, and its label is the class. The target token includes the whitespace in front of it, as BPE
tokens do (" he"), so the context is cut right before that whitespace and its last token is the
one that predicts the target.

Each class is scored by its label word (default: a space and the class's first word). A target
is kept only when the whitespace in front of it is exactly the label word's leading whitespace:
with " ." the WikiText form "end ." counts and prose "end." does not; with "." it is the other
way round. So the scored token is always the true next token's form.

Examples never share text: every example's span (context and target) is disjoint from all
others, chosen class by class from the rarest, so a fit example can never appear inside an
evaluation example.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

from ..recipe import DataSpec

UNIT = re.compile(r"\w+|[^\w\s]")
TEXT_SUFFIXES = (".txt", ".raw", ".text", ".md")


@dataclass(frozen=True)
class TokenExample:
    """One target occurrence: ``text[start:cut]`` is the context, ``text[cut:end]`` the target."""

    context: str
    label: int
    start: int  # where the context starts in the source text
    cut: int  # where the context ends (the target's leading whitespace starts here)
    end: int  # where the target word ends


def is_unit(word: str) -> bool:
    """A class word must be one unit: a word or a single punctuation mark."""
    return UNIT.fullmatch(word) is not None


def default_label_words(classes: dict[str, list[str]]) -> list[str]:
    return [" " + words[0] for words in classes.values()]


def leading_space(word: str) -> str:
    return word[: len(word) - len(word.lstrip())]


def scan(
    text: str,
    classes: dict[str, list[str]],
    label_words: list[str] | None = None,
    window: int = 48,
) -> list[TokenExample]:
    """All usable targets in ``text``, with non-overlapping spans, in text order.

    ``window`` units of context are required before each target (targets closer to the start
    of the text are skipped).
    """
    label_words = label_words or default_label_words(classes)
    word_class = {w: c for c, words in enumerate(classes.values()) for w in words}
    gaps = [leading_space(w) for w in label_words]
    units = [(m.start(), m.end()) for m in UNIT.finditer(text)]
    found: list[list[tuple[int, int, int]]] = [[] for _ in classes]
    for i in range(window, len(units)):
        s, e = units[i]
        c = word_class.get(text[s:e])
        if c is None:
            continue
        cut = units[i - 1][1]
        if text[cut:s] != gaps[c]:
            continue
        found[c].append((units[i - window][0], cut, e))
    # Rarest class first: where spans collide, the rarer concept keeps its example.
    taken_starts: list[int] = []
    taken: list[tuple[int, int]] = []
    out: list[TokenExample] = []
    for c in sorted(range(len(found)), key=lambda k: (len(found[k]), k)):
        for start, cut, end in found[c]:
            j = bisect.bisect_left(taken_starts, start)
            if j > 0 and taken[j - 1][1] > start:
                continue
            if j < len(taken) and taken[j][0] < end:
                continue
            taken_starts.insert(j, start)
            taken.insert(j, (start, end))
            out.append(TokenExample(text[start:cut], c, start, cut, end))
    out.sort(key=lambda ex: ex.start)
    return out


def load_text(source: str, config: str | None, split: str, spec: DataSpec, field: str) -> str:
    """Running text from a local text file or a Hub data set's text column (lines joined)."""
    path = Path(source).expanduser()
    if path.suffix in TEXT_SUFFIXES or path.exists() or source.startswith((".", "/", "~")):
        from ..errors import DataError
        from .files import not_a_file, read_text

        if not path.is_file():
            raise _error(f"{field}: {not_a_file(path)}")

        return read_text(path, field, DataError)
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(source, config, split=split)
    except Exception as err:
        raise _error(f"{field}: cannot load data set {source!r}: {err}") from err
    if spec.text_field not in ds.column_names:
        raise _error(
            f"data.text_field: column {spec.text_field!r} not in {source} "
            f"(columns: {', '.join(ds.column_names)})"
        )
    return "\n".join(str(line).rstrip("\n") for line in ds[spec.text_field])


def token_examples(
    spec: DataSpec, source: str, split: str, label_words: list[str] | None, field: str
) -> tuple[list[str], list[int]]:
    """(texts, labels) of every usable target in ``source``."""
    assert spec.token_classes is not None
    text = load_text(source, spec.config, split, spec, field)
    found = scan(text, spec.token_classes, label_words, spec.context_words)
    return [ex.context for ex in found], [ex.label for ex in found]


def _error(message: str) -> Exception:
    from ..errors import DataError

    return DataError(message)
