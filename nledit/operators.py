"""The operator registry: every operator phi an edit can apply, and what it needs.

``gate.py`` implements each operator at run time (it is copied into checkpoints and cannot
import this module); everything else reads this table: recipe validation (which names an edit
may use, which the tuner may search), the fit (which value vector to compute), the model card
(which parameters to show), the sweep fingerprint (which parameters and tensors a gate reads)
and the tuner (which parameters to search). ``tests/test_registry.py`` fails when this table
and ``gate.py`` disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

ValueKind = Literal["none", "general_mean", "steering", "leace"]


@dataclass(frozen=True)
class Operator:
    """One operator phi and what it needs."""

    name: str
    params: tuple[str, ...]  # gate spec ``params`` phi reads at run time
    options: tuple[str, ...]  # recipe fields of ``edits.N.operator`` that matter for it
    value: ValueKind  # the per-neuron value vector it reads, computed at fit time
    mu_sigma: bool  # reads the neurons' mean and standard deviation
    tuned: tuple[str, ...]  # parameters ``nledit tune`` searches (each has a space interval)
    tunable: bool  # ``tune.space.operators`` may list it
    in_recipe: bool  # an edit may name it (False: whole-vector baselines only)
    doc: str


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("zero", (), (), "none", False, (), True, True, "0"),
        Operator("dampen", ("alpha",), ("alpha",), "none", False, ("alpha",), True, True, "αx"),
        Operator(
            "mean", (), ("mean_source",), "general_mean", False, (), True, True, "general mean"
        ),
        Operator(
            "adaptive",
            ("beta", "tau"),
            ("beta",),
            "none",
            True,
            ("beta",),
            True,
            True,
            "β·|x-μ|/(τσ)·x",
        ),
        Operator(
            "steer", ("strength",), ("strength",), "steering", False, (), False, True, "x + a·r"
        ),
        Operator("ablate", (), (), "steering", False, (), False, False, "h - r̂r̂ᵀh"),
        # LEACE: whole hidden state, value = the eraser's bias, plus its two matrices
        Operator("leace", (), (), "leace", False, (), False, True, "h - LR(h - b)"),
    )
}

# Every run-time parameter any operator reads (a gate's other params are unknown settings).
KNOWN_PARAMS: tuple[str, ...] = tuple(sorted({p for op in OPERATORS.values() for p in op.params}))
# Every parameter the tuner searches for some operator.
TUNED_PARAMS: tuple[str, ...] = tuple(sorted({p for op in OPERATORS.values() for p in op.tuned}))


def names(*, in_recipe: bool = False, tunable: bool = False) -> tuple[str, ...]:
    """Operator names, optionally only those an edit may name or the tuner may search."""
    return tuple(
        op.name
        for op in OPERATORS.values()
        if (op.in_recipe or not in_recipe) and (op.tunable or not tunable)
    )


def get(name: str) -> Operator:
    """The registry entry of ``name`` (``KeyError`` names the known operators)."""
    try:
        return OPERATORS[name]
    except KeyError:
        raise KeyError(f"unknown operator {name!r}; known: {', '.join(OPERATORS)}") from None


def needs_general_mean(name: str) -> bool:
    """Whether operator ``name`` reads the general-text mean (computed at fit time)."""
    return get(name).value == "general_mean"


def needs_leace(edits: Iterable[Any], baselines: Iterable[str] = ()) -> bool:
    """Whether any edit (``EditSpec``) uses the LEACE operator or ``baselines`` include it: then
    the statistics pass also fits the LEACE statistics (a d x d covariance per layer)."""
    return "leace" in baselines or any(e.operator.name == "leace" for e in edits)
