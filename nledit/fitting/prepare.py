"""The one preparation and gate-building path every job shares.

    statistics(): one streaming pass over the fitting examples (per-concept moments at every
                  wanted layer, plus a bounded sample of activations when a saliency method or
                  range shape needs one) and, for operators that read it, the general-text mean;
    gates():      from those statistics to the gates of one edit (saliency ranking, top-p,
                  ranges, the operator's value vector), with no model work.

``fit`` (``nledit run``/``fit``), the library's ``nledit.fit``, ``sweep``, ``tune`` and
``inspect`` all call these two, so the same settings give byte-identical gates whichever job
built them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..data.concept import ConceptModel
from ..data.dataset import Examples
from ..errors import NleditError
from ..recipe import EditSpec
from ..runtime import operators
from ..runtime.gate import RangeGate
from .collect import ConceptStats, collect, token_means
from .leace import LeaceStats, eraser_gate
from .ranges import RangeTable, fit_ranges, make_gate, operator_value
from .reservoir import Placement, Reservoir
from .saliency_registry import SALIENCIES

# combines the statistics, activation sample and LEACE statistics of several shards
Reduce = Callable[[ConceptStats, Reservoir | None, LeaceStats | None], ConceptStats]
RESERVOIR_ROWS = 512  # activation samples kept per (layer, concept): bounded memory


@dataclass
class Prepared:
    """The statistics of one pass and what the gates of any edit are built from."""

    cm: ConceptModel
    stats: ConceptStats
    reservoir: Reservoir | None
    general_mean: dict[int, torch.Tensor] | None
    seed: int
    leace: LeaceStats | None = None  # LEACE statistics, when an edit or baseline needs them

    @property
    def label_names(self) -> list[str]:
        return self.cm.label_names


def needs_samples(edits: Iterable[EditSpec]) -> bool:
    """Whether any edit reads activation samples (its saliency method, quantile ranges or an
    automatic quorum)."""
    return any(
        SALIENCIES[e.saliency].needs_samples or e.range == "quantile" or e.quorum == "auto"
        for e in edits
    )


def mean_source(edits: list[EditSpec], indices: Iterable[int] | None = None) -> tuple[str, str]:
    """The general text for operators that read a general mean, and its recipe field: the
    first ``operator.mean_source`` given among the edits (``indices``: those edits only)."""
    chosen = range(len(edits)) if indices is None else indices
    for i in chosen:
        op = edits[i].operator
        if operators.get(op.name).value == "general_mean" and op.option("mean_source"):
            return op.option("mean_source"), f"edits.{i}.operator.mean_source"
    return "", "edits.0.operator.mean_source"


def general_means(
    source: str | None, field: str, cm: ConceptModel, stats: ConceptStats, batch_size: int
) -> dict[int, torch.Tensor]:
    """Per-layer neuron means over every token of the general text ``source`` (the recipe's
    ``field``), or over all concepts' fitting examples when there is none."""
    layers = sorted(stats.count)
    if not source:
        return {
            layer: stats.total[layer].sum(0) / stats.count[layer].sum().clamp_min(1)
            for layer in layers
        }
    from ..data.text import load_text, windows

    ids = windows(cm.tokenizer, load_text(source, field), 128, 32, field)
    paths = {layer: cm.layout.layer_path(layer) for layer in layers}
    return token_means(cm.model, paths, ids, batch_size)


def statistics(
    cm: ConceptModel,
    examples: Examples,
    layers: Iterable[int],
    batch_size: int,
    seed: int,
    *,
    samples: bool = False,
    general_mean: tuple[str, str] | None = None,
    reduce: Reduce | None = None,
    desc: str = "fit",
    leace: bool = False,
    placement: Placement | None = None,
) -> Prepared:
    """One pass over ``examples`` at ``layers``; ``samples`` keeps a bounded activation sample,
    ``general_mean=(source, field)`` also computes the general-text means (empty source: the
    fitting examples' mean), ``reduce`` combines the statistics (sample, LEACE) of several shards,
    ``placement`` places this shard's examples in the whole set (for the sample), ``leace``
    also fits the LEACE statistics at ``layers`` in the same pass."""
    layers = sorted(set(layers))
    reservoir = Reservoir(RESERVOIR_ROWS, seed, placement) if samples else None
    erasure = LeaceStats(cm.layout.hidden_size, len(cm.label_names), layers) if leace else None
    stats = collect(cm, examples, layers, batch_size, reservoir, desc=desc, leace=erasure)
    if reduce is not None:
        stats = reduce(stats, reservoir, erasure)
    means = None
    if general_mean is not None:
        means = general_means(*general_mean, cm, stats, batch_size)
    return Prepared(cm, stats, reservoir, means, seed, erasure)


def tables(prep: Prepared, edit: EditSpec, index: int, layer: int) -> list[RangeTable]:
    """The fitted ranges of each concept of ``edit`` (the ``index``-th edit) at ``layer``."""
    names = prep.label_names
    return fit_ranges(edit, index, layer, prep.stats, names, prep.seed, prep.reservoir)


def gates(
    prep: Prepared, edit: EditSpec, index: int, layer: int, modes: tuple[str, ...] = ("range",)
) -> list[tuple[RangeTable, dict[str, RangeGate]]]:
    """Per concept of ``edit``: its range table and one gate per mode (``range``: the edit,
    ``neuron``: the neuron-masking baseline on the same neurons; a LEACE edit acts on the whole
    hidden state and has no neuron baseline)."""
    out = []
    for table in tables(prep, edit, index, layer):
        if edit.operator.name == "leace":
            out.append((table, {"range": leace_gate(prep, table, edit.positions, "range")}))
            continue
        value = operator_value(table, edit, prep.stats, prep.general_mean)
        out.append((table, {mode: make_gate(table, edit, value, mode) for mode in modes}))
    return out


def leace_gate(prep: Prepared, table: RangeTable, positions: str, method: str) -> RangeGate:
    """The LEACE eraser of ``table``'s concept at its layer, as a gate (``method``: ``range``
    for a LEACE edit, ``leace`` for the baseline)."""
    if prep.leace is None:
        raise NleditError(f"{table.edit}: LEACE needs its statistics, which this job does not fit")
    eraser = prep.leace.eraser(table.layer, table.concept_id)
    name = table.name if method == "range" else f"{table.name}.{method}"
    return eraser_gate(
        eraser,
        name=name,
        method=method,
        edit=table.edit,
        concept=table.concept,
        layer=table.layer,
        positions=positions,
    )
