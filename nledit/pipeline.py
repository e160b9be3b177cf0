"""The jobs behind the CLI: fit, evaluate, export, and all three in one run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from .checkpoint.edit_export import export_edit
from .checkpoint.integrity import walk
from .checkpoint.write import EXPORT_MARKERS, ExportError
from .evaluation import diagnostics
from .evaluation.results import result_files, summary
from .evaluation.rows import EvalResult
from .evaluation.seeds import seed_list, summarise, with_seed
from .evaluation.suite import EvalInputs, evaluate_edit
from .fitting.provenance import check_fingerprint, model_fingerprint
from .fitting.recipe_fit import Fitted, fit, load_for_recipe, recipe_edit
from .folders.atomic import atomic_dir, check_destination
from .recipe import Recipe, edit_name, recipe_hash
from .runtime import gate
from .version import __version__

FIT_STATS = "nledit_stats.safetensors"
FIT_GATES = "nledit_fit_ranges.safetensors"
FIT_META = "nledit_fit.json"
FIT_MARKERS = (FIT_META,)


@dataclass
class RunOutput:
    fitted: Fitted
    result: EvalResult | None
    out: Path


def eval_inputs(fitted: Fitted) -> EvalInputs:
    """What a recipe's edit is measured on: its held-out split, its fitting split, and the
    recipe's batch size, seed and calibration setting."""
    recipe = fitted.recipe
    return EvalInputs(
        fitted.data.eval,
        recipe.batch_size,
        fitted.data.fit,
        recipe.seed,
        recipe.prompt.calibrate,
        recipe.data.token_classes is not None,
    )


def evaluate(fitted: Fitted) -> EvalResult:
    """Erasure table and perplexity for a fitted recipe (as the recipe's eval section says)."""
    return evaluate_edit(
        fitted.edit, fitted.cm, eval_inputs(fitted), fitted.recipe.eval, timings=fitted.timings
    )


def other_seeds(recipe: Recipe, text: str, first: EvalResult, log: Any = print) -> dict[str, Any]:
    """Data draw, fit and evaluation again under each further seed of ``eval.seeds``; the
    ``seeds`` block of results.json: the seeds, their mean ± sd (``seeds.summarise``, over
    every seed, the first included) and each further seed's whole result in ``runs`` (the
    first seed's is the document itself)."""
    seeds = seed_list(recipe)
    runs = []
    for seed in seeds[1:]:
        log(f"seed {seed} ({seeds.index(seed) + 1} of {len(seeds)}): draw, fit and evaluate")
        fitted = fit(with_seed(recipe, seed), text)
        runs.append({"seed": seed, **evaluate(fitted).to_dict()})
        del fitted  # one extra model in memory at a time
    return {
        "seeds": seeds,
        "summary": summarise(seeds, [first.to_dict(), *runs]),
        "runs": runs,
    }


def checkpoint_gates(fitted: Fitted) -> list[gate.RangeGate]:
    """The gates an export carries: the range edit, or its neuron-masking baseline."""
    return fitted.edit.gates_for(fitted.recipe.output.method, "output.method")


def card_generations(fitted: Fitted) -> str:
    """The recipe's ``eval.generate_prompts``, continued by the base and the exported edit."""
    ev = fitted.recipe.eval
    if not ev.generate_prompts or not fitted.cm.is_lm:
        return ""
    from .evaluation.generation import card_examples

    words = fitted.recipe.prompt.label_words or [" " + n for n in fitted.data.label_names]
    layers = fitted.edit.layers_path
    tok = fitted.cm.tokenizer
    gates = checkpoint_gates(fitted)
    return card_examples(
        fitted.model, tok, layers, gates, ev.generate_prompts, words, ev.generate_tokens
    )


