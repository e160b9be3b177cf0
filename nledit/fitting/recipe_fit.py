"""Fit a recipe: load data and model, one streaming pass, then ranges and gates."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..data import curation
from ..data.concept import ConceptModel
from ..data.dataset import ConceptData, DataError, Examples, check_concepts, load_concept_data
from ..models.arch import Layout, find_layout, resolve_layer
from ..models.batching import resolve_batch_size
from ..models.loading import ModelSource, load_model, resolve_source
from ..models.threads import apply_threads
from ..plan import missing_files
from ..recipe import Recipe, edit_definition
from ..recipe.ignored import ignored_fields
from ..runtime.edit import Edit
from ..runtime.gate import RangeGate
from .build import build, prepare
from .collect import ConceptStats
from .prepare import Reduce, general_means
from .ranges import RangeTable
from .reservoir import Reservoir, shard_placement

__all__ = ["Fitted", "fit", "general_means", "load_for_recipe", "recipe_edit"]


@dataclass
class Fitted:
    """The record of a recipe's fit: its ``edit`` (the gates; the evaluation and export stages
    take it, with the loaded model and data, never this record) and where it came from (recipe,
    data, model), with the fit's statistics, range tables and timings."""

    recipe: Recipe
    recipe_text: str
    source: ModelSource
    data: ConceptData
    cm: ConceptModel
    layout: Layout
    layers: list[int]  # resolved layer per edit
    stats: ConceptStats
    tables: list[RangeTable]
    edit: Edit  # the range gates and their baselines
    reservoir: Reservoir | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        return self.cm.model


def recipe_edit(
    recipe: Recipe,
    cm: ConceptModel,
    data: ConceptData,
    gates: list[RangeGate],
    baseline: list[RangeGate],
) -> Edit:
    """The ``Edit`` of a recipe's fitted ``gates`` and ``baseline``: how the model was read
    (prompt, shots, label names) and the recipe's edit definition, as ``nledit.fit`` records."""
    shots = data.shots if cm.is_lm else Examples([], [])
    return Edit(
        gates,
        baseline,
        cm.layout.layers_path,
        list(cm.label_names),
        cm.spec,
        shots,
        cm.max_length,
        cm.task,
        edit_definition(recipe),
    )


def load_for_recipe(
    recipe: Recipe, val_per_class: int = 0, threads: bool = False
) -> tuple[Recipe, ConceptData, ModelSource, ConceptModel, Layout, list[int]]:
    """Data first (cheap, fails early), then the model; layers resolved and checked. The
    recipe comes back with ``batch_size: auto`` replaced by the size for the loaded model.

    ``val_per_class`` also carves a validation split (for ``nledit tune``) after the fitting
    examples; shots, fit and eval are the same with or without it. ``threads`` first applies
    the recipe's ``threads`` setting (before the model is loaded)."""
    missing = missing_files(recipe) + ignored_fields(recipe)  # before any time is spent
    if missing:
        raise DataError("\n".join(missing))
    data = load_concept_data(
        recipe.data,
        recipe.prompt.shots,
        recipe.seed,
        recipe.prompt.label_words,
        val_per_class,
        recipe.prompt,
    )
    check_concepts(recipe, data.label_names)
    if threads:
        apply_threads(recipe.threads)
    source = resolve_source(recipe.model)
    model, tokenizer, task = load_model(recipe.model, source)
    layout = find_layout(model)
    size = resolve_batch_size(recipe, model, layout.n_layers, layout.hidden_size)
    if size != recipe.batch_size:  # `auto`: a computed, valid size on a copy
        recipe = recipe.updated(batch_size=size)
    layers = [resolve_layer(e.layer, layout.n_layers) for e in recipe.edits]
    ev = recipe.eval
    if ev.enabled and ev.perplexity_source and ev.perplexity_windows and task == "causal-lm":
        from ..data.text import check_source  # before the fit pass, not after it

        check_source(
            tokenizer, ev.perplexity_source, ev.perplexity_window, "eval.perplexity_source"
        )
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
    if recipe.data.fit_curate or recipe.data.eval_curate:
        data.curation = curation.apply(cm, data, recipe)
    return recipe, data, source, cm, layout, layers


def fit(
    recipe: Recipe,
    recipe_text: str,
    shard: tuple[int, int] | None = None,
    reduce: Reduce | None = None,
) -> Fitted:
    """Run the whole fit: one pass over the fitting examples, then ranges and gates.

    ``shard=(index, count)`` streams every count-th example from ``index`` and ``reduce``
    combines the statistics and activation samples of all shards (see ``distributed``).
    """
    t0 = time.perf_counter()
    recipe, data, source, cm, layout, layers = load_for_recipe(recipe, threads=True)
    recipe = curation.targets_only(recipe, curation.not_evaluable(data.curation))
    t1 = time.perf_counter()
    examples, placement = data.fit, None
    if shard is not None:
        index, count = shard
        examples = Examples(examples.texts[index::count], examples.labels[index::count])
        placement = shard_placement(data.fit.labels, index, count)
    prep = prepare(
        cm,
        examples,
        recipe.edits,
        layers,
        recipe.batch_size,
        recipe.seed,
        recipe.eval.baselines,
        reduce,
        placement=placement,
    )
    stats, reservoir = prep.stats, prep.reservoir
    t2 = time.perf_counter()
    built = build(
        prep,
        recipe.edits,
        layers,
        layout.n_layers,
        recipe.eval.baselines,
        baseline_edits=recipe.eval.baseline_edits,
        steer_strength=recipe.eval.steer_strength,
        neuron_export=recipe.output.method == "neuron",
    )
    tables, gates, baseline = built.tables, built.gates, built.baseline
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
        recipe_edit(recipe, cm, data, gates, baseline),
        reservoir,
        timings,
    )
