"""The operator registry: every operator phi an edit can apply, and what it needs.

Each operator is one class in ``gate.py`` (the run-time, copied into checkpoints; it cannot
import this module): its parameters with defaults and bounds, its ``phi``, the value vector and
tensors it reads and whether the tuner may search it. Defining a subclass of ``gate.Operator``
registers it. This module reads those classes for everything else: recipe validation (which
names an edit may use, which the tuner may search), the fit (which value vector to compute),
the gate parameters, the model card, the sweep fingerprint and the tuner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .gate import OPERATOR_CLASSES, RANGE_GATE_PARAMS, TAU, Operator, Param, operator_class

__all__ = ["OPERATORS", "TAU", "Operator", "Param", "get", "names"]

OPERATORS: dict[str, type[Operator]] = OPERATOR_CLASSES  # the live registry, by name


def get(name: str) -> type[Operator]:
    """The class of operator ``name`` (``KeyError`` names the known operators)."""
    try:
        return operator_class(name)
    except ValueError as err:
        raise KeyError(str(err)) from None


def names(*, in_recipe: bool = False, tunable: bool = False) -> tuple[str, ...]:
    """Operator names, optionally only those an edit may name or the tuner may search."""
    return tuple(
        op.name
        for op in OPERATORS.values()
        if (op.in_recipe or not in_recipe) and (op.tunable or not tunable)
    )


def known_params() -> tuple[str, ...]:
    """Every run-time parameter some operator reads (a gate's other params are unknown)."""
    return tuple(sorted({p for op in OPERATORS.values() for p in op.params}))


def tuned_params() -> tuple[str, ...]:
    """Every parameter the tuner searches for some operator."""
    return tuple(sorted({p for op in OPERATORS.values() for p in op.tuned}))


def param_spec(name: str) -> Param:
    """The declaration of parameter ``name`` (the first operator that declares it)."""
    for op in OPERATORS.values():
        if name in op.params:
            return op.params[name]
    raise KeyError(f"no operator has a parameter {name!r}")


def gate_params(name: str) -> tuple[str, ...]:
    """The parameters a range gate of operator ``name`` records: the format's four, plus the
    operator's own."""
    return tuple(sorted(set(RANGE_GATE_PARAMS) | set(get(name).params)))


def recipe_options(name: str) -> tuple[str, ...]:
    """The fields of ``edits.N.operator`` that matter for operator ``name``: its parameters
    set in the operator section, then its fit-time options."""
    op = get(name)
    return tuple(p for p, d in op.params.items() if not d.edit_field) + op.options


def needs_general_mean(name: str) -> bool:
    """Whether operator ``name`` reads the general-text mean (computed at fit time)."""
    return get(name).value == "general_mean"


def needs_leace(edits: Iterable[Any], baselines: Iterable[str] = ()) -> bool:
    """Whether any edit (``EditSpec``) uses the LEACE operator or ``baselines`` include it: then
    the statistics pass also fits the LEACE statistics (a d x d covariance per layer)."""
    return "leace" in baselines or any(e.operator.name == "leace" for e in edits)
