"""Which rows become demonstrations, fitting and evaluation candidates when a recipe pins them.

By default the data split draws them with the seed (``data``); these helpers serve the recipe
fields that fix them instead: ``prompt.demonstrations``, ``prompt.shot_sampling``,
``data.fit_indices`` and ``data.eval_indices``. They work on plain lists, so ``data`` can use
them without a cycle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..errors import DataError
from ..recipe.protocol import ClassIndices, Demonstration, IndexFile
from .files import loads, not_a_file, read_text


def shot_counts(shots: int, n_classes: int, sampling: str, seed: int) -> list[int]:
    """Shots per class: an equal share each, the remainder to the first classes
    (``first_classes``) or to classes drawn with ``seed`` (``per_class``)."""
    extra = list(range(n_classes))
    if sampling == "per_class":
        random.Random(seed).shuffle(extra)
    lucky = set(extra[: shots % n_classes])
    return [shots // n_classes + (1 if c in lucky else 0) for c in range(n_classes)]


def _dig(doc: object, key: str | None, where: str) -> object:
    for part in key.split(".") if key else []:
        if not isinstance(doc, dict) or part not in doc:
            raise DataError(f"{where}: no key {key!r} in the file (missing {part!r})")
        doc = doc[part]
    return doc


def class_indices(spec: ClassIndices, names: list[str], field: str) -> dict[int, list[int]]:
    """Per class id, the 0-based rows listed for it (a class not listed gets none)."""
    mapping: object = spec
    if isinstance(spec, IndexFile):
        path = Path(spec.file).expanduser()
        if not path.is_file():
            raise DataError(f"{field}.file: {not_a_file(path)}")
        try:
            doc = loads(read_text(path, f"{field}.file", DataError))
        except (json.JSONDecodeError, ValueError) as err:
            raise DataError(f"{field}.file: {path}: invalid JSON ({err})") from None
        mapping = _dig(doc, spec.key, f"{field}.key")
    if not isinstance(mapping, dict):
        raise DataError(f"{field}: expected a mapping of class names to row lists")
    out: dict[int, list[int]] = {c: [] for c in range(len(names))}
    for name, rows in mapping.items():
        if name not in names:
            raise DataError(f"{field}: {name!r} is not a label; labels are {names}")
        bad = [r for r in rows if isinstance(r, bool) or not isinstance(r, int) or r < 0]
        if not isinstance(rows, list) or bad:
            raise DataError(f"{field}.{name}: expected a list of 0-based row numbers")
        out[names.index(name)] = list(rows)
    return out


def pick(
    texts: list[str], labels: list[int], rows: list[int], label: int, field: str, names: list[str]
) -> list[str]:
    """The texts of ``rows``, each checked to exist and to carry ``label``."""
    out = []
    for r in rows:
        if r >= len(texts):
            raise DataError(f"{field}: row {r} is past the end of the data ({len(texts)} rows)")
        if labels[r] != label:
            raise DataError(
                f"{field}: row {r} is labelled {names[labels[r]]!r}, not {names[label]!r}"
            )
        out.append(texts[r])
    return out


def demonstrations(
    demos: list[Demonstration], texts: list[str], labels: list[int], names: list[str]
) -> tuple[list[str], list[int]]:
    """(texts, labels) of the listed demonstrations, in prompt order."""
    out_t, out_y = [], []
    for i, d in enumerate(demos):
        field = f"prompt.demonstrations.{i}"
        if d.index is not None:
            if d.index >= len(texts):
                raise DataError(f"{field}.index: row {d.index} is past the end ({len(texts)} rows)")
            out_t.append(texts[d.index])
            out_y.append(labels[d.index])
            continue
        label = d.label
        if isinstance(label, str) and label not in names:
            raise DataError(f"{field}.label: {label!r} is not a label; labels are {names}")
        y = names.index(label) if isinstance(label, str) else label
        if not isinstance(y, int) or not 0 <= y < len(names):
            raise DataError(f"{field}.label: {label!r} is outside 0..{len(names) - 1}")
        out_t.append(str(d.text))
        out_y.append(y)
    return out_t, out_y
