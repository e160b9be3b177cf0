"""Shared pieces of the recipe schema: field types, the strict base model, the error type."""

from __future__ import annotations

import difflib
import math
import os
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from pydantic_core import PydanticCustomError
from typing_extensions import Self

from ..data.blank import blank
from ..errors import NleditError
from ..fitting import saliency_registry as saliencies
from ..runtime import operators

Dtype = Literal["float32", "bfloat16", "float16"]


# Names come from the registries (operators.py, saliencies.py): one place to add a method.
Saliency = Literal[saliencies.names()]  # type: ignore[valid-type]


RangeShape = Literal["sigma", "quantile"]


Selectivity = Literal["mass", "auroc"]


def _operator_name(tunable: bool) -> BeforeValidator:
    """A check against the live operator registry: an operator class defined after nledit
    is imported is a valid name too (same message as a ``Literal``)."""

    def check(v: Any) -> Any:
        known = operators.names(in_recipe=True, tunable=tunable)
        if isinstance(v, str) and v in known:
            return v
        quoted = [repr(n) for n in known]
        expected = ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )

    return BeforeValidator(check)


# an operator the tuner may search (gate.Operator.tunable)
TunableOperator = Annotated[str, _operator_name(tunable=True)]


Objective = Literal["d_acc", "d_conf", "d_cacc", "d_cconf", "d_ppl", "selectivity"]


# torch device strings: a known type and an optional index
DEVICE = r"^(cpu|cuda|mps|xpu|hpu|npu|meta)(:[0-9]+)?$"


# database URLs: dialect[+driver]://...
STORAGE = r"^[a-z][a-z0-9]*(\+[a-z0-9_]+)?://"


OperatorName = Annotated[str, _operator_name(tunable=False)]  # an operator an edit may name


def _expandable(value: str) -> str:
    """A path starting with ``~user`` must name a user whose home folder is known."""
    if value.startswith("~") and os.path.expanduser(value) == value:
        raise ValueError(f"cannot expand {value!r}: no home folder for that user")
    return value


PathStr = Annotated[str, AfterValidator(_expandable)]  # a file or folder path (or a Hub id)
# A random seed: what every generator nledit seeds (torch, numpy, random) takes as it is,
# so a negative or larger seed is refused rather than wrapped.
Seed = Annotated[int, Field(ge=0, lt=2**32)]
MAX_BATCH = 2**16  # rows per batch; anything larger is a typo, not a batch
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH)]


def _visible(value: str) -> str:
    """A text must hold a visible character (not only whitespace, zero-width or control)."""
    if blank(value):
        raise ValueError(
            f"{value!r} has no visible character (only whitespace, zero-width or control "
            "characters)"
        )
    return value


VisibleStr = Annotated[str, AfterValidator(_visible)]  # a text someone must be able to read


class RecipeError(NleditError, ValueError):
    """A recipe that cannot be used; ``problems`` lists every ``field.path: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid recipe {source}:\n{lines}")


class StrictModel(BaseModel):
    """The base of every recipe section: unknown keys and lax types are refused."""

    # strict: no coercion (a boolean is not a number, "3" is not an integer); finite floats only
    model_config = ConfigDict(
        extra="forbid", validate_default=True, strict=True, allow_inf_nan=False
    )

    def updated(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated as a recipe is (a pydantic copy with an update
        would skip validation): the fields set stay set, and the checks run again."""
        data = {k: getattr(self, k) for k in self.model_fields_set} | changes
        return type(self).model_validate(data)


def duplicate_items(items: list[str]) -> list[str]:
    """Items that occur more than once, each named once, in order of first repeat."""
    seen: set[str] = set()
    dups: list[str] = []
    for x in items:
        if x in seen and x not in dups:
            dups.append(x)
        seen.add(x)
    return dups


def slug(s: str) -> str:
    """A file- and id-safe lower-case form of ``s`` (``c`` when nothing is left)."""
    return "".join(ch if ch.isalnum() else "-" for ch in s).strip("-").lower() or "c"


def suggestion(word: str, options: list[str]) -> str:
    """`` (did you mean ...?)`` naming the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shown_value(value: Any) -> str:
    """A scalar as YAML writes it (``true``, ``.inf``), a collection elided."""
    if isinstance(value, bool):
        return "(true)" if value else "(false)"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, (int, float, str)):
        return f"({value!r})" if len(repr(value)) <= 40 else ""
    return ""


def yaml_type_name(value: Any) -> str:
    """The YAML name of a parsed value's type, for messages."""
    if value is None:
        return "nothing (null)"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    kinds |= {list: "a list", dict: "a mapping"}
    return kinds.get(type(value), type(value).__name__)
