"""The inspection report of a recipe (`nledit inspect`): one pass over its fitting examples,
then the distributions, saliency and ranges of its first edit's layer (or of every layer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fitting.build import prepare
from ..fitting.prepare import tables as edit_tables
from ..fitting.recipe_fit import load_for_recipe
from ..recipe import EditSpec, Recipe
from .build import all_layer_stats, build_report
from .page import write_report


def inspect(
    recipe: Recipe, text: str, out: Path, overwrite: bool, all_layers: bool = False
) -> Path:
    """One pass over the fitting examples; report on the first edit's layer."""
    recipe, data, source, cm, _layout, layers = load_for_recipe(recipe)
    layer, edit = layers[0], recipe.edits[0]
    wanted = list(range(layer + 1)) if all_layers else [layer]
    # the report reads the activation sample and the ranges, never the operator
    prep = prepare(
        cm, data.fit, [], wanted, recipe.batch_size, recipe.seed, desc="inspect", samples=True
    )
    reservoir = prep.reservoir
    assert reservoir is not None  # samples=True
    names = data.label_names
    every = EditSpec.model_validate({**edit.model_dump(), "concepts": list(names)})
    tables = edit_tables(prep, every, 0, layer)

    def samples_at(at: int) -> dict[str, np.ndarray]:
        per_id = reservoir.samples(at, len(names))
        return {names[c]: x for c, x in per_id.items() if x.size}

    samples = samples_at(layer)
    texts = {
        names[c]: [data.fit.texts[i] for i in reservoir.example_ids(layer, c)]
        for c in range(len(names))
        if names[c] in samples
    }
    saliency = {t.concept: t.scores.numpy() for t in tables}
    ranges = {
        t.concept: (t.index.numpy(), t.lo.numpy(), t.hi.numpy(), t.mu.numpy()) for t in tables
    }
    layer_stats = all_layer_stats({at: samples_at(at) for at in wanted}) if all_layers else None
    report = build_report(
        samples,
        texts,
        saliency,
        ranges,
        layer,
        source.origin,
        p=edit.top_p,
        tau=edit.tau,
        layer_stats=layer_stats,
    )
    return write_report(out, report, overwrite=overwrite)
