"""The paper's default edit as a comparison row (``eval.baselines: [paper]``).

NeuronLens's default settings: the last layer, max-activation saliency, the top 30 % of the
neurons, ranges mu ± 2.5 sigma, the zero operator, on every token. With ``paper`` among the
baselines, every edit is measured next to this default on the same concepts (method ``paper``),
from the same statistics pass (the last layer is added to it). The checkpoint never carries it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..recipe import EditSpec, Recipe
from ..recipe.presets import PAPER
from ..runtime.gate import RangeGate
from .prepare import Prepared
from .prepare import gates as build

METHOD = "paper"
DEFAULT = PAPER


def wanted(recipe: Recipe) -> bool:
    """Whether the recipe asks for the paper-default comparison."""
    return METHOD in recipe.eval.baselines


def paper_edit(edit: EditSpec) -> EditSpec:
    """The paper's default edit on ``edit``'s concepts (same name, so rows line up)."""
    return EditSpec.model_validate({"name": edit.name, "concepts": edit.concepts, **DEFAULT})


def extra_layers(baselines: Iterable[str], n_layers: int) -> set[int]:
    """Layers the statistics pass must cover for the comparison (the last one, if asked)."""
    return {n_layers - 1} if METHOD in baselines else set()


def paper_gates(edits: Sequence[EditSpec], prep: Prepared, n_layers: int) -> list[RangeGate]:
    """Range gates of the paper's default for every edit (method ``paper``), built by the one
    gate-building path every command uses."""
    gates = []
    for i, edit in enumerate(edits):
        for _, built in build(prep, paper_edit(edit), i, n_layers - 1):
            gate = built["range"]
            gate.spec.method = METHOD
            gate.spec.name = f"{gate.spec.name}.{METHOD}"
            gates.append(gate)
    return gates
