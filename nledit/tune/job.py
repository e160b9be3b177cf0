"""The tuning job behind `nledit tune`: a multi-objective search for an edit, judged on a
validation split.

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

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..evaluation.erasure import EvalResult
from ..fitting.recipe_fit import Fitted, recipe_edit
from ..models.arch import resolve_layer
from ..pipeline import evaluate
from ..recipe import EditSpec, Recipe, parse_recipe
from .pick import NoPick, Pick, pick_trial
from .study import (
    complete_trials,
    fmt_metrics,
    open_study,
    reference_metrics,
    run_trials,
    storage_url,
)
from .trial import DIRECTIONS, TuneContext, TuneError, build_gates, to_edit, tune_context

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
        f"# Validation: {fmt_metrics(a)} (k={a['k']} neurons).",
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
            g.spec.method = method
            g.spec.name = f"{g.spec.name}.{method}"
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
        recipe_edit(ctx.recipe, ctx.cm, ctx.data, gates, baseline),
        ctx.reservoir,
    )
    return evaluate(fitted)  # the erasure table and perplexity, as `nledit run` measures


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
    from . import report as tune_report

    t0 = time.perf_counter()
    ctx = tune_context(recipe, text, log)
    refuse_incompetent(ctx, log)
    study = open_study(recipe)
    ref = reference_metrics(ctx, study)
    log(f"tune: reference (the recipe's edit) on validation: {fmt_metrics(ref)} k={ref['k']}")
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


def refuse_incompetent(ctx: Any, log: Any = print) -> None:
    """Stop before any trial when the base model cannot do the task or the tuned concept on
    the validation split (``competence``): no edit can be judged against such a base."""
    from ..evaluation.competence import competence, line

    cache = ctx.cache
    concepts = list(ctx.edit.concepts)
    comp = competence(cache.base_pred, cache.gold, list(ctx.cm.label_names), concepts)
    log(f"tune: {line(comp)}")
    if not comp["competent"] and ctx.recipe.tune.base_check:
        raise TuneError(
            "tune: the base model cannot do this task on the validation split "
            f"({comp['task_why']}; "
            + "; ".join(v["why"] for v in comp["targets"].values())
            + "); there is no erasure to tune. Fix the prompt (shots, template, label_words, "
            "calibrate) or use a model that can do the task"
        )
