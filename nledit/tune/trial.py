"""One trial of `nledit tune`: the search space, the preparation (one statistics pass, the
cached base outputs) and the evaluation of one candidate edit on the validation split."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.concept import ConceptModel
from ..data.dataset import ConceptData, DataError
from ..errors import NleditError
from ..evaluation.erasure import resolve_calibration
from ..evaluation.perplexity import PerplexityError, load_text, windows
from ..fitting import build as building
from ..fitting.collect import ConceptStats
from ..fitting.prepare import Prepared, general_means, needs_samples
from ..fitting.prepare import gates as edit_gates
from ..fitting.recipe_fit import load_for_recipe
from ..fitting.reservoir import Reservoir
from ..fitting.saliency_registry import SALIENCIES
from ..models.arch import resolve_layer
from ..models.loading import ModelSource
from ..recipe import EditSpec, Recipe, SearchSpace
from ..recipe.operator_section import section_fields
from ..recipe.presets import with_preset
from ..runtime import operators
from ..runtime.gate import RangeGate
from ..runtime.operators import needs_leace
from .cache import ValidationCache, load_base, load_stats, save_base, save_stats
from .pick import selectivity

DIRECTIONS = {
    "d_acc": "minimize",
    "d_conf": "minimize",
    "d_cacc": "maximize",
    "d_cconf": "maximize",
    "d_ppl": "minimize",
    "selectivity": "maximize",
}
_TOL = 1e-12


class TuneError(NleditError, ValueError):
    """The tuning job cannot run as the recipe says."""


@dataclass
class TuneContext:
    """Everything a trial needs, built once."""

    recipe: Recipe
    text: str
    data: ConceptData
    source: ModelSource
    cm: ConceptModel
    layers: list[int]  # candidate layers, resolved
    ref_layer: int
    prep: Prepared  # the statistics pass every candidate edit is built from
    ppl_ids: torch.Tensor | None
    log: Callable[[str], None] = print
    memo: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    base_file: Path | None = None  # where the base cache is stored between runs
    _cache: ValidationCache | None = None

    @property
    def edit(self) -> EditSpec:
        return self.recipe.edits[self.recipe.tune.edit]

    @property
    def stats(self) -> ConceptStats:
        return self.prep.stats

    @property
    def reservoir(self) -> Reservoir | None:
        return self.prep.reservoir

    @property
    def all_layers(self) -> list[int]:
        return sorted({*self.layers, self.ref_layer})

    @property
    def cache(self) -> ValidationCache:
        """The base model's validation outputs, computed on first use."""
        if self._cache is None:
            t0 = time.perf_counter()
            r = self.recipe
            args = (self.cm, self.all_layers, self.data.val, r.batch_size, r.eval.curate)
            if self.base_file is not None and self.base_file.is_file():
                self._cache = load_base(self.base_file, *args, self.ppl_ids)
                what = f"loaded from {self.base_file}"
            else:
                self._cache = ValidationCache(*args, self.ppl_ids)
                if self.base_file is not None:
                    save_base(self._cache, self.base_file)
                what = "computed"
            seconds = self.timings["base_cache_s"] = time.perf_counter() - t0
            self.log(f"tune: base model on the validation data {what} in {seconds:.0f}s")
        return self._cache


# ---- the search space ------------------------------------------------------------------------


