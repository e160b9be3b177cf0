"""The recipe's operator section (``edits.N.operator``): a union of one model per operator,
discriminated by ``name`` and generated from the operator classes in ``gate.py``.

Each operator's section takes exactly its own parameters (default and bounds: its ``Param``)
and fit-time options; a key of another operator is refused, naming the field and the operator
it belongs to. The models are built on first use from the live registry, so an operator class
defined after nledit is imported gets its section without any edit here.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    WrapValidator,
    create_model,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..runtime import operators
from ..runtime.gate import RANGE_GATE_PARAMS
from .base import OperatorName, PathStr, StrictModel

__all__ = [
    "OperatorField",
    "OperatorSection",
    "operator_section",
    "section_fields",
    "section_model",
]

DEFAULT = "zero"  # the operator of an edit that names none

# The fit-time options an operator class may list (``Operator.options``), with their types.
OPTIONS: dict[str, Any] = {
    "mean_source": (
        PathStr | None,
        Field(None, description="general text for `mean` (default: data)"),
    ),
}


class OperatorSection(StrictModel):
    """The section of one operator: its name, its parameters and its options (the fields of the
    generated subclass for that operator, ``section_model``)."""

    name: str

    def param(self, name: str) -> float:
        """Run-time parameter ``name``: set in this section, else the default its declaring
        class states (a range gate records the format's four parameters whatever its
        operator, ``gate.RANGE_GATE_PARAMS``)."""
        if name in type(self).model_fields and name != "name":
            return float(getattr(self, name))
        return float(operators.param_spec(name).default)

    def option(self, name: str) -> Any:
        """Fit-time option ``name`` (``mean_source``): None when this operator has none."""
        return getattr(self, name, None) if name in type(self).model_fields else None

    def definition(self) -> dict[str, Any]:
        """The section as the edit's definition hash reads it: every range gate's parameters
        (``gate.RANGE_GATE_PARAMS`` set on the operator section) and ``mean_source``, then
        this operator's own, so an edit keeps the hash (and range file) it had before the
        section was split per operator."""
        shared = [p for p in RANGE_GATE_PARAMS if not operators.param_spec(p).edit_field]
        out: dict[str, Any] = {"name": self.name, **{p: self.param(p) for p in shared}}
        out["mean_source"] = self.option("mean_source")
        return {**out, **self.model_dump(mode="json", exclude={"name"})}


_MODELS: dict[str, tuple[type[operators.Operator], type[OperatorSection]]] = {}


def _param_field(param: operators.Param) -> Any:
    """A recipe field for an operator parameter, from its declaration."""
    bounds = {"ge": param.ge, "gt": param.gt, "le": param.le}
    kw = {k: v for k, v in bounds.items() if v is not None}
    return (float, Field(param.default, description=param.doc or None, **kw))


def section_model(name: str) -> type[OperatorSection]:
    """The section model of operator ``name``, generated from its class (cached while the
    registry holds the same class)."""
    cls = operators.get(name)
    cached = _MODELS.get(name)
    if cached is not None and cached[0] is cls:
        return cached[1]
    fields: dict[str, Any] = {"name": (Literal[name], name)}  # type: ignore[valid-type]
    fields |= {p: _param_field(d) for p, d in cls.params.items() if not d.edit_field}
    unknown = [o for o in cls.options if o not in OPTIONS]
    if unknown:
        raise TypeError(f"operator {name!r}: unknown fit-time options {unknown}; see {__name__}")
    fields |= {o: OPTIONS[o] for o in cls.options}
    model = create_model(
        f"OperatorSection_{name}",
        __base__=OperatorSection,
        __doc__=f"The section of the {name} operator ({cls.doc or name}).",
        __module__=__name__,
        **fields,
    )
    _MODELS[name] = (cls, model)
    return model


def _owners(key: str) -> list[str]:
    """The operators whose section has field ``key``."""
    out = []
    for op in operators.OPERATORS.values():
        param = op.params.get(key)
        if (param is not None and not param.edit_field) or key in op.options:
            out.append(op.name)
    return out


def _all_fields() -> list[str]:
    """Every key some operator's section takes."""
    names = [op.name for op in operators.OPERATORS.values() if op.in_recipe]
    return sorted({f for n in names for f in section_fields(n)})


