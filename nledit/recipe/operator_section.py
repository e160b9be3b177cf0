"""The recipe's operator section (``edits.N.operator``), generated from the operator classes
in ``gate.py``: each parameter's default and bounds are stated once, on its class."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, PrivateAttr, create_model, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from ..runtime import operators
from ..runtime.gate import RANGE_GATE_PARAMS
from .base import OperatorName, PathStr, StrictModel

__all__ = ["OperatorSpec"]


class _OperatorBase(StrictModel):
    """The range-gated operator phi and its parameters (defaults and bounds: its class in
    ``gate.py``). The section takes the format's parameters (``gate.RANGE_GATE_PARAMS``) for
    every operator, as every range gate records them, plus the named operator's own."""

    name: OperatorName = "zero"
    _own: dict[str, float] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _own_params(cls, data: Any, handler: Any) -> Any:
        """Parameters of an operator defined after this schema was built: checked against
        their ``Param`` bounds here and kept apart (the others are fields)."""
        own: dict[str, float] = {}
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            declared = operators.OPERATORS.get(data["name"])
            extra = [k for k in (declared.params if declared else ()) if k not in cls.model_fields]
            for key in extra:
                if key not in data:
                    continue
                v = data[key]
                number = isinstance(v, (int, float)) and not isinstance(v, bool)
                problem = (
                    operators.get(data["name"]).params[key].problem(v)
                    if number and math.isfinite(v)
                    else "must be a finite number"
                )
                if problem:
                    raise PydanticCustomError("value_error", f"{key}: {problem}, got {v!r}")
                own[key] = float(v)
            data = {k: v for k, v in data.items() if k not in own}
        out = handler(data)
        if own:
            out._own = own
        return out

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        return {**handler(self), **self._own}

    def param(self, name: str) -> float:
        """The value of run-time parameter ``name``: set here, else its class default."""
        if name in type(self).model_fields:
            return float(getattr(self, name))
        if name in self._own:
            return self._own[name]
        return float(operators.get(self.name).params[name].default)


def _param_field(param: operators.Param) -> Any:
    """A recipe field for an operator parameter, from its declaration."""
    bounds = {"ge": param.ge, "gt": param.gt, "le": param.le}
    kw = {k: v for k, v in bounds.items() if v is not None}
    return (float, Field(param.default, description=param.doc or None, **kw))


OperatorSpec = create_model(
    "OperatorSpec",
    __base__=_OperatorBase,
    __doc__=_OperatorBase.__doc__,
    __module__=__name__,
    **{
        p: _param_field(operators.param_spec(p))
        for p in RANGE_GATE_PARAMS
        if not operators.param_spec(p).edit_field
    },
    mean_source=(
        PathStr | None,
        Field(None, description="general text for `mean` (default: data)"),
    ),
)
