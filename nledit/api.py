"""The Python API: fit, evaluate and export an edit of a model already in memory.

The command line's jobs run on the same path (``prepare``: one statistics pass, then gates),
so the same settings give byte-identical gates and range files either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .checkpoint.edit_export import export_edit
from .checkpoint.write import EXPORT_MARKERS
from .data.api_inputs import (
    batch_size_of,
    check_no_gates,
    checked_args,
    data_spec,
    edit_specs,
    examples,
    field_value,
    listed,
    model_id_of,
    prompt_spec,
)
from .data.concept import ConceptModel
from .data.dataset import Examples, examples_digest, load_concept_data
from .errors import EditError
from .evaluation.generation import Comparison, Decoding, compare
from .evaluation.result import Evaluation
from .evaluation.suite import EvalInputs, evaluate_edit
from .fitting.build import STEER_STRENGTH, build, prepare
from .fitting.provenance import same_model_id
from .folders.atomic import check_destination
from .models.arch import find_layout, resolve_layer
from .models.loading import detect_task, resolve_source
from .recipe import (
    EDIT_FIELDS,
    DataSpec,
    EvalSpec,
    ModelSpec,
    OutputSpec,
    PromptSpec,
    Recipe,
    edit_name,
)
from .recipe import load_recipe as load
from .recipe.ignored import ignored_data
from .runtime.edit import Edit


def fit(
    model: Any,
    tokenizer: Any,
    data: Any,
    edits: Any,
    prompt: Any = None,
    *,
    label_names: list[str] | None = None,
    shots: Any = None,
    seed: int = 0,
    batch_size: int = 8,
    max_length: int | None = None,
    baselines: tuple[str, ...] = ("neuron",),
    steer_strength: float = STEER_STRENGTH,
    baseline_edits: list[str] | None = None,
    model_id: str | None = None,
) -> Edit:
    """Fit ``edits`` on ``model`` (a transformers model in memory) from ``data``.

    ``data``: ``(text, label)`` pairs, a ``datasets.Dataset`` (``text``/``label`` columns) or a
    recipe data spec (its fitting split is used). ``edits``: recipe edit entries, e.g.
    ``[{"concepts": ["Sports"], "layer": -1, "top_p": 0.3}]``. ``prompt``: the recipe's prompt
    section (for a causal LM the model is read at the prompt's last token); in-memory data
    brings its few-shot examples as ``shots`` (pairs). ``baselines``: the comparison edits built
    beside it, as the recipe's ``eval.baselines`` (``neuron``, ``steer``, ``ablate``, ``leace``,
    ``paper``; ``steer_strength`` is the steering baseline's a; ``baseline_edits``, as the
    recipe's ``eval.baseline_edits``, names the edits that get the neuron baseline, default
    every edit). ``model_id`` (default: the
    model's ``name_or_path``) names the base model in exports.
    """
    given = {"label_names": label_names, "shots": shots, "max_length": max_length}
    checked = checked_args(
        model,
        seed=(Recipe, "seed", seed),
        max_length=(DataSpec, "max_length", 256 if max_length is None else max_length),
        steer_strength=(EvalSpec, "steer_strength", steer_strength),
        baselines=(EvalSpec, "baselines", listed(baselines)),
        baseline_edits=(EvalSpec, "baseline_edits", baseline_edits),
    )
    seed, max_length = checked["seed"], checked["max_length"]
    steer_strength, baselines = checked["steer_strength"], tuple(checked["baselines"])
    batch_size = batch_size_of(batch_size)
    mid = model_id_of(model, model_id)
    check_no_gates(model, "fit")
    specs = edit_specs(edits)
    pspec = prompt_spec(prompt)
    spec = data_spec(data)
    if spec is not None:
        for name, value in given.items():
            if value is not None:
                raise EditError(
                    f"{name}: a recipe data spec says it itself (data.{name}, prompt.shots); "
                    "leave the argument out"
                )
        ignored = ignored_data(spec)
        if ignored:
            raise EditError("\n".join(ignored))
        cdata = load_concept_data(spec, pspec.shots, seed, pspec.label_words)
        names, fit_ex, shot_ex = cdata.label_names, cdata.fit, cdata.shots
        max_length = spec.max_length
        data_def: dict[str, Any] = spec.model_dump(mode="json")
    else:
        fit_ex, names = examples(data, label_names)
        if pspec.shots and shots is None:
            raise EditError(
                "prompt.shots: in-memory data brings its few-shot examples as shots=[(text, "
                "label), ...]; pass them or set shots to 0"
            )
        shot_ex = examples(shots, names, "shots")[0] if shots else Examples([], [])
        data_def = {"examples_sha256": examples_digest(fit_ex), "label_names": names}
    named = {edit_name(e, i) for i, e in enumerate(specs)}
    for name in checked["baseline_edits"] or []:
        if name not in named:
            raise EditError(
                f"baseline_edits: {name!r} is not an edit name; edits are {sorted(named)}"
            )
    for i, e in enumerate(specs):
        for c in e.concepts:
            if c not in names:
                raise EditError(f"edits.{i}.concepts: {c!r} is not a label; labels are {names}")
    task = detect_task(model.config, "auto")
    layout = find_layout(model)
    if task != "causal-lm":
        if shots is not None:
            raise EditError("shots: a classifier reads no prompt, so it takes no shots")
        shot_ex = Examples([], [])
    cm = ConceptModel(model, tokenizer, task, layout, names, pspec, shot_ex, max_length)
    layers = [resolve_layer(e.layer, layout.n_layers) for e in specs]
    wanted = list(baselines)
    prep = prepare(cm, fit_ex, specs, layers, batch_size, seed, wanted)
    built = build(
        prep,
        specs,
        layers,
        layout.n_layers,
        wanted,
        baseline_edits=checked["baseline_edits"],
        steer_strength=steer_strength,
    )
    gates, baseline = built.gates, built.baseline
    # A model built from a config has no id: the edit then records none, and export asks
    # for the base model's folder or Hub id (model_id=).
    model_def = (
        ModelSpec(id=mid).model_dump(mode="json", include=EDIT_FIELDS["model"])
        if mid
        else {"id": None}
    )
    definition = {
        "model": model_def,
        "data": data_def,
        "prompt": pspec.model_dump(mode="json"),
        "edits": [e.model_dump(mode="json") for e in specs],
        "seed": seed,
    }
    return Edit(
        gates, baseline, layout.layers_path, names, pspec, shot_ex, max_length, task, definition
    )


def _concept_model(model: Any, tokenizer: Any, edit: Edit) -> ConceptModel:
    layout = find_layout(model)
    shots = edit.shots
    return ConceptModel(
        model, tokenizer, edit.task, layout, edit.label_names, edit.prompt, shots, edit.max_length
    )


def evaluate(
    model: Any,
    tokenizer: Any,
    edit: Edit,
    data: Any,
    *,
    perplexity_text: str | None = None,
    perplexity_source: str | None = None,
    perplexity_windows: int = 8,
    perplexity_window: int = 256,
    batch_size: int = 8,
    curate: bool = False,
    calibrate: bool = False,
    baselines: bool = True,
) -> Evaluation:
    """The erasure table (and perplexity) of ``edit`` on ``data``: plain data (a dict) with
    readable views (``repr``, ``to_markdown()``, ``to_pandas()``; see ``nledit.evaluation.result``).

    ``data`` as for :func:`fit` (a recipe data spec gives its evaluation split). Each gate is
    measured alone against the base model: Acc/Conf on the concept's examples, CAcc/CConf on
    the others (``baselines``: the neuron-masking gates too). Perplexity on general text, given
    as ``perplexity_text`` or as a file / Hub data set (``perplexity_source``). Call it outside
    ``edit.applied(model)``: the base model must be the unedited one.

    The result also holds the base model's ``competence`` (per-class and balanced accuracy,
    macro-F1 with 95 % intervals and a verdict), each erasure row's ``ci`` (paired bootstrap
    95 % intervals of its deltas) and ``assessable`` flag (False where the base cannot do the
    task or the target: the row is kept, but carries no erasure claim), and
    ``perplexity_ci`` (the ΔPPL interval per condition).
    """
    _check_edit(edit)
    checked = checked_args(
        model,
        perplexity_text=(PromptSpec, "instruction", perplexity_text or ""),
        perplexity_source=(EvalSpec, "perplexity_source", perplexity_source),
        perplexity_windows=(EvalSpec, "perplexity_windows", perplexity_windows),
        perplexity_window=(EvalSpec, "perplexity_window", perplexity_window),
        curate=(EvalSpec, "curate", curate),
        calibrate=(EvalSpec, "curate", calibrate),  # a plain true/false here
        baselines=(EvalSpec, "enabled", baselines),
    )
    batch_size = batch_size_of(batch_size)
    check_no_gates(model, "evaluate")  # its own gates or another edit's: not the base
    spec = data_spec(data)
    if spec is not None:
        seed = int(edit.definition.get("seed", 0))
        prompt = edit.prompt
        ex = load_concept_data(spec, prompt.shots, seed, prompt.label_words, 0, prompt).eval
    else:
        ex = examples(data, edit.label_names)[0]
    names = ("curate", "perplexity_source", "perplexity_windows", "perplexity_window")
    settings = EvalSpec(**{n: checked[n] for n in names}, transfer=False)
    inputs = EvalInputs(
        ex,
        batch_size,
        calibrate=True if calibrate else None,
        perplexity_text=perplexity_text,
        perplexity_field="perplexity_source",
    )
    cm = _concept_model(model, tokenizer, edit)
    result = evaluate_edit(edit, cm, inputs, settings, baselines=baselines, diagnose=False)
    return Evaluation(result)


def export(
    model: Any,
    tokenizer: Any,
    edit: Edit,
    out_dir: str | Path,
    *,
    method: str = "range",
    overwrite: bool = False,
    metrics: dict[str, Any] | None = None,
    model_id: str | None = None,
    weights: str = "copy",
) -> Path:
    """Write the checkpoint ``nledit run`` writes: base weights untouched, the gates in
    ``nledit_ranges.safetensors``, loadable with transformers and ``trust_remote_code=True``.

    ``method="neuron"`` exports the neuron-masking baseline; ``metrics`` (what
    :func:`evaluate` returned) go into the model card; ``model_id``: the base model's folder or
    Hub id when the model's ``name_or_path`` does not say it; ``weights="reference"`` writes a
    weight-free checkpoint that loads the base weights from where they are (README, "Weight-free
    checkpoints").
    """
    _check_edit(edit)
    checked = checked_args(
        model,
        out_dir=(OutputSpec, "dir", str(out_dir) if isinstance(out_dir, Path) else out_dir),
        method=(OutputSpec, "method", method),
        overwrite=(OutputSpec, "overwrite", overwrite),
        weights=(OutputSpec, "weights", weights),
    )
    if metrics is not None and not isinstance(metrics, dict):
        raise EditError(f"metrics: expected what evaluate() returned, got {type(metrics).__name__}")
    check_no_gates(model, "export")
    out = Path(checked["out_dir"])
    check_destination(out, overwrite, EXPORT_MARKERS)
    d = edit.definition
    mid = model_id_of(model, model_id)
    if not mid:
        raise EditError("export: name the base model's folder or Hub id with model_id=")
    recorded = d.get("model", {}).get("id") if isinstance(d.get("model"), dict) else None
    if recorded and not same_model_id(str(recorded), mid):  # an edit names its own model
        raise EditError(
            f"export: the edit was fitted on {recorded!r}, but the model to export is {mid!r}; "
            "export it with the model it was fitted on"
        )
    return export_edit(
        out,
        model,
        tokenizer,
        edit,
        resolve_source(ModelSpec(id=mid)),
        method=method,
        weights=weights,
        overwrite=overwrite,
        metrics=metrics,
    )


def generate(
    model: Any,
    tokenizer: Any,
    edit: Edit,
    prompts: list[str],
    *,
    label_words: list[str] | None = None,
    decoding: Decoding | None = None,
) -> list[Comparison]:
    """Continuations of ``prompts`` by the base model and with ``edit`` applied, side by side,
    with each label word's probability at every step (greedy unless ``decoding`` says
    otherwise; sampling reuses one seed for both sides). ``label_words`` default to the edit's
    prompt label words, else a space and each label name."""
    _check_edit(edit)
    checked_args(model, prompts=(EvalSpec, "generate_prompts", prompts))
    if not prompts:
        raise EditError("prompts: give at least one prompt")
    if label_words is not None:
        label_words = field_value(PromptSpec, "label_words", label_words, "label_words")
    if decoding is not None and not isinstance(decoding, Decoding):
        raise EditError(f"decoding: expected a nledit.Decoding, got {type(decoding).__name__}")
    words = label_words or edit.prompt.label_words or [" " + n for n in edit.label_names]
    with edit.applied(model):
        return compare(model, tokenizer, prompts, words, decoding)


def _check_edit(edit: Any) -> None:
    if not isinstance(edit, Edit):
        raise EditError(
            f"edit: expected what nledit.fit or nledit.Edit.load returned, got "
            f"{type(edit).__name__}"
        )


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file (``overrides``: dotted paths, as ``--set`` takes)."""
    return load(path, overrides)[0]