def export_fitted(fitted: Fitted, out: Path, result: EvalResult | None, overwrite: bool) -> Path:
    """The checkpoint of a fitted recipe (``checkpoint.edit_export.export_edit``): its recipe
    verbatim, the data it was fitted on, its evaluation (``result``) and its result files."""
    recipe, data = fitted.recipe, fitted.data
    extra: dict[str, str] = {}
    if result is not None:
        settings = {"recipe_sha256": recipe_hash(fitted.recipe_text), "nledit": __version__}
        extra = result_files(result, settings, f"nledit evaluation: {fitted.source.origin}")
    hub_data = "/" in recipe.data.source and not Path(recipe.data.source).exists()
    return export_edit(
        out,
        fitted.model,
        fitted.cm.tokenizer,
        fitted.edit,
        fitted.source,
        method=recipe.output.method,
        weights=recipe.output.weights,
        overwrite=overwrite,
        field="output.method",
        recipe_text=fitted.recipe_text,
        data={
            "source": recipe.data.source,
            "sha256": data.digest,
            "fit_examples": len(data.fit),
            "eval_examples": len(data.eval),
            "shots": len(data.shots),
            "label_names": data.label_names,
        },
        datasets=[recipe.data.source] if hub_data else [],
        metrics=result.to_dict() if result else {},
        timings=fitted.timings,
        generations=card_generations(fitted),
        extra_files=extra,
    )


def run(recipe: Recipe, text: str, out: Path, overwrite: bool, log: Any = print) -> RunOutput:
    """Fit, evaluate, export; prints the erasure summary."""
    check_destination(out, overwrite, EXPORT_MARKERS)
    fitted = fit(recipe, text)
    log(
        f"fitted {len(fitted.edit.gates)} range gate(s) in {fitted.timings['fit_pass_s']:.1f}s "
        f"({len(fitted.data.fit)} examples, layer(s) {sorted(set(fitted.layers))})"
    )
    for g in fitted.edit.gates:
        if g.spec.quorum:
            log(
                f"  {g.spec.name}: acts on a token when at least {g.spec.quorum} of its "
                f"{g.spec.k} neurons are inside their ranges"
            )
    result = evaluate(fitted) if recipe.eval.enabled else None
    if result is not None and recipe.eval.seeds > 1:
        result.seeds = other_seeds(recipe, text, result, log)
    if result is not None:
        log(summary(result))
        for line in diagnostics.warnings_for(result.rows, result.competence):
            log(line)
    export_fitted(fitted, out, result, overwrite)
    log(f"exported checkpoint to {out}")
    return RunOutput(fitted, result, out)


def fit_to_folder(recipe: Recipe, text: str, out: Path, field: str, log: Any = print) -> None:
    """`nledit fit`: one streaming pass (across processes when launched so) into the fit
    folder ``out`` (``field`` names it in errors); the main process writes it."""
    from .fitting.distributed import fit_distributed_or_local

    check_destination(out, recipe.output.overwrite, FIT_MARKERS, field)
    fitted = fit_distributed_or_local(recipe, text)
    if fitted is not None:
        save_fit(fitted, out, recipe.output.overwrite)
        log(f"fit written to {out} ({len(fitted.edit.gates)} range gate(s))")


def export_fit_folder(
    fit_dir: Path, recipe: Recipe, text: str, evaluated: bool = True, log: Any = print
) -> Path:
    """`nledit export`: the fit folder's gates evaluated (``evaluated`` and the recipe's eval
    section say so) and exported to ``output.dir``."""
    out = Path(recipe.output.dir)
    check_destination(out, recipe.output.overwrite, EXPORT_MARKERS)
    fitted = load_fit(fit_dir, recipe, text)
    result = evaluate(fitted) if (recipe.eval.enabled and evaluated) else None
    if result is not None:
        log(summary(result))
    export_fitted(fitted, out, result, recipe.output.overwrite)
    log(f"exported checkpoint to {out}")
    return out