def default_layers(n_layers: int) -> list[int]:
    """Candidate layers when ``space.layers`` is not given: the middle layer, the one at three
    quarters of the depth, the fourth from last and the last (distinct, in range). Concepts are
    often best separated, and most cheaply edited, in the upper middle of a decoder."""
    picks = {n_layers // 2, (3 * n_layers) // 4, n_layers - 4, n_layers - 1}
    return sorted(i for i in picks if 0 <= i < n_layers)


def candidate_layers(space: SearchSpace, edit: EditSpec, n_layers: int) -> tuple[list[int], int]:
    """The resolved candidate layers (the reference edit's layer always among them)."""
    ref = resolve_layer(edit.layer, n_layers)
    if space.layers is None:
        return default_layers(n_layers), ref
    layers = sorted({resolve_layer(v, n_layers) for v in space.layers})
    return layers, ref


def _float(trial: Any, name: str, bounds: list[float], log: bool = False, nd: int = 4) -> float:
    lo, hi = bounds
    if lo == hi:
        return lo
    return round(trial.suggest_float(name, lo, hi, log=log and lo > 0), nd)


def suggest(trial: Any, space: SearchSpace, layers: list[int]) -> dict[str, Any]:
    """One point of the search space (define-by-run: parameters only where they matter)."""
    p: dict[str, Any] = {"layer": trial.suggest_categorical("layer", layers)}
    p["saliency"] = trial.suggest_categorical("saliency", list(space.saliency))
    p["top_p"] = _float(trial, "top_p", space.top_p, space.log_top_p)
    p["range"] = trial.suggest_categorical("range", list(space.range))
    p["operator"] = trial.suggest_categorical("operator", list(space.operators))
    op = operators.get(p["operator"])
    if p["range"] == "sigma" or "tau" in op.params:
        p["tau"] = _float(trial, "tau", space.tau, nd=3)
    if p["range"] == "quantile":
        p["quantiles"] = [_float(trial, "q_lo", space.q_lo), _float(trial, "q_hi", space.q_hi)]
    p["trim_overlap"] = trial.suggest_categorical("trim_overlap", list(space.trim_overlap))
    p["quorum"] = space.quorum[0]
    if len(space.quorum) > 1:
        p["quorum"] = trial.suggest_categorical("quorum", list(space.quorum))
    if space.positions is not None:  # a single value stays out of the study's parameters
        p["positions"] = space.positions[0]
        if len(space.positions) > 1:
            p["positions"] = trial.suggest_categorical("positions", list(space.positions))
    if p["saliency"] == "selective":
        p["selectivity"] = trial.suggest_categorical("selectivity", list(space.selectivity))
        p["magnitude_weight"] = _float(trial, "magnitude_weight", space.magnitude_weight, nd=3)
    for name in op.tuned:  # e.g. dampen's alpha: the interval is tune.space.<name>
        p[name] = _float(trial, name, space.interval(name), nd=3)
    return p


def edit_mapping(base: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """The recipe mapping of an edit: ``base`` (the recipe's edit) with the trial's settings."""
    drop = ("preset", "range", "quantiles", "trim_overlap", "quorum")  # preset: spelled out
    drop += ("positions",) if "positions" in p else ()
    m = {k: v for k, v in with_preset(base).items() if k not in drop}
    for key in ("selectivity", "magnitude_weight"):
        m.pop(key, None)
    m["layer"] = int(p["layer"])
    m["saliency"] = p["saliency"]
    m["top_p"] = p["top_p"]
    if "tau" in p:
        m["tau"] = p["tau"]
    if p["range"] == "quantile":
        m["range"] = "quantile"
        m["quantiles"] = list(p["quantiles"])
    if p["trim_overlap"]:
        m["trim_overlap"] = True
    if p.get("quorum", "none") != "none":
        m["quorum"] = p["quorum"]
    if p.get("positions", "all") != "all":
        m["positions"] = p["positions"]
    if p["saliency"] == "selective":
        m["selectivity"] = p["selectivity"]
        m["magnitude_weight"] = p["magnitude_weight"]
    m["operator"] = trial_section(base.get("operator", "zero"), p)
    return m


def trial_section(base: Any, p: dict[str, Any]) -> str | dict[str, Any]:
    """The operator section of a trial: the chosen operator with its tuned values, and what
    the recipe's own section sets that the chosen operator takes (``mean_source``); the
    recipe's parameters of another operator stay out, so the section is valid for the
    chosen one."""
    own = dict(base) if isinstance(base, dict) else {"name": base}
    takes = section_fields(p["operator"])
    op = {k: v for k, v in own.items() if k in takes} | {"name": p["operator"]}
    op |= {k: p[k] for k in operators.get(p["operator"]).tuned if k in p and k in takes}
    return op if len(op) > 1 else op["name"]


def to_edit(mapping: dict[str, Any], where: str = "tune") -> EditSpec:
    try:
        return EditSpec.model_validate(mapping)
    except Exception as err:  # a space that produces invalid edits is a recipe problem
        raise TuneError(f"{where}: the search produced an invalid edit {mapping}: {err}") from err


# ---- one evaluation --------------------------------------------------------------------------


def build_gates(
    ctx: TuneContext, edit: EditSpec, mode: str = "range", index: int | None = None
) -> list[RangeGate]:
    """Gates of ``edit`` (range or neuron mode) from the cached statistics."""
    layer = resolve_layer(edit.layer, ctx.cm.layout.n_layers)
    i = ctx.recipe.tune.edit if index is None else index
    return [built[mode] for _, built in edit_gates(ctx.prep, edit, i, layer, (mode,))]


def trial_metrics(ctx: TuneContext, edit: EditSpec) -> dict[str, Any]:
    """Validation metrics of one edit (memoised: the same edit is measured once).

    As in the erasure table, each concept's gate is measured on its own; the metrics (and
    perplexities) are averaged over the edit's concepts. ``k``: neurons summed over concepts.
    """
    key = json.dumps(edit.model_dump(mode="json"), sort_keys=True)
    if key in ctx.memo:
        return dict(ctx.memo[key])
    cache = ctx.cache  # built on first use, not counted as the trial's time
    t0 = time.perf_counter()
    gates = build_gates(ctx, edit)
    out: dict[str, Any] = {}
    ppls = []
    for gate in gates:
        probs, ppl = cache.run([gate])
        concept = ctx.data.label_names.index(gate.spec.concept)
        for name, value in cache.metrics(probs, [concept]).items():
            out[name] = out.get(name, 0.0) + value / len(gates)
        for name, value in _noise_bounds(cache, probs, concept).items():
            out[name] = out.get(name, 0.0) + value / len(gates)
        if ppl is not None:
            ppls.append(ppl)
    out["k"] = sum(int(g.spec.k) for g in gates)
    out["selectivity"] = selectivity(out)
    if ppls and cache.base_ppl is not None:
        out["ppl"] = sum(ppls) / len(ppls)
        out["d_ppl"] = out["ppl"] - cache.base_ppl
    out["seconds"] = time.perf_counter() - t0
    ctx.memo[key] = dict(out)
    return out


def _noise_bounds(cache: Any, probs: torch.Tensor, concept: int) -> dict[str, float]:
    """The pessimistic ends of the 95 % intervals (``bootstrap``), for a pick that accounts
    for noise: ``d_acc_hi``, the upper end of the target's ΔAcc (the smallest drop the
    validation examples support), and ``d_cacc_worst``, the largest |ΔCAcc| (macro) inside
    its interval."""
    from ..evaluation.bootstrap import delta_intervals, stratified_indices

    keep, gold = cache.keep, cache.gold
    base = (cache.base_probs[keep], cache.base_pred[keep])
    edit = (probs[keep], cache.cm.predict(probs)[keep])
    ci = delta_intervals(base, edit, gold[keep], concept, *stratified_indices(gold[keep]))
    lo, hi = ci.get("d_cacc_macro", [math.nan, math.nan])
    return {
        "d_acc_hi": ci.get("d_acc", [math.nan, math.nan])[1],
        "d_cacc_worst": max(abs(lo), abs(hi)),
    }


# ---- preparation -----------------------------------------------------------------------------


def tune_windows(recipe: Recipe, tokenizer: Any) -> torch.Tensor | None:
    """The perplexity windows for tuning: the ones after the evaluation's windows."""
    ev, tune = recipe.eval, recipe.tune
    if "d_ppl" not in tune.objectives:
        return None
    if not ev.perplexity_source:
        raise TuneError(
            "tune.objectives: d_ppl needs eval.perplexity_source (general text); set it or "
            "drop d_ppl from the objectives"
        )
    if tune.perplexity_windows == 0:
        raise TuneError("tune.perplexity_windows: d_ppl needs at least one window")
    text = load_text(ev.perplexity_source, steps=ev.perplexity_preprocess)
    need = ev.perplexity_windows + tune.perplexity_windows
    ids = windows(tokenizer, text, ev.perplexity_window, need)
    if ids.shape[0] < need:
        raise PerplexityError(
            f"tune.perplexity_windows: {ev.perplexity_source} holds {ids.shape[0]} windows of "
            f"{ev.perplexity_window} tokens; the evaluation uses {ev.perplexity_windows} and "
            f"tuning needs {tune.perplexity_windows} more after them"
        )
    return ids[ev.perplexity_windows :]


def tune_context(recipe: Recipe, text: str, log: Callable[[str], None] = print) -> TuneContext:
    """Load data and model, one statistics pass for all candidate layers, the base cache."""
    tune = recipe.tune
    t0 = time.perf_counter()
    recipe, data, source, cm, layout, _layers = load_for_recipe(recipe, tune.val_per_class)
    edit = recipe.edits[tune.edit]
    for c in edit.concepts + data.label_names:
        n = data.val.labels.count(data.label_names.index(c))
        if n == 0:
            raise DataError(
                f"data: concept {c!r} has no validation examples left after the shots, the "
                "evaluation and the fitting examples; lower data.fit_per_class or "
                "data.eval_per_class"
            )
    if "d_ppl" in tune.objectives and not cm.is_lm:
        raise TuneError("tune.objectives: d_ppl needs a causal language model")
    layers, ref_layer = candidate_layers(tune.space, edit, layout.n_layers)
    all_layers = sorted({*layers, ref_layer})
    space = tune.space
    need_res = "quantile" in space.range or "auto" in space.quorum
    need_res |= any(SALIENCIES[s].needs_samples for s in space.saliency)
    need_res |= needs_samples([edit])
    # every candidate reads the tuned edit's general text (its mean_source, else the data)
    mean_text = (
        edit.operator.option("mean_source") or "",
        f"edits.{tune.edit}.operator.mean_source",
    )
    key = cache_key(recipe, all_layers, need_res)
    out = Path(tune.dir).expanduser()
    stats_file, base_file = out / f"stats-{key}.safetensors", out / f"base-{key}.safetensors"
    t1 = time.perf_counter()
    # a rerun or --pick does not repeat the pass (the cache holds no LEACE statistics)
    if stats_file.is_file() and not needs_leace([edit]):
        stats, reservoir = load_stats(stats_file, recipe.seed)
        log(f"tune: statistics loaded from {stats_file}")
        general = mean_text if building.mean_text([edit], space.operators) else None
        means = general_means(*general, cm, stats, recipe.batch_size) if general else None
        prep = Prepared(cm, stats, reservoir, means, recipe.seed)
    else:
        prep = building.prepare(
            cm,
            data.fit,
            [edit],
            all_layers,
            recipe.batch_size,
            recipe.seed,
            samples=need_res,
            operators=space.operators,
            mean=mean_text,
        )
        out.mkdir(parents=True, exist_ok=True)
        save_stats(prep.stats, prep.reservoir, stats_file)
    t2 = time.perf_counter()
    resolve_calibration(cm, recipe.prompt.calibrate, data.fit, recipe.batch_size)
    ppl_ids = tune_windows(recipe, cm.tokenizer) if cm.is_lm else None
    log(
        f"tune: {len(data.fit)} fitting, {len(data.val)} validation examples; layers "
        f"{all_layers}; load {t1 - t0:.0f}s, statistics {t2 - t1:.0f}s"
    )
    timings = {"load_s": t1 - t0, "fit_pass_s": t2 - t1}
    return TuneContext(
        recipe,
        text,
        data,
        source,
        cm,
        layers,
        ref_layer,
        prep,
        ppl_ids,
        log,
        timings=timings,
        base_file=base_file,
    )


def cache_key(recipe: Recipe, layers: list[int], reservoir: bool) -> str:
    """A digest of everything the statistics pass and the base cache depend on."""
    from ..version import __version__

    doc = {
        "model": recipe.model.model_dump(mode="json"),
        "data": recipe.data.model_dump(mode="json"),
        "prompt": recipe.prompt.model_dump(mode="json"),
        "eval": recipe.eval.model_dump(mode="json"),
        "seed": recipe.seed,
        "batch_size": recipe.batch_size,
        "val": recipe.tune.val_per_class,
        "windows": recipe.tune.perplexity_windows,
        "d_ppl": "d_ppl" in recipe.tune.objectives,
        "layers": layers,
        "reservoir": reservoir,
        "nledit": __version__,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]
