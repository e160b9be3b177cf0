"""Export an ``Edit``: the one path from a fitted edit to a checkpoint on disk.

``nledit.export`` and ``nledit run`` / ``nledit export`` call ``export_edit``: it picks the
gates the checkpoint carries (``write.method_gates``, the one neuron-baseline check), assembles
the manifest and the model card (``manifest.describe_checkpoint``) from the edit's definition
and gates, and writes the checkpoint (``write.export_checkpoint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..data.api_inputs import edit_specs
from ..models.loading import ModelSource
from ..recipe import edit_hash, edit_name, recipe_hash
from ..runtime.edit import Edit
from .manifest import describe_checkpoint, edit_summaries
from .write import export_checkpoint

# The inputs whose edited logits every export records for `nledit verify`.
REFERENCE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "In 1969, the first humans landed on the Moon.",
]


def definition_text(edit: Edit) -> str:
    """The recipe an edit fitted in Python stores: its definition as YAML."""
    return "# Fitted with the nledit Python API.\n" + yaml.safe_dump(
        edit.definition, sort_keys=False
    )


def summaries(edit: Edit) -> list[dict[str, Any]]:
    """What the card and manifest say about each edit of ``edit.definition``: its settings, the
    layer its gates sit at ("last" resolved to its index) and their neurons."""
    defs = edit.definition.get("edits") or []
    specs = edit_specs(defs) if defs else []
    layers = []
    for i, e in enumerate(specs):
        own = [g for g in edit.gates if g.spec.edit == edit_name(e, i)]
        layers.append(own[0].spec.layer if own else e.layer)
    return edit_summaries(specs, layers, edit.gates)


def export_edit(
    out: Path,
    model: Any,
    tokenizer: Any,
    edit: Edit,
    source: ModelSource,
    *,
    method: str = "range",
    weights: str = "copy",
    overwrite: bool = False,
    field: str = "method",
    recipe_text: str | None = None,
    data: dict[str, Any] | None = None,
    datasets: Sequence[str] = (),
    metrics: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    generations: str = "",
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write the checkpoint of ``edit`` on ``model`` (the base ``source`` names) into ``out``.

    ``method``: ``range`` (the edit) or ``neuron`` (its neuron-masking baseline; ``field``
    names the setting in the error when the edit has none). ``recipe_text``: the recipe stored
    verbatim (default: the edit's definition as YAML); ``data``: what the edit was fitted on
    (default: the definition's data); ``datasets``: Hub data sets the card names;
    ``metrics``: the evaluation as plain data; ``timings``: seconds per step, for the
    manifest; ``generations``: the card's side-by-side continuations; ``extra_files``: result
    files written beside the checkpoint (name -> text)."""
    gates = edit.gates_for(method, field)
    d = edit.definition
    text = definition_text(edit) if recipe_text is None else recipe_text
    manifest, card = describe_checkpoint(
        source,
        method=method,
        weights=weights,
        seed=d.get("seed"),
        data=d.get("data", {}) if data is None else data,
        edits=summaries(edit),
        metrics=metrics or {},
        recipe_text=text,
        is_lm=edit.task == "causal-lm",
        datasets=datasets,
        timings=timings,
    )
    card.generations = generations
    return export_checkpoint(
        out,
        model=model,
        tokenizer=tokenizer,
        task=edit.task,
        source=source,
        layers_path=edit.layers_path,
        gates=gates,
        recipe_text=text,
        recipe_sha256=recipe_hash(text),
        edit_sha256=edit_hash(d),
        manifest=manifest,
        card=card,
        reference_texts=REFERENCE_TEXTS,
        overwrite=overwrite,
        extra_files=extra_files or {},
        weights_mode=weights,
    )