def save_fit(fitted: Fitted, out: Path, overwrite: bool) -> Path:
    """A fit directory: statistics, range and baseline gates, the recipe and fit metadata."""
    with atomic_dir(out, overwrite, FIT_MARKERS) as tmp:
        save_file(
            {k: v.contiguous() for k, v in fitted.stats.to_tensors().items()}, str(tmp / FIT_STATS)
        )
        gate.save_ranges(
            str(tmp / FIT_GATES),
            fitted.edit.gates + fitted.edit.baseline,
            {"nledit_version": __version__},
        )
        (tmp / "nledit_recipe.yaml").write_text(fitted.recipe_text, encoding="utf-8")
        meta = {
            "layers": fitted.layers,
            "label_names": fitted.data.label_names,
            "timings": fitted.timings,
            "data_sha256": fitted.data.digest,
            "recipe_sha256": recipe_hash(fitted.recipe_text),
            "nledit_version": __version__,
            "gates": [g.spec.to_dict() for g in fitted.edit.gates + fitted.edit.baseline],
            "model": model_fingerprint(fitted.source),
            "files": {name: "" for name in walk(tmp)[0]},  # what --overwrite may replace
        }
        (tmp / FIT_META).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _is_edit(g: gate.RangeGate) -> bool:
    """A gate of the edit itself (range mode), not a comparison (neuron, vector, paper)."""
    return g.spec.mode == "range" and g.spec.row == "range"


def _fit_files(fit_dir: Path) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """(metadata, gates, statistics tensors) of a fit directory; a damaged file is named."""
    from safetensors import safe_open

    path = fit_dir / FIT_META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError) as err:
        raise ExportError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise ExportError(
            f"{path}, line {err.lineno}: invalid JSON ({err.msg}, column {err.colno})"
        ) from None
    if not isinstance(meta, dict):
        raise ExportError(f"{path}: expected a JSON object (is this a fit directory?)")
    try:
        with safe_open(str(fit_dir / FIT_GATES), framework="pt") as f:
            block_meta = json.loads((f.metadata() or {}).get("nledit", "{}"))
        tensors = load_file(str(fit_dir / FIT_GATES))
        stats = load_file(str(fit_dir / FIT_STATS))
    except Exception as err:  # safetensors' own errors on a missing, truncated or foreign file
        raise ExportError(f"{fit_dir}: damaged or incomplete fit directory ({err})") from None
    specs = block_meta.get("edits", []) if isinstance(block_meta, dict) else []
    if meta.get("gates") != specs:
        raise ExportError(f"{path}: its gates differ from those in {FIT_GATES}")
    if not isinstance(meta.get("timings", {}), dict):
        raise ExportError(f"{path}: timings must be an object")
    block = {"edits": specs, "ranges_sha256": gate.tensors_digest(tensors), "format": gate.FORMAT}
    gates = gate.load_gates(str(fit_dir / FIT_GATES), block)
    return meta, gates, stats


def load_fit(fit_dir: Path, recipe: Recipe, text: str) -> Fitted:
    """Rebuild a Fitted from a fit directory: its files first, then the model (no data pass)."""
    from .fitting.collect import ConceptStats

    meta, gates, stats_tensors = _fit_files(fit_dir)
    try:
        stats = ConceptStats.from_tensors(stats_tensors)
    except (IndexError, KeyError, ValueError, RuntimeError) as err:
        raise ExportError(f"{fit_dir / FIT_STATS}: not nledit statistics ({err})") from None
    recipe, data, source, cm, layout, layers = load_for_recipe(recipe)
    check_fingerprint(meta.get("model"), source, str(fit_dir / FIT_META))
    if meta.get("data_sha256") != data.digest:
        raise ExportError(f"{fit_dir / FIT_META}: fitted on other data than the recipe names")
    try:
        gate.check_fits(gates, layout.hidden_size, layout.n_layers)
    except gate.NleditLoadError as err:
        raise ExportError(f"{fit_dir / FIT_GATES}: {err}") from None
    placed = {edit_name(e, i): layer for i, (e, layer) in enumerate(zip(recipe.edits, layers))}
    for g in gates:  # each gate of an edit at the layer the recipe resolves for it
        if placed.get(g.spec.edit) != g.spec.layer:
            raise ExportError(
                f"{fit_dir / FIT_GATES}: gate {g.spec.name!r} is at layer {g.spec.layer}, "
                f"not where the recipe puts edit {g.spec.edit!r} "
                f"({placed.get(g.spec.edit, 'no such edit')})"
            )
    return Fitted(
        recipe,
        text,
        source,
        data,
        cm,
        layout,
        layers,
        stats,
        [],
        recipe_edit(
            recipe,
            cm,
            data,
            [g for g in gates if _is_edit(g)],
            [g for g in gates if not _is_edit(g)],
        ),
        None,
        dict(meta.get("timings", {})),
    )
