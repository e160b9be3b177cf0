"""The one gate-building loop: from a statistics pass to the gates of a set of edits and of
every comparison baseline (neuron masking, steering, ablation, LEACE, the paper's default).

``nledit.fit`` (the library) and the recipe path (``fit.fit``) both call ``build``, so the
Python API has every baseline the command line has and the same settings give the same gates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..data.concept import ConceptModel
from ..data.dataset import Examples
from ..recipe import EditSpec, EvalSpec, edit_name
from ..runtime.gate import RangeGate
from ..runtime.operators import needs_general_mean, needs_leace
from . import paper
from .prepare import Prepared, Reduce, gates, leace_gate, mean_source, needs_samples, statistics
from .ranges import RangeTable, vector_gate
from .reservoir import Placement

VECTOR_BASELINES = ("steer", "ablate", "leace")  # one whole-vector gate per (concept, layer)
STEER_STRENGTH: float = EvalSpec.model_fields["steer_strength"].default


def mean_text(edits: Sequence[EditSpec], operators: Iterable[str] = ()) -> tuple[str, str] | None:
    """The general text for the edits' operators (and ``operators``, others a caller may
    build) that read a general mean (None: no such operator, so no mean is computed)."""
    if not any(needs_general_mean(op) for op in [*operators, *(e.operator.name for e in edits)]):
        return None
    return mean_source(list(edits))


def prepare(
    cm: ConceptModel,
    examples: Examples,
    edits: Sequence[EditSpec],
    layers: Sequence[int],
    batch_size: int,
    seed: int,
    baselines: Iterable[str] = (),
    reduce: Reduce | None = None,
    placement: Placement | None = None,
    desc: str = "fit",
    *,
    samples: bool = False,
    operators: Iterable[str] = (),
    mean: tuple[str, str] | None = None,
) -> Prepared:
    """The one statistics pass a set of edits and its baselines need: the layers (the paper's
    default adds the last one), the activation sample (sample-based saliency, quantile ranges,
    ``quorum: auto``), the general-text mean and the LEACE statistics, each decided here.

    A caller that builds more than ``edits`` says so: ``samples`` keeps the activation sample
    whatever the edits read (the tuner's space, ``inspect``); ``operators`` are further
    operators whose value vectors it needs (the tuner's ``tune.space.operators``); ``mean``
    names the general text (source, recipe field) when one is needed, instead of the first
    ``mean_source`` among ``edits``."""
    wanted = list(baselines)
    n_layers = cm.layout.n_layers
    text = mean_text(edits, operators)  # what the operators read, decided before the pass
    leace = needs_leace(edits, wanted)
    return statistics(
        cm,
        examples,
        sorted(set(layers) | paper.extra_layers(wanted, n_layers)),
        batch_size,
        seed,
        samples=samples or needs_samples(edits),
        general_mean=text if text is None or mean is None else mean,
        reduce=reduce,
        desc=desc,
        leace=leace,
        placement=placement,
    )


@dataclass
class Built:
    """The gates of a set of edits: the edit itself and its comparison baselines."""

    tables: list[RangeTable] = field(default_factory=list)
    gates: list[RangeGate] = field(default_factory=list)  # range gates: the edit
    baseline: list[RangeGate] = field(default_factory=list)  # every baseline's gates


def build(
    prep: Prepared,
    edits: Sequence[EditSpec],
    layers: Sequence[int],
    n_layers: int,
    baselines: Iterable[str] = (),
    *,
    baseline_edits: list[str] | None = None,
    steer_strength: float = STEER_STRENGTH,
    neuron_export: bool = False,
) -> Built:
    """The gates of ``edits`` (at their resolved ``layers``) and of ``baselines``.

    ``baseline_edits`` limits the neuron baseline to the edits it names; ``neuron_export``
    (``output.method: neuron``) builds the neuron gates of every edit whatever the baselines.
    """
    wanted = set(baselines)
    neuron = "neuron" in wanted or neuron_export
    out = Built()
    vectors: set[tuple[str, int, int]] = set()
    for i, (edit, layer) in enumerate(zip(edits, layers)):
        named = baseline_edits is None or edit_name(edit, i) in baseline_edits or neuron_export
        modes = ("range", "neuron") if neuron and named else ("range",)
        for table, built in gates(prep, edit, i, layer, modes):
            out.tables.append(table)
            out.gates.append(built["range"])
            if neuron and "neuron" in built:
                out.baseline.append(built["neuron"])
            for method in VECTOR_BASELINES:
                pair = (method, table.concept_id, table.layer)
                if method in wanted and pair not in vectors:
                    vectors.add(pair)
                    out.baseline.append(
                        leace_gate(prep, table, edit.positions, method)
                        if method == "leace"
                        else vector_gate(table, edit, prep.stats, method, steer_strength)
                    )
    if paper.METHOD in wanted:
        out.baseline += paper.paper_gates(edits, prep, n_layers)
    return out
