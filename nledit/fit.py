"""Fit a recipe: load data and model, one streaming pass, then ranges and gates."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from . import paper
from .arch import Layout, find_layout, resolve_layer
from .collect import ConceptStats, collect, token_means
from .concept import ConceptModel
from .data import ConceptData, DataError, Examples, load_concept_data
from .gate import RangeGate
from .models import ModelSource, load_model, resolve_source
from .plan import missing_files
from .ranges import RangeTable, fit_ranges, make_gate, operator_value, vector_gate
from .recipe import Recipe
from .reservoir import Reservoir


@dataclass
class Fitted:
    """Everything a fitted recipe produced, in memory."""

    recipe: Recipe
    recipe_text: str
    source: ModelSource
    data: ConceptData
    cm: ConceptModel
    layout: Layout
    layers: list[int]  # resolved layer per edit
    stats: ConceptStats
    tables: list[RangeTable]
    gates: list[RangeGate]  # range gates: the edit
    baseline: list[RangeGate]  # neuron gates: the neuron-masking baseline
    reservoir: Reservoir | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        return self.cm.model


def check_concepts(recipe: Recipe, label_names: list[str]) -> None:
    problems = []
    for i, edit in enumerate(recipe.edits):
        for c in edit.concepts:
            if c not in label_names:
                problems.append(
                    f"edits.{i}.concepts: {c!r} is not a label; labels are {label_names}"
                )
    if problems:
        raise DataError("\n".join(problems))


def load_for_recipe(
    recipe: Recipe, val_per_class: int = 0
) -> tuple[ConceptData, ModelSource, ConceptModel, Layout, list[int]]:
    """Data first (cheap, fails early), then the model; layers resolved and checked.

    ``val_per_class`` also carves a validation split (for ``nledit tune``) after the fitting
    examples; shots, fit and eval are the same with or without it."""
    missing = missing_files(recipe)  # every file named, before any time is spent
    if missing:
        raise DataError("\n".join(missing))
    data = load_concept_data(
        recipe.data, recipe.prompt.shots, recipe.seed, recipe.prompt.label_words, val_per_class
    )
    check_concepts(recipe, data.label_names)
    source = resolve_source(recipe.model)
    model, tokenizer, task = load_model(recipe.model, source)
    layout = find_layout(model)
    layers = [resolve_layer(e.layer, layout.n_layers) for e in recipe.edits]
    shots = data.shots if task == "causal-lm" else Examples([], [])
    cm = ConceptModel(
        model,
        tokenizer,
        task,
        layout,
        data.label_names,
        recipe.prompt,
        shots,
        recipe.data.max_length,
    )
    return data, source, cm, layout, layers


def fit(
    recipe: Recipe,
    recipe_text: str,
    shard: tuple[int, int] | None = None,
    reduce: Callable[[ConceptStats], ConceptStats] | None = None,
) -> Fitted:
    """Run the whole fit: one pass over the fitting examples, then ranges and gates.

    ``shard=(index, count)`` streams every count-th example from ``index`` and ``reduce``
    combines the statistics of all shards (see ``distributed``).
    """
    t0 = time.perf_counter()
    data, source, cm, layout, layers = load_for_recipe(recipe)
    t1 = time.perf_counter()
    needs_reservoir = any(e.saliency == "probe" or e.range == "quantile" for e in recipe.edits)
    reservoir = Reservoir(512, recipe.seed) if needs_reservoir else None
    examples = data.fit
    if shard is not None:
        index, count = shard
        examples = Examples(examples.texts[index::count], examples.labels[index::count])
    wanted = set(layers) | paper.extra_layers(recipe, layout.n_layers)
    stats = collect(cm, examples, sorted(wanted), recipe.batch_size, reservoir)
    if reduce is not None:
        stats = reduce(stats)
    t2 = time.perf_counter()
    general_mean = _general_mean(recipe, cm, layout, stats)
    tables, gates, baseline = [], [], []
    vectors: set[tuple[str, int, int]] = set()
    for i, (edit, layer) in enumerate(zip(recipe.edits, layers)):
        for table in fit_ranges(edit, i, layer, stats, data.label_names, recipe.seed, reservoir):
            value = operator_value(table, edit, stats, general_mean)
            tables.append(table)
            gates.append(make_gate(table, edit, value, "range"))
            if "neuron" in recipe.eval.baselines or recipe.output.method == "neuron":
                baseline.append(make_gate(table, edit, value, "neuron"))
            for method in ("steer", "ablate"):
                # whole-vector baselines depend on the concept and layer only: one per pair
                pair = (method, table.concept_id, table.layer)
                if method in recipe.eval.baselines and pair not in vectors:
                    vectors.add(pair)
                    strength = recipe.eval.steer_strength
                    baseline.append(vector_gate(table, edit, stats, method, strength))
    baseline += paper.paper_gates(recipe, stats, data.label_names, layout.n_layers, general_mean)
    timings = {"load_s": t1 - t0, "fit_pass_s": t2 - t1, "ranges_s": time.perf_counter() - t2}
    return Fitted(
        recipe,
        recipe_text,
        source,
        data,
        cm,
        layout,
        layers,
        stats,
        tables,
        gates,
        baseline,
        reservoir,
        timings,
    )


def _general_mean(
    recipe: Recipe, cm: ConceptModel, layout: Layout, stats: ConceptStats
) -> dict[int, torch.Tensor] | None:
    """Per-layer neuron means for the `mean` operator: over every token of general text
    (``operator.mean_source``, e.g. WikiText), else over all concepts' fitting examples."""
    means = [(i, e) for i, e in enumerate(recipe.edits) if e.operator.name == "mean"]
    if not means:
        return None
    i, source = next(
        ((i, e.operator.mean_source) for i, e in means if e.operator.mean_source), (0, None)
    )
    where = f"edits.{i}.operator.mean_source"
    return general_means(source, where, cm, layout, stats, sorted(stats.count), recipe.batch_size)


def general_means(
    source: str | None,
    field: str,
    cm: ConceptModel,
    layout: Layout,
    stats: ConceptStats,
    layers: list[int],
    batch_size: int,
) -> dict[int, torch.Tensor]:
    """Per-layer neuron means over every token of the general text ``source`` (the recipe's
    ``field``), or over all concepts' fitting examples when there is none."""
    if source is None:
        return {
            layer: stats.total[layer].sum(0) / stats.count[layer].sum().clamp_min(1)
            for layer in layers
        }
    from .perplexity import load_text, windows

    ids = windows(cm.tokenizer, load_text(source, field), 128, 32, field)
    paths = {layer: layout.layer_path(layer) for layer in layers}
    return token_means(cm.model, paths, ids, batch_size)