def _not_in_section(name: str | None, key: str) -> str:
    """Why ``key`` is refused in the section of operator ``name`` (None: an unknown operator),
    and what the section takes."""
    if key in operators.known_params() and not _owners(key):  # tau: set on the edit
        return f"not an operator field: {key} is set on the edit (edits.N.{key})"
    owners = _owners(key)
    if not owners:
        close = difflib.get_close_matches(key, _all_fields(), n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if name is None:
        return f"a field of the {', '.join(owners)} operator"
    takes = [f for f in section_fields(name) if f != "name"]
    where = f"takes {', '.join(takes)}" if takes else "takes no parameters"
    return f"not used by the {name} operator (its section {where}); {key} belongs to " + ", ".join(
        owners
    )


class _Name(StrictModel):
    name: OperatorName = DEFAULT


def _refused(name: str | None, keys: list[str], value: dict[str, Any]) -> list[InitErrorDetails]:
    """The errors for ``keys`` of ``value`` that the section of ``name`` does not take."""
    return [
        InitErrorDetails(
            type=PydanticCustomError("operator_field", "{why}", {"why": _not_in_section(name, k)}),
            loc=(k,),
            input=value[k],
        )
        for k in keys
    ]


def _again(e: Any) -> InitErrorDetails:
    """A line error of a validation, to raise again with others."""
    return InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))


def _dispatch(value: Any, handler: Any) -> Any:
    """Validate a section with the model of the operator it names (the discriminator)."""
    if isinstance(value, OperatorSection):
        value = value.model_dump(exclude_unset=True) | {"name": value.name}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        return handler(value)  # the base model's own type error ("expected a mapping")
    try:
        name = _Name.model_validate({"name": value.get("name", DEFAULT)}).name
    except ValidationError as err:  # an unknown operator: its name, and keys no section takes
        errors = [_again(e) for e in err.errors()]
        unknown = [k for k in value if k not in _all_fields()]
        raise ValidationError.from_exception_data(
            "OperatorSection", errors + _refused(None, unknown, value)
        ) from None
    model = section_model(name)
    foreign = [k for k in value if k not in model.model_fields]
    if foreign:
        raise ValidationError.from_exception_data("OperatorSection", _refused(name, foreign, value))
    return model.model_validate(value)


# The type of ``EditSpec.operator``: serialised as the operator's own model.
OperatorField = Annotated[SerializeAsAny[OperatorSection], WrapValidator(_dispatch)]


def operator_section(name: str = DEFAULT, **fields: Any) -> OperatorSection:
    """The validated section of operator ``name`` with ``fields`` (the same checks as a recipe)."""
    return _dispatch({"name": name, **fields}, None)


def section_fields(name: str) -> tuple[str, ...]:
    """The keys the section of operator ``name`` takes (``name`` first)."""
    return tuple(section_model(name).model_fields)


def _name_of(section: Any) -> Any:
    """The operator a raw section names (a mapping without ``name``: the default)."""
    return section.get("name", DEFAULT) if isinstance(section, dict) else section


def prepare_overrides(data: dict[str, Any], keys: list[str]) -> dict[int, Any]:
    """Before ``--set`` keys are applied: write each operator section they reach into as a
    mapping (``operator: zero`` -> ``{name: zero}``); the names the sections had."""
    edits = data.get("edits")
    named: dict[int, Any] = {}
    if not isinstance(edits, list):
        return named
    for i, edit in enumerate(edits):
        if isinstance(edit, dict):
            named[i] = _name_of(edit.get("operator", DEFAULT))
            reached = any(k.startswith(f"edits.{i}.operator.") for k in keys)
            if reached and isinstance(edit.get("operator", DEFAULT), str):
                edit["operator"] = {"name": edit.get("operator", DEFAULT)}
    return named


def finish_overrides(data: dict[str, Any], keys: list[str], named: dict[int, Any]) -> None:
    """After ``--set`` keys are applied: a section whose operator they changed keeps only what
    the new operator takes, and what the keys set (the old operator's parameters go with it;
    a key set for the wrong operator is still refused by the section)."""
    edits = data.get("edits")
    for i, before in named.items():
        edit = edits[i] if isinstance(edits, list) and i < len(edits) else None
        section = edit.get("operator") if isinstance(edit, dict) else None
        name = _name_of(section)
        if (
            not isinstance(section, dict)
            or name == before
            or f"edits.{i}.operator" in keys
            or name not in operators.OPERATORS
        ):
            continue
        takes = set(section_fields(name))
        given = {k.removeprefix(f"edits.{i}.operator.") for k in keys}
        edit["operator"] = {k: v for k, v in section.items() if k in takes or k in given}
