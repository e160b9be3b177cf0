"""No recipe field is accepted and then ignored: a field set where it has no effect is an
error naming it and saying where it does apply.

Defaults never count, only what a recipe (or ``--set``) sets. ``nledit check`` lists these
problems; every job that loads a model or data (``fit.load_for_recipe``, the Python API with
a data spec) refuses them before any work.
"""

from __future__ import annotations

from pathlib import Path

from . import DataSpec, ModelSpec, Recipe

# Suffixes of local files a data source may name (rows, or running text for token concepts).
_LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".raw", ".text", ".md")


def _local(source: str) -> bool:
    """Whether ``source`` names a local file (else a Hub data set id)."""
    path = Path(source).expanduser()
    return path.suffix in _LOCAL_SUFFIXES or path.exists() or source.startswith((".", "/", "~"))


def ignored_model(spec: ModelSpec) -> list[str]:
    """``model.*`` fields set where the model's kind does not read them."""
    out = []
    mid, given = spec.id, spec.model_fields_set
    local = mid.startswith("pypi:") or Path(mid).expanduser().exists() or mid.endswith(".gguf")
    if spec.revision is not None and local:
        out.append(
            f"model.revision: only a Hub model has revisions; {mid!r} is local (pin a local "
            "model by its files, or leave revision out)"
        )
    folder = mid.startswith("pypi:") or Path(mid).expanduser().is_dir()
    if spec.gguf_file is not None and not folder:
        where = "a .gguf file itself" if mid.endswith(".gguf") else "not a local folder"
        out.append(
            f"model.gguf_file: names a GGUF file inside the folder model.id; {mid!r} is "
            f"{where} (download a Hub GGUF file and name it in model.id)"
        )
    if spec.max_memory is not None and spec.device_map is None:
        out.append("model.max_memory: only used with model.device_map")
    if "device" in given and spec.device_map is not None:
        out.append("model.device: not used with model.device_map (which places the model)")
    return out


def ignored_data(spec: DataSpec) -> list[str]:
    """``data.*`` fields set where the data's kind does not read them."""
    out = []
    given = spec.model_fields_set
    for name, source in (("config", spec.source), ("split", spec.source)):
        if name in given and _local(source):
            out.append(f"data.{name}: only a Hub data set has {name}s; {source!r} is a local file")
    if "eval_split" in given:
        if spec.eval_source is None:
            out.append("data.eval_split: only used with data.eval_source")
        elif _local(spec.eval_source):
            out.append(
                f"data.eval_split: only a Hub data set has splits; {spec.eval_source!r} is a "
                "local file"
            )
    if spec.token_classes is None:
        if "context_words" in given:
            out.append("data.context_words: only used with data.token_classes")
    elif "label_field" in given:
        out.append("data.label_field: token concepts are labelled by data.token_classes")
    return out


def ignored_fields(recipe: Recipe) -> list[str]:
    """Every field ``recipe`` sets that nothing would read, as ``field.path: message``."""
    out = ignored_model(recipe.model) + ignored_data(recipe.data)
    # edits.N.operator: its section takes only its operator's fields (operator_section.py)
    ev, given = recipe.eval, recipe.eval.model_fields_set
    if "steer_strength" in given and "steer" not in ev.baselines:
        out.append("eval.steer_strength: only used with the steer baseline (eval.baselines)")
    if "baseline_edits" in given and "neuron" not in ev.baselines:
        out.append("eval.baseline_edits: only used with the neuron baseline (eval.baselines)")
    if "generate_tokens" in given and not ev.generate_prompts:
        out.append("eval.generate_tokens: only used with eval.generate_prompts")
    for name in ("perplexity_window", "perplexity_preprocess"):
        if name in given and not ev.perplexity_source:
            out.append(f"eval.{name}: only used with eval.perplexity_source")
    return out