def run(
    recipe: Recipe | str | Path,
    out: str | Path | None = None,
    overwrite: bool | None = None,
    log: Any = print,
) -> Any:
    """What ``nledit run`` does: fit, evaluate (as the recipe says) and export to ``out``
    (default ``output.dir``). Returns the fitted state, the evaluation and the folder."""
    if isinstance(recipe, Recipe):
        text = yaml.safe_dump(recipe.model_dump(mode="json", exclude_unset=True), sort_keys=False)
    else:
        recipe, text = load(recipe)
    dest = Path(out if out is not None else recipe.output.dir)
    again = recipe.output.overwrite if overwrite is None else overwrite
    return run_recipe(recipe, text, dest, again, log)


# The recipe jobs of the other recipe commands, as the command line runs them.


def check(recipe: Recipe) -> Any:
    """What `nledit check` prints: the recipe's plan and problems, without loading weights."""
    from .plan import make_plan

    return make_plan(recipe)


def run_recipe(recipe: Recipe, text: str, out: Path, overwrite: bool, log: Any = print) -> Any:
    """What `nledit run` does with a recipe read from ``text``: fit, evaluate, export."""
    from . import pipeline

    return pipeline.run(recipe, text, out, overwrite, log)


def fit_to_folder(recipe: Recipe, text: str, out: Path, field: str, log: Any = print) -> None:
    """What `nledit fit` does: the fit folder ``out`` (``field`` names it in errors)."""
    from .pipeline import fit_to_folder as job

    job(recipe, text, out, field, log)


def export_fit_folder(
    fit_dir: Path, recipe: Recipe, text: str, evaluated: bool = True, log: Any = print
) -> Path:
    """What `nledit export` does: the fit folder's gates evaluated and exported."""
    from .pipeline import export_fit_folder as job

    return job(fit_dir, recipe, text, evaluated, log)
