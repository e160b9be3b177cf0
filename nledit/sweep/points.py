"""The points of a sweep: the swept values, and per value the gates of the first edit with
one evaluation condition per distinct gate (``fingerprint``: gates that compute the same thing
share a condition)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pydantic import ValidationError

from ..errors import EditError
from ..evaluation.erasure import Condition
from ..fitting.prepare import Prepared
from ..fitting.prepare import gates as edit_gates
from ..models.arch import resolve_layer
from ..recipe import EditSpec, Recipe
from ..runtime import operators
from ..runtime.gate import RangeGate, tensor_names
from .result import METHODS

DEFAULT_TAUS = [round(0.3 * i, 1) for i in range(1, 16)]  # Table 17: 0.3, 0.6, ..., 4.5
DEFAULT_TOP_PS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # Fig. 4, 5%..100%
LAYER_SPREAD = 6
LABELS = ("name", "method", "edit", "concept", "k", "saliency", "top_p")  # names, not behaviour


def layer_spread(n_layers: int, count: int = LAYER_SPREAD) -> list[int]:
    """About ``count`` evenly spaced layers from the first to the last (App. F)."""
    if n_layers <= count:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / (count - 1)) for i in range(count)})


def default_values(over: str, n_layers: int) -> list[int | float]:
    """The values a sweep over ``over`` takes when the recipe names none."""
    if over == "tau":
        return list(DEFAULT_TAUS)
    if over == "top_p":
        return list(DEFAULT_TOP_PS)
    return list(layer_spread(n_layers))


def fingerprint(gate: RangeGate) -> str:
    """What a gate computes: equal fingerprints give equal outputs, whatever the names say.

    Everything counts except labels and the settings a gate is known not to read: a neuron
    gate ignores its range, so it is the same for every tau (unless the operator is
    ``adaptive``, whose phi reads tau, mu and sigma). Unknown settings always count.
    """
    s = gate.spec.to_dict()
    mode = gate.spec.mode
    entry = operators.OPERATORS.get(gate.spec.operator)  # an unknown one: every setting counts
    known = operators.known_params()
    used = entry.params if entry else known
    params = {k: v for k, v in gate.spec.params.items() if k in used or k not in known}
    head = {k: v for k, v in s.items() if k not in LABELS and k != "params"}
    h = hashlib.sha256(json.dumps([head, params], sort_keys=True, default=str).encode())
    for name in tensor_names(gate.spec):
        if (name in ("lo", "hi") and mode != "range") or (
            name in ("mu", "sigma") and entry is not None and not entry.mu_sigma
        ):
            continue
        t = getattr(gate, name).detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@dataclass
class SweepPoint:
    """One (value, method, concept): its gate and the condition that evaluates it."""

    value: int | float
    method: str
    concept: str
    layer: int
    gate: RangeGate
    key: str = ""  # the condition key that holds its numbers (shared by identical gates)


def conditions(points: list[SweepPoint]) -> list[Condition]:
    """One condition per distinct gate; each point learns the key holding its numbers."""
    by_print: dict[str, str] = {}
    conds = [Condition("base", None, [])]
    for p in points:
        fp = fingerprint(p.gate)
        if fp not in by_print:
            cond = Condition(f"{p.method}#{len(conds)}", p.concept, [p.gate])
            by_print[fp] = cond.key
            conds.append(cond)
        p.key = by_print[fp]
    return conds


def swept_edit(edit: EditSpec, over: str, value: int | float) -> EditSpec:
    """``edit`` with ``over`` set to ``value``, validated as a recipe edit (its bounds)."""
    try:
        return EditSpec.model_validate({**edit.model_dump(), over: value})
    except ValidationError as err:
        why = "; ".join(e["msg"] for e in err.errors())
        raise EditError(f"sweep.values: {over} = {value!r} is not a valid edit ({why})") from None


def build_points(
    recipe: Recipe, over: str, values: list[int | float], layers: list[int], prep: Prepared
) -> list[SweepPoint]:
    """Ranges and both gates of the first edit at every value (no model work)."""
    edit = recipe.edits[0]
    points = []
    for value, layer in zip(values, layers):
        changed = edit if over == "layer" else swept_edit(edit, over, value)
        for table, built in edit_gates(prep, changed, 0, layer, METHODS):
            for method in METHODS:
                points.append(SweepPoint(value, method, table.concept, layer, built[method]))
    return points


def swept_values(
    recipe: Recipe, over: str, values: list[int | float], n_layers: int, base_layer: int
) -> tuple[list[int | float], list[int]]:
    """The values (layer values resolved, repeats dropped) and the layer of each."""
    if over != "layer":
        return list(values), [base_layer] * len(values)
    resolved = list(dict.fromkeys(resolve_layer(int(v), n_layers) for v in values))
    return list(resolved), resolved
