"""What the Python API accepts as data, edits and prompt, turned into nledit's own types.

Data: a list of ``(text, label)`` pairs, a ``datasets.Dataset`` with ``text`` and ``label``
columns, or a recipe data spec (a ``DataSpec`` or a mapping with ``source``). Labels are names
or ids; names come from ``label_names``, a ``ClassLabel`` column, or the sorted label strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from .data import Examples
from .errors import EditError
from .recipe import DataSpec, EditSpec, PromptSpec


def _problems(err: ValidationError, where: str) -> str:
    return "; ".join(
        f"{where}{'.' if e['loc'] else ''}{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
        for e in err.errors()
    )


def _validated(model: type[BaseModel], value: Any, where: str) -> Any:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as err:
        raise EditError(_problems(err, where)) from None


def edit_specs(edits: Any) -> list[EditSpec]:
    """A list of edit mappings (recipe ``edits`` entries) or ``EditSpec``s, validated."""
    if isinstance(edits, (dict, EditSpec)):
        edits = [edits]
    if not isinstance(edits, Sequence) or isinstance(edits, str) or not edits:
        raise EditError("edits: expected a non-empty list of edits, e.g. [{'concepts': ['x']}]")
    return [_validated(EditSpec, e, f"edits.{i}") for i, e in enumerate(edits)]


def prompt_spec(prompt: Any) -> PromptSpec:
    """``None``: the text as it is, no shots; a mapping (``shots`` defaults to 0 here)."""
    if prompt is None:
        return PromptSpec(shots=0)
    if isinstance(prompt, dict):
        prompt = {"shots": 0, **prompt}
    return _validated(PromptSpec, prompt, "prompt")


def data_spec(data: Any) -> DataSpec | None:
    """The recipe data spec ``data`` is, or None when it holds the examples themselves."""
    if isinstance(data, DataSpec):
        return data
    if isinstance(data, dict) and "source" in data:
        return _validated(DataSpec, data, "data")
    return None


def _pairs(data: Any, where: str) -> tuple[list[Any], list[Any], list[str] | None]:
    """Texts, labels and (for a ClassLabel column) label names of in-memory data."""
    if hasattr(data, "column_names") and hasattr(data, "features"):  # a datasets.Dataset
        for col in ("text", "label"):
            if col not in data.column_names:
                raise EditError(f"{where}: the data set has no {col!r} column")
        names = getattr(data.features["label"], "names", None)
        return list(data["text"]), list(data["label"]), list(names) if names else None
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise EditError(
            f"{where}: expected a list of (text, label) pairs, a datasets.Dataset or a recipe "
            f"data spec, got {type(data).__name__}"
        )
    texts, labels = [], []
    for n, row in enumerate(data):
        if not isinstance(row, (tuple, list)) or len(row) != 2:
            raise EditError(f"{where}[{n}]: expected a (text, label) pair, got {row!r:.60}")
        texts.append(row[0])
        labels.append(row[1])
    return texts, labels, None


def examples(
    data: Any, label_names: list[str] | None = None, where: str = "data"
) -> tuple[Examples, list[str]]:
    """In-memory data as examples and the label names (given, from the data, or inferred)."""
    texts, labels, names = _pairs(data, where)
    if not texts:
        raise EditError(f"{where}: no examples")
    names = list(label_names) if label_names is not None else names
    if names is None:
        if all(isinstance(y, str) for y in labels):
            names = sorted(set(labels))
        else:
            names = [str(i) for i in range(max(int(y) for y in labels) + 1)]
    ids = []
    for n, (text, y) in enumerate(zip(texts, labels)):
        if not isinstance(text, str) or not text.strip():
            raise EditError(f"{where}[{n}]: empty or non-text example")
        if isinstance(y, str):
            if y not in names:
                raise EditError(f"{where}[{n}]: label {y!r} is not one of {names}")
            y = names.index(y)
        if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < len(names):
            raise EditError(f"{where}[{n}]: label {y!r} outside 0..{len(names) - 1}")
        ids.append(y)
    return Examples(list(texts), ids), names
