"""From statistics to gates: saliency ranking, top-p selection and ranges mu ± tau·sigma."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..recipe import EditSpec, edit_name
from ..runtime import operators
from ..runtime.gate import GateSpec, RangeGate
from ..runtime.vector_gates import whole_vector_gate
from . import saliency, shapes
from .collect import ConceptStats
from .quorum import fit_quorum
from .reservoir import Reservoir


@dataclass
class RangeTable:
    """The fitted ranges of one (edit, concept): neuron index, lo, hi, mu, sigma (k each)."""

    edit: str
    concept: str
    concept_id: int
    layer: int
    index: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    scores: torch.Tensor  # saliency of every neuron (d,)
    quorum: int = 0  # neurons that must be inside their ranges for the gate to act (0: none)

    @property
    def name(self) -> str:
        slug = "".join(ch if ch.isalnum() else "-" for ch in self.concept).lower()
        return f"{self.edit}.{slug}"


def fit_ranges(
    edit: EditSpec,
    edit_index: int,
    layer: int,
    stats: ConceptStats,
    label_names: list[str],
    seed: int,
    reservoir: Reservoir | None = None,
) -> list[RangeTable]:
    """Rank neurons, keep the top-p fraction, give each its range (``shapes``: mu ± tau·sigma,
    quantiles, optionally trimmed where other concepts dominate)."""
    tables = []
    mean, std = stats.mean(layer), stats.std(layer)
    for concept in edit.concepts:
        c = label_names.index(concept)
        lo_all, hi_all = shapes.neuron_ranges(edit, stats, layer, c, reservoir)
        score = saliency.scores(
            edit.saliency,
            stats,
            layer,
            c,
            seed,
            reservoir,
            (lo_all, hi_all),
            edit.selectivity,
            edit.magnitude_weight,
        )
        index = saliency.top_fraction(score, edit.top_p, edit.top_rounding, edit.top_k)
        mu, sigma = mean[c, index], std[c, index]
        lo, hi = lo_all[index], hi_all[index]
        name = edit_name(edit, edit_index)
        samples = None
        if edit.quorum == "auto" and reservoir is not None:
            samples = reservoir.samples(layer, len(label_names))
        where = f"edits.{edit_index}.quorum ({concept})"
        quorum = fit_quorum(edit.quorum, len(index), c, samples, index, lo, hi, where)
        tables.append(RangeTable(name, concept, c, layer, index, lo, hi, mu, sigma, score, quorum))
    return tables


def steering_direction(stats: ConceptStats, layer: int, concept: int) -> torch.Tensor:
    """r = mean of the concept minus the (count-weighted) mean of the other concepts."""
    count, total = stats.count[layer], stats.total[layer]
    others = [c for c in range(stats.n_concepts) if c != concept]
    rest = total[others].sum(0) / count[others].sum().clamp_min(1)
    return stats.mean(layer)[concept] - rest


def operator_value(
    table: RangeTable,
    edit: EditSpec,
    stats: ConceptStats,
    general_mean: dict[int, torch.Tensor] | None,
) -> torch.Tensor:
    """The per-neuron value the operator needs (mean replacement or steering direction)."""
    kind = operators.get(edit.operator.name).value
    if kind == "general_mean":
        if general_mean is None:
            raise ValueError(f"operator {edit.operator.name}: no general-text mean was collected")
        return general_mean[table.layer][table.index]
    if kind == "steering":
        return steering_direction(stats, table.layer, table.concept_id)[table.index]
    return torch.zeros(table.index.numel(), dtype=torch.float64)


def make_gate(
    table: RangeTable, edit: EditSpec, value: torch.Tensor, mode: str = "range"
) -> RangeGate:
    """A gate for ``table``: mode ``range`` is the edit, ``neuron`` the neuron-masking baseline."""
    op = edit.operator
    spec = GateSpec(
        name=table.name if mode == "range" else f"{table.name}.{mode}",
        method=mode,
        edit=table.edit,
        concept=table.concept,
        layer=table.layer,
        operator=op.name,
        # the run-time parameters (tau from the edit, the rest from its operator section)
        params={p: edit.tau if p == "tau" else op.param(p) for p in operators.gate_params(op.name)},
        mode=mode,
        positions=edit.positions,
        k=int(table.index.numel()),
        saliency=edit.saliency,
        top_p=edit.top_p,
        quorum=table.quorum if mode == "range" and table.quorum else 0,
    )
    tensors = {
        "index": table.index.to(torch.long),
        "lo": table.lo.to(torch.float32),
        "hi": table.hi.to(torch.float32),
        "mu": table.mu.to(torch.float32),
        "sigma": table.sigma.to(torch.float32),
        "value": value.to(torch.float32),
    }
    bad = [k for k in ("lo", "hi", "mu", "sigma", "value") if not tensors[k].isfinite().all()]
    if bad:  # e.g. a huge tau: a range without bounds would mask the whole neuron
        from .collect import ActivationError

        raise ActivationError(
            f"edits: {table.edit}: the {', '.join(bad)} of concept {table.concept!r} at layer "
            f"{table.layer} do not fit a 32-bit float (tau {edit.tau}); use a smaller tau"
        )
    return RangeGate(spec, tensors)


def vector_gate(
    table: RangeTable, edit: EditSpec, stats: ConceptStats, method: str, strength: float
) -> RangeGate:
    """Whole-vector baselines (App. M): steering h + a·r, or directional ablation h - r̂r̂ᵀh."""
    return whole_vector_gate(
        name=f"{table.name}.{method}",
        method=method,
        edit=table.edit,
        concept=table.concept,
        layer=table.layer,
        operator="steer" if method == "steer" else "ablate",
        params={"strength": strength},
        positions=edit.positions,
        value=steering_direction(stats, table.layer, table.concept_id),
    )
