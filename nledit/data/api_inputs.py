"""What the Python API accepts as data, edits and prompt, turned into nledit's own types.

Data: a list of ``(text, label)`` pairs, a ``datasets.Dataset`` with ``text`` and ``label``
columns, or a recipe data spec (a ``DataSpec`` or a mapping with ``source``). Labels are names
or ids; names come from ``label_names``, a ``ClassLabel`` column, or the sorted label strings.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ..errors import EditError
from ..recipe import DataSpec, EditSpec, ModelSpec, PromptSpec, Recipe
from .blank import blank, not_text
from .dataset import Examples


def _problems(err: ValidationError, where: str) -> str:
    return "; ".join(
        f"{where}{'.' if e['loc'] else ''}{'.'.join(str(x) for x in e['loc'])}: "
        + e["msg"].removeprefix("Value error, ")
        for e in err.errors()
    )


def validated(model: type[BaseModel], value: Any, where: str) -> Any:
    """``value`` as an instance of the recipe model ``model``; problems name ``where``."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as err:
        raise EditError(_problems(err, where)) from None


@functools.cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    strict = ConfigDict(strict=True, allow_inf_nan=False)
    kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(kind, config=strict)


def field_value(model: type[BaseModel], name: str, value: Any, where: str) -> Any:
    """``value`` validated as the recipe field ``name`` of ``model`` (its type and bounds,
    strictly: no coercion), for the API argument ``where``; an :class:`EditError` names it."""
    try:
        return _adapter(model, name).validate_python(value)
    except ValidationError as err:
        raise EditError(_problems(err, where)) from None


def edit_specs(edits: Any) -> list[EditSpec]:
    """A list of edit mappings (recipe ``edits`` entries) or ``EditSpec``s, validated."""
    if isinstance(edits, (dict, EditSpec)):
        edits = [edits]
    if not isinstance(edits, Sequence) or isinstance(edits, str) or not edits:
        raise EditError("edits: expected a non-empty list of edits, e.g. [{'concepts': ['x']}]")
    return [validated(EditSpec, e, f"edits.{i}") for i, e in enumerate(edits)]


def prompt_spec(prompt: Any) -> PromptSpec:
    """``None``: the text as it is, no shots; a mapping (``shots`` defaults to 0 here)."""
    if prompt is None:
        return PromptSpec(shots=0)
    if isinstance(prompt, dict):
        prompt = {"shots": 0, **prompt}
    return validated(PromptSpec, prompt, "prompt")


def data_spec(data: Any) -> DataSpec | None:
    """The recipe data spec ``data`` is, or None when it holds the examples themselves."""
    if isinstance(data, DataSpec):
        return data
    if isinstance(data, dict) and "source" in data:
        return validated(DataSpec, data, "data")
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


def label_names_of(value: Any, where: str = "label_names") -> list[str]:
    """Label names as ``data.label_names`` takes them: a non-empty list of distinct texts."""
    names = field_value(DataSpec, "label_names", value, where)
    if names is None:
        raise EditError(f"{where}: expected a non-empty list of label names")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise EditError(f"{where}: {dups[0]!r} is listed twice; names must be unique")
    return list(names)


def _label_kind(y: Any, at: str) -> type:
    """``str`` (a label name) or ``int`` (a label id); anything else is refused."""
    if isinstance(y, str):
        return str
    if isinstance(y, numbers.Integral) and not isinstance(y, bool):  # numpy ints too
        return int
    raise EditError(
        f"{at}: label {y!r:.40} is neither a label name (text) nor a label id (whole number)"
    )


def _inferred_names(labels: list[Any], kinds: list[type], where: str) -> list[str]:
    """Label names read off the labels: the sorted names, or ids 0..max (one kind only)."""
    if len(set(kinds)) > 1:
        first = {k: n for n, k in reversed(list(enumerate(kinds)))}
        raise EditError(
            f"{where}: the labels mix names and ids ({where}[{first[str]}] is "
            f"{labels[first[str]]!r}, {where}[{first[int]}] is {labels[first[int]]!r}); use "
            "one kind, or pass label_names"
        )
    if kinds[0] is str:
        for n, y in enumerate(labels):
            if blank(y):
                raise EditError(f"{where}[{n}]: label {y!r} has no visible character")
        return sorted(set(labels))
    top = max(labels)
    if top >= len(labels):
        raise EditError(
            f"{where}: label ids run up to {top} for {len(labels)} examples; pass label_names"
        )
    return [str(i) for i in range(max(top, 0) + 1)]


def examples(data: Any, label_names: Any = None, where: str = "data") -> tuple[Examples, list[str]]:
    """In-memory data as examples and the label names (given, from the data, or inferred)."""
    texts, labels, names = _pairs(data, where)
    if not texts:
        raise EditError(f"{where}: no examples")
    kinds = [_label_kind(y, f"{where}[{n}]") for n, y in enumerate(labels)]
    if label_names is not None:
        names = label_names_of(label_names)
    elif names is not None:
        names = label_names_of(names, f"{where} label names")
    else:
        names = _inferred_names(labels, kinds, where)
    ids = []
    for n, (text, y) in enumerate(zip(texts, labels)):
        if not isinstance(text, str) or blank(text):
            raise EditError(
                f"{where}[{n}]: the text is empty, not text, or only invisible characters "
                "(whitespace, zero-width or control characters)"
            )
        why = not_text(text)
        if why:
            raise EditError(f"{where}[{n}]: the text holds a {why}")
        if isinstance(y, str):
            if y not in names:
                raise EditError(f"{where}[{n}]: label {y!r} is not one of {names}")
            y = names.index(y)
        if not 0 <= y < len(names):
            raise EditError(f"{where}[{n}]: label {y!r} outside 0..{len(names) - 1}")
        ids.append(int(y))
    return Examples(list(texts), ids), names


def model_id_of(model: Any, model_id: Any) -> str:
    """The base model's id: ``model_id`` (validated as ``model.id``), else the model's own
    ``name_or_path`` ("" when it has none, e.g. a model built from a config)."""
    if model_id is not None:
        mid = str(field_value(ModelSpec, "id", model_id, "model_id"))
        if blank(mid):
            raise EditError("model_id: must not be empty")
        return mid
    mid = getattr(model, "name_or_path", "") or ""
    return mid if isinstance(mid, str) and mid.strip() else ""


def batch_size_of(value: Any) -> int:
    """``batch_size`` as the recipe's, a whole number (``auto`` is for recipes only)."""
    size = field_value(Recipe, "batch_size", value, "batch_size")
    if size == "auto":
        raise EditError("batch_size: auto is for recipes; the API takes a whole number ≥ 1")
    return int(size)


def check_no_gates(model: Any, what: str) -> None:
    """``what`` (fit, export) reads the base model: no nledit gate may be installed on it."""
    from ..runtime.gate import RangeGate

    if any(isinstance(m, RangeGate) for m in model.modules()):
        raise EditError(
            f"{what}: the model has nledit gates installed (inside an edit's applied() "
            "block?); call it outside applied(), on the base model"
        )


def listed(value: Any) -> Any:
    """A tuple argument as the list a recipe field takes."""
    return list(value) if isinstance(value, tuple) else value


def checked_args(model: Any, **args: tuple[type, str, Any]) -> dict[str, Any]:
    """Each API argument validated as the recipe field it stands for: ``name=(model, field,
    value)``; also refuses an object that is not a torch model."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise EditError(f"model: expected a transformers model, got {type(model).__name__}")
    return {k: field_value(m, f, v, k) for k, (m, f, v) in args.items()}
