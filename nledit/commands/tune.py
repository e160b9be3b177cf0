"""`nledit tune`: a multi-objective search for an edit, judged on a validation split.

One study tunes one edit of a recipe (``tune.edit``) over ``tune.space``: layer, token
positions (all or the read token), saliency (max, probeless, selective with its measure and
magnitude weight), top_p, range shape (sigma with tau, or quantiles), trim_overlap and the
operator (zero, dampen alpha, mean, adaptive beta). Objectives (``tune.objectives``), all deltas
against the unedited model:

    selectivity  target drop minus collateral change  maximise (``tune_pick``)
    d_acc        target accuracy change               minimise (more negative = more erased)
    d_cacc       collateral accuracy change           maximise (towards 0 = others left alone)
    d_ppl        perplexity change                    minimise (towards 0 = text left alone)

(``d_conf`` is minimised and ``d_cconf`` maximised like their accuracy twins.)

Data. Every trial is judged on ``tune.val_per_class`` examples per concept taken after the
fitting examples: disjoint from the shots, the fitting examples and the evaluation examples,
which the search never sees. Perplexity uses the ``tune.perplexity_windows`` windows that
follow the ``eval.perplexity_windows`` windows of the evaluation.

Cost. The statistics of every candidate layer come from one pass over the fitting examples
(plus a bounded reservoir when quantile ranges or the probe are searched). The base model's
work on the validation data is cached (``tune_cache``). A trial builds its gates from the
statistics and runs only the layers after its own.

The pick. ``tune.pick`` (``--pick N``) names a trial. Otherwise ``tune_pick``'s rule: no
no-op, constraints rather than an anchor (a pick must have no more collateral damage and
perplexity change than the recipe's own edit on the same validation split, or the tool says
that none does), then the most selective trials compete on perplexity. The pick is written as a
recipe and, with ``tune.evaluate``, evaluated on the held-out evaluation split side by side with
the reference (erasure table and perplexity, neuron masking of both for comparison).

The statistics pass and the base model's validation outputs are stored in ``tune.dir``
(``stats-<key>.safetensors``, ``base-<key>.safetensors``, keyed by everything they depend on),
so a rerun or ``--pick`` starts at the first new trial.

The study lives in an Optuna RDB storage (default ``<tune.dir>/tune.db``, SQLite); running the
command again continues it up to ``tune.trials`` finished trials.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import operators
from ..arch import resolve_layer
from ..collect import ConceptStats
from ..concept import ConceptModel
from ..data import ConceptData, DataError
from ..errors import NleditError
from ..evaluate import EvalResult, calibrate, conditions_for, erasure_table
from ..fit import Fitted, load_for_recipe
from ..gate import RangeGate
from ..models import ModelSource
from ..operators import needs_general_mean
from ..perplexity import PerplexityError, load_text, perplexity, windows
from ..prepare import Prepared, general_means, needs_samples, statistics
from ..prepare import gates as edit_gates
from ..recipe import EditSpec, Recipe, SearchSpace, parse_recipe
from ..reservoir import Reservoir
from ..saliencies import SALIENCIES
from .tune_cache import ValidationCache, load_base, load_stats, save_base, save_stats
from .tune_pick import NoPick, Pick, pick_trial, selectivity

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
    stats: ConceptStats
    reservoir: Reservoir | None
    general_mean: dict[int, torch.Tensor] | None
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


def candidate_layers(space: SearchSpace, edit: EditSpec, n_layers: int) -> tuple[list[int], int]:
    """The resolved candidate layers (the reference edit's layer always among them)."""
    ref = resolve_layer(edit.layer, n_layers)
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
    if space.positions is not None:  # a single value stays out of the study's parameters
        p["positions"] = space.positions[0]
        if len(space.positions) > 1:
            p["positions"] = trial.suggest_categorical("positions", list(space.positions))
    if p["saliency"] == "selective":
        p["selectivity"] = trial.suggest_categorical("selectivity", list(space.selectivity))
        p["magnitude_weight"] = _float(trial, "magnitude_weight", space.magnitude_weight, nd=3)
    for name in op.tuned:  # e.g. dampen's alpha: the interval is tune.space.<name>
        p[name] = _float(trial, name, getattr(space, name), nd=3)
    return p


def edit_mapping(base: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """The recipe mapping of an edit: ``base`` (the recipe's edit) with the trial's settings."""
    drop = ("range", "quantiles", "trim_overlap") + (("positions",) if "positions" in p else ())
    m = {k: v for k, v in base.items() if k not in drop}
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
    if p.get("positions", "all") != "all":
        m["positions"] = p["positions"]
    if p["saliency"] == "selective":
        m["selectivity"] = p["selectivity"]
        m["magnitude_weight"] = p["magnitude_weight"]
    op = base.get("operator", "zero")
    op = dict(op) if isinstance(op, dict) else {"name": op}
    op["name"] = p["operator"]
    for key in operators.TUNED_PARAMS:
        if key in p:
            op[key] = p[key]
    m["operator"] = op if len(op) > 1 else op["name"]
    return m


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
    prep = Prepared(ctx.cm, ctx.stats, ctx.reservoir, ctx.general_mean, ctx.recipe.seed)
    return [built[mode] for _, built in edit_gates(prep, edit, i, layer, (mode,))]


def evaluate_edit(ctx: TuneContext, edit: EditSpec) -> dict[str, Any]:
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
        concept = ctx.data.label_names.index(gate.spec["concept"])
        for name, value in cache.metrics(probs, [concept]).items():
            out[name] = out.get(name, 0.0) + value / len(gates)
        if ppl is not None:
            ppls.append(ppl)
    out["k"] = sum(int(g.spec["k"]) for g in gates)
    out["selectivity"] = selectivity(out)
    if ppls and cache.base_ppl is not None:
        out["ppl"] = sum(ppls) / len(ppls)
        out["d_ppl"] = out["ppl"] - cache.base_ppl
    out["seconds"] = time.perf_counter() - t0
    ctx.memo[key] = dict(out)
    return out


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
    text = load_text(ev.perplexity_source)
    need = ev.perplexity_windows + tune.perplexity_windows
    ids = windows(tokenizer, text, ev.perplexity_window, need)
    if ids.shape[0] < need:
        raise PerplexityError(
            f"tune.perplexity_windows: {ev.perplexity_source} holds {ids.shape[0]} windows of "
            f"{ev.perplexity_window} tokens; the evaluation uses {ev.perplexity_windows} and "
            f"tuning needs {tune.perplexity_windows} more after them"
        )
    return ids[ev.perplexity_windows :]


def prepare(recipe: Recipe, text: str, log: Callable[[str], None] = print) -> TuneContext:
    """Load data and model, one statistics pass for all candidate layers, the base cache."""
    tune = recipe.tune
    t0 = time.perf_counter()
    data, source, cm, layout, _layers = load_for_recipe(recipe, tune.val_per_class)
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
    need_res = "quantile" in space.range or any(SALIENCIES[s].needs_samples for s in space.saliency)
    need_res |= needs_samples([edit])
    need_mean = any(needs_general_mean(op) for op in [*space.operators, edit.operator.name])
    mean_text = (edit.operator.mean_source or "", f"edits.{tune.edit}.operator.mean_source")
    key = cache_key(recipe, all_layers, need_res)
    out = Path(tune.dir).expanduser()
    stats_file, base_file = out / f"stats-{key}.safetensors", out / f"base-{key}.safetensors"
    t1 = time.perf_counter()
    if stats_file.is_file():  # a rerun or --pick: the statistics pass is not repeated
        stats, reservoir = load_stats(stats_file, recipe.seed)
        log(f"tune: statistics loaded from {stats_file}")
        general_mean = (
            general_means(*mean_text, cm, stats, recipe.batch_size) if need_mean else None
        )
    else:
        prep = statistics(
            cm,
            data.fit,
            all_layers,
            recipe.batch_size,
            recipe.seed,
            samples=need_res,
            general_mean=mean_text if need_mean else None,
        )
        stats, reservoir, general_mean = prep.stats, prep.reservoir, prep.general_mean
        out.mkdir(parents=True, exist_ok=True)
        save_stats(stats, reservoir, stats_file)
    t2 = time.perf_counter()
    if recipe.prompt.calibrate and cm.is_lm:
        calibrate(cm, recipe.batch_size)
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
        stats,
        reservoir,
        general_mean,
        ppl_ids,
        log,
        timings=timings,
        base_file=base_file,
    )


def cache_key(recipe: Recipe, layers: list[int], reservoir: bool) -> str:
    """A digest of everything the statistics pass and the base cache depend on."""
    from .. import __version__

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


# ---- the study -------------------------------------------------------------------------------


def study_name(recipe: Recipe) -> str:
    """A name that changes whenever the search would measure something else."""
    if recipe.tune.study:
        return recipe.tune.study
    t = recipe.tune
    doc = {
        "model": recipe.model.model_dump(mode="json"),
        "data": recipe.data.model_dump(mode="json"),
        "prompt": recipe.prompt.model_dump(mode="json"),
        "edit": recipe.edits[t.edit].model_dump(mode="json"),
        "eval": recipe.eval.model_dump(mode="json"),
        "seed": recipe.seed,
        "tune": t.model_dump(mode="json", include={"space", "objectives", "val_per_class"})
        | {"windows": t.perplexity_windows, "sampler": t.sampler, "edit": t.edit},
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return f"nledit-{digest[:12]}"


def storage_url(recipe: Recipe) -> str:
    if recipe.tune.storage:
        return recipe.tune.storage
    path = Path(recipe.tune.dir).expanduser().resolve() / "tune.db"
    return f"sqlite:///{path}"


def make_sampler(recipe: Recipe, offset: int) -> Any:
    """The sampler, seeded by the seed plus the number of trials already in the study, so a
    resumed study draws new points rather than repeating its first ones."""
    import optuna

    t = recipe.tune
    seed = (recipe.seed if t.seed is None else t.seed) + offset
    if t.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, t.trials // 4))
    if t.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(4, min(10, t.trials // 3))
    with warnings.catch_warnings():  # multivariate/group: experimental flags, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=True
        )


def open_study(recipe: Recipe, offset: int | None = None) -> Any:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    directions = [DIRECTIONS[o] for o in recipe.tune.objectives]
    Path(recipe.tune.dir).expanduser().mkdir(parents=True, exist_ok=True)
    name, url = study_name(recipe), storage_url(recipe)
    if offset is None:
        try:
            existing = optuna.load_study(study_name=name, storage=url)
            offset = len(existing.trials)
        except KeyError:
            offset = 0
    return optuna.create_study(
        storage=url,
        study_name=name,
        directions=directions,
        sampler=make_sampler(recipe, offset),
        load_if_exists=True,
    )


def complete_trials(study: Any) -> list[Any]:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def _fmt(p: dict[str, Any]) -> str:
    parts = [f"L{p['layer']}", p["saliency"], f"p={p['top_p']:.3f}"]
    if p["saliency"] == "selective":
        parts.append(f"{p['selectivity']}^{p['magnitude_weight']:.2f}")
    if p["range"] == "quantile":
        parts.append(f"q=[{p['quantiles'][0]:.3f},{p['quantiles'][1]:.3f}]")
    else:
        parts.append(f"tau={p['tau']:.2f}")
    if p["trim_overlap"]:
        parts.append("trim")
    if p.get("positions", "all") != "all":
        parts.append(f"at {p['positions']}")
    op = p["operator"] + (f"({p['alpha']:.2f})" if "alpha" in p else "")
    op += f"({p['beta']:.2f})" if "beta" in p else ""
    return " ".join([*parts, op])


def _fmt_metrics(m: dict[str, Any]) -> str:
    s = f"dAcc {m['d_acc']:+.3f} dConf {m['d_conf']:+.3f} dCAcc {m['d_cacc']:+.3f}"
    s += f" dCConf {m['d_cconf']:+.3f}"
    return s + (f" dPPL {m['d_ppl']:+.2f}" if "d_ppl" in m else "")


def run_trials(ctx: TuneContext, study: Any, log: Callable[[str], None] = print) -> None:
    """Run trials until the study holds ``tune.trials`` finished ones."""
    tune = ctx.recipe.tune
    base_edit = _raw_edit(ctx)
    done = len(complete_trials(study))
    todo = max(0, tune.trials - done)
    if todo == 0:
        log(f"tune: study {study.study_name} already holds {done} finished trial(s)")
        return
    log(f"tune: study {study.study_name}: {done} finished, running {todo} more")

    def objective(trial: Any) -> tuple[float, ...]:
        p = suggest(trial, tune.space, ctx.layers)
        mapping = edit_mapping(base_edit, p)
        m = evaluate_edit(ctx, to_edit(mapping))
        trial.set_user_attr("edit", mapping)
        trial.set_user_attr("params", p)
        for key, value in m.items():
            trial.set_user_attr(key, value)
        return tuple(float(m[o]) for o in tune.objectives)

    def progress(study: Any, trial: Any) -> None:
        n = len(complete_trials(study))
        if trial.state.name != "COMPLETE":
            log(f"[{n}/{tune.trials}] trial {trial.number} {trial.state.name.lower()}")
            return
        a = trial.user_attrs
        log(
            f"[{n}/{tune.trials}] trial {trial.number}: {_fmt(a['params'])} k={a['k']}: "
            f"{_fmt_metrics(a)} ({a['seconds']:.1f}s)"
        )

    study.optimize(objective, n_trials=todo, callbacks=[progress], catch=(TuneError,))


def _raw_edit(ctx: TuneContext) -> dict[str, Any]:
    raw = yaml.safe_load(ctx.text)
    return dict(raw["edits"][ctx.recipe.tune.edit])


def reference_metrics(ctx: TuneContext, study: Any) -> dict[str, Any]:
    """The recipe's own edit on the validation split (stored in the study once)."""
    ref = study.user_attrs.get("reference")
    if ref is None:
        ref = evaluate_edit(ctx, ctx.edit)
        study.set_user_attr("reference", ref)
    return {**ref, "selectivity": selectivity(ref)}


# ---- the pick (rule: ``tune_pick``) ---------------------------------------------------------


def choose(ctx: TuneContext, study: Any, reference: dict[str, Any]) -> Pick:
    """``tune.pick`` when set, else the rule of ``tune_pick``."""
    trials = complete_trials(study)
    n = ctx.recipe.tune.pick
    if n is None:
        return pick_trial(trials, reference, ctx.recipe.tune.keep)
    for t in trials:
        if t.number == n:
            return Pick(t, f"trial {n} chosen by tune.pick")
    numbers = ", ".join(str(t.number) for t in trials[:50])
    raise TuneError(f"tune.pick: trial {n} is not a finished trial of the study ({numbers})")


def tuned_recipe_text(ctx: TuneContext, pick: Pick, study: Any) -> str:
    """The recipe with the tuned edit in place of the original, as YAML; validated."""
    raw = yaml.safe_load(ctx.text)
    raw["edits"][ctx.recipe.tune.edit] = pick.trial.user_attrs["edit"]
    raw.pop("tune", None)
    a = pick.trial.user_attrs
    head = [
        f"# Tuned by `nledit tune`: trial {pick.trial.number} of study {study.study_name}.",
        f"# Pick: {pick.rule}.",
        f"# Validation: {_fmt_metrics(a)} (k={a['k']} neurons).",
    ]
    body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    text = "\n".join(head) + "\n" + body
    parse_recipe(yaml.safe_load(text), "tuned recipe")
    return text


# ---- held-out evaluation and the whole job ---------------------------------------------------

COMPARED = (("default", "range"), ("tuned", "range"), ("neuron", "neuron"), ("tuned-nm", "neuron"))


def final_evaluation(ctx: TuneContext, tuned: EditSpec) -> EvalResult:
    """The erasure table and perplexity on the held-out evaluation split, side by side:
    ``default`` (the recipe's edit), ``tuned`` (the pick), and neuron masking of each one's
    neurons (``neuron``: the paper's baseline; ``tuned-nm``)."""
    edits = {"default": ctx.edit, "tuned": tuned, "neuron": ctx.edit, "tuned-nm": tuned}
    gates, baseline = [], []
    for method, mode in COMPARED:
        for g in build_gates(ctx, edits[method], mode):
            g.spec["method"] = method
            g.spec["name"] = f"{g.spec['name']}.{method}"
            (gates if mode == "range" else baseline).append(g)
    layers = [resolve_layer(e.layer, ctx.cm.layout.n_layers) for e in ctx.recipe.edits]
    fitted = Fitted(
        ctx.recipe,
        ctx.text,
        ctx.source,
        ctx.data,
        ctx.cm,
        ctx.cm.layout,
        layers,
        ctx.stats,
        [],
        gates,
        baseline,
        ctx.reservoir,
    )
    result = erasure_table(fitted)
    ev = ctx.recipe.eval
    if ev.perplexity_source and ev.perplexity_windows and ctx.cm.is_lm:
        result.perplexity = perplexity(
            ctx.cm.model,
            ctx.cm.layout,
            ctx.cm.tokenizer,
            load_text(ev.perplexity_source),
            conditions_for(fitted),
            ev.perplexity_window,
            ev.perplexity_windows,
            ctx.recipe.batch_size,
        )
    return result


@dataclass
class TuneOutput:
    study: str
    storage: str
    trials: int
    pick: Pick
    reference: dict[str, Any]
    recipe_path: Path
    result: EvalResult | None
    files: list[Path]


def run_tune(recipe: Recipe, text: str, log: Callable[[str], None] = print) -> TuneOutput:
    """Prepare, run (or continue) the study, pick, write the tuned recipe, evaluate it."""
    from . import tune_report

    t0 = time.perf_counter()
    ctx = prepare(recipe, text, log)
    study = open_study(recipe)
    ref = reference_metrics(ctx, study)
    log(f"tune: reference (the recipe's edit) on validation: {_fmt_metrics(ref)} k={ref['k']}")
    run_trials(ctx, study, log)
    trials = complete_trials(study)
    pareto = {t.number for t in study.best_trials} if trials else set()
    out = Path(recipe.tune.dir).expanduser()
    rows = tune_report.trial_rows(trials, pareto)
    metrics = ("d_acc", "d_cacc")
    try:
        pick = choose(ctx, study, ref)
    except NoPick as err:  # the study files still say what was tried
        tune_report.write_study_files(out, rows, ref, -1, metrics)
        raise TuneError(str(err)) from None
    files = tune_report.write_study_files(out, rows, ref, pick.trial.number, metrics)
    log(tune_report.pareto_markdown(rows, ref, pick.trial.number, *metrics))
    log(f"tune: picked trial {pick.trial.number}: {pick.rule}")
    if not pick.qualified:
        log(
            "warning: no trial has less collateral damage and perplexity change than the "
            "recipe's edit on validation; the pick is the most selective edit found"
        )
    recipe_path = out / "tuned.yaml"
    recipe_path.write_text(tuned_recipe_text(ctx, pick, study), encoding="utf-8")
    files.append(recipe_path)
    log(f"tune: tuned recipe written to {recipe_path}")
    result = None
    if recipe.tune.evaluate:
        t1 = time.perf_counter()
        result = final_evaluation(ctx, to_edit(pick.trial.user_attrs["edit"]))
        ctx.timings["final_eval_s"] = time.perf_counter() - t1
        files.append(tune_report.write_comparison(out, result, pick, ref))
        log(tune_report.comparison_text(result))
    ctx.timings["total_s"] = time.perf_counter() - t0
    summary = {
        "study": study.study_name,
        "storage": storage_url(recipe),
        "trials": len(trials),
        "objectives": {o: DIRECTIONS[o] for o in recipe.tune.objectives},
        "reference": ref,
        "pick": {
            "trial": pick.trial.number,
            "rule": pick.rule,
            "qualified": pick.qualified,
            **pick.trial.user_attrs,
        },
        "pareto": sorted(pareto),
        "held_out": result.to_dict() if result is not None else None,
        "timings": ctx.timings,
    }
    (out / "tune.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    files.append(out / "tune.json")
    return TuneOutput(
        study.study_name, storage_url(recipe), len(trials), pick, ref, recipe_path, result, files
    )
